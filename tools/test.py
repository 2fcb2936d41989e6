"""Evaluate a detector (mmdet 3.x) or segmentor (mmseg 1.x) checkpoint; the config's scope picks which.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE_OR_DIR] [--show] [--show-dir DIR]
                         [--wait-time S] [--tta] [--allow-partial] [--cfg-options k=v ...] [--launcher ...]

Same command line as mmdet's/mmseg's ``tools/test.py``. ``--out``: detection -> a pickle of the
predictions (``DumpDetResults``); segmentation -> a folder of predicted masks (the task's
``set_test_outputs``). Checkpoints written by mmengine load on torch >= 2.6 (allow-listed,
``weights_only`` stays on). Multi-GPU: ``tools/dist_test.sh``.

Unlike mmengine's non-strict load, a checkpoint that does not hold every weight of the model (e.g. a
segmentation or classification checkpoint for a detector) is refused with one line naming the missing
groups (backbone / neck / heads); ``--allow-partial`` evaluates it anyway, with a warning. Errors are one
line on stderr with exit status 1 (``--debug`` or ``PARCNETV2_DEBUG=1``: the traceback). The command
line is :mod:`parcnetv2.openmmlab.launch`'s, the run :func:`parcnetv2.openmmlab.runner.test`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from parcnetv2.cli import run_cli  # first: it quiets mmengine's import-time warning

# isort: split
from parcnetv2.openmmlab import launch, runner
from parcnetv2.openmmlab.weights_only import allow_mmengine_checkpoints


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Evaluate; the metrics."""
    args = launch.parse_args("test", argv)
    allow_mmengine_checkpoints()
    cfg = launch.test_config(args)
    return runner.test(cfg, args.checkpoint, tta=args.tta, allow_partial=args.allow_partial)["metrics"]


if __name__ == "__main__":
    with launch.distributed_teardown():
        run_cli(main, sys.argv[1:], prog="tools/test.py")
