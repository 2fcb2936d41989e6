"""Oversized convolution (OC): a depthwise (K x 1) then (1 x K) convolution with zero padding.

With K = 2H - 1 (resp. 2W - 1) every output position sees the whole column (row), so the two passes
together give each position a global receptive field. ``fixed`` mode runs the stored kernel as is
(the published behaviour); ``adaptive`` mode resizes it to 2H-1 x 1 and 1 x 2W-1 for each input
(bilinear, ``align_corners=True``), so the receptive field stays global at any resolution.

Each pass is computed by the fastest of three exact paths for its shape, chosen by a measured cost
model (:mod:`.oc_cost`): ``direct`` (``F.conv2d``), ``gemm`` (Toeplitz matmul, :mod:`.oc_toeplitz`)
or ``fft`` (:mod:`.oc_fft`). ``path=`` or :func:`force_oc_path` forces one for debugging/benchmarks.
That is eager PyTorch. Traced (``torch.compile``, ``torch.export``/ONNX, FX, TorchScript) the module
is one formulation with no Python-side state and no branch on sizes: kernels resized by
``F.interpolate`` to ``2n - 1`` taps, Toeplitz matrices gathered by index arithmetic, two ``matmul``
calls (:func:`oc_matmul`), also for the TorchScript-based ONNX exporter (``dynamo=False``, e.g.
mmdeploy). Under a plain ``torch.jit.trace`` (mmengine's FLOP counter) it is the two depthwise
convolutions it is defined as.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models import register_notrace_function

from .layers import autocast_dtype, eager_fast_paths, weights_key
from .oc_cost import PATHS, PassShape, choose_path
from .oc_fft import fft_conv1d
from .oc_toeplitz import toeplitz_conv1d, toeplitz_pass

__all__ = [
    "OC_MODES",
    "OC_PATHS",
    "OversizedConv2d",
    "force_oc_path",
    "oc_matmul",
    "oc_pass",
    "oc_pass_shapes",
    "oversized_conv",
    "plan_oc_paths",
    "resize_oc_kernel",
    "resize_taps",
]

OC_MODES = ("adaptive", "fixed")
OCMode = Literal["adaptive", "fixed"]
OC_PATHS = ("auto", *PATHS)
OCPath = Literal["auto", "direct", "gemm", "fft"]

_forced_path: str | None = None


@contextmanager
def force_oc_path(path: OCPath) -> Iterator[None]:
    """Run every oversized convolution inside the block through ``path`` (``"auto"``: the cost model)."""
    global _forced_path
    if path not in OC_PATHS:
        raise ValueError(f"OC path must be one of {OC_PATHS}, got {path!r}")
    previous, _forced_path = _forced_path, path
    try:
        yield
    finally:
        _forced_path = previous


def resize_oc_kernel(weight: torch.Tensor, length: int, axis: int) -> torch.Tensor:
    """Resize an OC kernel to ``length`` taps along ``axis`` (2: (C, 1, K, 1); 3: (C, 1, 1, K)).

    Bilinear with ``align_corners=True`` (linear interpolation that keeps both end taps); returns
    ``weight`` itself when the length already matches.
    """
    if axis not in (2, 3) or weight.ndim != 4 or weight.shape[1] != 1 or weight.shape[5 - axis] != 1:
        raise ValueError(f"expected an OC kernel (C, 1, K, 1) or (C, 1, 1, K), got {tuple(weight.shape)}")
    if weight.shape[axis] == length:
        return weight
    resized = resize_taps(weight.flatten(1), length)
    return (
        resized.view(weight.shape[0], 1, length, 1)
        if axis == 2
        else resized.view(weight.shape[0], 1, 1, length)
    )


@register_notrace_function  # a leaf for FX (its device test): timm's tracer, and plain FX via fx.wrap below
def resize_taps(kernel: torch.Tensor, length: int) -> torch.Tensor:
    """A (C, K) kernel resized to (C, ``length``) taps: linear, both end taps kept.

    ``F.interpolate(..., mode="bilinear", align_corners=True)``'s definition (tap ``i`` samples
    ``i * (K - 1) / (length - 1)``; a single tap takes the first), with the sample positions in
    float64 (ATen's CPU kernel rounds them in float32), by index arithmetic with no branch or
    reshape on ``length``, so it traces at symbolic sizes. Under ``torch.compile``/``torch.export``
    the same values come from one matmul with the interpolation weights (:func:`_resize_taps_matmul`).
    """
    taps = kernel.shape[-1]
    position = _tap_positions(taps, length, kernel.device)
    if not torch.jit.is_scripting() and torch.compiler.is_compiling():
        return _resize_taps_matmul(kernel, position)
    low = position.long()
    high = (low + 1).clamp_max(taps - 1)
    frac = (position - low).to(kernel.dtype)
    return kernel[:, low] * (1 - frac) + kernel[:, high] * frac


def _tap_positions(taps: int, length: int, device: torch.device) -> torch.Tensor:
    """Where each of ``length`` resized taps samples a ``taps``-long kernel (align_corners), in float64."""
    exact = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
    steps = torch.arange(length, device=device, dtype=exact)
    return steps * ((taps - 1) / steps[-1:].clamp_min(1.0))


@torch.jit.unused
def _resize_taps_matmul(kernel: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """``kernel @ W`` with the (K, length) linear-interpolation weights ``max(0, 1 - |position - k|)``.

    A compiled graph then keeps the resized kernel as the matmul's result; with the gather form,
    inductor recomputed the interpolation (in float64) for every Toeplitz entry read from it.
    """
    offsets = position - torch.arange(kernel.shape[-1], device=kernel.device, dtype=position.dtype)[:, None]
    return kernel @ (1 - offsets.abs()).clamp_min(0).to(kernel.dtype)


torch.fx.wrap("resize_taps")


def oc_matmul(
    x: torch.Tensor, kernel_h: torch.Tensor, kernel_w: torch.Tensor, full: bool = False
) -> torch.Tensor:
    """The OC of NCHW ``x`` with (C, Kh) / (C, Kw) kernels as two Toeplitz matmuls (any odd K).

    Standard ops only and no branch on sizes: what tracers and exporters record. ``full``: the
    kernels have exactly 2H - 1 and 2W - 1 taps (adaptive mode), which saves the gathers a mask.
    """
    vertical = toeplitz_pass(x, kernel_h.to(x.dtype), 2, full)
    return toeplitz_pass(vertical, kernel_w.to(x.dtype), 3, full)


def oc_pass_shapes(x_shape: Sequence[int], taps_h: int, taps_w: int) -> tuple[PassShape, PassShape]:
    """The (vertical, horizontal) passes of an OC on a (B, C, H, W) input, taps cropped to 2n - 1."""
    batch, channels, height, width = x_shape
    return (
        PassShape(batch * channels * width, height, min(taps_h, 2 * height - 1), channels, dim=2),
        PassShape(batch * channels * height, width, min(taps_w, 2 * width - 1), channels, dim=3),
    )


def plan_oc_paths(
    x_shape: Sequence[int],
    taps_h: int,
    taps_w: int,
    device_type: str = "cpu",
    training: bool = False,
    kernel_grad: bool | None = None,
) -> tuple[str, str]:
    """The paths the cost model picks for the (vertical, horizontal) passes of an OC.

    ``training``: a backward pass follows; ``kernel_grad`` (default: ``training``): it reaches the kernels.
    """
    kernel_grad = training if kernel_grad is None else kernel_grad
    pass_h, pass_w = oc_pass_shapes(x_shape, taps_h, taps_w)
    return (
        choose_path(pass_h, device_type, training, kernel_grad),
        choose_path(pass_w, device_type, training, kernel_grad),
    )


def _crop(weight: torch.Tensor, n: int) -> torch.Tensor:
    """The central 2n - 1 taps of a (C, K) kernel: the only ones that meet an input of length n."""
    full = 2 * n - 1
    return weight.narrow(-1, (weight.shape[-1] - full) // 2, full) if weight.shape[-1] > full else weight


def oc_pass(
    x: torch.Tensor, weight: torch.Tensor, dim: int, path: str, toeplitz_cache: dict | None = None
) -> torch.Tensor:
    """Depthwise 'same' correlation of NCHW ``x`` with a (C, K) kernel along ``dim`` through ``path``.

    ``toeplitz_cache``: see :func:`oversized_conv`.
    """
    if path == "gemm":
        return toeplitz_conv1d(x, weight, dim, toeplitz_cache)
    if path == "fft":
        return fft_conv1d(x, weight, dim)
    channels, taps = weight.shape
    if dim == 2:
        return F.conv2d(x, weight.view(channels, 1, taps, 1), padding=(taps // 2, 0), groups=channels)
    return F.conv2d(x, weight.view(channels, 1, 1, taps), padding=(0, taps // 2), groups=channels)


def oversized_conv(
    x: torch.Tensor,
    weight_h: torch.Tensor,
    weight_w: torch.Tensor,
    path: OCPath | None = None,
    toeplitz_cache: dict | None = None,
) -> torch.Tensor:
    """Depthwise vertical then horizontal 'same' convolution of NCHW ``x`` with odd-length kernels.

    Args:
        x: (B, C, H, W) input, any memory layout.
        weight_h: (C, 1, Kh, 1) vertical kernel, Kh odd; zero padding Kh // 2.
        weight_w: (C, 1, 1, Kw) horizontal kernel, Kw odd; zero padding Kw // 2.
        path: ``"direct"``, ``"gemm"`` or ``"fft"`` to force a path for both passes; ``"auto"`` or
            ``None`` (the default, unless :func:`force_oc_path` is active) picks per pass by cost.
        toeplitz_cache: for inference with fixed kernels, a dict (owned by the caller, emptied when the
            kernels change) in which the GEMM path keeps its Toeplitz matrices between calls; ignored
            where autograd tracks the call.

    Under autocast the passes run in the autocast dtype (as ``F.conv2d`` would); the FFT path
    computes half precision in float32 and casts back.
    """
    channels = x.shape[1]
    if weight_h.shape[0] != channels or weight_w.shape[0] != channels:
        raise ValueError(f"kernels of {weight_h.shape[0]}/{weight_w.shape[0]} channels, input of {channels}")
    if weight_h.shape[2] % 2 != 1 or weight_w.shape[3] % 2 != 1:
        raise ValueError(f"oversized kernels must be odd, got {weight_h.shape[2]} x {weight_w.shape[3]}")
    path = path or _forced_path or "auto"
    if path not in OC_PATHS:
        raise ValueError(f"OC path must be one of {OC_PATHS}, got {path!r}")
    height, width = x.shape[-2:]
    kernel_h = _crop(weight_h.reshape(channels, -1), height)
    kernel_w = _crop(weight_w.reshape(channels, -1), width)
    if x.numel() == 0:  # an empty batch: only the direct convolution takes one (FFT libraries do not)
        path = "direct"
    if path == "auto":
        grad_enabled = torch.is_grad_enabled()
        kernel_grad = grad_enabled and (weight_h.requires_grad or weight_w.requires_grad)
        training = kernel_grad or (grad_enabled and x.requires_grad)
        taps_h, taps_w = kernel_h.shape[-1], kernel_w.shape[-1]
        path_h, path_w = plan_oc_paths(x.shape, taps_h, taps_w, x.device.type, training, kernel_grad)
    else:
        path_h = path_w = path

    device_type = x.device.type
    dtype = autocast_dtype(device_type)
    if dtype is not None:
        with torch.autocast(device_type, enabled=False):
            x, kernel_h, kernel_w = x.to(dtype), kernel_h.to(dtype), kernel_w.to(dtype)
            vertical = oc_pass(x, kernel_h, 2, path_h, toeplitz_cache)
            return oc_pass(vertical, kernel_w, 3, path_w, toeplitz_cache)
    kernel_h, kernel_w = kernel_h.to(x.dtype), kernel_w.to(x.dtype)
    vertical = oc_pass(x, kernel_h, 2, path_h, toeplitz_cache)
    return oc_pass(vertical, kernel_w, 3, path_w, toeplitz_cache)


class OversizedConv2d(nn.Module):
    """Oversized depthwise convolution with kernels ``conv_h`` (K x 1) and ``conv_w`` (1 x K).

    Args:
        dim: channels.
        kernel_size: stored kernel length K (odd); 2H-1 for the feature size H it was trained at.
        mode: ``"adaptive"`` resizes the kernels to 2H-1 / 2W-1 per input; ``"fixed"`` uses K as is.
        path: how to compute it: ``"auto"`` (cost model), ``"direct"``, ``"gemm"`` or ``"fft"``.
    """

    def __init__(self, dim: int, kernel_size: int, mode: OCMode = "adaptive", path: OCPath = "auto") -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"oversized kernel length must be odd, got {kernel_size}")
        if mode not in OC_MODES:
            raise ValueError(f"oc_mode must be one of {OC_MODES}, got {mode!r}")
        if path not in OC_PATHS:
            raise ValueError(f"OC path must be one of {OC_PATHS}, got {path!r}")
        self.dim = dim
        self.kernel_size = kernel_size
        self.mode = mode
        self.path = path
        pad = kernel_size // 2
        self.conv_h = nn.Conv2d(dim, dim, (kernel_size, 1), padding=(pad, 0), groups=dim, bias=False)
        self.conv_w = nn.Conv2d(dim, dim, (1, kernel_size), padding=(0, pad), groups=dim, bias=False)
        # inference caches (see kernels_for): key, resized kernels, and the GEMM path's Toeplitz matrices
        self._resized: tuple[tuple, torch.Tensor, torch.Tensor] | None = None
        self._toeplitz: dict = {}

    def _sized(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        weight_h, weight_w = self.conv_h.weight, self.conv_w.weight
        if self.mode == "fixed":
            return weight_h, weight_w
        return resize_oc_kernel(weight_h, 2 * height - 1, 2), resize_oc_kernel(weight_w, 2 * width - 1, 3)

    def _tracks_grad(self) -> bool:
        weights = (self.conv_h.weight, self.conv_w.weight)
        return torch.is_grad_enabled() and any(w.requires_grad for w in weights)

    def kernels_for(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The (vertical, horizontal) kernels this module applies to an H x W input.

        Without autograd (inference), the kernels of the last input size (and the Toeplitz matrices
        built from them) are kept and reused until the weights change (in place or by replacement)
        or the size does.
        """
        if self._tracks_grad():
            return self._sized(height, width)
        key = (height, width, weights_key(self.conv_h.weight, self.conv_w.weight))
        if self._resized is None or self._resized[0] != key:
            with torch.no_grad():
                self._resized = (key, *self._sized(height, width))
            self._toeplitz = {}
        return self._resized[1], self._resized[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if eager_fast_paths():
                return self._forward_eager(x)
            if torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export():
                return self._forward_direct(x)
        kernel_h, kernel_w = self.conv_h.weight.flatten(1), self.conv_w.weight.flatten(1)  # (C, K)
        if self.mode == "adaptive":
            kernel_h = resize_taps(kernel_h, 2 * x.shape[2] - 1)
            kernel_w = resize_taps(kernel_w, 2 * x.shape[3] - 1)
            return oc_matmul(x, kernel_h, kernel_w, full=True)
        return oc_matmul(x, kernel_h, kernel_w)

    @torch.jit.unused
    def _forward_eager(self, x: torch.Tensor) -> torch.Tensor:
        """The fastest exact path per pass (cost model), with the inference caches of :meth:`kernels_for`."""
        weight_h, weight_w = self.kernels_for(x.shape[-2], x.shape[-1])
        cache = None if self._tracks_grad() else self._toeplitz
        path = None if self.path == "auto" else self.path
        return oversized_conv(x, weight_h, weight_w, path=path, toeplitz_cache=cache)

    @torch.jit.unused
    def _forward_direct(self, x: torch.Tensor) -> torch.Tensor:
        """The two depthwise convolutions with this input's kernels (``torch.jit.trace``: FLOP counters)."""
        weight_h, weight_w = self._sized(x.shape[-2], x.shape[-1])
        return oversized_conv(x, weight_h, weight_w, path="direct")

    def extra_repr(self) -> str:
        path = "" if self.path == "auto" else f", path={self.path}"
        return f"dim={self.dim}, kernel_size={self.kernel_size}, mode={self.mode}{path}"
