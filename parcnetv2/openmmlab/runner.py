"""The one OpenMMLab driver: build the model and the runner, train, test, train then test.

``tools/train.py`` runs :func:`train`, ``tools/test.py`` :func:`test` (after the command lines of
:mod:`parcnetv2.openmmlab.launch`), and the demo :func:`train_then_test`; ``get_flops.py``,
``benchmark.py`` and ``export_onnx.py`` build their model with :func:`build_bare_model`. A test first
checks that the checkpoint holds every weight of the model (:func:`check_checkpoint`). Imports only
torch and mmengine; the config's scope picks the toolbox's registry.
"""

from __future__ import annotations

import copy
import importlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from mmengine.config import Config

from .checkpoint_coverage import check_checkpoint_covers
from .config import config_scope, to_tta

__all__ = [
    "build_bare_model",
    "build_model",
    "build_runner",
    "check_checkpoint",
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


def build_runner(cfg: Config) -> Any:
    """mmengine's ``Runner`` for ``cfg`` (or the config's own ``runner_type``)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    return Runner.from_cfg(cfg) if "runner_type" not in cfg else RUNNERS.build(cfg)


def check_checkpoint(cfg: Config, checkpoint: str | os.PathLike, allow_partial: bool = False) -> dict:
    """Refuse (with ``allow_partial``: warn about) a checkpoint file that does not hold every weight of the
    config's model (of the wrapped model under TTA): ``{group: missing keys}``, empty when covered."""
    model_cfg = cfg.model.module if cfg.model.get("type", "").endswith("TTAModel") else cfg.model
    return check_checkpoint_covers(
        build_model(cfg, model_cfg), checkpoint, allow_partial=allow_partial, name=os.fspath(checkpoint)
    )


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
    cfg: Config,
    checkpoint: str | os.PathLike,
    tta: bool = False,
    work_dir: str | os.PathLike | None = None,
    allow_partial: bool = False,
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on the test loader (``tta``: with the config's test-time augmentation),
    logging into ``work_dir`` (default: the config's); the metrics and the wall time.

    Raises:
        CheckpointError: the checkpoint does not hold every weight of the model, unless ``allow_partial``
            (:func:`check_checkpoint`).
    """
    cfg = to_tta(cfg) if tta else copy.deepcopy(cfg)
    check_checkpoint(cfg, checkpoint, allow_partial)
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
