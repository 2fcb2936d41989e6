"""Train and evaluate UperNet + ParCNetV2-XT on the built-in segmentation set, in one command.

Generates the set if it is missing (:mod:`parcnetv2.segmentation.synthetic`), trains the built-in config
with mmseg's own ``Runner`` (the same code path as mmseg's ``tools/train.py``), evaluates mIoU with
mmseg's ``IoUMetric`` on the validation split (whole scenes at the training size), optionally again with
multi-scale + flip test-time augmentation, and writes ``<work_dir>/result.json``::

    python -m parcnetv2.segmentation.train_builtin                                # from scratch
    python -m parcnetv2.segmentation.train_builtin --pretrained runs/cls/best_weights.safetensors

The config goes through the one loader, :func:`parcnetv2.openmmlab.config.load_config`, the runs through
the one driver, :mod:`parcnetv2.openmmlab.runner` (``train``, ``train_then_test``); :func:`main` is
callable too.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmengine.config import DictAction

from parcnetv2.cli import add_debug_argument, run_cli
from parcnetv2.openmmlab import runner
from parcnetv2.openmmlab.config import default_work_dir, load_config

from .synthetic import DEFAULT_DIR, SyntheticSegSpec, ensure_synthetic_dataset

__all__ = ["BUILTIN_CONFIG", "build_parser", "main"]

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILTIN_CONFIG = REPO_ROOT / "configs" / "upernet" / "parcnetv2-xt_upernet_1xb4-2k_synthetic-ade-96x96.py"
"""The built-in-data config (UperNet + ParCNetV2-XT, 8 classes, CPU-sized)."""

_METRICS = ("mIoU", "mAcc", "aAcc")


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {k: round(float(metrics[k]), 2) for k in _METRICS if k in metrics}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m parcnetv2.segmentation.train_builtin",
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
    add_debug_argument(p)
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line (``--help``): generate the data if needed, train, evaluate; returns the result dict."""
    args = build_parser().parse_args(argv)
    data_root = ensure_synthetic_dataset(args.data_root, SyntheticSegSpec(seed=args.data_seed))
    work_dir = args.work_dir or default_work_dir(args.config, "_pretrained" if args.pretrained else "")
    cfg = load_config(
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
    run = runner.train_then_test(cfg, tta=True) if args.tta else runner.train(cfg)
    result.update(
        metrics=_rounded(run["metrics"]),
        checkpoint=run["checkpoint"],
        iterations=run["iterations"],
        train_wall_s=run["train_wall_s"],
    )
    if args.tta:
        result.update(tta_metrics=_rounded(run["test_metrics"]), tta_wall_s=run["test_wall_s"])
    Path(cfg.work_dir).mkdir(parents=True, exist_ok=True)
    (Path(cfg.work_dir) / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    run_cli(main, prog="parcnetv2.segmentation.train_builtin")
