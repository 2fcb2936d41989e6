"""Train and evaluate UperNet + ParCNetV2-XT on the built-in segmentation set, in one command.

Generates the set if it is missing (:mod:`parcnetv2.segmentation.synthetic`), trains the built-in config
with mmseg's own ``Runner`` (the same code path as mmseg's ``tools/train.py``), evaluates mIoU with
mmseg's ``IoUMetric`` on the validation split (sliding window), optionally again with multi-scale + flip
test-time augmentation, and writes ``<work_dir>/quickstart_result.json``::

    python -m parcnetv2.segmentation.quickstart                                   # from scratch
    python -m parcnetv2.segmentation.quickstart --pretrained runs/cls/best_weights.safetensors

Everything is also callable: :func:`build_config`, :func:`train`, :func:`evaluate`, :func:`main`.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmengine.config import Config, DictAction
from mmengine.runner import Runner
from parcnetv2.detection.runtime import default_work_dir, merge_cfg_options, set_data_root

from .synthetic import DEFAULT_DIR, SyntheticSegSpec, ensure_synthetic_dataset

__all__ = ["BUILTIN_CONFIG", "build_config", "evaluate", "main", "set_max_iters", "to_tta", "train"]

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILTIN_CONFIG = REPO_ROOT / "configs" / "upernet" / "parcnetv2-xt_upernet_1xb4-2k_synthetic-ade-96x96.py"
"""The built-in-data config (UperNet + ParCNetV2-XT, 8 classes, CPU-sized)."""

_METRICS = ("mIoU", "mAcc", "aAcc")


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


def build_config(
    config: str | Path = BUILTIN_CONFIG,
    data_root: str | Path | None = None,
    work_dir: str | Path | None = None,
    pretrained: str | Path | None = None,
    max_iters: int | None = None,
    num_workers: int | None = None,
    seed: int | None = None,
    cfg_options: Mapping[str, Any] | None = None,
) -> Config:
    """Load ``config`` (an mmengine ``Config``) and apply the usual overrides.

    Args:
        data_root: the data set folder for the train/val/test loaders.
        work_dir: default ``work_dirs/<config name>``.
        pretrained: a classification checkpoint for the backbone (``init_cfg`` type ``Pretrained``).
        max_iters: training length (warmup, poly schedule and checkpoint interval follow).
        num_workers: data loader processes (0: load in the main process).
        seed: ``randomness.seed``.
        cfg_options: further ``{dotted.key: value}`` overrides, as ``--cfg-options`` (``data_root`` too).
    """
    cfg = Config.fromfile(str(config))
    if data_root is not None:
        set_data_root(cfg, data_root)
    cfg.work_dir = str(work_dir) if work_dir is not None else default_work_dir(str(config))
    if pretrained is not None:
        cfg.model.backbone.init_cfg = dict(type="Pretrained", checkpoint=str(pretrained))
    if max_iters is not None:
        set_max_iters(cfg, max_iters)
    if num_workers is not None:
        for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
            cfg[loader].num_workers = num_workers
            cfg[loader].persistent_workers = num_workers > 0
    if seed is not None:
        cfg.randomness = dict(seed=seed)
    merge_cfg_options(cfg, cfg_options)
    return cfg


def _metrics_from(message_hub: Any, prefix: str) -> dict[str, float]:
    scalars = message_hub.log_scalars
    return {
        k: round(float(scalars[f"{prefix}/{k}"].current()), 2) for k in _METRICS if f"{prefix}/{k}" in scalars
    }


def train(cfg: Config) -> dict[str, Any]:
    """Train ``cfg`` with mmseg's ``Runner`` (validating at ``val_interval``); returns the last val metrics,
    the checkpoint path and the wall time."""
    start = time.perf_counter()
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    runner.train()
    wall = time.perf_counter() - start
    checkpoint = Path(runner.work_dir) / f"iter_{runner.iter}.pth"
    return dict(
        metrics=_metrics_from(runner.message_hub, "val"),
        checkpoint=str(checkpoint) if checkpoint.exists() else None,
        iterations=runner.iter,
        train_wall_s=round(wall, 1),
    )


def to_tta(cfg: Config) -> Config:
    """The config mmseg's ``tools/test.py --tta`` runs: ``tta_model`` around the model, ``tta_pipeline``."""
    cfg = copy.deepcopy(cfg)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model
    return cfg


def evaluate(cfg: Config, checkpoint: str | Path, tta: bool = False) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on the test loader as mmseg's ``tools/test.py`` does (``--tta``: ``tta``)."""
    cfg = to_tta(cfg) if tta else copy.deepcopy(cfg)
    cfg.load_from = str(checkpoint)
    start = time.perf_counter()
    metrics = Runner.from_cfg(cfg).test()
    return dict(
        metrics={k: round(float(metrics[k]), 2) for k in _METRICS if k in metrics},
        test_wall_s=round(time.perf_counter() - start, 1),
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m parcnetv2.segmentation.quickstart",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--config", default=str(BUILTIN_CONFIG))
    p.add_argument("--data-root", default=str(DEFAULT_DIR), help="generated there if absent")
    p.add_argument("--data-seed", type=int, default=SyntheticSegSpec.seed, help="seed of the generated set")
    p.add_argument("--work-dir", help="default: work_dirs/<config name>[_pretrained]")
    p.add_argument("--pretrained", help="classification checkpoint (.pth/.safetensors) for the backbone")
    p.add_argument("--max-iters", type=int, help="default: the config's (2000)")
    p.add_argument("--num-workers", type=int, help="data loader processes (default: the config's)")
    p.add_argument("--seed", type=int, help="training seed (default: the config's, 0)")
    p.add_argument("--tta", action="store_true", help="also evaluate with multi-scale + flip TTA")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, metavar="KEY=VALUE", help="as mmseg's")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line (``--help``): generate the data if needed, train, evaluate; returns the result dict."""
    args = build_parser().parse_args(argv)
    data_root = ensure_synthetic_dataset(args.data_root, SyntheticSegSpec(seed=args.data_seed))
    work_dir = args.work_dir or str(
        Path("work_dirs") / (Path(args.config).stem + ("_pretrained" if args.pretrained else ""))
    )
    cfg = build_config(
        args.config,
        data_root=data_root,
        work_dir=work_dir,
        pretrained=args.pretrained,
        max_iters=args.max_iters,
        num_workers=args.num_workers,
        seed=args.seed,
        cfg_options=args.cfg_options,
    )
    result: dict[str, Any] = dict(
        config=str(args.config), data_root=str(data_root), pretrained=args.pretrained
    )
    result.update(train(cfg))
    if args.tta and result["checkpoint"]:
        tta = evaluate(cfg, result["checkpoint"], tta=True)
        result.update(tta_metrics=tta["metrics"], tta_wall_s=tta["test_wall_s"])
    Path(cfg.work_dir).mkdir(parents=True, exist_ok=True)
    (Path(cfg.work_dir) / "quickstart_result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
