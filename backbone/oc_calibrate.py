"""Measured path planning for the oversized convolution, in the spirit of ``cudnn.benchmark``.

:func:`calibrate_oc` times the three exact paths (:mod:`.oc_passes`) on single passes of the
shapes ParCNetV2 runs (:func:`calibration_shapes`), forward alone and forward + backward, fits the
coefficients of the cost model (:mod:`.oc_cost`) to them (non-negative least squares on relative
error), checks the fit's choices against the timed fastest path on other shapes (:func:`held_out_shapes`)
and writes it to the device's cache file (:func:`~.oc_cost.cache_file`), which every plan made
afterwards on a device of that name uses. ``tools/analysis_tools/calibrate_oc.py`` is the command.
"""

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .oc_cost import (
    PATHS,
    PassShape,
    PathCoefficients,
    device_name,
    pass_features,
    path_costs,
    save_fit,
)
from .oc_passes import ToeplitzConv1d, direct_pass, fft_pass, fft_size
from .oc_plan import plan_oc_paths

__all__ = [
    "Calibration",
    "Measurement",
    "agreement",
    "calibrate_oc",
    "calibration_shapes",
    "fit_coefficients",
    "held_out_shapes",
    "measure",
    "stage_paths",
    "stage_paths_table",
    "summary",
]

STAGES = ((64, 4), (128, 8), (320, 16), (512, 32))
"""ParCNetV2-T's (channels, stride) per stage (XT's, S's and B's maps are alike)."""


@dataclass(frozen=True)
class Measurement:
    """The least disturbed time (seconds) of one pass by one path; ``training``: forward + backward."""

    shape: PassShape
    path: str
    training: bool
    seconds: float


def _stage_passes(inputs: Sequence[tuple[int, int]], batch: int = 1) -> list[PassShape]:
    """Both passes of each stage's OC per input size: adaptive kernels, and fixed ones about half as long."""
    shapes = []
    for height, width in inputs:
        for channels, stride in STAGES:
            h, w = max(height // stride, 1), max(width // stride, 1)
            for dim, n, other in ((2, h, w), (3, w, h)):
                for taps in sorted({2 * n - 1, n | 1}):
                    shapes.append(PassShape(batch * channels * other, n, taps, channels, dim))
    return shapes


def stage_paths(
    height: int, width: int, device: torch.device | str = "cpu", training: bool = False, batch: int = 1
) -> list[tuple[tuple[int, int, int], tuple[str, str]]]:
    """((C, h, w), (vertical, horizontal) path) of ParCNetV2-T's OC per stage at an H x W input,
    as planned on ``device`` now (adaptive kernels; ``training``: kernels train)."""
    rows = []
    for channels, stride in STAGES:
        h, w = max(height // stride, 1), max(width // stride, 1)
        rows.append(
            ((channels, h, w), plan_oc_paths((batch, channels, h, w), 2 * h - 1, 2 * w - 1, device, training))
        )
    return rows


def stage_paths_table(device: torch.device | str = "cpu") -> str:
    """A markdown table of :func:`stage_paths` at 224x224 and 800x1333, inference and training."""
    lines = [
        "| input | stage | C x h x w | inference paths (vertical / horizontal) | training paths |",
        "|---|---|---|---|---|",
    ]
    for height, width in ((224, 224), (800, 1333)):
        rows = zip(stage_paths(height, width, device), stage_paths(height, width, device, True), strict=True)
        for stage, ((shape, paths), (_, train)) in enumerate(rows):
            size = "x".join(map(str, shape))
            lines.append(
                f"| {height}x{width} | {stage + 1} | {size} | {' / '.join(paths)} | {' / '.join(train)} |"
            )
    return "\n".join(lines)


def calibration_shapes(max_side: int = 1333) -> list[PassShape]:
    """The passes the fit is made on: the stages at 160 to 800x1333 inputs (sides <= ``max_side``)."""
    inputs = [(160, 160), (224, 224), (320, 320), (512, 512), (800, 1333), (1333, 800)]
    inputs = [s for s in inputs if max(s) <= max_side]
    if not inputs:
        raise ValueError(f"max_side {max_side} leaves no input to fit on: the smallest side is 160")
    return _stage_passes(inputs)


def held_out_shapes(max_side: int = 1024) -> list[PassShape]:
    """Passes the fit never saw, to check its choices: other input sizes, and batch 2."""
    inputs = [(192, 192), (288, 288), (384, 640), (640, 384), (1024, 1024)]
    inputs = [s for s in inputs if max(s) <= max_side]
    if not inputs:
        raise ValueError(f"max_side {max_side} leaves no held-out input: the smallest side is 192")
    return _stage_passes(inputs[::2]) + _stage_passes(inputs[1::2], batch=2)


def _runner(shape: PassShape, path: str, training: bool, device: torch.device):
    """A closure running one pass (forward, or forward + backward) on random data."""
    other = shape.lines // shape.channels
    size = (1, shape.channels, shape.n, other) if shape.dim == 2 else (1, shape.channels, other, shape.n)
    x = torch.randn(size, device=device, requires_grad=training)
    weight = torch.randn(shape.channels, shape.taps, device=device, requires_grad=training)
    grad = torch.randn(size, device=device)
    fft_length = fft_size(shape.n + shape.taps - 1)

    def forward() -> torch.Tensor:
        if path == "gemm":
            return ToeplitzConv1d.apply(shape.dim, x, weight)
        if path == "fft":
            return fft_pass(x, weight, shape.dim, fft_length)
        return direct_pass(x, weight, shape.dim)

    def run() -> None:
        if training:
            x.grad = weight.grad = None
            forward().backward(grad)
        else:
            with torch.no_grad():
                forward()

    return run


def measure(
    shapes: Sequence[PassShape],
    device: torch.device | str = "cpu",
    seconds: float = 5.0,
    max_repeats: int = 10,
    paths: Sequence[str] = PATHS,
) -> list[Measurement]:
    """Time each path on each shape, forward and forward + backward, in about ``seconds`` in all.

    Each (shape, path, mode) gets an equal share of the time: a warm-up, then runs until its share
    is spent (at least 2, at most ``max_repeats``); the minimum is kept (the least disturbed run: the
    machine's cost, not its load). Passes whose warm-up alone takes 4 shares are timed once.
    """
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    share = seconds / max(1, 2 * len(shapes) * len(paths))
    results = []
    for training in (False, True):
        for shape in shapes:
            for path in paths:
                run = _runner(shape, path, training, device)
                start = time.perf_counter()
                run()
                sync()
                times = [time.perf_counter() - start]
                while (len(times) < 2 or sum(times) < share) and len(times) <= max_repeats:
                    if times[0] > 4 * share and len(times) >= 2:
                        break
                    start = time.perf_counter()
                    run()
                    sync()
                    times.append(time.perf_counter() - start)
                best = min(times[1:]) if len(times) > 1 else times[0]
                results.append(Measurement(shape, path, training, best))
    return results


def _nnls_relative(rows: list[tuple[tuple[float, ...], float]]) -> tuple[float, ...]:
    """Non-negative least squares on relative error: minimise sum(((features . coef) - t) / t)^2."""
    features = torch.tensor([f for f, _ in rows], dtype=torch.float64)
    times = torch.tensor([t for _, t in rows], dtype=torch.float64)
    a, b = features / times[:, None], torch.ones_like(times)
    active = list(range(features.shape[1]))
    while True:  # drop the most negative coefficient until all are >= 0 (tiny problems: fine)
        coef = torch.linalg.lstsq(a[:, active], b[:, None]).solution.squeeze(1)
        if (coef >= 0).all() or len(active) == 1:
            break
        active.pop(int(coef.argmin()))
    full = [0.0] * features.shape[1]
    for i, c in zip(active, coef.clamp_min(0).tolist(), strict=True):
        full[i] = c
    return tuple(full)


def fit_coefficients(measurements: Sequence[Measurement]) -> dict[bool, PathCoefficients]:
    """The cost model's coefficients per mode (inference, training) fitted to ``measurements``."""
    fits = {}
    for training in (False, True):
        samples: dict[str, list[tuple[tuple[float, ...], float]]] = {}
        for m in measurements:
            if m.training == training:
                key = m.path if m.path == "gemm" else f"{m.path}_{'h' if m.shape.dim == 2 else 'w'}"
                samples.setdefault(key, []).append((pass_features(m.path, m.shape), m.seconds))
        fits[training] = PathCoefficients(
            **{
                key: _nnls_relative(samples[key])
                for key in ("direct_h", "direct_w", "gemm", "fft_h", "fft_w")
            }
        )
    return fits


def agreement(
    coefficients: dict[bool, PathCoefficients],
    measurements: Sequence[Measurement],
    device: torch.device | str = "cpu",
    margin: float = 0.1,
) -> dict[str, float]:
    """How the fit's choices compare with the timed fastest path on ``measurements``' shapes.

    ``exact``: share of (shape, mode) where the chosen path is the fastest; ``within_margin``: where
    it is at most ``margin`` slower than the fastest (closer than the timing noise of a shared
    machine); ``slowdown``: the geometric mean of chosen / fastest time. Where kernels train on CPU,
    ``direct`` is left out of both (the planner never picks it there, see :func:`~.oc_cost.choose_path`).
    """
    device = torch.device(device)
    timed: dict[tuple[PassShape, bool], dict[str, float]] = {}
    for m in measurements:
        timed.setdefault((m.shape, m.training), {})[m.path] = m.seconds
    exact = within = 0
    log_slowdown = 0.0
    for (shape, training), times in timed.items():
        costs = path_costs(shape, coefficients[training])
        if training and device.type == "cpu":
            times = {p: t for p, t in times.items() if p != "direct"}
        chosen = min((p for p in costs if p in times), key=costs.__getitem__)
        fastest = min(times.values())
        exact += times[chosen] == fastest
        within += times[chosen] <= (1 + margin) * fastest
        log_slowdown += math.log(times[chosen] / fastest)
    count = max(len(timed), 1)
    return {
        "cases": len(timed),
        "exact": exact / count,
        "within_margin": within / count,
        "margin": margin,
        "slowdown": math.exp(log_slowdown / count),
    }


def summary(check: dict[str, float]) -> str:
    """One line for an :func:`agreement` result."""
    return (
        f"held-out agreement: the chosen path is the fastest in {check['exact']:.0%} of {check['cases']} "
        f"passes, within {check['margin']:.0%} of it in {check['within_margin']:.0%}; mean slowdown "
        f"{check['slowdown']:.3f}x"
    )


@dataclass(frozen=True)
class Calibration:
    """A fit, where it was saved, and its held-out agreement (:func:`agreement`)."""

    device: str
    coefficients: dict[bool, PathCoefficients]
    held_out: dict[str, float]
    path: str | None


def calibrate_oc(
    device: torch.device | str = "cpu",
    seconds: float = 8.0,
    save: bool = True,
    shapes: Sequence[PassShape] | None = None,
    held_out: Sequence[PassShape] | None = None,
    margin: float = 0.1,
) -> Calibration:
    """Fit the OC cost model on ``device`` (about ``seconds``: 2/3 fitting, 1/3 checking) and, with
    ``save``, write it to the device's cache file, used by every plan made from then on. ``margin``:
    see :func:`agreement`."""
    device = torch.device(device)
    shapes = calibration_shapes() if shapes is None else shapes
    held_out = held_out_shapes() if held_out is None else held_out
    coefficients = fit_coefficients(measure(shapes, device, seconds * 2 / 3))
    check = agreement(coefficients, measure(held_out, device, seconds / 3), device, margin)
    path = None
    if save:
        path = save_fit(
            device,
            coefficients,
            device_name=device_name(device),
            torch=torch.__version__,
            threads=torch.get_num_threads(),
            held_out=check,
        )
    return Calibration(device_name(device), coefficients, check, None if path is None else str(path))
