"""Evaluate a ParCNetV2 checkpoint on an ImageFolder val set: top-1/top-5 and loss, at one or more sizes.

    python -m parcnetv2.classification.validate /data/imagenet/val --checkpoint run/best.pth.tar
    python -m parcnetv2.classification.validate /data/imagenet --checkpoint w.safetensors \\
        --model parcnetv2_tiny --input-size 3 288 288
    python -m parcnetv2.classification.validate /data/imagenet --checkpoint run/best.pth.tar \\
        --eval-sizes 160 224 288  # one row per size (adaptive OC)

Options as timm's validate: DATA_PATH is the root holding ``--split`` or the split folder itself;
``--img-size N`` or ``--input-size C H W`` (default: the trained size, else the model's); ``--num-classes``
must match the class folders. Eval preprocessing is timm's: resize the short side to ``size / crop_pct``,
centre crop ``size``. The default ``crop_pct`` is the model's, 1.0 for ParCNetV2 (the authors'
development code evaluated at 1.0; timm's usual 0.875 is ``--crop-pct 0.875``). Works single-process or
under torchrun. Without DATA_PATH the built-in set's val split is used (``data/synthetic_cls``, written by
``python -m parcnetv2.builtin_data cls``; never generated here).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from parcnetv2.backbone.checkpoint import CheckpointError, load_checkpoint_into
from parcnetv2.cli import run_cli
from parcnetv2.fileio import atomic_write

from .args import parse_validate_args, resolve_input_size
from .data import CheckedImageDataset, build_eval_loader, worker_errors_in_one_line
from .distributed import DistInfo, init_distributed, shutdown
from .engine import autocast_for, evaluate
from .export import has_ema_weights, read_described_checkpoint
from .folder_scan import DataError, resolve_data_root, scan_split_or_folder
from .modeling import create_classifier, data_config_for
from .run_log import setup_logging, to_plain

__all__ = ["main", "run", "format_table"]


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A markdown table of accuracy vs input size."""
    lines = [
        "| input | crop_pct | top-1 (%) | top-5 (%) | loss | images |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['input_size'][1]}x{r['input_size'][2]} | {r['crop_pct']:.3f} | {r['top1']:.2f} | "
            f"{r['top5']:.2f} | {r['loss']:.4f} | {r['images']} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate as ``args`` say; returns one result per input size plus the checkpoint description."""
    dist_info = init_distributed(args.device)
    try:
        return _validate(args, dist_info)
    finally:
        shutdown(dist_info)


def _eval_sizes(args: argparse.Namespace, trained: Sequence[int] | None) -> list[list[int] | None]:
    """The input sizes to evaluate at: ``--eval-sizes``, else the one of ``--input-size``/``--img-size``,
    else the trained size (None: the model's default)."""
    if args.eval_sizes:
        return [[3, n, n] for n in args.eval_sizes]
    return [resolve_input_size(args) or (list(trained) if trained else None)]


def _validate(args: argparse.Namespace, dist_info: DistInfo) -> dict[str, Any]:
    logger = setup_logging(None, dist_info.primary)
    log = logger.info
    raw, info = read_described_checkpoint(args.checkpoint)
    if args.use_ema and not has_ema_weights(raw):
        raise CheckpointError(f"--use-ema: {args.checkpoint} has no EMA weights (state_dict_ema)")
    model_name = args.model or info.get("model")
    if not model_name:
        raise CheckpointError(
            f"{args.checkpoint} does not record its model: pass --model (e.g. parcnetv2_tiny)"
        )
    model_kwargs = args.model_kwargs if args.model_kwargs is not None else info.get("model_kwargs", {})

    split = scan_split_or_folder(resolve_data_root(args.data_dir), args.split)
    num_classes = len(split.classes)
    if args.num_classes is not None and args.num_classes != num_classes:
        raise DataError(f"--num-classes {args.num_classes} but {split.root} has {num_classes} class folders")
    if info.get("classes") and list(info["classes"]) != list(split.classes):
        raise DataError(
            f"{split.root} class folders differ from the classes {args.checkpoint} was trained on"
        )
    model = create_classifier(model_name, num_classes, model_kwargs=model_kwargs)
    try:
        load_checkpoint_into(model, raw, use_ema=args.use_ema)
    except CheckpointError as err:
        raise CheckpointError(
            f"{args.checkpoint} does not fit {model_name} with {num_classes} classes "
            f"(the folders in {split.root}): {err}"
        ) from err
    model.to(dist_info.device).eval()

    autocast, _ = autocast_for(args.amp, args.amp_dtype, dist_info.device)
    dataset = CheckedImageDataset(split)
    rows = []
    for size in _eval_sizes(args, info.get("input_size")):
        data_config = data_config_for(model, size, args.crop_pct, args.interpolation)
        loader = build_eval_loader(
            dataset, data_config, args.batch_size, args.workers, dist_info, args.pin_mem
        )
        _, height, width = data_config["input_size"]
        prefix = f"[eval {height}x{width}]"
        with worker_errors_in_one_line():
            metrics = evaluate(model, loader, dist_info, autocast, logger, args.log_interval, prefix)
        row = {
            "input_size": list(data_config["input_size"]),
            "crop_pct": data_config["crop_pct"],
            "interpolation": data_config["interpolation"],
            **metrics,
        }
        rows.append(row)
        log(
            f"{model_name} @ {height}x{width}, crop_pct {row['crop_pct']} ({row['interpolation']}): top-1 "
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
    return run(parse_validate_args(argv))


if __name__ == "__main__":
    run_cli(main, prog="parcnetv2.classification.validate")
