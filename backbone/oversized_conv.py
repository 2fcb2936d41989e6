"""Oversized convolution (OC): a depthwise (K x 1) then (1 x K) convolution with zero padding.

With K = 2H - 1 (resp. 2W - 1) every output position sees the whole column (row), so the two passes
together give each position a global receptive field. ``fixed`` mode runs the stored kernel as is
(the published behaviour); ``adaptive`` mode resizes it to 2H-1 x 1 and 1 x 2W-1 for each input
(bilinear, ``align_corners=True``), so the receptive field stays global at any resolution.

In eager PyTorch an :class:`OversizedConv2d` keeps a plan per input (:mod:`.oc_plan`): the kernels'
sizing, the fastest exact path of each pass by a measured cost model (:mod:`.oc_cost`) -- ``direct``
(``F.conv2d``), ``gemm`` (Toeplitz matmul) or ``fft`` (:mod:`.oc_passes`) -- and, in inference, the
sized kernels and what the paths keep between calls. At an input it has seen, ``forward`` looks the
plan up and runs it. The module's ``path`` attribute (or :func:`force_oc_path`) forces one path.

Traced (``torch.compile``, ``torch.export``/ONNX, FX, TorchScript) the module is one formulation
with no Python-side state and no branch on sizes: kernels resized by one matmul with the
interpolation weights, Toeplitz matrices built from them (:func:`~.oc_passes.toeplitz`),
two ``matmul`` calls (:func:`oc_matmul`), also for the TorchScript-based ONNX exporter (``dynamo=False``, e.g.
mmdeploy). Under a plain ``torch.jit.trace`` (mmengine's FLOP counter) it is the two depthwise
convolutions it is defined as. :func:`runtime_mode` is the backbone's one test of which client runs it.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn as nn
from timm.models import register_notrace_function
from torch.fx._symbolic_trace import _is_fx_tracing_tls

from .oc_passes import direct_pass, toeplitz_pass
from .oc_plan import OC_PATHS, OCPlan, bind_weights, interpolation_matrix, plan_oc

__all__ = [
    "OC_MODES",
    "OC_PATHS",
    "OversizedConv2d",
    "force_oc_path",
    "oc_matmul",
    "oversized_conv",
    "resize_oc_kernel",
    "resize_taps",
    "runtime_mode",
]

OC_MODES = ("adaptive", "fixed")
OCMode = Literal["adaptive", "fixed"]
OCPath = Literal["auto", "direct", "gemm", "fft"]
MAX_PLANS = 4
"""Plans an OC keeps (the oldest is dropped); of inference plans, which hold sized kernels and Toeplitz
matrices (for ParCNetV2-T at 800x1333 about 335 MB in all), only the latest."""


@torch.jit.unused
def runtime_mode() -> str:
    """Which formulation the backbone runs: the one dispatch point between eager and traced clients.

    ``"eager"``: plain eager PyTorch (plans, caches, in-place ops); ``"traced"``: ``torch.compile``,
    ``torch.export`` (strict or not, and so the ONNX exporter), FX symbolic tracing, or ``jit.trace``
    for ONNX export (the plain formulation in standard ops); ``"conv"``: a plain ``torch.jit.trace``
    (e.g. mmengine's FLOP counter), which records the OC as its two depthwise convolutions.
    TorchScript never calls it: callers test ``torch.jit.is_scripting()`` first.
    """
    if torch.compiler.is_dynamo_compiling() or torch.compiler._is_compiling_flag:
        return "traced"
    if getattr(_is_fx_tracing_tls, "flag", False):
        return "traced"
    if torch._C._is_tracing():
        return "traced" if torch.onnx.is_in_onnx_export() else "conv"
    return "eager"


@register_notrace_function  # a leaf for FX (its device test): timm's tracer, and plain FX via fx.wrap below
def resize_taps(kernel: torch.Tensor, length: int) -> torch.Tensor:
    """A (C, K) kernel resized to (C, ``length``) taps: linear, both end taps kept (one matmul with the
    interpolation weights, :func:`~.oc_plan.interpolation_matrix`; traceable at symbolic sizes)."""
    return kernel @ interpolation_matrix(kernel.shape[-1], length, kernel.device).to(kernel.dtype)


torch.fx.wrap("resize_taps")


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


def oc_matmul(
    x: torch.Tensor, kernel_h: torch.Tensor, kernel_w: torch.Tensor, full: bool = False
) -> torch.Tensor:
    """The OC of NCHW ``x`` with (C, Kh) / (C, Kw) kernels as two Toeplitz matmuls (any odd K).

    Standard ops only and no branch on sizes: what tracers and exporters record. ``full``: the
    kernels have exactly 2H - 1 and 2W - 1 taps (adaptive mode): T is then built from whole channel rows.
    """
    vertical = toeplitz_pass(x, kernel_h.to(x.dtype), 2, full)
    return toeplitz_pass(vertical, kernel_w.to(x.dtype), 3, full)


@contextmanager
def force_oc_path(module: nn.Module, path: OCPath) -> Iterator[None]:
    """Run every :class:`OversizedConv2d` in ``module`` through ``path`` inside the block (``"auto"``:
    the cost model); sets their ``path`` attributes and restores them after."""
    if path not in OC_PATHS:
        raise ValueError(f"OC path must be one of {OC_PATHS}, got {path!r}")
    convs = [m for m in module.modules() if isinstance(m, OversizedConv2d)]
    previous = [m.path for m in convs]
    for m in convs:
        m.path = path
    try:
        yield
    finally:
        for m, p in zip(convs, previous, strict=True):
            m.path = p


def oversized_conv(
    x: torch.Tensor, weight_h: torch.Tensor, weight_w: torch.Tensor, path: OCPath = "auto"
) -> torch.Tensor:
    """Depthwise vertical then horizontal 'same' convolution of NCHW ``x`` with odd-length kernels.

    Args:
        x: (B, C, H, W) input, any memory layout.
        weight_h: (C, 1, Kh, 1) vertical kernel, Kh odd; zero padding Kh // 2.
        weight_w: (C, 1, 1, Kw) horizontal kernel, Kw odd; zero padding Kw // 2.
        path: ``"direct"``, ``"gemm"`` or ``"fft"`` for both passes; ``"auto"``: per pass by cost.

    Plans for this one call (:func:`~.oc_plan.plan_oc`); :class:`OversizedConv2d` keeps its plans.
    Under autocast the passes run in the autocast dtype (as ``F.conv2d`` would); the FFT path
    computes half precision in float32 and casts back.
    """
    if weight_h.shape[0] != x.shape[1] or weight_w.shape[0] != x.shape[1]:
        raise ValueError(
            f"kernels of {weight_h.shape[0]}/{weight_w.shape[0]} channels, input of {x.shape[1]}"
        )
    grad = torch.is_grad_enabled()
    kernel_grad = grad and (weight_h.requires_grad or weight_w.requires_grad)
    taps = (weight_h.shape[2], weight_w.shape[3])
    plan = plan_oc(x, taps, False, path, grad and x.requires_grad, kernel_grad, weight_h.dtype)
    kernel_h, kernel_w = plan.kernels(weight_h, weight_w)
    x = x.to(plan.dtype) if plan.cast else x
    return plan.pass_w(plan.pass_h(x, kernel_h), kernel_w)


class OversizedConv2d(nn.Module):
    """Oversized depthwise convolution with kernels ``conv_h`` (K x 1) and ``conv_w`` (1 x K).

    Args:
        dim: channels.
        kernel_size: stored kernel length K (odd); 2H-1 for the feature size H it was trained at.
        mode: ``"adaptive"`` resizes the kernels to 2H-1 / 2W-1 per input; ``"fixed"`` uses K as is.
        path: how to compute it in eager PyTorch: ``"auto"`` (cost model), ``"direct"``, ``"gemm"`` or
            ``"fft"``; an attribute, which may be changed at any time (tracers ignore it).
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
        self._plans: dict[tuple, OCPlan] = {}

    def forward(self, x: torch.Tensor, mode: str | None = None) -> torch.Tensor:
        """``mode``: :func:`runtime_mode` if the caller asked it already (the model does), else asked here."""
        if mode is None:
            mode = "traced" if torch.jit.is_scripting() else runtime_mode()
        if mode == "eager":
            return self._run_plan(x)
        kernel_h, kernel_w = self.conv_h.weight.flatten(1), self.conv_w.weight.flatten(1)  # (C, K)
        if mode == "conv":  # the two depthwise convolutions with the kernels that meet x
            kernel_h, kernel_w = (
                self._conv_kernel(kernel_h, x.shape[2]),
                self._conv_kernel(kernel_w, x.shape[3]),
            )
            return direct_pass(direct_pass(x, kernel_h.to(x.dtype), 2), kernel_w.to(x.dtype), 3)
        adaptive = self.mode == "adaptive"
        if adaptive:
            kernel_h = resize_taps(kernel_h, 2 * x.shape[2] - 1)
            kernel_w = resize_taps(kernel_w, 2 * x.shape[3] - 1)
        return oc_matmul(x, kernel_h, kernel_w, full=adaptive)

    @torch.jit.unused
    def _conv_kernel(self, kernel: torch.Tensor, n: int) -> torch.Tensor:
        """A (C, K) kernel sized for an n-long axis under ``jit.trace`` (FLOP counters): resized by
        elementwise ops (:func:`resize_taps`' values; a matmul would be counted as FLOPs), or cropped."""
        full = 2 * n - 1
        if self.mode == "adaptive" and kernel.shape[-1] != full:
            weights = interpolation_matrix(kernel.shape[-1], full, kernel.device).to(kernel.dtype)
            return (kernel[:, :, None] * weights).sum(1)
        return kernel.narrow(-1, (kernel.shape[-1] - full) // 2, full) if kernel.shape[-1] > full else kernel

    @torch.jit.unused
    def _run_plan(self, x: torch.Tensor) -> torch.Tensor:
        """Eager: run this input's plan (made on the first call, see :mod:`.oc_plan`)."""
        # the parameters without nn.Module.__getattr__ (two Python calls each, on every forward)
        weight_h = self._modules["conv_h"]._parameters["weight"]
        weight_w = self._modules["conv_w"]._parameters["weight"]
        grad = torch.is_grad_enabled()
        input_grad = grad and x.requires_grad
        kernel_grad = grad and (weight_h.requires_grad or weight_w.requires_grad)
        autocast = torch._C._is_any_autocast_enabled()
        key = (x.shape, x.dtype, x.device, input_grad, kernel_grad, autocast, self.path, weight_h.dtype)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._new_plan(key, x, weight_h, weight_w)
        if plan.cast:
            x = x.to(plan.dtype)
        if input_grad or kernel_grad:
            # autograd tracks the call: the kernels sized afresh (OCPlan.kernels, written out)
            kernels = torch.cat((weight_h.flatten(1), weight_w.flatten(1)), 1)
            if plan.resize is not None:
                kernels = kernels @ plan.resize
            kernel_h, kernel_w = kernels.to(plan.dtype).split_with_sizes(plan.taps, 1)
            return plan.pass_w(plan.pass_h(x, kernel_h), kernel_w)
        version = (weight_h._version, weight_w._version, weight_h.data_ptr(), weight_w.data_ptr())
        if plan.version != version:
            bind_weights(plan, weight_h, weight_w, version, key[0][-2:])
        return plan.run_w(plan.run_h(x))

    @torch.jit.unused
    def _new_plan(
        self, key: tuple, x: torch.Tensor, weight_h: torch.Tensor, weight_w: torch.Tensor
    ) -> OCPlan:
        """Plan for a new input; drops the oldest plan beyond :data:`MAX_PLANS`, and other inference plans."""
        _, _, _, input_grad, kernel_grad, _, path, _ = key
        inference = not (input_grad or kernel_grad)
        if inference:
            for old in [k for k in self._plans if not (k[3] or k[4])]:
                del self._plans[old]
        while len(self._plans) >= MAX_PLANS:
            del self._plans[next(iter(self._plans))]
        stored = (weight_h.shape[2], weight_w.shape[3])
        plan = plan_oc(x, stored, self.mode == "adaptive", path, input_grad, kernel_grad, weight_h.dtype)
        self._plans[key] = plan
        return plan

    def extra_repr(self) -> str:
        path = "" if self.path == "auto" else f", path={self.path}"
        return f"dim={self.dim}, kernel_size={self.kernel_size}, mode={self.mode}{path}"
