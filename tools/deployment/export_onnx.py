"""Export a ParCNetV2 classifier, backbone, segmentor or detector backbone+neck to ONNX (any input size).

    python tools/deployment/export_onnx.py OUT.onnx --model parcnetv2_xt [--checkpoint CKPT] [--features-only]
    python tools/deployment/export_onnx.py OUT.onnx --config CONFIG [--checkpoint CKPT]

Batch, height and width are dynamic (height and width from 35 px); ``--size HxW`` exports for that
one size instead (batch stays dynamic; onnxruntime folds the OC's kernels and Toeplitz matrices into
constants when it loads the model: faster, larger in memory). The export is run by onnxruntime at
each ``--check`` size (default 224x224, 256x320 and 193x161; with ``--size``, that size) against
PyTorch; a difference above ``--rtol`` (relative to the output's largest value) is an error. See
``parcnetv2/deploy.py``.
"""

import argparse
from collections.abc import Sequence

from parcnetv2.cli import add_debug_argument, run_cli
from parcnetv2.deploy import (
    CHECK_SIZES,
    ExportReport,
    build_classifier,
    build_openmmlab_part,
    check_onnx,
    export_onnx,
)


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are HxW, e.g. 224x224, got {text!r}") from None
    return height, width


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="the .onnx file to write")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a timm model name, e.g. parcnetv2_xt")
    source.add_argument(
        "--config", help="an mmdet/mmseg config (segmentor: encode_decode; detector: backbone+neck)"
    )
    parser.add_argument(
        "--checkpoint", help="weights (a classification file for --model, an mm checkpoint for --config)"
    )
    parser.add_argument(
        "--features-only", action="store_true", help="with --model: the 4-level feature backbone"
    )
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    parser.add_argument(
        "--size", type=_size, default=None, help="HxW: a fixed-size export (default: any size)"
    )
    parser.add_argument("--check", type=_size, nargs="+", default=None, help="HxW sizes to verify")
    parser.add_argument("--rtol", type=float, default=1e-4, help="largest accepted relative difference")
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if args.features_only and not args.model:
        parser.error("--features-only goes with --model")
    if args.check is None:
        args.check = [args.size] if args.size else list(CHECK_SIZES)
    elif args.size and any(size != args.size for size in args.check):
        parser.error(f"a --size {args.size[0]}x{args.size[1]} export is checked at that size only")
    return args


def main(argv: Sequence[str] | None = None) -> ExportReport:
    args = parse_args(argv)
    if args.model:
        model = build_classifier(args.model, args.checkpoint, args.features_only)
        what = f"{args.model}{' features_only' if args.features_only else ''}"
    else:
        model, what = build_openmmlab_part(args.config, args.checkpoint)
    report = export_onnx(model, args.output, args.opset, args.size)
    report.errors = check_onnx(report.path, model, args.check)
    if args.size:
        print(f"{what}: dynamic batch, fixed size {args.size[0]}x{args.size[1]}")
    else:
        print(f"{what}: dynamic batch, height and width (>= 35)")
    print("\n".join(report.lines()))
    worst = max(report.errors.values())
    if worst > args.rtol:
        raise ValueError(f"onnxruntime differs from PyTorch by {worst:.2e} (relative) > --rtol {args.rtol:g}")
    print(f"onnxruntime matches PyTorch within {args.rtol:g} at every size")
    return report


if __name__ == "__main__":
    run_cli(main, prog="export_onnx")
