"""Evaluate a detector (mmdet 3.x) or segmentor (mmseg 1.x) checkpoint; the config's scope picks which.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE_OR_DIR] [--show] [--show-dir DIR]
                         [--wait-time S] [--tta] [--cfg-options k=v ...] [--launcher ...]

Same command line as mmdet's/mmseg's ``tools/test.py``. ``--out``: detection -> a pickle of the
predictions (``DumpDetResults``); segmentation -> a folder of predicted masks. Checkpoints written by
mmengine load on torch >= 2.6 (allow-listed, ``weights_only`` stays on). Multi-GPU: ``tools/dist_test.sh``.

Unlike mmengine's non-strict load, a checkpoint that does not hold every weight of the model (e.g. a
segmentation or classification checkpoint for a detector) is refused with one line naming the missing
groups (backbone / neck / heads); ``--allow-partial`` evaluates it anyway, with a warning. Errors are one
line on stderr with exit status 1 (``--debug`` or ``PARCNETV2_DEBUG=1``: the traceback).
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from collections.abc import Sequence

from parcnetv2.cli import add_debug_argument, run_cli  # first: it quiets mmengine's import-time warning

# isort: split
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from parcnetv2.detection.checkpoint_coverage import check_checkpoint_covers
from parcnetv2.detection.compat import allow_mmengine_checkpoints
from parcnetv2.detection.runtime import (
    build_model,
    config_scope,
    default_work_dir,
    local_checkpoint,
    merge_cfg_options,
    setup_cpu_distributed,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Evaluate a ParCNetV2 detector or segmentor")
    parser.add_argument("config", help="test config file path")
    parser.add_argument("checkpoint", help="checkpoint file")
    parser.add_argument("--work-dir", help="the dir for the evaluation logs/metrics")
    parser.add_argument(
        "--out", help="detection: dump predictions to this .pkl; segmentation: save masks here"
    )
    parser.add_argument("--show", action="store_true", help="show prediction results")
    parser.add_argument(
        "--show-dir", help="save painted images to this dir (relative to the work dir's timestamp dir)"
    )
    parser.add_argument("--wait-time", type=float, default=2, help="the interval of show (s)")
    parser.add_argument(
        "--tta", action="store_true", help="test-time augmentation (config's tta_model/tta_pipeline)"
    )
    parser.add_argument(
        "--cfg-options", nargs="+", action=DictAction, help="override config settings, key=value"
    )
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="evaluate a checkpoint that leaves part of the model (backbone/neck/heads) untrained",
    )
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(args.local_rank)
    return args


def _enable_visualization(cfg: Config, args: argparse.Namespace, scope: str) -> None:
    hook = cfg.default_hooks.get("visualization")
    if hook is None:
        raise RuntimeError("--show/--show-dir need default_hooks.visualization in the config")
    hook["draw"] = True
    if args.show:
        hook["show"] = True
        hook["wait_time"] = args.wait_time
    if args.show_dir:
        if scope == "mmdet":
            hook["test_out_dir"] = args.show_dir
        else:
            cfg.visualizer["save_dir"] = args.show_dir


def build_config(args: argparse.Namespace) -> Config:
    cfg = Config.fromfile(args.config)
    scope = config_scope(cfg)
    cfg.launcher = args.launcher
    merge_cfg_options(cfg, args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = default_work_dir(args.config)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show or args.show_dir:
        _enable_visualization(cfg, args, scope)
    if args.tta:
        if "tta_model" not in cfg or "tta_pipeline" not in cfg:
            raise RuntimeError("--tta needs tta_model and tta_pipeline in the config")
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out and scope == "mmseg":
        cfg.test_evaluator["output_dir"] = args.out
        cfg.test_evaluator["keep_results"] = True
    setup_cpu_distributed(cfg, args.launcher)
    return cfg


def check_checkpoint(cfg: Config, checkpoint: str, allow_partial: bool = False) -> dict[str, list[str]]:
    """Refuse (with ``allow_partial``: warn about) a checkpoint file that does not cover the model."""
    model_cfg = cfg.model.module if cfg.model.get("type", "").endswith("TTAModel") else cfg.model
    return check_checkpoint_covers(
        build_model(cfg, model_cfg), checkpoint, allow_partial=allow_partial, name=checkpoint
    )


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    allow_mmengine_checkpoints()
    args.checkpoint = local_checkpoint(args.checkpoint)
    cfg = build_config(args)
    detection = config_scope(cfg) == "mmdet"
    if args.out and detection and not args.out.endswith((".pkl", ".pickle")):
        raise ValueError("--out must be a .pkl file for detection configs")
    check_checkpoint(cfg, args.checkpoint, args.allow_partial)
    runner = Runner.from_cfg(cfg) if "runner_type" not in cfg else RUNNERS.build(cfg)
    if args.out and detection:
        from mmdet.evaluation import DumpDetResults

        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=osp.abspath(args.out)))
    return runner.test()


if __name__ == "__main__":
    try:
        run_cli(main, sys.argv[1:], prog="tools/test.py")
    finally:  # shut gloo/NCCL down before interpreter exit (torchrun ranks could abort in teardown)
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
