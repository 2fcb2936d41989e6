"""Train a detector (mmdet 3.x) or segmentor (mmseg 1.x) from a config; the config's scope picks which.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr]
                                 [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

Same command line as mmdet's ``tools/train.py``. On top of it: ``--resume`` and ``load_from`` work on
torch >= 2.6 (mmengine's checkpoint contents are allow-listed for ``weights_only`` loading),
``--cfg-options data_root=PATH`` moves every dataset/evaluator path, and ``--launcher pytorch`` also runs
on machines without a GPU (gloo). Multi-GPU / multi-node: ``tools/dist_train.sh``; Slurm:
``tools/slurm_train.sh``. A missing data root is an error naming it and the command that writes the
built-in set (nothing is generated here).

``--cfg-options train_cfg.max_epochs=N`` (or ``max_iters``) also ends the schedulers that ended with
training at N. ``--resume`` into a work dir without checkpoints warns that training starts from scratch.
Errors are one line on stderr with exit status 1 (``--debug`` or ``PARCNETV2_DEBUG=1``: the traceback).
The command line is :mod:`parcnetv2.openmmlab.launch`'s, the run :func:`parcnetv2.openmmlab.runner.train`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from parcnetv2.cli import run_cli  # first: it quiets mmengine's import-time warning

# isort: split
from parcnetv2.openmmlab import launch, runner
from parcnetv2.openmmlab.weights_only import allow_mmengine_checkpoints


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train; the last checkpoint, the epochs and iterations trained, the last validation metrics."""
    args = launch.parse_args("train", argv)
    allow_mmengine_checkpoints()
    return runner.train(launch.train_config(args))


if __name__ == "__main__":
    with launch.distributed_teardown():
        run_cli(main, sys.argv[1:], prog="tools/train.py")
