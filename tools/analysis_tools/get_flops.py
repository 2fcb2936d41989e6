"""Parameters and FLOPs of a detection/segmentation config at a fixed input size.

    python tools/analysis_tools/get_flops.py CONFIG [--shape H [W]] [--cfg-options k=v ...] [--table-depth N]

``--shape`` follows mmdet 2.x/mmseg: ``H W`` (one value: square); default 1280 800, the size detection
papers report. The count is mmengine's ``FlopAnalyzer`` with its default op handles, as in mmdet's own
``analysis_tools/get_flops.py`` (which measures dataset images instead of a fixed size): the oversized
convolution is counted as the direct convolution it equals with the kernels it runs at that size
(``2H-1``/``2W-1`` per stage in ``adaptive`` mode), whatever algorithm eager PyTorch would pick (see
``parcnetv2/openmmlab/complexity.py``). Detectors are counted in ``mode='tensor'``
(RPN proposals from a random input, as mmdet's own tool); segmentors without the auxiliary head
(the task's ``counted_model``, :mod:`parcnetv2.openmmlab.task`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mmengine.config import DictAction

from parcnetv2.cli import add_debug_argument, run_cli
from parcnetv2.openmmlab.complexity import format_count, measure_complexity
from parcnetv2.openmmlab.config import load_config
from parcnetv2.openmmlab.runner import build_bare_model
from parcnetv2.openmmlab.task import task_of


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Params and FLOPs of a ParCNetV2 detector or segmentor")
    parser.add_argument("config", help="config file path")
    parser.add_argument(
        "--shape", type=int, nargs="+", default=[1280, 800], help="input H W (default: 1280 800)"
    )
    parser.add_argument(
        "--cfg-options", nargs="+", action=DictAction, help="override config settings, key=value"
    )
    parser.add_argument("--table-depth", type=int, default=0, help="print a per-module table to this depth")
    add_debug_argument(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    if len(args.shape) == 1:
        height = width = args.shape[0]
    elif len(args.shape) == 2:
        height, width = args.shape
    else:
        raise ValueError("--shape takes H or H W")
    cfg = load_config(args.config, cfg_options=args.cfg_options)
    task = task_of(cfg)
    model = task.counted_model(build_bare_model(cfg))
    result = measure_complexity(model, task.data_sample(height, width), height, width, args.table_depth)
    if result.table:
        print(result.table)
    line = "=" * 60
    print(line)
    print(f"Config: {args.config}")
    print(f"Input shape: {result.input_shape}")
    print(f"Flops: {format_count(result.flops)}")
    print(
        f"  of which oversized convolutions: {format_count(result.oc_flops)} "
        f"(direct-conv equivalent with runtime kernels; traced ops {format_count(result.oc_traced_flops)})"
    )
    print(f"Params: {format_count(result.params)} (backbone {format_count(result.backbone_params)})")
    if result.unsupported_ops:
        skipped = ", ".join(f"{op} x{n}" for op, n in sorted(result.unsupported_ops.items()))
        print(f"Ops not counted (no FLOP handle): {skipped}")
    print(line)
    print("FLOPs count multiply-adds of one forward at this input; NMS and other data-dependent parts vary.")
    return dict(
        flops=result.flops,
        params=result.params,
        oc_flops=result.oc_flops,
        oc_traced_flops=result.oc_traced_flops,
    )


if __name__ == "__main__":
    run_cli(main, sys.argv[1:], prog="tools/analysis_tools/get_flops.py")
