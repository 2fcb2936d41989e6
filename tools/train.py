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
import os
import sys
from collections.abc import Sequence

from parcnetv2.cli import add_debug_argument, run_cli  # first: it quiets mmengine's import-time warning

# isort: split
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from parcnetv2.detection.compat import allow_mmengine_checkpoints
from parcnetv2.detection.runtime import (
    config_scope,
    default_work_dir,
    enable_amp,
    enable_auto_scale_lr,
    merge_cfg_options,
    resume_from_scratch_warning,
    set_resume,
    setup_cpu_distributed,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a ParCNetV2 detector or segmentor")
    parser.add_argument("config", help="train config file path")
    parser.add_argument(
        "--work-dir", help="the dir to save logs and models (default: ./work_dirs/CONFIG_NAME)"
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
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        help="override config settings, key=value (data_root=PATH rebases all data paths)",
    )
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(args.local_rank)
    return args


def build_config(args: argparse.Namespace) -> Config:
    cfg = Config.fromfile(args.config)
    config_scope(cfg)  # detection or segmentation config, nothing else
    cfg.launcher = args.launcher
    merge_cfg_options(cfg, args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = default_work_dir(args.config)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        enable_auto_scale_lr(cfg)
    set_resume(cfg, args.resume)
    setup_cpu_distributed(cfg, args.launcher)
    return cfg


def main(argv: Sequence[str] | None = None) -> Runner:
    args = parse_args(argv)
    allow_mmengine_checkpoints()
    cfg = build_config(args)
    warning = resume_from_scratch_warning(cfg)
    if warning:
        print_log(warning, logger="current", level=logging.WARNING)
    runner = Runner.from_cfg(cfg) if "runner_type" not in cfg else RUNNERS.build(cfg)
    runner.train()
    return runner


if __name__ == "__main__":
    try:
        run_cli(main, sys.argv[1:], prog="tools/train.py")
    finally:  # shut gloo/NCCL down before interpreter exit (torchrun ranks could abort in teardown)
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
