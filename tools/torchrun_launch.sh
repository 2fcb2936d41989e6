#!/usr/bin/env bash
# The torchrun launch behind dist_train.sh and dist_test.sh:  tools/torchrun_launch.sh GPUS SCRIPT [args...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR (and PORT) from the environment; PYTHON picks the interpreter.
set -euo pipefail
GPUS=$1
SCRIPT=$2
shift 2
exec "${PYTHON:-python}" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" \
  --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" \
  --master_port="${PORT:-29500}" \
  --nproc_per_node="$GPUS" \
  "$SCRIPT" "$@"
