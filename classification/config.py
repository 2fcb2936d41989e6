"""Training command line: the published ImageNet recipe as defaults, and smaller ones for built-in data.

Options whose default depends on the data (``BUILTIN_DEFAULTS`` vs ``RECIPE_DEFAULTS``) are parsed with
``None`` as default and filled in by ``resolve_defaults``; anything given on the command line wins.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from timm.utils import ParseKwargs

from parcnetv2.cli import add_debug_argument

from .synthetic import DEFAULT_DIR, SyntheticSpec

__all__ = [
    "RECIPE_DEFAULTS",
    "BUILTIN_DEFAULTS",
    "RECIPE_DROP_PATH",
    "build_parser",
    "parse_args",
    "resolve_defaults",
]

RECIPE_DEFAULTS: dict[str, Any] = dict(
    model="parcnetv2_tiny",
    input_size=[224],
    epochs=300,
    warmup_epochs=20,
    batch_size=128,
    lr=4e-3,
    workers=8,
    log_interval=50,
    aa="rand-m9-mstd0.5-inc1",
    reprob=0.25,
    mixup=0.8,
    cutmix=1.0,
    smoothing=0.1,
    scale=[0.08, 1.0],
)
"""The published ImageNet-1K recipe (with a DATA_PATH)."""

BUILTIN_DEFAULTS: dict[str, Any] = dict(
    model="parcnetv2_xt",
    input_size=[48],
    epochs=6,
    warmup_epochs=0.2,
    batch_size=32,
    lr=2e-3,
    workers=1,
    log_interval=20,
    aa="",
    reprob=0.0,
    mixup=0.0,
    cutmix=0.0,
    smoothing=0.1,
    scale=[0.6, 1.0],
)
"""Defaults for the small built-in data (no DATA_PATH): a CPU demo of minutes, not an ImageNet run.

The ImageNet regularization (RandAugment, mixup/cutmix, random erasing) is off: in a few hundred updates it
keeps a from-scratch model at chance (measured: 10.7% top-1 after one epoch at 64 px with it on).
lr 2e-3 rather than 5e-4: 27.5% vs 22.3% top-1 after the demo's 4 epochs at 64 px (2-core sandbox).
"""

RECIPE_DROP_PATH = {"parcnetv2_xt": 0.1, "parcnetv2_tiny": 0.2, "parcnetv2_small": 0.3, "parcnetv2_base": 0.4}
"""Stochastic depth by model: T/S/B as published; XT's 0.1 is our choice (not given by the authors)."""


def build_parser() -> argparse.ArgumentParser:
    """The training argument parser (timm's option names)."""
    p = argparse.ArgumentParser(
        prog="python -m parcnetv2.classification.train",
        description="Train ParCNetV2 on an ImageFolder data set (train/<class>/*, val/<class>/*) with timm "
        "components; single process or torchrun. Without DATA_PATH the built-in synthetic set is used.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("data", nargs="?", metavar="DATA_PATH", help="ImageFolder root with train/ and val/")
    p.add_argument("--data-dir", dest="data_dir", help="same as DATA_PATH")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val")
    g = p.add_argument_group("built-in data (used without DATA_PATH)")
    g.add_argument("--synthetic-dir", default=str(DEFAULT_DIR), help="generated there if absent")
    g.add_argument("--synthetic-seed", type=int, default=SyntheticSpec.seed)

    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        help=f"timm model name (recipe {RECIPE_DEFAULTS['model']}, built-in {BUILTIN_DEFAULTS['model']})",
    )
    g.add_argument(
        "--model-kwargs", nargs="*", default={}, action=ParseKwargs, help="extra model args, key=value"
    )
    g.add_argument("--num-classes", type=int, help="must match the data (default: number of class folders)")
    g.add_argument(
        "--drop-path", type=float, help=f"stochastic depth rate (default by model: {RECIPE_DROP_PATH})"
    )
    g.add_argument("--head-dropout", type=float, default=0.0, help="dropout before the classifier")
    g.add_argument("--input-size", type=int, nargs="+", metavar="N", help="S, H W or C H W (recipe 224)")
    g.add_argument("--crop-pct", type=float, help="eval crop (default: the model's, 1.0 for ParCNetV2)")
    g.add_argument("--interpolation", default="", help="eval resize interpolation (default: the model's)")

    g = p.add_argument_group("optimization")
    g.add_argument("-b", "--batch-size", type=int, help="per-process batch size (recipe 128)")
    g.add_argument("-vb", "--validation-batch-size", type=int, help="default: --batch-size")
    g.add_argument("--grad-accum-steps", type=int, default=1, help="micro-batches per optimizer update")
    g.add_argument("--opt", default="adamw")
    g.add_argument("--opt-eps", type=float)
    g.add_argument("--opt-betas", type=float, nargs="+")
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument(
        "--weight-decay", type=float, default=0.05, help="not applied to norms, biases, scales (1-D)"
    )
    g.add_argument("--clip-grad", type=float, help="gradient clipping (off in the recipe)")
    g.add_argument("--clip-mode", default="norm", choices=["norm", "value", "agc"])
    g.add_argument("--lr", type=float, help="peak learning rate (recipe 4e-3 for 4096 images per update)")
    g.add_argument("--sched", default="cosine")
    g.add_argument("--epochs", type=int, help="total epochs (recipe 300; no extra cooldown epochs)")
    g.add_argument("--warmup-epochs", type=float, help="linear warmup epochs (recipe 20)")
    g.add_argument("--warmup-lr", type=float, default=1e-6)
    g.add_argument("--min-lr", type=float, default=1e-5)
    g.add_argument("--cooldown-epochs", type=int, default=0)

    g = p.add_argument_group("augmentation and regularization")
    g.add_argument("--no-aug", action="store_true", help="no training augmentation (resize + centre crop)")
    g.add_argument("--scale", type=float, nargs=2, help="RandomResizedCrop area range (recipe 0.08 1.0)")
    g.add_argument("--ratio", type=float, nargs=2, default=[3 / 4, 4 / 3])
    g.add_argument("--hflip", type=float, default=0.5)
    g.add_argument("--color-jitter", type=float, default=0.4, help="unused when --aa is set (as in timm)")
    g.add_argument("--aa", help="AutoAugment/RandAugment policy; '' for none (recipe rand-m9-mstd0.5-inc1)")
    g.add_argument("--train-interpolation", default="random")
    g.add_argument("--reprob", type=float, help="random erasing probability (recipe 0.25)")
    g.add_argument("--remode", default="pixel")
    g.add_argument("--recount", type=int, default=1)
    g.add_argument("--mixup", type=float, help="mixup alpha (recipe 0.8)")
    g.add_argument("--cutmix", type=float, help="cutmix alpha (recipe 1.0)")
    g.add_argument("--mixup-prob", type=float, default=1.0)
    g.add_argument("--mixup-switch-prob", type=float, default=0.5)
    g.add_argument("--mixup-mode", default="batch", choices=["batch", "pair", "elem"])
    g.add_argument("--mixup-off-epoch", type=int, default=0, help="turn mixup off from this epoch (0: never)")
    g.add_argument("--smoothing", type=float, help="label smoothing (recipe 0.1)")

    g = p.add_argument_group("EMA, precision, runtime")
    g.add_argument("--model-ema", action="store_true", help="keep an EMA of the weights (off in the recipe)")
    g.add_argument("--model-ema-decay", type=float, default=0.9998)
    g.add_argument("--model-ema-warmup", action="store_true")
    g.add_argument("--amp", action="store_true", help="mixed precision (fp32 in the recipe)")
    g.add_argument("--amp-dtype", default="float16", choices=["float16", "bfloat16"])
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("-j", "--workers", type=int, help="data loader processes per rank")
    g.add_argument("--pin-mem", action="store_true")
    g.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    g.add_argument("--dist-backend", help="default: nccl on CUDA, gloo on CPU")

    g = p.add_argument_group("output")
    g.add_argument(
        "--output",
        help="run folder (default: outputs/classification/<model>-<time>, "
        "or the resumed checkpoint's folder)",
    )
    g.add_argument("--resume", help="training checkpoint (last.pth.tar) to continue from")
    g.add_argument("--log-interval", type=int, help="steps between progress lines")
    g.add_argument("--no-export", action="store_true", help="skip the final weights-only export")
    add_debug_argument(p)
    return p


def resolve_defaults(args: argparse.Namespace) -> list[str]:
    """Fill data-dependent defaults in place; returns ``name=value`` for each one filled."""
    if args.data and args.data_dir and os.path.abspath(args.data) != os.path.abspath(args.data_dir):
        raise ValueError(f"DATA_PATH {args.data!r} and --data-dir {args.data_dir!r} disagree; give one")
    args.data_dir = args.data_dir or args.data
    args.builtin_data = args.data_dir is None
    defaults = BUILTIN_DEFAULTS if args.builtin_data else RECIPE_DEFAULTS
    filled = []
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
            filled.append(f"{name}={value}")
    if args.drop_path is None:
        args.drop_path = 0.0 if args.builtin_data else RECIPE_DROP_PATH.get(args.model, 0.0)
        filled.append(f"drop_path={args.drop_path}")
    if args.validation_batch_size is None:
        args.validation_batch_size = args.batch_size
    return filled


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check the command line; ``args.filled_defaults`` lists the defaults chosen for the data."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.filled_defaults = resolve_defaults(args)
        check_args(args)
    except ValueError as err:
        parser.error(str(err))
    return args


def check_args(args: argparse.Namespace) -> None:
    """Reject values that would train silently wrong."""
    positive = dict(
        batch_size=args.batch_size,
        validation_batch_size=args.validation_batch_size,
        epochs=args.epochs,
        grad_accum_steps=args.grad_accum_steps,
        log_interval=args.log_interval,
    )
    for name, value in positive.items():
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.lr <= 0:
        raise ValueError(f"--lr must be > 0, got {args.lr}")
    if args.warmup_epochs < 0 or args.workers < 0:
        raise ValueError("--warmup-epochs and --workers must be >= 0")
    if not 0 <= args.drop_path < 1 or not 0 <= args.head_dropout < 1:
        raise ValueError("--drop-path and --head-dropout must be in [0, 1)")
    if not 0 <= args.smoothing < 1 or not 0 <= args.reprob <= 1:
        raise ValueError("--smoothing must be in [0, 1) and --reprob in [0, 1]")
    if args.mixup < 0 or args.cutmix < 0:
        raise ValueError("--mixup and --cutmix must be >= 0")
    if (args.mixup > 0 or args.cutmix > 0) and args.mixup_prob > 0 and args.batch_size % 2:
        raise ValueError(
            f"mixup/cutmix pair up images, so --batch-size must be even (got {args.batch_size}); "
            "or turn them off with --mixup 0 --cutmix 0"
        )
