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
import os.path as osp
import sys
from collections.abc import Sequence

from parcnetv2.cli import run_cli  # first: it quiets mmengine's import-time warning

# isort: split
from mmengine.config import Config

from parcnetv2.openmmlab import runner as mmrunner
from parcnetv2.openmmlab.checkpoint_coverage import check_checkpoint_covers
from parcnetv2.openmmlab.config import config_scope, local_checkpoint, to_tta
from parcnetv2.openmmlab.weights_only import allow_mmengine_checkpoints


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = mmrunner.launch_parser(
        "Evaluate a ParCNetV2 detector or segmentor",
        "test config file path",
        "the dir for the evaluation logs/metrics",
    )
    parser.add_argument("checkpoint", help="checkpoint file")
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
        "--allow-partial",
        action="store_true",
        help="evaluate a checkpoint that leaves part of the model (backbone/neck/heads) untrained",
    )
    return mmrunner.parse_launch_args(parser, argv)


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
    cfg = mmrunner.config_from_args(args)
    scope = config_scope(cfg)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show or args.show_dir:
        _enable_visualization(cfg, args, scope)
    if args.tta:
        cfg = to_tta(cfg)
    if args.out and scope == "mmseg":
        cfg.test_evaluator["output_dir"] = args.out
        cfg.test_evaluator["keep_results"] = True
    return cfg


def check_checkpoint(cfg: Config, checkpoint: str, allow_partial: bool = False) -> dict[str, list[str]]:
    """Refuse (with ``allow_partial``: warn about) a checkpoint file that does not cover the model."""
    model_cfg = cfg.model.module if cfg.model.get("type", "").endswith("TTAModel") else cfg.model
    return check_checkpoint_covers(
        mmrunner.build_model(cfg, model_cfg), checkpoint, allow_partial=allow_partial, name=checkpoint
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
    runner = mmrunner.build_runner(cfg)
    if args.out and detection:
        from mmdet.evaluation import DumpDetResults

        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=osp.abspath(args.out)))
    return runner.test()


if __name__ == "__main__":
    with mmrunner.distributed_teardown():
        run_cli(main, sys.argv[1:], prog="tools/test.py")
