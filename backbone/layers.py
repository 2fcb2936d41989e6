"""Small building blocks of ParCNetV2: its L2 layer norm, scales, downsampling, BGU.

Every module has one plain formulation in standard ops, traceable at symbolic sizes: it is what
``torch.compile``, ``torch.export``/ONNX, FX, ``torch.jit.trace`` and TorchScript see. Given
``eager=True`` -- by the model, whose forward asks :func:`~.oversized_conv.runtime_mode` once --
some take faster routes with the same values: in-place activations without autograd, a gate fused
with the linear after it, a fused norm, cached weight copies.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models import register_notrace_function

__all__ = [
    "BGU",
    "Downsample",
    "L2LayerNorm",
    "NoNorm",
    "Scale",
    "autocast_dtype",
    "gelu_",
    "gated_linear",
    "linear_add",
    "l2_layer_norm",
    "l2_layer_norm_reference",
    "pointwise_to_channels_first",
    "pointwise_to_channels_last",
    "weights_key",
]


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The autocast dtype active for ``device_type``, or None (also for devices autocast does not know)."""
    try:
        enabled = torch.is_autocast_enabled(device_type)
    except RuntimeError:  # e.g. "meta"
        return None
    return torch.get_autocast_dtype(device_type) if enabled else None


def weights_key(*weights: torch.Tensor) -> tuple:
    """Identity of the weights' current values: storage, in-place version, dtype and device of each.

    Inference caches keyed by it are rebuilt after an in-place update (optimizer step,
    ``load_state_dict``) or a replacement of the parameter.
    """
    return tuple((w.data_ptr(), w._version, w.dtype, w.device) for w in weights)


def gelu_(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """In-place GELU (``nn.GELU``'s values), for tensors that autograd does not track."""
    return torch.ops.aten.gelu_(x, approximate=approximate)


class _GatedLinear(torch.autograd.Function):
    """``F.linear(x1 * GELU(x2), weight)`` keeping only ``x1`` and ``x2`` for backward.

    Backward recomputes ``GELU(x2)`` and the gated product (two elementwise passes) instead of
    keeping them: of the three activations of the gate's size an unfused BGU keeps, one is left.
    The product runs in the inputs' dtype (under autocast the linears' output dtype); the weight's
    gradient is cast back to the weight's dtype, as autocast's own cast would.
    """

    @staticmethod
    def forward(
        ctx, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor, approximate: str
    ) -> torch.Tensor:
        ctx.save_for_backward(x1, x2, weight)
        ctx.approximate = approximate
        gated = x1 * F.gelu(x2, approximate=approximate)
        return F.linear(gated, weight.to(gated.dtype))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x1, x2, weight = ctx.saved_tensors
        rows = grad.reshape(-1, grad.shape[-1])  # 2-D products (mm), as autograd's own linear backward
        activated = F.gelu(x2, approximate=ctx.approximate)
        grad_gated = (rows @ weight.to(rows.dtype)).view(x1.shape)
        grad_weight = None
        if ctx.needs_input_grad[2]:
            gated = (x1 * activated).view(-1, x1.shape[-1])
            grad_weight = (rows.mT @ gated.to(rows.dtype)).to(weight.dtype)
        grad_x1 = grad_gated * activated if ctx.needs_input_grad[0] else None
        grad_x2 = None
        if ctx.needs_input_grad[1]:
            grad_x2 = torch.ops.aten.gelu_backward(grad_gated * x1, x2, approximate=ctx.approximate)
        return grad_x1, grad_x2, grad_weight, None


@torch.jit.unused
def gated_linear(
    x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor, approximate: str = "none"
) -> torch.Tensor:
    """``F.linear(x1 * GELU(x2), weight)`` for eager training: autograd keeps x1 and x2 but neither
    GELU(x2) nor the gated product (a saving of two activations of the gate's size per block; the
    BGU's gate is 2.5 channels wide)."""
    return _GatedLinear.apply(x1, x2, weight, approximate)


_LN_EPS = 1e-30
"""Variance floor of the fused norm: keeps constant rows finite, far below any norm the clamp leaves alone."""


@register_notrace_function  # a leaf for FX (its dtype test): timm's tracer, and plain FX via fx.wrap below
def l2_layer_norm_reference(
    x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6, ln_eps: float = _LN_EPS
) -> torch.Tensor:
    """``(x - mean(x)) / max(||x - mean(x)||_2, eps) * weight`` over the last axis, in standard ops.

    The plain formulation (what tracers and exporters see): one ``native_layer_norm`` with
    ``weight / sqrt(C)`` (exporters record ``LayerNormalization``), whose ``rstd = sqrt(C) / ||centred||``
    gives the clamp as the per-row factor ``min(1, ||centred|| / eps)``; values equal the formula's
    everywhere, the gradient wherever the norm is not below ``eps``. Half-precision inputs are
    normalised in float32 and cast back.
    """
    dtype = x.dtype
    if dtype == torch.float16 or dtype == torch.bfloat16:
        x = x.float()
    channels = x.shape[-1]
    scale = weight.to(x.dtype) * channels**-0.5
    out, _, rstd = torch.native_layer_norm(x, [channels], scale, None, ln_eps)
    return (out * (rstd * (eps * channels**-0.5)).reciprocal().clamp_max(1.0)).to(dtype)


torch.fx.wrap("l2_layer_norm_reference")


@torch.jit.unused
def l2_layer_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """:func:`l2_layer_norm_reference`'s values from one fused ``layer_norm`` (the eager path).

    ``layer_norm`` with ``weight / sqrt(C)`` divides by the norm itself; a per-row
    ``min(1, ||centred|| / eps)`` applies the clamp. On CPU that product is skipped when no row is
    below ``eps`` (checking costs no device sync there); elsewhere it is always applied. Forward
    values equal the formula's everywhere; the gradient equals it wherever the norm is not below
    ``eps`` (or is exactly 0). Half-precision inputs are normalised in float32 (their range cannot
    hold 1 / norm); under autocast the result stays float32, as ``F.layer_norm``'s does, otherwise
    it is cast back.
    """
    channels = x.shape[-1]
    out_dtype = None if autocast_dtype(x.device.type) is not None else x.dtype
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if x.numel() == 0:  # an empty batch: nothing to normalise (layer_norm cannot view 0 rows)
        return x.mul(weight.to(x.dtype)) if out_dtype is None else x.mul(weight.to(x.dtype)).to(out_dtype)
    scaled_weight = weight.to(x.dtype) * channels**-0.5
    out, _, rstd = torch.native_layer_norm(x, (channels,), scaled_weight, None, _LN_EPS)
    # rstd = sqrt(C) / ||centred||, so min(1, ||centred|| / eps) = min(1, sqrt(C) / (eps * rstd)).
    clamp_needed = True
    if x.device.type == "cpu":
        clamp_needed = bool(rstd.max() > channels**0.5 / eps)  # NaN rows stay NaN
    if clamp_needed:
        out = out.mul_((rstd * (eps * channels**-0.5)).reciprocal_().clamp_max_(1.0))
    return out if out_dtype is None else out.to(out_dtype)


class L2LayerNorm(nn.Module):
    """The published ParCNetV2 norm: the centred vector divided by its L2 norm, times a weight.

    ``y = (x - mean(x)) / max(||x - mean(x)||_2, eps) * weight`` over the channel axis, with no bias.
    This is a standard LayerNorm divided by sqrt(C); keeping it keeps published checkpoints valid.

    Args:
        dim: number of channels.
        channel_dim: the axis holding the channels (-1 for NHWC, 1 for NCHW).
        eps: lower clamp of the norm.
    """

    def __init__(self, dim: int, channel_dim: int = -1, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.channel_dim = channel_dim
        self.eps = eps

    def forward(self, x: torch.Tensor, eager: bool = False) -> torch.Tensor:
        """``eager``: the fused variant (:func:`l2_layer_norm`; the caller checked the runtime mode)."""
        last = self.channel_dim == -1
        if not last:
            x = x.movedim(self.channel_dim, -1)
        if eager:
            x = l2_layer_norm(x, self.weight, self.eps)
        else:
            x = l2_layer_norm_reference(x, self.weight, self.eps)
        return x if last else x.movedim(-1, self.channel_dim)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, channel_dim={self.channel_dim}, eps={self.eps}"


def linear_add(
    shortcut: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``shortcut + F.linear(x, weight, bias)`` over the last axis, as one ``addmm``.

    The residual sum is the matmul's output, so compilers give the residual stream the matmul's
    contiguous layout (inductor otherwise picked transposed layouts for it from the channels-first
    OC branch, and its norms then ran as scalar loops).
    """
    if bias is not None:
        shortcut = shortcut + bias
    rows = x.reshape(-1, x.shape[-1])
    out = torch.addmm(shortcut.reshape(-1, shortcut.shape[-1]), rows, weight.t())
    return out.view(shortcut.shape)


def pointwise_to_channels_first(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """A 1x1 convolution from channels-last (B, H, W, Cin) to channels-first (B, Cout, H, W):
    ``linear`` and a permuted view (channels-last memory, what the 7x7 depthwise conv reads fastest)."""
    return F.linear(x, weight.reshape(weight.shape[0], -1), bias).permute(0, 3, 1, 2)


def pointwise_to_channels_last(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    shortcut: torch.Tensor | None = None,
) -> torch.Tensor:
    """A 1x1 convolution from channels-first (B, Cin, H, W) to channels-last (B, H, W, Cout).

    ``shortcut`` (B, H, W, Cout): added to the result inside the matmul (see :func:`linear_add`).
    """
    weight = weight.reshape(weight.shape[0], -1)
    if shortcut is not None:
        return linear_add(shortcut, x.permute(0, 2, 3, 1), weight, bias)
    return F.linear(x.permute(0, 2, 3, 1), weight, bias)


class NoNorm(nn.Identity):
    """Where a :class:`Downsample` has no norm (takes the ``eager`` flag the norms take)."""

    def forward(self, x: torch.Tensor, eager: bool = False) -> torch.Tensor:
        return x


class Scale(nn.Module):
    """A learnable per-channel scale on channels-last tensors (ParCNetV2's res-scale)."""

    def __init__(self, dim: int, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class Downsample(nn.Module):
    """Stem or stage transition on NCHW tensors: ``[pre_norm] -> conv -> [post_norm]``.

    The stem is a 7x7 stride-4 conv followed by a norm; later transitions are a norm followed by a
    3x3 stride-2 conv, as in the published model (names ``pre_norm``, ``conv``, ``post_norm``).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int,
        stride: int,
        padding: int,
        pre_norm: bool = False,
        post_norm: bool = False,
    ) -> None:
        super().__init__()
        self.pre_norm = L2LayerNorm(in_chs, channel_dim=1) if pre_norm else NoNorm()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=padding)
        self.post_norm = L2LayerNorm(out_chs, channel_dim=1) if post_norm else NoNorm()
        self._channels_last_weight: tuple[tuple, torch.Tensor] | None = None  # eager inference cache

    def forward(self, x: torch.Tensor, eager: bool = False) -> torch.Tensor:
        """``eager``: fused norms, and in inference a cached channels-last weight copy."""
        # Channels-last memory through the conv, so that the norms (and the stage after) read their
        # channel vectors contiguously; for the stem this converts the 3-channel image, a cheap copy.
        x = self.pre_norm(x, eager).contiguous(memory_format=torch.channels_last)
        if eager and not torch.is_grad_enabled():
            return self.post_norm(self._cached_conv(x), eager)
        return self.post_norm(self.conv(x), eager)

    @torch.jit.unused
    def _cached_conv(self, x: torch.Tensor) -> torch.Tensor:
        """``self.conv(x)`` with a channels-last copy of the weight, kept while the weight is unchanged.

        oneDNN would otherwise reorder the (contiguous) weight to the input's layout on every call.
        """
        weight = self.conv.weight
        key = weights_key(weight)
        if self._channels_last_weight is None or self._channels_last_weight[0] != key:
            self._channels_last_weight = (key, weight.detach().contiguous(memory_format=torch.channels_last))
        conv = self.conv
        return F.conv2d(x, self._channels_last_weight[1], conv.bias, conv.stride, conv.padding)


class BGU(nn.Module):
    """Channel bifurcate gate unit: ``fc2(x1 * GELU(x2))`` with ``x1, x2 = chunk(fc1(x), 2)``.

    Works on channels-last tensors. ``fc1`` expands to ``mlp_ratio * dim`` (with bias), ``fc2`` maps
    half of that back to ``dim`` (no bias). In eager inference the GELU and the gate run in place in
    ``fc1``'s output.
    """

    def __init__(self, dim: int, mlp_ratio: float = 5.0, drop: float = 0.0) -> None:
        super().__init__()
        hidden = int(mlp_ratio * dim)
        self.fc1 = nn.Linear(dim, hidden, bias=True)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden // 2, dim, bias=False)
        self.drop2 = nn.Dropout(drop)

    def forward(
        self, x: torch.Tensor, shortcut: torch.Tensor | None = None, eager: bool = False
    ) -> torch.Tensor:
        """``fc2(x1 * GELU(x2))``, plus ``shortcut`` if given (traced: inside ``fc2``'s matmul).

        ``eager``: the gate in place (inference), or gate and ``fc2`` fused so that backward recomputes
        the gate (:func:`gated_linear`, training without dropout before ``fc2``).
        """
        # fc1 as two matmuls on its weight's halves: the same values as chunking fc1(x), without the
        # concatenation of the halves' gradients in backward (a copy of fc1's whole output)
        weight, bias, half = self.fc1.weight, self.fc1.bias, self.fc2.in_features
        assert bias is not None  # built with one (and TorchScript needs the refinement)
        x1, x2 = F.linear(x, weight[:half], bias[:half]), F.linear(x, weight[half:], bias[half:])
        if eager and x1.requires_grad and not (self.training and self.drop1.p > 0):
            out = self.drop2(gated_linear(x1, x2, self.fc2.weight, self.act.approximate))
            return out if shortcut is None else shortcut + out
        if eager and not x1.requires_grad:
            gated = x1.mul_(gelu_(x2, self.act.approximate))  # saves a large allocation
        else:
            gated = x1 * self.act(x2)
        gated = self.drop1(gated)
        if shortcut is None:
            return self.drop2(self.fc2(gated))
        if not eager and not (self.training and self.drop2.p > 0):
            return linear_add(shortcut, gated, self.fc2.weight)
        return shortcut + self.drop2(self.fc2(gated))
