"""Evaluate a ParCNetV2 checkpoint on an ImageFolder val set: top-1/top-5 and loss, at one or more sizes.

    python -m parcnetv2.classification.validate /data/imagenet --checkpoint run/best.pth.tar
    python -m parcnetv2.classification.validate /data/imagenet --checkpoint w.safetensors \\
        --model parcnetv2_tiny --input-size 160 224 288  # one row per size (adaptive OC)

Eval preprocessing is timm's: resize the short side to ``size / crop_pct``, centre crop ``size``. The
default ``crop_pct`` is the model's, 1.0 for ParCNetV2 (the authors' development code evaluated at 1.0;
timm's usual 0.875 is available with ``--crop-pct 0.875``). Works single-process or under torchrun.
Without DATA_PATH the built-in set's val split is used.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from parcnetv2.backbone.checkpoint import CheckpointError, load_checkpoint_into, read_checkpoint
from timm.utils import ParseKwargs

from parcnetv2.cli import add_debug_argument, run_cli

from .checkpointing import atomic_write, to_plain
from .data import CheckedImageDataset, DataError, build_eval_loader, scan_split
from .distributed import DistInfo, barrier, init_distributed, shutdown
from .engine import evaluate
from .modeling import create_classifier, data_config_for
from .records import setup_logging
from .synthetic import DEFAULT_DIR, SyntheticSpec, ensure_synthetic_dataset

__all__ = ["main", "build_parser", "format_table"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m parcnetv2.classification.validate",
        description="Top-1/top-5 and loss of a checkpoint on an ImageFolder val split, at one or more "
        "input sizes. Without DATA_PATH the built-in synthetic set is used.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("data", nargs="?", metavar="DATA_PATH", help="ImageFolder root holding the split folder")
    p.add_argument("--data-dir", dest="data_dir", help="same as DATA_PATH")
    p.add_argument("--split", default="val")
    p.add_argument("--synthetic-dir", default=str(DEFAULT_DIR))
    p.add_argument("--synthetic-seed", type=int, default=SyntheticSpec.seed)
    p.add_argument("--checkpoint", required=True, help="training checkpoint or exported weights")
    p.add_argument("--use-ema", action="store_true", help="evaluate the checkpoint's EMA weights")
    p.add_argument("--model", help="timm model name (default: from the checkpoint or its .json sidecar)")
    p.add_argument("--model-kwargs", nargs="*", default=None, action=ParseKwargs)
    p.add_argument(
        "--input-size",
        type=int,
        nargs="+",
        metavar="S",
        help="square eval size(s); several give a table (default: the trained size, else 224)",
    )
    p.add_argument("--crop-pct", type=float, help="default: the model's (1.0 for ParCNetV2)")
    p.add_argument("--interpolation", default="", help="default: the model's (bicubic)")
    p.add_argument("-b", "--batch-size", type=int, default=128)
    p.add_argument("-j", "--workers", type=int, default=4)
    p.add_argument("--amp", action="store_true")
    p.add_argument("--amp-dtype", default="bfloat16", choices=["float16", "bfloat16"])
    p.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    p.add_argument("--log-interval", type=int, default=0, help="steps between progress lines (0: none)")
    p.add_argument("--results-file", help="write the results as JSON here")
    add_debug_argument(p)
    return p


def _sidecar(path: str) -> dict[str, Any]:
    side = Path(f"{path}.json")
    return json.loads(side.read_text()) if side.is_file() else {}


def _describe_checkpoint(raw: Any, path: str, use_ema: bool) -> dict[str, Any]:
    """Model name, kwargs, class names and trained input size recorded with a checkpoint, if any."""
    info: dict[str, Any] = {}
    if isinstance(raw, Mapping) and "args" in raw:
        args = raw["args"]
        info.update(model=args.get("model"), model_kwargs=args.get("model_kwargs") or {})
        mapping = raw.get("class_to_idx") or {}
        info["classes"] = sorted(mapping, key=mapping.get)
        info["input_size"] = (raw.get("pretrained_cfg") or {}).get("input_size")
    else:
        info.update(
            {
                k: v
                for k, v in _sidecar(path).items()
                if k in ("model", "model_kwargs", "classes", "input_size")
            }
        )
    if use_ema and not (isinstance(raw, Mapping) and isinstance(raw.get("state_dict_ema"), Mapping)):
        raise CheckpointError(f"--use-ema: {path} has no EMA weights (state_dict_ema)")
    return info


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A markdown table of accuracy vs input size."""
    lines = [
        "| input | crop_pct | top-1 (%) | top-5 (%) | loss | images |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['input_size']} | {r['crop_pct']:.3f} | {r['top1']:.2f} | {r['top5']:.2f} | "
            f"{r['loss']:.4f} | {r['images']} |"
        )
    return "\n".join(lines)


def _resolve_root(args: argparse.Namespace, dist_info: DistInfo, log: Any) -> Path:
    data_dir = args.data_dir or args.data
    if data_dir is not None:
        if not Path(data_dir).is_dir():
            raise DataError(f"data folder {data_dir} does not exist")
        return Path(data_dir)
    spec = SyntheticSpec(seed=args.synthetic_seed)
    if dist_info.local_rank == 0:
        ensure_synthetic_dataset(args.synthetic_dir, spec, log=log)
    barrier(dist_info)
    return ensure_synthetic_dataset(args.synthetic_dir, spec, log=log)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate as ``args`` say; returns one result per input size plus the checkpoint description."""
    dist_info = init_distributed(args.device)
    try:
        return _validate(args, dist_info)
    finally:
        shutdown(dist_info)


def _validate(args: argparse.Namespace, dist_info: DistInfo) -> dict[str, Any]:
    logger = setup_logging(None, dist_info.primary)
    log = logger.info
    raw = read_checkpoint(args.checkpoint)
    info = _describe_checkpoint(raw, args.checkpoint, args.use_ema)
    model_name = args.model or info.get("model")
    if not model_name:
        raise CheckpointError(
            f"{args.checkpoint} does not record its model: pass --model (e.g. parcnetv2_tiny)"
        )
    model_kwargs = args.model_kwargs if args.model_kwargs is not None else info.get("model_kwargs", {})

    root = _resolve_root(args, dist_info, log)
    split = scan_split(root, args.split)
    if info.get("classes") and list(info["classes"]) != list(split.classes):
        raise DataError(
            f"{split.root} class folders differ from the classes {args.checkpoint} was trained on"
        )
    model = create_classifier(model_name, len(split.classes), model_kwargs=model_kwargs)
    try:
        load_checkpoint_into(model, raw, use_ema=args.use_ema)
    except CheckpointError as err:
        raise CheckpointError(
            f"{args.checkpoint} does not fit {model_name} with {len(split.classes)} classes "
            f"(the folders in {split.root}): {err}"
        ) from err
    model.to(dist_info.device).eval()

    sizes = args.input_size or [(info.get("input_size") or [3, 224, 224])[-1]]
    autocast = contextlib.nullcontext
    if args.amp:
        autocast = functools.partial(
            torch.autocast, device_type=dist_info.device.type, dtype=getattr(torch, args.amp_dtype)
        )
    dataset = CheckedImageDataset(split)
    rows = []
    for size in sizes:
        data_config = data_config_for(model, [size], args.crop_pct, args.interpolation)
        loader = build_eval_loader(
            dataset,
            data_config,
            args.batch_size,
            args.workers,
            dist_info.device,
            dist_info.rank,
            dist_info.world_size,
        )
        metrics = evaluate(model, loader, dist_info, autocast, logger, args.log_interval, f"[eval {size}px]")
        row = {
            "input_size": size,
            "crop_pct": data_config["crop_pct"],
            "interpolation": data_config["interpolation"],
            **metrics,
        }
        rows.append(row)
        log(
            f"{model_name} @ {size}px, crop_pct {row['crop_pct']} ({row['interpolation']}): top-1 "
            f"{row['top1']:.2f}  top-5 {row['top5']:.2f}  loss {row['loss']:.4f}  ({row['images']} images)"
        )
    if len(rows) > 1:
        log("accuracy vs input size:\n" + format_table(rows))
    result = {
        "checkpoint": str(args.checkpoint),
        "model": model_name,
        "weights": "ema" if args.use_ema else "model",
        "data": str(split.root),
        "results": rows,
        "top1": rows[0]["top1"],
        "top5": rows[0]["top5"],
        "loss": rows[0]["loss"],
    }
    if args.results_file and dist_info.primary:
        atomic_write(
            args.results_file, lambda tmp: Path(tmp).write_text(json.dumps(to_plain(result), indent=2))
        )
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; ``argv`` as for ``sys.argv[1:]``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data and args.data_dir and Path(args.data).resolve() != Path(args.data_dir).resolve():
        parser.error("DATA_PATH and --data-dir disagree; give one")
    if args.batch_size < 1 or args.workers < 0:
        parser.error("--batch-size must be >= 1 and --workers >= 0")
    return run(args)


if __name__ == "__main__":
    run_cli(main, prog="parcnetv2.classification.validate")
