#!/usr/bin/env bash
# Distributed evaluation with torchrun:  tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR (and PORT) as for dist_train.sh.
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: $0 CONFIG CHECKPOINT GPUS [test.py options...]" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
exec "$here/torchrun_launch.sh" "$GPUS" "$here/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
