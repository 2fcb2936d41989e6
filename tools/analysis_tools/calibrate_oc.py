"""Fit the oversized convolution's cost model on this machine's device and cache it (issue 25).

    python tools/analysis_tools/calibrate_oc.py                      # CPU, about 10 s
    python tools/analysis_tools/calibrate_oc.py --device cuda        # the current GPU
    python tools/analysis_tools/calibrate_oc.py --seconds 30 --no-save

Times the three exact paths (direct, GEMM, FFT) on single OC passes of ParCNetV2's stages,
forward and forward+backward, fits the cost model's coefficients (``backbone/oc_cost.py``), checks
the fit's choices against the timed fastest path on held-out passes and prints that agreement,
then writes the fit to the device's cache file (``$PARCNETV2_CACHE``, else
``$XDG_CACHE_HOME/parcnetv2``, else ``~/.cache/parcnetv2``, then ``oc_cost/<device>.json``), which
every ParCNetV2 on a device of that name plans with from then on. Ends with the paths each stage of
ParCNetV2-T gets at 224x224 and 800x1333.
"""

import argparse
import sys
from collections.abc import Sequence

import torch

from parcnetv2.backbone.oc_calibrate import (
    calibrate_oc,
    calibration_shapes,
    held_out_shapes,
    stage_paths_table,
    summary,
)
from parcnetv2.cli import add_debug_argument, run_cli


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--seconds", type=float, default=10.0, help="timing budget (about; default 10)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--max-side", type=int, default=1333, help="largest input side of the fit's passes")
    parser.add_argument("--no-save", action="store_true", help="print the fit, do not cache it")
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("calibrate_oc: no CUDA device")
    result = calibrate_oc(
        device,
        args.seconds,
        save=not args.no_save,
        shapes=calibration_shapes(args.max_side),
        held_out=held_out_shapes(min(args.max_side, 1024)),
    )
    threads = torch.get_num_threads()
    print(f"# OC cost model fitted on {result.device} ({threads} threads, torch {torch.__version__})")
    for training, coefs in result.coefficients.items():
        print(f"{'training' if training else 'inference'}: {coefs}")
    print(summary(result.held_out))
    print(f"cache: {result.path}" if result.path else "cache: not written (--no-save)")
    print(f"\nParCNetV2-T's OC paths on {result.device} now:\n\n{stage_paths_table(device)}")
    return {"held_out": result.held_out, "path": result.path}


if __name__ == "__main__":
    run_cli(main, sys.argv[1:], prog="calibrate_oc")
