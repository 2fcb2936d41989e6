"""Train a detector (mmdet 3.x) or segmentor (mmseg 1.x) from a config; the config's scope picks which.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr]
                                 [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

Same command line as mmdet's ``tools/train.py``. On top of it: ``--resume`` and ``load_from`` work on
torch >= 2.6 (mmengine's checkpoint contents are allow-listed for ``weights_only`` loading),
``--cfg-options data_root=PATH`` moves every dataset/evaluator path, and ``--launcher pytorch`` also runs
on machines without a GPU (gloo). Multi-GPU / multi-node: ``tools/dist_train.sh``; Slurm:
``tools/slurm_train.sh``.

``--cfg-options train_cfg.max_epochs=N`` (or ``max_iters``) also ends the schedulers that ended with
training at N. ``--resume`` into a work dir without checkpoints warns that training starts from scratch.
Errors are one line on stderr with exit status 1 (``--debug`` or ``PARCNETV2_DEBUG=1``: the traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from parcnetv2.cli import run_cli  # first: it quiets mmengine's import-time warning

# isort: split
from mmengine.config import Config
from mmengine.logging import print_log

from parcnetv2.openmmlab import runner as mmrunner
from parcnetv2.openmmlab.config import (
    enable_amp,
    enable_auto_scale_lr,
    resume_from_scratch_warning,
    set_resume,
)
from parcnetv2.openmmlab.weights_only import allow_mmengine_checkpoints


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = mmrunner.launch_parser(
        "Train a ParCNetV2 detector or segmentor",
        "train config file path",
        "the dir to save logs and models (default: ./work_dirs/CONFIG_NAME)",
    )
    parser.add_argument("--amp", action="store_true", default=False, help="enable automatic mixed precision")
    parser.add_argument(
        "--auto-scale-lr", action="store_true", help="scale lr by total batch / base_batch_size"
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        type=str,
        const="auto",
        help="resume from CKPT; without a value, from the latest checkpoint in the work dir",
    )
    return mmrunner.parse_launch_args(
        parser, argv, "override config settings, key=value (data_root=PATH rebases all data paths)"
    )


def build_config(args: argparse.Namespace) -> Config:
    cfg = mmrunner.config_from_args(args)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        enable_auto_scale_lr(cfg)
    set_resume(cfg, args.resume)
    return cfg


def main(argv: Sequence[str] | None = None) -> Any:
    args = parse_args(argv)
    allow_mmengine_checkpoints()
    cfg = build_config(args)
    warning = resume_from_scratch_warning(cfg)
    if warning:
        print_log(warning, logger="current", level=logging.WARNING)
    runner = mmrunner.build_runner(cfg)
    runner.train()
    return runner


if __name__ == "__main__":
    with mmrunner.distributed_teardown():
        run_cli(main, sys.argv[1:], prog="tools/train.py")
