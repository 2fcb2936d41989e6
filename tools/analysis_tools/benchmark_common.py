"""What the benchmarks of ``tools/analysis_tools/`` share: interleaved timing, the machine line, the OC
and backbone workloads, and peak memory measured in a fresh process.

Peak memory: ``python benchmark_common.py KIND PATH --threads N`` (what :func:`peak_in_subprocess`
runs) builds the inputs, resets the peak resident set (``VmHWM``, through ``/proc/self/clear_refs``),
runs one forward+backward and prints its growth; glibc's mmap threshold is pinned to 128 KiB so that
freed tensors go back to the OS at once. KIND: ``oc`` (one OC of ParCNetV2-T's first stage at
800x1333), ``adaptive``/``fixed`` (the ParCNetV2-T backbone, batch 2 at 800x1333, with that OC mode,
every OC through PATH), ``train_ours``/``train_convnext`` (ParCNetV2-T / convnext_tiny features).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import timm
import torch

import parcnetv2  # noqa: F401  (registers the ParCNetV2 models in timm)
from parcnetv2.backbone.oversized_conv import force_oc_path, oversized_conv

TINY_DIMS = (64, 128, 320, 512)
"""ParCNetV2-T's stage widths."""


def stage_sizes(height: int, width: int) -> list[tuple[int, int]]:
    """Feature-map sizes of the four stages: a 7x7/4 stem with padding 2, then 3x3/2 with padding 1."""
    h, w = (height + 4 - 7) // 4 + 1, (width + 4 - 7) // 4 + 1
    sizes = [(h, w)]
    for _ in range(3):
        h, w = (h + 2 - 3) // 2 + 1, (w + 2 - 3) // 2 + 1
        sizes.append((h, w))
    return sizes


def run_times(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Wall times of each function over ``repeats`` interleaved runs, after one warm-up each."""
    for fn in functions.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median_times(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each function over ``repeats`` interleaved runs, after one warm-up each."""
    return {name: statistics.median(values) for name, values in run_times(functions, repeats).items()}


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")
        )
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{model}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load average at start {load}"
    )


def oc_inputs(channels: int, height: int, width: int, grad: bool, batch: int = 1) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    x = torch.randn(batch, channels, height, width, requires_grad=grad)
    weight_h = torch.randn(channels, 1, 2 * height - 1, 1, requires_grad=grad)
    weight_w = torch.randn(channels, 1, 1, 2 * width - 1, requires_grad=grad)
    return x, weight_h, weight_w


def oc_runner(inputs: tuple[torch.Tensor, ...], path: str, train: bool) -> Callable[[], None]:
    x, weight_h, weight_w = inputs
    if not train:

        def forward() -> None:
            with torch.no_grad():
                oversized_conv(x, weight_h, weight_w, path=path)

        return forward
    grad = torch.randn_like(x)

    def forward_backward() -> None:
        for t in inputs:
            t.grad = None
        oversized_conv(x, weight_h, weight_w, path=path).backward(grad)

    return forward_backward


def feature_step(model: torch.nn.Module, x: torch.Tensor, train: bool) -> Callable[[], None]:
    """One forward (no grad) or forward+backward of a ``features_only`` model on ``x``."""

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        sum(f.float().mean() for f in model(x)).backward()

    return forward_backward if train else forward


def peak_in_subprocess(kind: str, path: str, threads: int) -> float:
    """Peak memory growth (MiB) of one measured call in a fresh process (see :func:`measure_peak`)."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    cmd = [sys.executable, __file__, kind, path, "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mib"]


def _status_kib(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: peak resident), in KiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def measure_peak(kind: str, path: str) -> None:
    """Subprocess body: build the inputs, then run one forward+backward and print the peak growth."""
    if kind == "oc":
        (h, w), channels = stage_sizes(800, 1333)[0], TINY_DIMS[0]
        inputs = oc_inputs(channels, h, w, grad=True)
        step = oc_runner(inputs, path, train=True)
    elif kind in ("train_ours", "train_convnext"):
        name = "parcnetv2_tiny" if kind == "train_ours" else "convnext_tiny"
        step = feature_step(
            timm.create_model(name, features_only=True).train(), torch.randn(2, 3, 800, 1333), True
        )
    else:  # "adaptive" or "fixed": the whole backbone
        torch.manual_seed(0)
        model = timm.create_model("parcnetv2_tiny", features_only=True, oc_mode=kind)
        x = torch.randn(2, 3, 800, 1333)

        def step() -> None:
            with force_oc_path(model, path):
                sum(f.float().mean() for f in model(x)).backward()

    base = _status_kib("VmRSS")
    try:  # reset the peak to the current size (ru_maxrss would include the parent's size at fork)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    step()
    print(json.dumps({"peak_mib": (_status_kib("VmHWM") - base) / 1024}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="peak memory of one workload (see the module docstring)")
    parser.add_argument("kind", choices=("oc", "adaptive", "fixed", "train_ours", "train_convnext"))
    parser.add_argument("path", help="the OC path: auto, direct, gemm or fft")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    measure_peak(args.kind, args.path)
