"""Cost model that picks the fastest exact path for each pass of the oversized convolution.

A pass is a depthwise 1-D 'same' correlation along one axis of an NCHW map: ``lines`` = B * C *
(other side) lines of length ``n`` with a kernel of ``taps`` <= 2n - 1 taps. Each path's time is
modelled as ``overhead + sum(coef * feature)`` over the work it does (:func:`pass_features`):

* direct (``F.conv2d``): ``lines * n * taps`` multiply-adds, and those times ``n`` (long lines fall
  out of cache), one set of coefficients per axis (the two orientations run at very different speeds);
* gemm (Toeplitz matmul): ``lines * n * n`` multiply-adds plus ``C * n * n`` for building T;
* fft: ``lines * size * log2(size)`` with ``size`` the transform length, and that times ``n``; per axis.

The CPU coefficients were fitted by ``python tools/analysis_tools/benchmark_oc.py calibrate --threads 1``
(least squares on relative error over 68 passes x 3 paths, fp32, minimum of 5 runs each) on the
2-core AMD EPYC of the development sandbox; re-run it to refit on other hardware. They were taken
with one thread because that machine was shared: with two threads every parallel op waited for
descheduled threads, which buried the small shapes (where the choice matters) in noise. The work
terms of every path shrink alike with more threads, so the choice carries over, except right at
the direct/GEMM crossover of small maps, where both paths are fast anyway. The CUDA coefficients
are estimates, not measurements (no GPU was available when this was written): they encode only
that a GEMM is far cheaper per multiply-add than a depthwise convolution with a long kernel.
"""

import functools
import math
from dataclasses import dataclass

from .oc_fft import fft_size

__all__ = [
    "COEFFICIENTS",
    "PATHS",
    "PassShape",
    "PathCoefficients",
    "choose_path",
    "pass_features",
    "path_costs",
]

PATHS = ("direct", "gemm", "fft")
"""The exact ways to compute one OC pass."""


@dataclass(frozen=True)
class PassShape:
    """An OC pass along ``dim``: ``lines`` lines of length ``n``; ``channels`` kernels, ``taps`` <= 2n - 1."""

    lines: int
    n: int
    taps: int
    channels: int
    dim: int


@dataclass(frozen=True)
class PathCoefficients:
    """Seconds per unit of each feature of :func:`pass_features`, per path and axis (first: overhead)."""

    direct_h: tuple[float, float, float]
    direct_w: tuple[float, float, float]
    gemm: tuple[float, float, float]
    fft_h: tuple[float, float, float]
    fft_w: tuple[float, float, float]


def pass_features(path: str, shape: PassShape) -> tuple[float, float, float]:
    """The work features of ``path`` for ``shape``: 1 (overhead), the work, and a second work term.

    The second term is the work times the line length for direct and FFT (both slow down as lines
    outgrow the caches) and the size of the Toeplitz matrices for GEMM.
    """
    if path == "direct":
        macs = float(shape.lines) * shape.n * shape.taps
        return (1.0, macs, macs * shape.n)
    if path == "gemm":
        return (1.0, float(shape.lines) * shape.n * shape.n, float(shape.channels) * shape.n * shape.n)
    if path == "fft":
        size = fft_size(shape.n + shape.taps - 1)
        work = float(shape.lines) * size * math.log2(max(size, 2))
        return (1.0, work, work * shape.n)
    raise ValueError(f"unknown OC path {path!r}; expected one of {PATHS}")


# (device type, training) -> coefficients. Training = forward + backward of input and kernel.
COEFFICIENTS: dict[tuple[str, bool], PathCoefficients] = {
    ("cpu", False): PathCoefficients(
        direct_h=(8.12e-05, 1.61e-11, 4.08e-13),
        direct_w=(1.46e-05, 3.43e-10, 2.48e-12),
        gemm=(6.14e-05, 4.78e-11, 5.02e-11),
        fft_h=(1.27e-04, 2.82e-10, 5.89e-12),
        fft_w=(1.02e-04, 3.59e-10, 1.44e-12),
    ),
    ("cpu", True): PathCoefficients(
        direct_h=(3.60e-04, 5.19e-11, 1.03e-11),
        direct_w=(2.09e-04, 1.41e-09, 7.14e-12),
        gemm=(2.54e-04, 1.06e-10, 3.07e-09),
        fft_h=(3.07e-04, 1.91e-09, 7.06e-12),
        fft_w=(2.89e-04, 1.43e-09, 5.12e-12),
    ),
    # Estimates, not measurements: a few kernel launches of overhead, a depthwise convolution at
    # ~1 TMAC/s, a GEMM at ~20 TMAC/s; backward about three times the forward.
    ("cuda", False): PathCoefficients(
        direct_h=(2e-05, 1e-12, 0.0),
        direct_w=(2e-05, 1e-12, 0.0),
        gemm=(4e-05, 5e-14, 5e-12),
        fft_h=(6e-05, 5e-12, 0.0),
        fft_w=(6e-05, 5e-12, 0.0),
    ),
    ("cuda", True): PathCoefficients(
        direct_h=(6e-05, 3e-12, 0.0),
        direct_w=(6e-05, 3e-12, 0.0),
        gemm=(1.2e-04, 1.5e-13, 1.5e-11),
        fft_h=(1.8e-04, 1.5e-11, 0.0),
        fft_w=(1.8e-04, 1.5e-11, 0.0),
    ),
}


def _coefficients(path: str, dim: int, coefs: PathCoefficients) -> tuple[float, ...]:
    if path == "gemm":
        return coefs.gemm
    return getattr(coefs, f"{path}_{'h' if dim == 2 else 'w'}")


def path_costs(shape: PassShape, device_type: str = "cpu", training: bool = False) -> dict[str, float]:
    """Modelled seconds of each path for ``shape`` (devices without coefficients use the CUDA ones)."""
    coefs = COEFFICIENTS.get((device_type, training), COEFFICIENTS[("cuda", training)])
    costs = {}
    for path in PATHS:
        terms = zip(_coefficients(path, shape.dim, coefs), pass_features(path, shape), strict=True)
        costs[path] = sum(c * f for c, f in terms)
    return costs


@functools.lru_cache(maxsize=4096)  # called per OC pass; pure, and the table is constant
def choose_path(
    shape: PassShape, device_type: str = "cpu", training: bool = False, kernel_grad: bool = False
) -> str:
    """The path with the lowest modelled time for ``shape``.

    ``kernel_grad`` (the kernel needs a gradient) rules out ``direct`` on CPU: oneDNN's depthwise
    kernel gradient is wrong by several percent for some shapes (about 1 in 50 random ones; e.g. a
    39-tap vertical kernel on a 4 x 121 x 156 map), while its output and input gradient are exact.
    """
    costs = path_costs(shape, device_type, training)
    if kernel_grad and device_type == "cpu":
        del costs["direct"]
    return min(costs, key=costs.__getitem__)
