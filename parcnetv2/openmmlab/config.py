"""Loading and adjusting mmengine configs: the one config loader and the overrides the tools apply.

:func:`load_config` serves ``tools/train.py``, ``tools/test.py`` (through :mod:`parcnetv2.openmmlab.launch`),
the analysis tools and the demo. Imports only torch and mmengine (mmdet/mmseg are reached through the
config's scope), so the same helpers serve detection and segmentation configs.
"""

from __future__ import annotations

import copy
import os
import os.path as osp
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import torch
from mmengine.config import Config

from .preemption import enable_preemption

__all__ = [
    "config_scope",
    "load_config",
    "set_data_root",
    "merge_cfg_options",
    "follow_training_length",
    "default_work_dir",
    "set_work_dir",
    "set_max_iters",
    "set_num_workers",
    "set_pretrained",
    "to_tta",
    "enable_amp",
    "enable_auto_scale_lr",
    "set_resume",
    "local_checkpoint",
    "resume_from_scratch_warning",
]


def config_scope(cfg: Config) -> str:
    """The config's ``default_scope`` (``'mmdet'``, ``'mmseg'``): the toolbox whose registries build it.

    Raises:
        ValueError: the config sets none (an OpenMMLab detection or segmentation config inherits it
            from its toolbox's ``default_runtime``).
    """
    scope = cfg.get("default_scope")
    if not scope:
        raise ValueError("the config sets no default_scope: not an mmdet/mmseg config")
    return scope


def load_config(
    config: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    work_dir: str | os.PathLike | None = None,
    pretrained: str | os.PathLike | None = None,
    max_iters: int | None = None,
    num_workers: int | None = None,
    seed: int | None = None,
    cfg_options: Mapping[str, Any] | None = None,
) -> Config:
    """Load a detection/segmentation config and apply the usual overrides (the one config loader).

    Args:
        config: the config file.
        data_root: rebase every dataset/evaluator path onto this folder (:func:`set_data_root`).
        work_dir: logs and checkpoints (default: the config's, else ``./work_dirs/<config name>``).
        pretrained: a classification (or published, or mm) checkpoint for the backbone.
        max_iters: length of an iteration-based schedule (:func:`set_max_iters`).
        num_workers: data loader processes (0: load in the main process).
        seed: ``randomness.seed``.
        cfg_options: ``{dotted.key: value}`` overrides, as ``--cfg-options`` (:func:`merge_cfg_options`).

    Every config gets :class:`~parcnetv2.openmmlab.preemption.PreemptionHook` and atomic checkpoint
    writes (:func:`~parcnetv2.openmmlab.preemption.enable_preemption`).
    """
    config = os.fspath(config)
    cfg = Config.fromfile(config)
    config_scope(cfg)  # an OpenMMLab config, nothing else
    if data_root is not None:
        set_data_root(cfg, data_root)
    if pretrained is not None:
        set_pretrained(cfg, pretrained)
    if max_iters is not None:
        set_max_iters(cfg, max_iters)
    if num_workers is not None:
        set_num_workers(cfg, num_workers)
    if seed is not None:
        cfg.randomness = dict(seed=seed)
    merge_cfg_options(cfg, cfg_options)
    enable_preemption(cfg)
    set_work_dir(cfg, work_dir, config)
    return cfg


def set_pretrained(cfg: Config, checkpoint: str | os.PathLike) -> None:
    """Start the backbone from ``checkpoint`` (``init_cfg=dict(type='Pretrained', checkpoint=...)``)."""
    cfg.model.backbone.init_cfg = dict(type="Pretrained", checkpoint=os.fspath(checkpoint))


def set_max_iters(cfg: Config, max_iters: int, val_interval: int | None = None) -> None:
    """Shorten or lengthen an iteration-based config consistently (loop, warmup, poly end, checkpoints)."""
    if max_iters < 1:
        raise ValueError(f"max_iters must be >= 1, got {max_iters}")
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = val_interval or max_iters
    schedulers = cfg.param_scheduler if isinstance(cfg.param_scheduler, list) else [cfg.param_scheduler]
    warmup_end, kept = 0, []
    for sched in schedulers:
        if sched.get("type") == "LinearLR":  # warmup: at most half of the run, dropped for a 1-iteration run
            sched.end = warmup_end = min(sched.get("end", 0), max_iters // 2)
            if warmup_end > 0:
                kept.append(sched)
        else:
            sched.begin, sched.end = warmup_end, max_iters
            kept.append(sched)
    cfg.param_scheduler = kept
    if "checkpoint" in cfg.default_hooks:
        cfg.default_hooks.checkpoint.interval = max_iters


def set_num_workers(cfg: Config, num_workers: int) -> None:
    """Data loader processes of the train/val/test loaders (0: load in the main process)."""
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[loader].num_workers = num_workers
        cfg[loader].persistent_workers = num_workers > 0


def to_tta(cfg: Config) -> Config:
    """The config ``tools/test.py --tta`` runs: ``tta_model`` around the model, the ``tta_pipeline``."""
    if "tta_model" not in cfg or "tta_pipeline" not in cfg:
        raise RuntimeError("--tta needs tta_model and tta_pipeline in the config")
    cfg = copy.deepcopy(cfg)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model
    return cfg


def set_data_root(cfg: Config, data_root: str | os.PathLike) -> Config:
    """Rebase every dataloader/evaluator path that starts with the config's ``data_root`` (in place).

    mmengine resolves ``data_root`` into the dataset and evaluator fields when the file is parsed, so
    changing the variable afterwards changes nothing; this rewrites those fields instead.
    """
    old = str(cfg.get("data_root") or "")
    if not old:
        raise ValueError("the config defines no data_root to replace")
    new = os.fspath(data_root)
    new = new if new.endswith(("/", os.sep)) or not old.endswith("/") else new + "/"

    def rebase(node: Any) -> Any:
        if isinstance(node, str):
            return new + node[len(old) :] if node.startswith(old) else node
        if isinstance(node, Mapping):
            for key in list(node):
                node[key] = rebase(node[key])
            return node
        if isinstance(node, list):
            return [rebase(v) for v in node]
        if isinstance(node, tuple):
            return tuple(rebase(v) for v in node)
        return node

    for key in ("train_dataloader", "val_dataloader", "test_dataloader", "val_evaluator", "test_evaluator"):
        if cfg.get(key) is not None:
            cfg[key] = rebase(cfg[key])
    cfg["data_root"] = new
    return cfg


def merge_cfg_options(cfg: Config, options: Mapping[str, Any] | None) -> Config:
    """``--cfg-options``; a top-level ``data_root=PATH`` is applied to the datasets and evaluators too.

    A new ``train_cfg.max_epochs``/``max_iters`` also moves the ends of the ``param_scheduler`` entries
    that ended at the old length (:func:`follow_training_length`), unless the options set
    ``param_scheduler`` themselves.
    """
    if not options:
        return cfg
    options = dict(options)
    data_root = options.pop("data_root", None)
    if data_root is not None:
        set_data_root(cfg, data_root)
    if options:
        before = _training_length(cfg)
        cfg.merge_from_dict(options)
        after = _training_length(cfg)
        own_schedule = any(k.split(".", 1)[0] == "param_scheduler" for k in options)
        if before and after and before[0] == after[0] and before[1] != after[1] and not own_schedule:
            from mmengine.logging import print_log

            for change in follow_training_length(cfg, after[0], before[1], after[1]):
                print_log(f"train_cfg.{after[0]}={after[1]}: param_scheduler {change}", logger="current")
    return cfg


def _training_length(cfg: Config) -> tuple[str, int] | None:
    train_cfg = cfg.get("train_cfg") or {}
    for key in ("max_epochs", "max_iters"):
        if train_cfg.get(key) is not None:
            return key, int(train_cfg[key])
    return None


def follow_training_length(cfg: Config, key: str, old: int, new: int) -> list[str]:
    """Move ``param_scheduler`` ends (and ``T_max``) at the old training length ``old`` to ``new``.

    Only schedulers counted in the loop's unit change (``by_epoch`` for ``max_epochs``, ``by_epoch=False``
    for ``max_iters``), so a cosine schedule still ends with training; warmups and milestones stay.
    Returns a description of each change.
    """
    schedulers = cfg.get("param_scheduler")
    if not schedulers:
        return []
    by_epoch = key == "max_epochs"
    changes = []
    for sched in schedulers if isinstance(schedulers, list) else [schedulers]:
        if bool(sched.get("by_epoch", True)) != by_epoch or sched.get("end") != old:
            continue
        begin = sched.get("begin", 0)
        sched["end"] = new
        if sched.get("T_max") == old - begin:
            sched["T_max"] = new - begin
        changes.append(f"{sched.get('type')} end {old} -> {new}")
    return changes


def default_work_dir(config_path: str | os.PathLike, suffix: str = "") -> str:
    """``./work_dirs/<config name><suffix>``, as mmdet's and mmseg's tools."""
    return osp.join("./work_dirs", osp.splitext(osp.basename(os.fspath(config_path)))[0] + suffix)


def set_work_dir(cfg: Config, work_dir: str | os.PathLike | None, config_path: str | os.PathLike) -> None:
    """``work_dir`` when given, else the config's own, else :func:`default_work_dir`."""
    if work_dir is not None:
        cfg.work_dir = os.fspath(work_dir)
    elif cfg.get("work_dir") is None:
        cfg.work_dir = default_work_dir(config_path)


def enable_amp(cfg: Config) -> None:
    """``--amp``: mixed precision through mmengine's ``AmpOptimWrapper`` (dynamic loss scale)."""
    wrapper = cfg.optim_wrapper
    if wrapper.get("type", "OptimWrapper") == "AmpOptimWrapper":
        print("AMP is already enabled in the config (AmpOptimWrapper).")
        return
    if wrapper.get("type", "OptimWrapper") != "OptimWrapper":
        raise ValueError(f"--amp needs optim_wrapper.type OptimWrapper, got {wrapper.get('type')!r}")
    wrapper.type = "AmpOptimWrapper"
    wrapper.loss_scale = "dynamic"


def enable_auto_scale_lr(cfg: Config) -> None:
    """``--auto-scale-lr``: scale lr by (total batch) / ``auto_scale_lr.base_batch_size``."""
    auto = cfg.get("auto_scale_lr")
    if not auto or "base_batch_size" not in auto:
        raise RuntimeError(
            "--auto-scale-lr needs auto_scale_lr = dict(enable=..., base_batch_size=...) in the config"
        )
    cfg.auto_scale_lr.enable = True


def set_resume(cfg: Config, resume: str | None) -> None:
    """``--resume``: ``'auto'`` resumes from the work dir's last checkpoint, a path from that file.

    An http(s) URL is downloaded first (:func:`local_checkpoint`), so it is read weights-only too.

    Raises:
        FileNotFoundError: ``resume`` is a local path that does not exist.
    """
    if resume == "auto":
        cfg.resume = True
        cfg.load_from = None
    elif resume is not None:
        resume = local_checkpoint(resume)
        if not osp.isfile(resume):
            raise FileNotFoundError(f"--resume: checkpoint not found: {resume}")
        cfg.resume = True
        cfg.load_from = resume


def local_checkpoint(checkpoint: str) -> str:
    """A local file for ``checkpoint``: an http(s) URL is downloaded into torch's hub cache (once).

    mmengine would read a URL with ``torch.hub.load_state_dict_from_url``, which unpickles without
    ``weights_only``; the local file is read weights-only like any other.
    """
    if checkpoint.startswith(("http://", "https://")):
        cached = osp.join(torch.hub.get_dir(), "checkpoints", osp.basename(urlparse(checkpoint).path))
        if not osp.isfile(cached):
            os.makedirs(osp.dirname(cached), exist_ok=True)
            torch.hub.download_url_to_file(checkpoint, cached)
        return cached
    if "://" in checkpoint:
        raise ValueError(f"checkpoint {checkpoint}: give a local file or an http(s) URL")
    return checkpoint


def resume_from_scratch_warning(cfg: Config) -> str | None:
    """The warning for ``--resume`` without a path in a work dir that holds no checkpoint, else None.

    mmengine then trains from scratch after "Auto resumed from the latest checkpoint None."
    """
    if not cfg.get("resume") or cfg.get("load_from"):
        return None
    from mmengine.runner import find_latest_checkpoint

    if find_latest_checkpoint(cfg.work_dir) is not None:
        return None
    return (
        f"--resume: no checkpoint to resume from in {cfg.work_dir} (no last_checkpoint): "
        "training starts from scratch"
    )
