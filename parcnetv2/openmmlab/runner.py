"""Building models and runners, and the one train-then-test driver.

``tools/train.py`` and ``tools/test.py`` share :func:`launch_parser` and :func:`parse_launch_args`,
:func:`config_from_args` (config, overrides, work dir, launcher) and :func:`build_runner`;
``tools/analysis_tools/get_flops.py`` and ``benchmark.py`` share :func:`build_bare_model`;
``parcnetv2.segmentation.train_builtin`` (and the demo) run :func:`train_then_test`. Imports only torch
and mmengine.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction

from parcnetv2.cli import add_debug_argument

from .config import config_scope, load_config, to_tta

__all__ = [
    "build_bare_model",
    "build_model",
    "build_runner",
    "config_from_args",
    "distributed_teardown",
    "launch_parser",
    "parse_launch_args",
    "setup_cpu_distributed",
    "shutdown_distributed",
    "test",
    "train",
    "train_then_test",
]


# --------------------------------------------------------------------------------- models
def build_model(cfg: Config, model_cfg: Mapping[str, Any] | None = None) -> torch.nn.Module:
    """Build the config's model (or ``model_cfg``) in its scope's registry, without initialising weights."""
    scope = config_scope(cfg)
    from mmengine.registry import DefaultScope

    registry = importlib.import_module(f"{scope}.registry").MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(copy.deepcopy(model_cfg if model_cfg is not None else cfg.model))


def build_bare_model(cfg: Config) -> torch.nn.Module:
    """The config's model for measuring (FLOPs, speed, export): no pretrained backbone, no SyncBN."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope

    init_default_scope(config_scope(cfg))
    model_cfg = copy.deepcopy(cfg.model)
    if model_cfg.get("backbone", {}).get("init_cfg") is not None:
        model_cfg.backbone.init_cfg = None  # measuring needs no weights
    return revert_sync_batchnorm(build_model(cfg, model_cfg))


# --------------------------------------------------------------------------------- launching
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


def launch_parser(description: str, config_help: str, work_dir_help: str) -> argparse.ArgumentParser:
    """The head of mmdet's ``tools/train.py`` and ``tools/test.py`` command lines: ``config`` and
    ``--work-dir`` (:func:`parse_launch_args` adds the tail)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("config", help=config_help)
    parser.add_argument("--work-dir", help=work_dir_help)
    return parser


def parse_launch_args(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    cfg_options_help: str = "override config settings, key=value",
) -> argparse.Namespace:
    """Add the tail mmdet's ``tools/train.py`` and ``tools/test.py`` share (``--cfg-options``,
    ``--launcher``, ``--local-rank``, plus ``--debug``) and parse ``argv``; ``LOCAL_RANK`` comes from
    ``--local-rank`` unless the launcher set it."""
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help=cfg_options_help)
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    add_debug_argument(parser)
    args = parser.parse_args(argv)
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


def build_runner(cfg: Config) -> Any:
    """mmengine's ``Runner`` for ``cfg`` (or the config's own ``runner_type``)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    return Runner.from_cfg(cfg) if "runner_type" not in cfg else RUNNERS.build(cfg)


# --------------------------------------------------------------------------------- train, then test
def _own_visualizer(cfg: Config, suffix: str) -> None:
    """A visualizer name of the run's own: mmengine keeps one visualizer per name and process, so a second
    runner with the config's name would log into the first one's folder."""
    if cfg.get("visualizer") is not None:
        cfg.visualizer.name = f"{cfg.visualizer.get('name', 'visualizer')}_{suffix}_{time.time_ns()}"


def _last_metrics(message_hub: Any, prefix: str) -> dict[str, float]:
    """The evaluator's last ``prefix/...`` scalars (without the timer hook's ``time``/``data_time``)."""
    start = len(prefix) + 1
    return {
        k[start:]: float(v.current())
        for k, v in message_hub.log_scalars.items()
        if k.startswith(prefix + "/") and k[start:] not in ("time", "data_time")
    }


def train(cfg: Config, validate: bool = True, resume: bool = False) -> dict[str, Any]:
    """Train ``cfg``: the last checkpoint, the length trained, the last validation metrics, the wall time.

    Args:
        validate: validate at the config's ``val_interval`` (``False``: no validation loop at all).
        resume: continue from the work dir's last checkpoint, if there is one.
    """
    cfg = copy.deepcopy(cfg)
    if not validate:
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    if resume:
        cfg.resume = True
    _own_visualizer(cfg, "train")
    start = time.perf_counter()
    runner = build_runner(cfg)
    runner.train()
    name = f"epoch_{runner.epoch}.pth" if "max_epochs" in cfg.train_cfg else f"iter_{runner.iter}.pth"
    checkpoint = Path(runner.work_dir) / name
    return dict(
        checkpoint=str(checkpoint) if checkpoint.exists() else None,
        epochs=runner.epoch,
        iterations=runner.iter,
        metrics=_last_metrics(runner.message_hub, "val"),
        train_wall_s=round(time.perf_counter() - start, 1),
    )


def test(
    cfg: Config, checkpoint: str | os.PathLike, tta: bool = False, work_dir: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on the test loader as ``tools/test.py`` does (``--tta``: ``tta``), logging
    into ``work_dir`` (default: the config's)."""
    cfg = to_tta(cfg) if tta else copy.deepcopy(cfg)
    cfg.load_from = os.fspath(checkpoint)
    cfg.resume = False
    if work_dir is not None:
        cfg.work_dir = os.fspath(work_dir)
    _own_visualizer(cfg, "test")
    start = time.perf_counter()
    metrics = build_runner(cfg).test()
    return dict(
        metrics={k: float(v) for k, v in metrics.items()}, test_wall_s=round(time.perf_counter() - start, 1)
    )


def train_then_test(
    cfg: Config,
    tta: bool = False,
    validate: bool = True,
    resume: bool = False,
    test_work_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """:func:`train` (``validate``, ``resume``), then :func:`test` of the checkpoint it ended with (``tta``,
    logs in ``test_work_dir``); the training result with ``test_metrics`` and ``test_wall_s`` added."""
    result = train(cfg, validate=validate, resume=resume)
    if result["checkpoint"] is None:
        raise RuntimeError(f"training wrote no final checkpoint in {cfg.work_dir}")
    tested = test(cfg, result["checkpoint"], tta=tta, work_dir=test_work_dir)
    return dict(result, test_metrics=tested["metrics"], test_wall_s=tested["test_wall_s"])
