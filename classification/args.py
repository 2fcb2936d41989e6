"""The classification command line: one parent parser shared by train and validate, with timm's meanings.

``common_parser()`` holds the options both tools take (data, model, input size, batch, precision,
device); ``train_parser()`` and ``validate_parser()`` add their own through ``parents=[...]`` as ConvNeXt's
``main.py`` does. Sizes follow timm: ``--img-size N`` (square) or ``--input-size C H W`` (wins when both
are given). Training recipes are YAML files of option defaults read with ``-c/--config`` as timm's
``train.py`` reads them (``configs/classification/``); the command line overrides them. Without ``-c``
the training defaults are neutral, those of timm's ``train.py`` (SGD, lr from ``--lr-base``, no RandAugment,
mixup or random erasing, the model's own drop path): pass a recipe (``-c
configs/classification/imagenet_parcnetv2_tiny.yaml`` is the published one) to train as published.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

import yaml
from timm.utils import ParseKwargs

from parcnetv2 import REPO_ROOT
from parcnetv2.cli import add_debug_argument
from parcnetv2.preemption import DEFAULT_SIGNALS, parse_signals

__all__ = [
    "CONFIG_DIR",
    "common_parser",
    "train_parser",
    "validate_parser",
    "parse_train_args",
    "parse_validate_args",
    "resolve_input_size",
]

CONFIG_DIR = REPO_ROOT / "configs" / "classification"
"""The recipe files: ``imagenet_parcnetv2_tiny.yaml`` (published) and ``builtin.yaml`` (built-in data)."""


def common_parser() -> argparse.ArgumentParser:
    """The options train and validate share (a parent parser: ``add_help=False``)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "data",
        nargs="?",
        metavar="DATA_PATH",
        help="ImageFolder root holding the split folders (validate also takes the split folder itself); "
        "none: the built-in set in data/synthetic_cls (python -m parcnetv2.builtin_data cls writes it)",
    )
    p.add_argument("--data-dir", dest="data_dir", help="same as DATA_PATH")

    g = p.add_argument_group("model and input")
    g.add_argument("--model", help="timm model name")
    g.add_argument("--model-kwargs", nargs="*", default={}, action=ParseKwargs, help="model args, key=value")
    g.add_argument(
        "--num-classes", type=int, help="must match the data's class folders (default: their count)"
    )
    g.add_argument("--img-size", type=int, metavar="N", help="square input size")
    g.add_argument(
        "--input-size", type=int, nargs=3, metavar=("C", "H", "W"), help="input size (wins over --img-size)"
    )
    g.add_argument("--crop-pct", type=float, help="eval crop (default: the model's, 1.0 for ParCNetV2)")
    g.add_argument("--interpolation", default="", help="eval resize interpolation (default: the model's)")

    g = p.add_argument_group("runtime")
    g.add_argument("-b", "--batch-size", type=int, default=128, help="per-process batch size")
    g.add_argument("-j", "--workers", type=int, default=4, help="data loader processes per process")
    g.add_argument("--pin-mem", action="store_true")
    g.add_argument("--amp", action="store_true", help="mixed precision (off in the recipe)")
    g.add_argument("--amp-dtype", default="float16", choices=["float16", "bfloat16"])
    g.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    g.add_argument("--log-interval", type=int, default=50, help="steps between progress lines (0: none)")
    add_debug_argument(p)
    return p


def train_parser() -> argparse.ArgumentParser:
    """The training parser; its defaults are timm's ``train.py``'s, a recipe (``-c``) sets the rest."""
    p = argparse.ArgumentParser(
        prog="python -m parcnetv2.classification.train",
        description="Train ParCNetV2 on an ImageFolder data set (train/<class>/*, val/<class>/*) with timm "
        "components; single process or torchrun. Pass a recipe: -c "
        "configs/classification/imagenet_parcnetv2_tiny.yaml (published) or builtin.yaml (built-in set); "
        "the defaults below are timm's neutral ones.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        parents=[common_parser()],
    )
    p.add_argument("-c", "--config", metavar="FILE", help="YAML file of option defaults (a recipe)")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val")

    g = p.add_argument_group("model")
    g.add_argument("--drop-path", type=float, help="stochastic depth rate (default: the model's)")
    g.add_argument("--head-dropout", type=float, default=0.0, help="dropout before the classifier")

    g = p.add_argument_group("optimization")
    g.add_argument("-vb", "--validation-batch-size", type=int, help="default: --batch-size")
    g.add_argument("--grad-accum-steps", type=int, default=1, help="micro-batches per optimizer update")
    g.add_argument("--opt", default="sgd")
    g.add_argument("--opt-eps", type=float)
    g.add_argument("--opt-betas", type=float, nargs="+")
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument(
        "--weight-decay", type=float, default=2e-5, help="not applied to norms, biases, scales (1-D)"
    )
    g.add_argument("--clip-grad", type=float, help="gradient clipping (default: none)")
    g.add_argument("--clip-mode", default="norm", choices=["norm", "value", "agc"])
    g.add_argument("--lr", type=float, help="peak learning rate (default: from --lr-base)")
    g.add_argument(
        "--lr-base",
        type=float,
        default=0.1,
        help="lr for --lr-base-size images per update (timm's rule: "
        "scaled linearly with the global batch, by its square root for Adam/LAMB-type optimizers)",
    )
    g.add_argument("--lr-base-size", type=int, default=256)
    g.add_argument("--sched", default="cosine")
    g.add_argument("--epochs", type=int, default=300, help="total epochs (no extra cooldown epochs)")
    g.add_argument("--warmup-epochs", type=float, default=5, help="linear warmup epochs")
    g.add_argument("--warmup-lr", type=float, default=1e-5)
    g.add_argument("--min-lr", type=float, default=0.0)
    g.add_argument("--cooldown-epochs", type=int, default=0)

    g = p.add_argument_group("augmentation and regularization")
    g.add_argument("--no-aug", action="store_true", help="no training augmentation (resize + centre crop)")
    g.add_argument("--scale", type=float, nargs=2, default=[0.08, 1.0], help="RandomResizedCrop area range")
    g.add_argument("--ratio", type=float, nargs=2, default=[3 / 4, 4 / 3])
    g.add_argument("--hflip", type=float, default=0.5)
    g.add_argument("--color-jitter", type=float, default=0.4, help="unused when --aa is set (as in timm)")
    g.add_argument("--aa", default="", help="AutoAugment/RandAugment policy, e.g. rand-m9-mstd0.5-inc1")
    g.add_argument("--train-interpolation", default="random")
    g.add_argument("--reprob", type=float, default=0.0, help="random erasing probability")
    g.add_argument("--remode", default="pixel")
    g.add_argument("--recount", type=int, default=1)
    g.add_argument("--mixup", type=float, default=0.0, help="mixup alpha")
    g.add_argument("--cutmix", type=float, default=0.0, help="cutmix alpha")
    g.add_argument("--mixup-prob", type=float, default=1.0)
    g.add_argument("--mixup-switch-prob", type=float, default=0.5)
    g.add_argument("--mixup-mode", default="batch", choices=["batch", "pair", "elem"])
    g.add_argument("--mixup-off-epoch", type=int, default=0, help="turn mixup off from this epoch (0: never)")
    g.add_argument("--smoothing", type=float, default=0.1, help="label smoothing")

    g = p.add_argument_group("EMA, seed, distributed")
    g.add_argument("--model-ema", action="store_true", help="keep an EMA of the weights")
    g.add_argument("--model-ema-decay", type=float, default=0.9998)
    g.add_argument("--model-ema-warmup", action="store_true")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--dist-backend", help="default: nccl on CUDA, gloo on CPU")

    g = p.add_argument_group("data problems, interruptions and output")
    g.add_argument(
        "--max-unreadable",
        type=float,
        default=0.01,
        metavar="FRACTION",
        help="training images that fail to decode are skipped with a warning; stop when more than this "
        "fraction of an epoch's images fail",
    )
    g.add_argument(
        "--preempt-signals",
        nargs="*",
        default=list(DEFAULT_SIGNALS),
        metavar="SIG",
        help="on these signals finish the optimizer step, write recovery.pth.tar and exit with status 75 "
        "(none: the signals keep their default action)",
    )
    g.add_argument(
        "--recovery-interval",
        type=int,
        default=0,
        metavar="N",
        help="also write recovery.pth.tar every N optimizer updates (0: only on a signal)",
    )
    g.add_argument(
        "--output",
        help="run folder (default: outputs/classification/<model>-<time>, "
        "or the resumed checkpoint's folder)",
    )
    g.add_argument(
        "--resume", help="training checkpoint to continue from (last.pth.tar, or recovery.pth.tar mid-epoch)"
    )
    g.add_argument("--no-export", action="store_true", help="skip the final export of the best weights")
    return p


def validate_parser() -> argparse.ArgumentParser:
    """The evaluation parser (timm's validate options, plus ``--eval-sizes`` for several resolutions)."""
    p = argparse.ArgumentParser(
        prog="python -m parcnetv2.classification.validate",
        description="Top-1/top-5 and loss of a checkpoint on an ImageFolder val split, at one or more "
        "input sizes. Without DATA_PATH the built-in set's val split is used.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        parents=[common_parser()],
    )
    p.add_argument("--split", default="val", help="split folder under DATA_PATH (unless it is one itself)")
    p.add_argument(
        "--checkpoint", required=True, help="training checkpoint, exported weights or a timm model folder"
    )
    p.add_argument("--use-ema", action="store_true", help="evaluate the checkpoint's EMA weights")
    p.add_argument(
        "--eval-sizes",
        type=int,
        nargs="+",
        metavar="N",
        help="evaluate at each square size, one table row per size (multi-resolution evaluation)",
    )
    p.add_argument("--results-file", help="write the results as JSON here")
    p.set_defaults(model_kwargs=None)  # None: the checkpoint's
    return p


def resolve_input_size(args: argparse.Namespace) -> list[int] | None:
    """timm's rule: ``--input-size C H W`` if given, else ``--img-size N`` as (3, N, N), else None."""
    if args.input_size:
        return list(args.input_size)
    if args.img_size:
        return [3, args.img_size, args.img_size]
    return None


def load_config(parser: argparse.ArgumentParser, path: str) -> dict[str, Any]:
    """Read a YAML recipe of option defaults (keys: option dest names, e.g. ``batch_size``)."""
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f) or {}
    except OSError as err:
        raise ValueError(f"-c/--config: cannot read {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"-c/--config: {path} is no valid YAML: {err}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"-c/--config: {path} must hold a mapping of option names to values")
    known = {a.dest for a in parser._actions}
    unknown = sorted(str(k) for k in cfg if str(k).replace("-", "_") not in known)
    if unknown:
        raise ValueError(f"-c/--config: {path} sets unknown option(s) {unknown}")
    return {str(k).replace("-", "_"): v for k, v in cfg.items()}


def parse_train_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the training command line as timm's train.py does: ``-c`` defaults first, then the flags."""
    parser = train_parser()
    config_only = argparse.ArgumentParser(add_help=False)
    config_only.add_argument("-c", "--config")
    known, _ = config_only.parse_known_args(argv)
    try:
        if known.config:
            parser.set_defaults(**load_config(parser, known.config))
        args = parser.parse_args(argv)
        _resolve_train_args(args)
        _check_train_args(args)
    except ValueError as err:
        parser.error(str(err))
    return args


def parse_validate_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check the evaluation command line."""
    parser = validate_parser()
    args = parser.parse_args(argv)
    try:
        _resolve_data_arg(args)
        _check_common(args)
    except ValueError as err:
        parser.error(str(err))
    return args


def _resolve_data_arg(args: argparse.Namespace) -> None:
    if args.data and args.data_dir and os.path.abspath(args.data) != os.path.abspath(args.data_dir):
        raise ValueError(f"DATA_PATH {args.data!r} and --data-dir {args.data_dir!r} disagree; give one")
    args.data_dir = args.data_dir or args.data
    args.builtin_data = args.data_dir is None


def _resolve_train_args(args: argparse.Namespace) -> None:
    _resolve_data_arg(args)
    if args.builtin_data and not args.config:
        raise ValueError(
            "no DATA_PATH: give the ImageFolder root (train/ and val/), or "
            "-c configs/classification/builtin.yaml to train on the built-in set"
        )
    parse_signals(args.preempt_signals, "--preempt-signals")
    if args.validation_batch_size is None:
        args.validation_batch_size = args.batch_size


def _check_common(args: argparse.Namespace) -> None:
    if args.batch_size < 1 or args.workers < 0 or args.log_interval < 0:
        raise ValueError("--batch-size must be >= 1, --workers and --log-interval >= 0")
    if args.num_classes is not None and args.num_classes < 1:
        raise ValueError(f"--num-classes must be >= 1, got {args.num_classes}")
    sizes = [args.img_size, *(args.input_size or []), *(getattr(args, "eval_sizes", None) or [])]
    if any(s is not None and s < 1 for s in sizes):
        raise ValueError("--img-size, --input-size and --eval-sizes take positive numbers")


def _check_train_args(args: argparse.Namespace) -> None:
    """Reject values that would train silently wrong."""
    _check_common(args)
    positive = dict(
        validation_batch_size=args.validation_batch_size,
        epochs=args.epochs,
        grad_accum_steps=args.grad_accum_steps,
        log_interval=args.log_interval,
        lr_base_size=args.lr_base_size,
    )
    for name, value in positive.items():
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if (args.lr is not None and args.lr <= 0) or args.lr_base <= 0:
        raise ValueError(f"--lr and --lr-base must be > 0, got {args.lr} and {args.lr_base}")
    if args.recovery_interval < 0 or not 0 <= args.max_unreadable <= 1:
        raise ValueError("--recovery-interval must be >= 0 and --max-unreadable in [0, 1]")
    if args.warmup_epochs < 0:
        raise ValueError("--warmup-epochs must be >= 0")
    if not 0 <= (args.drop_path or 0.0) < 1 or not 0 <= args.head_dropout < 1:
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
