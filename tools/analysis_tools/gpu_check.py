"""GPU check: OC calibration and exactness, ParCNetV2-T vs convnext_tiny speed, one Mask R-CNN iteration.

    python tools/analysis_tools/gpu_check.py            # on a CUDA GPU (about 5 minutes on one GPU)
    python tools/analysis_tools/gpu_check.py --cpu      # dry run on the CPU with small sizes (CI)

Prints four tables:

(0) the OC cost model fitted on this GPU (``calibrate_oc``: a few seconds of timing the three paths;
    the fit is cached for the GPU's name, and every later run plans with it), its held-out agreement,
    and the path each ParCNetV2-T stage then gets at 224x224 and 800x1333;
(a) every OC path (direct, gemm, fft, and the traced matmul formulation) against the direct
    convolution in fp64, forward and gradients, in fp32, fp16 and bf16;
(b) ParCNetV2-T against timm's convnext_tiny: inference at 224 batch 32 under AMP (the paper's
    protocol), training steps at 224 batch 64 and 800x1333 batch 2, eager and ``torch.compile``;
(c) one Mask R-CNN training iteration (the synthetic config, built-in data) with mmcv's ops.

The dry run uses tiny models and sizes, and does not write the CPU's fit to the cache; it checks
that every part runs, not how fast.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import timm
import torch

import parcnetv2  # noqa: F401  (registers the models)
from parcnetv2 import REPO_ROOT
from parcnetv2.backbone.oc_calibrate import (
    calibrate_oc,
    calibration_shapes,
    held_out_shapes,
    stage_paths_table,
    summary,
)
from parcnetv2.backbone.oversized_conv import oc_matmul, oversized_conv
from parcnetv2.cli import add_debug_argument, run_cli

SYNTHETIC_DET = REPO_ROOT / "configs/mask_rcnn/mask-rcnn_parcnetv2-xt_fpn_4e_synthetic-coco.py"
TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}


def relative(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual = actual.detach().double()
    return float((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-12))


def calibration(device: str, dry_run: bool) -> None:
    """(0): fit the OC cost model on ``device`` (cached unless ``dry_run``), and the paths it plans."""
    print("\n## (0) OC cost model measured on this device\n")
    if dry_run:
        result = calibrate_oc(
            device, 2.0, save=False, shapes=calibration_shapes(160), held_out=held_out_shapes(192)
        )
    else:
        result = calibrate_oc(device)
    print(f"{result.device}, {summary(result.held_out)}; cache: {result.path or 'not written'}\n")
    print(stage_paths_table(device), flush=True)


def oc_exactness(device: str, shapes: Sequence[tuple[int, int, int]]) -> bool:
    """(a): each path's output and gradients against the fp64 direct convolution."""
    print("\n## (a) OC paths against the direct convolution (fp64 reference)\n")
    print("| shape | dtype | path | output | grad x | grad kernels | ok |")
    print("|---|---|---|---|---|---|---|")
    ok = True
    for channels, height, width in shapes:
        torch.manual_seed(0)
        x = torch.randn(2, channels, height, width, dtype=torch.float64, device=device)
        wh = torch.randn(channels, 1, 2 * height - 1, 1, dtype=torch.float64, device=device)
        ww = torch.randn(channels, 1, 1, 2 * width - 1, dtype=torch.float64, device=device)
        grad = torch.randn_like(x)
        ref = [t.clone().requires_grad_() for t in (x, wh, ww)]
        oversized_conv(*ref, path="direct").backward(grad)
        expected = [oversized_conv(x, wh, ww, path="direct"), *(t.grad for t in ref)]
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            for path in ("direct", "gemm", "fft", "traced"):
                if device == "cpu" and dtype == torch.float16 and path == "direct":
                    continue  # no fp16 depthwise convolution kernel on CPU
                inputs = [t.to(dtype).requires_grad_() for t in (x, wh, ww)]
                if path == "traced":  # what torch.compile/export run: gathered Toeplitz matrices + matmul
                    traced = torch.compile(oc_matmul, backend="eager", fullgraph=True)
                    out = traced(inputs[0], inputs[1].flatten(1), inputs[2].flatten(1))
                else:
                    out = oversized_conv(*inputs, path=path)
                out.backward(grad.to(dtype))
                errors = [
                    relative(out, expected[0]),
                    *(relative(t.grad, e) for t, e in zip(inputs, expected[1:], strict=True)),
                ]
                good = max(errors) < TOLERANCE[dtype]
                ok &= good
                print(
                    f"| {channels}x{height}x{width} | {str(dtype)[6:]} | {path} | "
                    + " | ".join(f"{e:.1e}" for e in errors)
                    + f" | {'yes' if good else 'NO'} |",
                    flush=True,
                )
    return ok


def median_ms(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def speed(
    device: str,
    workloads: Sequence[tuple[str, int, int, int]],
    model_kwargs: dict,
    repeats: int,
    backend: str,
) -> None:
    """(b): ParCNetV2-T vs convnext_tiny, eager and compiled (``backend``: inductor on the GPU)."""
    print("\n## (b) ParCNetV2-T vs convnext_tiny (features_only)\n")
    print("| workload | mode | ParCNetV2-T | convnext_tiny | ratio |")
    print("|---|---|---|---|---|")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    amp = torch.autocast(device, dtype=torch.bfloat16 if device == "cpu" else torch.float16)
    for kind, batch, height, width in workloads:
        x = torch.randn(batch, 3, height, width, device=device)
        for mode in ("eager", "compiled"):
            times = {}
            for name in ("parcnetv2_tiny", "convnext_tiny"):
                torch._dynamo.reset()
                model = timm.create_model(name, features_only=True, **model_kwargs.get(name, {})).to(device)
                model.train(kind == "train")
                run = torch.compile(model, backend=backend, fullgraph=True) if mode == "compiled" else model

                def step(run=run, model=model, x=x, train=kind == "train") -> None:
                    if train:
                        model.zero_grad(set_to_none=True)
                        with amp:
                            loss = sum(f.float().mean() for f in run(x))
                        loss.backward()
                    else:
                        with torch.no_grad(), amp:
                            run(x)

                times[name] = median_ms(step, repeats, sync)
            ratio = times["parcnetv2_tiny"] / times["convnext_tiny"]
            print(
                f"| {kind} {batch}x3x{height}x{width} AMP | {mode} | {times['parcnetv2_tiny']:.1f} ms "
                f"| {times['convnext_tiny']:.1f} ms | {ratio:.2f}x |",
                flush=True,
            )


def mask_rcnn_iteration(device: str, work: Path) -> float:
    """(c): one Mask R-CNN training iteration on built-in data; returns the loss."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    from parcnetv2.openmmlab.runner import build_model

    data = work / "coco"
    generate = [sys.executable, "-m", "parcnetv2.builtin_data", "coco", "--out", str(data)]
    subprocess.run([*generate, "--num-train", "4", "--num-val", "1"], check=True, capture_output=True)
    os.environ["SYNTHETIC_COCO_ROOT"] = f"{data}/"
    cfg = Config.fromfile(SYNTHETIC_DET)
    cfg.work_dir = str(work)
    init_default_scope("mmdet")
    model = build_model(cfg).to(device).train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    batch = next(iter(Runner.build_dataloader(cfg.train_dataloader)))
    start = time.perf_counter()
    losses = model.train_step(batch, optim)
    loss = float(sum(v for k, v in losses.items() if "loss" in k))
    seconds = time.perf_counter() - start
    print(f"\n## (c) Mask R-CNN XT, one training iteration on {device}: loss {loss:.3f} ({seconds:.1f} s)")
    return loss


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", action="store_true", help="dry run on the CPU with small sizes")
    parser.add_argument("--repeats", type=int, default=10)
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if args.cpu:  # compiled through AOTAutograd without inductor's code generation (minutes on a CPU)
        device, repeats, backend = "cpu", 1, "aot_eager"
        shapes = [(4, 9, 13)]
        workloads = [("inference", 2, 64, 64), ("train", 2, 64, 96)]
        small = dict(depths=(1, 1, 1, 1))
        model_kwargs = {"parcnetv2_tiny": small, "convnext_tiny": small}
    else:
        if not torch.cuda.is_available():
            raise SystemExit("gpu_check: no CUDA device (use --cpu for the dry run)")
        device, repeats, backend = "cuda", args.repeats, "inductor"
        shapes = [(64, 56, 56), (128, 28, 28), (64, 200, 334)]
        workloads = [("inference", 32, 224, 224), ("train", 64, 224, 224), ("train", 2, 800, 1333)]
        model_kwargs = {}
        print(f"# GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    calibration(device, dry_run=args.cpu)
    ok = oc_exactness(device, shapes)
    speed(device, workloads, model_kwargs, repeats, backend)
    with tempfile.TemporaryDirectory() as work:
        loss = mask_rcnn_iteration(device, Path(work))
    if not ok or not loss == loss:  # NaN check
        raise SystemExit("gpu_check: FAILED (see the tables above)")
    print("\ngpu_check: all parts ran; every OC path within tolerance")


if __name__ == "__main__":
    run_cli(main, sys.argv[1:], prog="gpu_check")
