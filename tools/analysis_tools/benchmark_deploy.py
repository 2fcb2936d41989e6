"""ParCNetV2-T against timm's ``convnext_tiny`` where users deploy and train it (issue 28).

    python tools/analysis_tools/benchmark_deploy.py [--threads 2] [--repeats 5] [--fixed-size]
        [--skip-onnx] [--skip-training] [--skip-memory] [--workdir DIR]

(1) onnxruntime (CPU provider, ``--threads`` intra-op threads): both models exported by
:func:`parcnetv2.deploy.export_onnx` (``torch.onnx.export(dynamo=True)``, dynamic batch, height and
width), the classifier at 224x224 and the ``features_only`` backbone at 800x1333, batch 1;
``--fixed-size`` adds ParCNetV2-T exported at that one size (its OC kernels and Toeplitz matrices
folded into constants). (2) The eager training step (forward+backward) under bf16 autocast at 224x224
batch 8 and 800x1333 batch 1 and 2, also in fp32 (target 1.2x). (3) The training peak memory at
800x1333 batch 2 (fp32), each run in a fresh process (see ``benchmark_common.py``).

Every row is ``--repeats`` runs, the compared models interleaved run by run; it prints the median
time of each and the median and spread (min-max) of the per-run ratio ParCNetV2-T / convnext_tiny,
with the machine and its load average at start and end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import timm
import torch
from benchmark_common import feature_step, machine, peak_in_subprocess, run_times

import parcnetv2  # noqa: F401  (registers the ParCNetV2 models in timm)
from parcnetv2.cli import add_debug_argument, run_cli
from parcnetv2.deploy import export_onnx

TARGET = 1.1
"""Every ratio this benchmark prints: ParCNetV2-T / convnext_tiny at most this (issue 28), but fp32
training, whose target stays ``FP32_TRAIN_TARGET``."""
FP32_TRAIN_TARGET = 1.2
ONNX_CASES = (("classifier", (224, 224)), ("features_only", (800, 1333)))
TRAIN_CASES = ((8, 224, 224), (1, 800, 1333), (2, 800, 1333))


def ratio_row(label: str, times: dict[str, list[float]], unit: str = "ms", target: float = TARGET) -> float:
    """Print one table row (median of each, median and spread of the per-run ratio); the ratio."""
    ours, theirs = times["ParCNetV2-T"], times["convnext_tiny"]
    ratios = sorted(a / b for a, b in zip(ours, theirs, strict=True))
    ratio = statistics.median(ratios)
    scale = 1e3 if unit == "ms" else 1.0
    ours_text, theirs_text = (f"{statistics.median(t) * scale:.0f} {unit}" for t in (ours, theirs))
    met = f"yes (<= {target}x)" if ratio <= target else f"no (> {target}x)"
    print(
        f"| {label} | {ours_text} | {theirs_text} | {ratio:.2f}x | {ratios[0]:.2f}-{ratios[-1]:.2f}x "
        f"| {len(ratios)} | {met} |",
        flush=True,
    )
    return ratio


def _header(title: str, unit: str = "time") -> None:
    print(f"\n## {title}\n")
    print(
        f"| row | ParCNetV2-T {unit} | convnext_tiny {unit} | ratio (median) | spread | runs | target met |"
    )
    print("|---|---|---|---|---|---|---|")


def model_pair(features_only: bool, train: bool) -> dict[str, torch.nn.Module]:
    """ParCNetV2-T and convnext_tiny (seeded random weights), in training or eval mode."""
    torch.manual_seed(0)
    names = {"ParCNetV2-T": "parcnetv2_tiny", "convnext_tiny": "convnext_tiny"}
    return {
        label: timm.create_model(name, features_only=features_only).train(train)
        for label, name in names.items()
    }


def _session(path: Path, threads: int) -> Callable[[object], object]:
    """``run(x)``: onnxruntime's CPU provider running ``path`` on a float32 array."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def onnx_table(workdir: Path, threads: int, repeats: int, fixed_size: bool) -> dict[str, float]:
    """onnxruntime time of both exports (and the fixed-size ParCNetV2-T export) per case."""
    _header("onnxruntime (CPU provider), batch 1: ParCNetV2-T vs timm convnext_tiny")
    ratios = {}
    for what, (height, width) in ONNX_CASES:
        models = model_pair(features_only=what == "features_only", train=False)
        files = {}
        for name, model in models.items():
            files[name] = export_onnx(model, workdir / f"{name}_{what}.onnx").path
        if fixed_size:
            fixed = export_onnx(
                models["ParCNetV2-T"],
                workdir / f"ParCNetV2-T_{what}_{height}x{width}.onnx",
                size=(height, width),
            )
            files["fixed"] = fixed.path
        x = torch.randn(1, 3, height, width).numpy()
        runs = {name: _session(path, threads) for name, path in files.items()}
        steps = {name: (lambda run=run, x=x: run(x)) for name, run in runs.items()}
        times = run_times(steps, repeats)
        size = f"{height}x{width}"
        ratios[f"onnx_{height}"] = ratio_row(f"{what} {size}, dynamic-size export", times)
        if fixed_size:
            fixed_times = {"ParCNetV2-T": times["fixed"], "convnext_tiny": times["convnext_tiny"]}
            ratios[f"onnx_fixed_{height}"] = ratio_row(f"{what} {size}, ours fixed-size export", fixed_times)
    return ratios


def training_rows(repeats: int) -> dict[str, float]:
    """Eager forward+backward (``features_only``) in fp32 and under bf16 autocast, both models interleaved."""
    _header("Training step (eager, features_only, forward+backward), fp32 and bf16 autocast")
    models = model_pair(features_only=True, train=True)
    ratios = {}
    for batch, height, width in TRAIN_CASES:
        x = torch.randn(batch, 3, height, width)
        steps = {name: feature_step(model, x, train=True) for name, model in models.items()}
        for dtype in ("fp32", "bf16"):

            def run(step: Callable[[], None], bf16: bool = dtype == "bf16") -> Callable[[], None]:
                def train_step() -> None:
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        step()

                return train_step

            times = run_times({name: run(step) for name, step in steps.items()}, repeats)
            target = FP32_TRAIN_TARGET if dtype == "fp32" else TARGET
            label = f"{batch}x3x{height}x{width} {dtype}"
            ratios[f"train_{dtype}_{batch}x{height}"] = ratio_row(label, times, target=target)
    return ratios


def memory_rows(threads: int, repeats: int) -> dict[str, float]:
    """Training peak memory at 800x1333 batch 2 (fp32), fresh processes, the two models alternating."""
    _header("Training peak memory (fwd+bwd, 2x3x800x1333, fp32, fresh process per run)", "peak")
    peaks: dict[str, list[float]] = {"ParCNetV2-T": [], "convnext_tiny": []}
    kinds = {"ParCNetV2-T": "train_ours", "convnext_tiny": "train_convnext"}
    for run in range(repeats):
        for name in kinds if run % 2 == 0 else reversed(kinds):
            peaks[name].append(peak_in_subprocess(kinds[name], "auto", threads))
    return {"train_memory": ratio_row("2x3x800x1333 fp32", peaks, unit="MiB")}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved runs per row (default 5)")
    parser.add_argument(
        "--fixed-size", action="store_true", help="add ParCNetV2-T exported at each row's size"
    )
    parser.add_argument("--skip-onnx", action="store_true", help="leave out the onnxruntime rows")
    parser.add_argument("--skip-training", action="store_true", help="leave out the training rows")
    parser.add_argument("--skip-memory", action="store_true", help="leave out the training memory row")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the ONNX files go (default: a temp dir)"
    )
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    torch.set_num_threads(args.threads)
    print(f"# Machine: {machine()}")
    start = time.perf_counter()
    results: dict[str, float] = {}
    if not args.skip_onnx:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = args.workdir or Path(tmp)
            results.update(onnx_table(workdir, args.threads, args.repeats, args.fixed_size))
    if not args.skip_training:
        results.update(training_rows(args.repeats))
    if not args.skip_memory:
        results.update(memory_rows(args.threads, args.repeats))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"\n# {time.perf_counter() - start:.0f} s; load average at end: {load}")
    return results


if __name__ == "__main__":
    run_cli(main, sys.argv[1:], prog="benchmark_deploy")
