"""The plan of an oversized convolution for one input: what is decided once and reused at that input.

An :class:`OCPlan` holds, for one input (shape, dtype, device, autograd, autocast, forced path):

* the kernels' sizing: ``resize``, the (Kh + Kw, Lh + Lw) matrix that maps the stored kernels,
  concatenated, to the ones this input uses (linear interpolation to 2n - 1 taps in adaptive mode,
  the central 2n - 1 taps of longer fixed kernels), or None where they are used as stored;
* the exact path of each pass (:mod:`.oc_cost`), as functions ``pass_h(x, kernel)``/``pass_w``
  called directly (:mod:`.oc_passes`);
* in inference, ``run_h(x)``/``run_w`` with what the paths keep between calls bound in (the sized
  kernels, the GEMM path's Toeplitz matrices, the FFT path's kernel spectra), for the weights
  ``version`` they were built from (:func:`bind_weights` rebuilds them after an update).

:class:`~.oversized_conv.OversizedConv2d` looks its plan up and runs it; :func:`plan_oc` and
:func:`bind_weights` are only called when it meets a new input or new weights.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F

from .oc_cost import PATHS, PassShape, choose_path
from .oc_passes import ToeplitzConv1d, direct_pass, fft_pass, fft_size, fft_spectrum, toeplitz_windows

__all__ = [
    "OC_PATHS",
    "OCPlan",
    "bind_weights",
    "interpolation_matrix",
    "oc_pass_shapes",
    "plan_oc",
    "plan_oc_paths",
]

OC_PATHS = ("auto", *PATHS)


@dataclass(eq=False)
class OCPlan:
    """What an oversized convolution runs for one input (see the module docstring)."""

    paths: tuple[str, str]
    taps: tuple[int, int]
    dtype: torch.dtype
    cast: bool
    resize: torch.Tensor | None
    pass_h: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    pass_w: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    run_h: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, repr=False)
    run_w: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, repr=False)
    version: tuple = ()

    def kernels(self, weight_h: torch.Tensor, weight_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (C, Lh) and (C, Lw) kernels this input uses, from the stored (C, 1, K, 1) / (C, 1, 1, K)."""
        kernels = torch.cat((weight_h.flatten(1), weight_w.flatten(1)), 1)
        if self.resize is not None:
            kernels = kernels @ self.resize
        kernel_h, kernel_w = kernels.to(self.dtype).split_with_sizes(self.taps, 1)
        return kernel_h, kernel_w


def interpolation_matrix(taps: int, length: int, device: torch.device) -> torch.Tensor:
    """The (taps, length) weights ``max(0, 1 - |p_i - k|)`` of linear interpolation, in float64.

    ``kernel @ W`` is ``F.interpolate(..., mode="bilinear", align_corners=True)``'s definition
    (tap ``i`` samples ``p_i = i * (taps - 1) / (length - 1)``; a single tap takes the first), with
    the sample positions exact (ATen's CPU kernel rounds them in float32). No branch or reshape on
    ``length``: it traces at symbolic sizes. (MPS has no float64: float32 there.)
    """
    exact = torch.float32 if device.type == "mps" else torch.float64
    steps = torch.arange(length, device=device, dtype=exact)
    position = steps * ((taps - 1) / steps[-1:].clamp_min(1.0))
    offsets = position - torch.arange(taps, device=device, dtype=exact)[:, None]
    return (1 - offsets.abs()).clamp_min(0)


def oc_pass_shapes(x_shape: tuple[int, ...], taps_h: int, taps_w: int) -> tuple[PassShape, PassShape]:
    """The (vertical, horizontal) passes of an OC on a (B, C, H, W) input, taps cropped to 2n - 1."""
    batch, channels, height, width = x_shape
    return (
        PassShape(batch * channels * width, height, min(taps_h, 2 * height - 1), channels, dim=2),
        PassShape(batch * channels * height, width, min(taps_w, 2 * width - 1), channels, dim=3),
    )


def plan_oc_paths(
    x_shape: tuple[int, ...],
    taps_h: int,
    taps_w: int,
    device: torch.device | str = "cpu",
    training: bool = False,
    kernel_grad: bool | None = None,
) -> tuple[str, str]:
    """The paths the cost model picks for the (vertical, horizontal) passes of an OC on ``device``.

    ``training``: a backward pass follows; ``kernel_grad`` (default: ``training``): it reaches the kernels.
    """
    kernel_grad = training if kernel_grad is None else kernel_grad
    pass_h, pass_w = oc_pass_shapes(x_shape, taps_h, taps_w)
    return choose_path(pass_h, device, training, kernel_grad), choose_path(
        pass_w, device, training, kernel_grad
    )


def _sizing(stored: int, n: int, adaptive: bool, device: torch.device) -> torch.Tensor | None:
    """(stored, used) matrix from a stored kernel to the one an n-long axis uses, or None if the same."""
    if adaptive and stored != 2 * n - 1:
        return interpolation_matrix(stored, 2 * n - 1, device)
    if stored > 2 * n - 1:  # the central 2n - 1 taps: the others never meet the input
        start = (stored - (2 * n - 1)) // 2
        return torch.eye(stored, device=device, dtype=torch.float64)[:, start : start + 2 * n - 1]
    return None


def _train_pass(
    path: str, dim: int, n: int, taps: int
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``f(x, kernel)`` computing one pass by ``path``, differentiable."""
    if path == "gemm":
        return partial(ToeplitzConv1d.apply, dim)
    if path == "fft":
        return partial(fft_pass, dim=dim, size=fft_size(n + taps - 1))
    return partial(direct_pass, dim=dim)


def plan_oc(
    x: torch.Tensor,
    stored_taps: tuple[int, int],
    adaptive: bool,
    path: str = "auto",
    input_grad: bool = False,
    kernel_grad: bool = False,
    weight_dtype: torch.dtype = torch.float32,
) -> OCPlan:
    """The plan for input ``x`` of kernels stored with ``stored_taps`` (Kh, Kw) taps.

    ``adaptive``: resize them to 2H - 1 / 2W - 1 taps (else crop them to at most that); ``path``:
    ``"auto"`` (the cost model, :func:`~.oc_cost.choose_path`) or one path for both passes;
    ``input_grad``/``kernel_grad``: autograd reaches the input / the kernels (a backward follows).
    """
    if path not in OC_PATHS:
        raise ValueError(f"OC path must be one of {OC_PATHS}, got {path!r}")
    if stored_taps[0] % 2 != 1 or stored_taps[1] % 2 != 1:
        raise ValueError(f"oversized kernels must be odd, got {stored_taps[0]} x {stored_taps[1]}")
    height, width = x.shape[-2:]
    device = x.device
    sizing = [_sizing(k, n, adaptive, device) for k, n in zip(stored_taps, (height, width), strict=True)]
    if sizing[0] is None and sizing[1] is None:
        resize = None
    else:
        eye = [torch.eye(k, device=device, dtype=torch.float64) for k in stored_taps]
        resize = torch.block_diag(*(s if s is not None else e for s, e in zip(sizing, eye, strict=True)))
        resize = resize.to(weight_dtype)
    taps = tuple(k if s is None else s.shape[1] for k, s in zip(stored_taps, sizing, strict=True))
    if x.numel() == 0:  # an empty batch: only the direct convolution takes one (FFT libraries do not)
        path = "direct"
    if path == "auto":
        paths = plan_oc_paths(tuple(x.shape), *taps, device, input_grad or kernel_grad, kernel_grad)
    else:
        paths = (path, path)
    cast = torch._C._is_any_autocast_enabled() and _autocast_enabled(device.type)
    dtype = torch.get_autocast_dtype(device.type) if cast else x.dtype
    passes = [
        _train_pass(p, d, n, t) for p, d, n, t in zip(paths, (2, 3), (height, width), taps, strict=True)
    ]
    return OCPlan(paths, taps, dtype, cast, resize, *passes)


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:  # a device type autocast does not know (e.g. "meta")
        return False


def _inference_pass(
    path: str, dim: int, n: int, kernel: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``f(x)`` for one pass with ``kernel`` fixed: builtins with their operands bound where possible."""
    channels, taps = kernel.shape
    if path == "gemm":
        matrix = toeplitz_windows(kernel, n)
        return partial(torch.matmul, matrix) if dim == 2 else partial(torch.matmul, other=matrix.mT)
    if path == "fft":
        size = fft_size(n + taps - 1)
        return partial(fft_pass, weight=kernel, dim=dim, size=size, spectrum=fft_spectrum(kernel, dim, size))
    shape, padding = (
        ((channels, 1, taps, 1), (taps // 2, 0)) if dim == 2 else ((channels, 1, 1, taps), (0, taps // 2))
    )
    return partial(F.conv2d, weight=kernel.reshape(shape), padding=padding, groups=channels)


def bind_weights(
    plan: OCPlan, weight_h: torch.Tensor, weight_w: torch.Tensor, version: tuple, size: tuple
) -> None:
    """Give an inference plan its ``run_h``/``run_w`` for these weights (``version``) at ``size`` (H, W)."""
    with torch.no_grad():
        kernels = [k.contiguous() for k in plan.kernels(weight_h, weight_w)]  # split views -> own memory
        plan.run_h, plan.run_w = (
            _inference_pass(p, d, n, k) for p, d, n, k in zip(plan.paths, (2, 3), size, kernels, strict=True)
        )
    plan.version = version
