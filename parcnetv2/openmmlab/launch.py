"""The command lines of ``tools/train.py`` and ``tools/test.py``, parsed in one place, and their launchers.

:func:`parse_args` reads either tool's command line (mmdet's, plus ``--debug`` and ``--allow-partial``);
:func:`train_config` / :func:`test_config` turn it into the config the runner helpers
(:mod:`parcnetv2.openmmlab.runner`) run. ``--launcher pytorch`` also runs on machines without a GPU
(gloo: :func:`setup_cpu_distributed`), and :func:`distributed_teardown` ends a torchrun rank cleanly.
Imports only torch and mmengine; what differs between the tasks (``--out``, ``--show-dir``) is the
config's task's (:func:`parcnetv2.openmmlab.task.task_of`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction

from parcnetv2.cli import add_debug_argument

from .config import (
    enable_amp,
    enable_auto_scale_lr,
    load_config,
    local_checkpoint,
    resume_from_scratch_warning,
    set_resume,
)

__all__ = [
    "build_parser",
    "config_from_args",
    "distributed_teardown",
    "parse_args",
    "setup_cpu_distributed",
    "shutdown_distributed",
    "test_config",
    "train_config",
]


def _train_arguments(parser: argparse.ArgumentParser) -> None:
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


def _test_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint file (or an http(s) URL)")
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


_TOOLS: dict[str, tuple[str, str, Callable[[argparse.ArgumentParser], None]]] = {
    "train": (
        "Train a ParCNetV2 detector or segmentor",
        "the dir to save logs and models (default: ./work_dirs/CONFIG_NAME)",
        _train_arguments,
    ),
    "test": (
        "Evaluate a ParCNetV2 detector or segmentor",
        "the dir for the evaluation logs/metrics",
        _test_arguments,
    ),
}


def build_parser(tool: str) -> argparse.ArgumentParser:
    """The command line of ``tools/{tool}.py`` (``'train'`` or ``'test'``), as mmdet's."""
    description, work_dir_help, add_arguments = _TOOLS[tool]
    parser = argparse.ArgumentParser(prog=f"tools/{tool}.py", description=description)
    parser.add_argument("config", help=f"{tool} config file path")
    add_arguments(parser)
    parser.add_argument("--work-dir", help=work_dir_help)
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        help="override config settings, key=value (data_root=PATH rebases all data paths)",
    )
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    add_debug_argument(parser)
    return parser


def parse_args(tool: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``tools/{tool}.py``'s command line; ``LOCAL_RANK`` comes from ``--local-rank`` unless the
    launcher set it."""
    args = build_parser(tool).parse_args(argv)
    if "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(args.local_rank)
    return args


def config_from_args(args: argparse.Namespace) -> Config:
    """``args.config`` with ``--cfg-options`` and ``--work-dir`` applied, its launcher set (and, for
    ``--launcher pytorch`` without a GPU, gloo: :func:`setup_cpu_distributed`)."""
    cfg = load_config(args.config, work_dir=args.work_dir, cfg_options=args.cfg_options)
    cfg.launcher = args.launcher
    setup_cpu_distributed(cfg, args.launcher)
    return cfg


def train_config(args: argparse.Namespace) -> Config:
    """The config ``tools/train.py`` trains: ``--amp``, ``--auto-scale-lr`` and ``--resume`` applied (a
    ``--resume`` with nothing to resume from warns that training starts from scratch)."""
    cfg = config_from_args(args)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        enable_auto_scale_lr(cfg)
    set_resume(cfg, args.resume)
    warning = resume_from_scratch_warning(cfg)
    if warning:
        from mmengine.logging import print_log

        print_log(warning, logger="current", level=logging.WARNING)
    return cfg


def test_config(args: argparse.Namespace) -> Config:
    """The config ``tools/test.py`` evaluates (before ``--tta``, which the runner helper applies):
    ``--show``, and the task's ``--out`` and ``--show-dir``. An http(s) checkpoint is downloaded first
    (``args.checkpoint`` becomes the local file)."""
    from .task import task_of

    args.checkpoint = local_checkpoint(args.checkpoint)
    cfg = config_from_args(args)
    if args.show or args.show_dir:
        hook = cfg.default_hooks.get("visualization")
        if hook is None:
            raise RuntimeError("--show/--show-dir need default_hooks.visualization in the config")
        hook["draw"] = True
        if args.show:
            hook.update(show=True, wait_time=args.wait_time)
    task_of(cfg).set_test_outputs(cfg, args.out, args.show_dir)
    return cfg


# --------------------------------------------------------------------------------- launchers
def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Let ``--launcher pytorch`` run on machines without a GPU (gloo, DDP on CPU).

    mmengine's launcher calls ``torch.cuda.set_device`` and wraps the model with
    ``device_ids=[LOCAL_RANK]``, both of which fail without CUDA. On such machines the process group is
    started here with gloo (from torchrun's environment), and the wrapper gets no device ids. Returns
    whether it did so; with CUDA it changes nothing.
    """
    if launcher != "pytorch" or torch.cuda.is_available():
        return False
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo", init_method="env://")
    cfg.setdefault("env_cfg", {})
    cfg.env_cfg.setdefault("dist_cfg", {})
    cfg.env_cfg.dist_cfg.backend = "gloo"
    if cfg.get("model_wrapper_cfg") is None:
        cfg.model_wrapper_cfg = dict(
            type="MMDistributedDataParallel",
            device_ids=None,  # CPU module (the Runner's default would be [LOCAL_RANK])
            broadcast_buffers=False,
            find_unused_parameters=cfg.get("find_unused_parameters", False),
        )
    return True


def shutdown_distributed(synchronize: bool = True) -> None:
    """Shut gloo/NCCL down before interpreter exit (torchrun ranks could abort in teardown).

    ``synchronize``: the ranks first meet at a barrier, so none tears its connections down while another
    still finishes its last collective (without it a 2-process gloo run aborted at exit about every
    second time: SIGABRT, "terminate called without an active exception"). Only for ranks that succeeded:
    a failed rank's peers may never reach the barrier.
    """
    if dist.is_available() and dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def distributed_teardown() -> Iterator[None]:
    """Around a tool's run, which may be under torchrun: :func:`shutdown_distributed` at the end,
    synchronized when the run succeeded."""
    try:
        yield
    except BaseException:
        shutdown_distributed(synchronize=False)
        raise
    shutdown_distributed()
