"""Small building blocks of ParCNetV2: its L2 layer norm, scales, downsampling, BGU."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "BGU",
    "Downsample",
    "L2LayerNorm",
    "Scale",
    "autocast_dtype",
    "gelu_",
    "l2_layer_norm",
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


_LN_EPS = 1e-30
"""Variance floor of the fused norm: keeps constant rows finite, far below any norm the clamp leaves alone."""


def l2_layer_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``(x - mean(x)) / max(||x - mean(x)||_2, eps) * weight`` over the last axis.

    Computed as one fused ``layer_norm`` with ``weight / sqrt(C)`` (which divides by the norm
    itself), times a per-row ``min(1, ||centred|| / eps)`` that applies the clamp. On CPU, outside
    tracing, that product is skipped when no row is below ``eps`` (checking costs no device sync
    there); elsewhere it is always applied, so meta tensors, CUDA and tracing see no data-dependent
    branch. Forward values equal the formula's everywhere; the gradient equals it wherever the norm
    is not below ``eps`` (or is exactly 0).
    Half-precision inputs are normalised in float32 (their range cannot hold 1 / norm); under
    autocast the result stays float32, as ``F.layer_norm``'s does, otherwise it is cast back.
    """
    channels = x.shape[-1]
    out_dtype = None if autocast_dtype(x.device.type) is not None else x.dtype
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    scaled_weight = weight.to(x.dtype) * channels**-0.5
    out, _, rstd = torch.native_layer_norm(x, (channels,), scaled_weight, None, _LN_EPS)
    # rstd = sqrt(C) / ||centred||, so min(1, ||centred|| / eps) = min(1, sqrt(C) / (eps * rstd)).
    clamp_needed = True
    if x.device.type == "cpu" and not torch.compiler.is_compiling():
        clamp_needed = rstd.numel() > 0 and bool(rstd.max() > channels**0.5 / eps)  # NaN rows stay NaN
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_dim in (-1, x.ndim - 1):
            return l2_layer_norm(x, self.weight, self.eps)
        normed = l2_layer_norm(x.movedim(self.channel_dim, -1), self.weight, self.eps)
        return normed.movedim(-1, self.channel_dim)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, channel_dim={self.channel_dim}, eps={self.eps}"


def pointwise_to_channels_first(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """A 1x1 convolution from channels-last (B, H, W, Cin) to contiguous channels-first (B, Cout, H, W).

    One matmul per image, ``weight (Cout, Cin) @ x^T``: the layout change rides on the GEMM's
    transposed operand instead of a separate copy.
    """
    batch, height, width, channels = x.shape
    columns = x.reshape(batch, height * width, channels).mT
    weights = weight.reshape(weight.shape[0], -1).expand(batch, -1, -1)
    out = torch.bmm(weights, columns) if bias is None else torch.baddbmm(bias[:, None], weights, columns)
    return out.view(batch, -1, height, width)


def pointwise_to_channels_last(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """A 1x1 convolution from channels-first (B, Cin, H, W) to contiguous channels-last (B, H, W, Cout)."""
    batch, channels, height, width = x.shape
    rows = x.reshape(batch, channels, height * width).mT
    weights = weight.reshape(weight.shape[0], -1).mT.expand(batch, -1, -1)
    out = torch.bmm(rows, weights) if bias is None else torch.baddbmm(bias, rows, weights)
    return out.view(batch, height, width, -1)


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
        self.pre_norm = L2LayerNorm(in_chs, channel_dim=1) if pre_norm else nn.Identity()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=padding)
        self.post_norm = L2LayerNorm(out_chs, channel_dim=1) if post_norm else nn.Identity()
        self._channels_last_weight: tuple[tuple, torch.Tensor] | None = None  # inference cache

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Channels-last memory through the conv, so that the norms (and the stage after) read their
        # channel vectors contiguously; for the stem this converts the 3-channel image, a cheap copy.
        x = self.pre_norm(x).contiguous(memory_format=torch.channels_last)
        return self.post_norm(self._conv(x))

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        """``self.conv(x)``; in inference with a channels-last copy of the weight, kept while it is unchanged.

        oneDNN would otherwise reorder the (contiguous) weight to the input's layout on every call.
        """
        weight = self.conv.weight
        if torch.is_grad_enabled() and weight.requires_grad:
            return self.conv(x)
        key = weights_key(weight)
        if self._channels_last_weight is None or self._channels_last_weight[0] != key:
            self._channels_last_weight = (key, weight.detach().contiguous(memory_format=torch.channels_last))
        conv = self.conv
        return F.conv2d(x, self._channels_last_weight[1], conv.bias, conv.stride, conv.padding)


class BGU(nn.Module):
    """Channel bifurcate gate unit: ``fc2(x1 * GELU(x2))`` with ``x1, x2 = chunk(fc1(x), 2)``.

    Works on channels-last tensors. ``fc1`` expands to ``mlp_ratio * dim`` (with bias), ``fc2`` maps
    half of that back to ``dim`` (no bias). Without autograd the GELU and the gate run in place in
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.fc1(x)
        x1, x2 = hidden.chunk(2, dim=-1)
        if hidden.requires_grad:
            gated = x1 * self.act(x2)
        else:  # inference: gate inside fc1's output, saving two large allocations (page faults on CPU)
            gated = x1.mul_(gelu_(x2, self.act.approximate))
        return self.drop2(self.fc2(self.drop1(gated)))
