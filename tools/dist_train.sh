#!/usr/bin/env bash
# Distributed training with torchrun:  tools/dist_train.sh CONFIG GPUS [train.py options...]
# Multi-node: run it on every node with NNODES, NODE_RANK and MASTER_ADDR (and the same PORT) set, e.g.
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 tools/dist_train.sh CONFIG 8   # on the first node
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 tools/dist_train.sh CONFIG 8   # on the second node
# On a machine without GPUs the processes train on CPU over gloo (GPUS = number of processes).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 CONFIG GPUS [train.py options...]" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONFIG=$1
GPUS=$2
shift 2
exec "$here/torchrun_launch.sh" "$GPUS" "$here/train.py" "$CONFIG" --launcher pytorch "$@"
