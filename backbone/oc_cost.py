"""Cost model that picks the fastest exact path for each pass of the oversized convolution.

A pass is a depthwise 1-D 'same' correlation along one axis of an NCHW map: ``lines`` = B * C *
(other side) lines of length ``n`` with a kernel of ``taps`` <= 2n - 1 taps. Each path's time is
modelled as ``overhead + sum(coef * feature)`` over the work it does (:func:`pass_features`):

* direct (``F.conv2d``): ``lines * n * taps`` multiply-adds, and those times ``n`` (long lines fall
  out of cache), one set of coefficients per axis (the two orientations run at very different speeds);
* gemm (Toeplitz matmul): ``lines * n * n`` multiply-adds plus ``C * n * n`` for building T;
* fft: ``lines * size * log2(size)`` with ``size`` the transform length, and that times ``n``; per axis.

The shipped CPU coefficients were fitted (least squares on relative error over 68 passes x 3 paths,
fp32, minimum of 5 runs each) on the 2-core AMD EPYC of the development sandbox. They were taken
with one thread because that machine was shared: with two threads every parallel op waited for
descheduled threads, which buried the small shapes (where the choice matters) in noise. The work
terms of every path shrink alike with more threads, so the choice carries over, except right at
the direct/GEMM crossover of small maps, where both paths are fast anyway. The CUDA coefficients
are estimates, not measurements (no GPU was available when this was written): they encode only
that a GEMM is far cheaper per multiply-add than a depthwise convolution with a long kernel.

Measured coefficients replace them per device: :func:`parcnetv2.backbone.oc_calibrate.calibrate_oc`
(or ``tools/analysis_tools/calibrate_oc.py``) times the paths on the device and writes a fit to
:func:`cache_file`, which :func:`coefficients_for` loads from then on (``PARCNETV2_OC_CALIBRATE=1``
runs that calibration the first time a device without a fit is planned for).
"""

import functools
import json
import math
import os
import platform
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .oc_passes import fft_size

__all__ = [
    "COEFFICIENTS",
    "PATHS",
    "PassShape",
    "PathCoefficients",
    "cache_file",
    "choose_path",
    "coefficients_for",
    "device_name",
    "pass_features",
    "path_costs",
    "read_fit",
    "save_fit",
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


def path_costs(shape: PassShape, coefficients: PathCoefficients) -> dict[str, float]:
    """Modelled seconds of each path for ``shape``."""
    costs = {}
    for path in PATHS:
        terms = zip(_coefficients(path, shape.dim, coefficients), pass_features(path, shape), strict=True)
        costs[path] = sum(c * f for c, f in terms)
    return costs


def choose_path(
    shape: PassShape,
    device: torch.device | str = "cpu",
    training: bool = False,
    kernel_grad: bool = False,
    coefficients: PathCoefficients | None = None,
) -> str:
    """The path with the lowest modelled time for ``shape`` on ``device`` (:func:`coefficients_for`,
    unless ``coefficients`` are given).

    ``kernel_grad`` (the kernel needs a gradient) rules out ``direct`` on CPU: oneDNN's depthwise
    kernel gradient is wrong by several percent for some shapes (about 1 in 50 random ones; e.g. a
    39-tap vertical kernel on a 4 x 121 x 156 map), while its output and input gradient are exact.
    """
    device = torch.device(device)
    costs = path_costs(shape, coefficients or coefficients_for(device, training))
    if kernel_grad and device.type == "cpu":
        del costs["direct"]
    return min(costs, key=costs.__getitem__)


# ----------------------------------------------------------------------------------------- per device
def device_name(device: torch.device | str) -> str:
    """What the measured coefficients are filed under: the GPU's name, or the CPU's model name."""
    return _device_name(torch.device(device))


@functools.lru_cache(maxsize=16)  # read once per device and process (the CPU's from /proc/cpuinfo)
def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        try:
            with open("/proc/cpuinfo") as f:
                return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        except (OSError, StopIteration):
            return platform.processor() or "cpu"
    return device.type


def cache_file(device: torch.device | str) -> Path:
    """The fit of ``device``: ``oc_cost/<device name>.json`` under ``PARCNETV2_CACHE``, else
    ``$XDG_CACHE_HOME/parcnetv2``, else ``~/.cache/parcnetv2``."""
    root = os.environ.get("PARCNETV2_CACHE")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "parcnetv2"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{torch.device(device).type}-{device_name(device)}")
    return Path(root) / "oc_cost" / f"{slug}.json"


_measured: dict[torch.device, dict[bool, PathCoefficients] | None] = {}
"""The fits read so far, by device (None: none in the cache): read once per process, like cuDNN's
benchmark cache."""


def read_fit(path: Path) -> dict[bool, PathCoefficients] | None:
    """The (inference, training) coefficients of a fit file, or None if there is none."""
    if not path.is_file():
        return None
    fit = json.loads(path.read_text())["coefficients"]
    return {
        training: PathCoefficients(**{k: tuple(v) for k, v in fit[name].items()})
        for training, name in ((False, "inference"), (True, "training"))
    }


def save_fit(
    device: torch.device | str, coefficients: dict[bool, PathCoefficients], **details: object
) -> Path:
    """Write a fit (and ``details`` such as its held-out agreement) to the device's :func:`cache_file`
    atomically, and plan with it from now on; returns the file."""
    path = cache_file(device)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = {False: "inference", True: "training"}
    text = json.dumps(
        {"coefficients": {names[t]: asdict(c) for t, c in coefficients.items()}, **details}, indent=1
    )
    partial = path.with_suffix(".json.tmp")
    partial.write_text(text)
    partial.replace(path)
    _measured[torch.device(device)] = dict(coefficients)
    return path


def coefficients_for(device: torch.device | str, training: bool) -> PathCoefficients:
    """The coefficients for ``device``: its measured fit if there is one (:func:`cache_file`), else
    the shipped ones for its type (CUDA's for other accelerators).

    With ``PARCNETV2_OC_CALIBRATE=1`` a device without a fit is calibrated first (a few seconds).
    """
    device = torch.device(device)
    if device not in _measured:
        _measured[device] = read_fit(cache_file(device))
        if _measured[device] is None and os.environ.get("PARCNETV2_OC_CALIBRATE") == "1":
            from .oc_calibrate import calibrate_oc  # the timing code, only when asked for

            calibrate_oc(device)
    fit = _measured[device]
    if fit is not None:
        return fit[training]
    return COEFFICIENTS.get((device.type, training), COEFFICIENTS[("cuda", training)])
