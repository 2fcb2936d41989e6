"""Small building blocks of ParCNetV2: its L2 layer norm, scales, downsampling, BGU."""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["L2LayerNorm", "Scale", "Downsample", "BGU"]


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
        centred = x - x.mean(self.channel_dim, keepdim=True)
        norm = torch.linalg.vector_norm(centred, dim=self.channel_dim, keepdim=True)
        normed = centred / norm.clamp_min(self.eps)
        shape = [1] * x.ndim
        shape[self.channel_dim] = -1
        return normed * self.weight.view(shape)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, channel_dim={self.channel_dim}, eps={self.eps}"


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post_norm(self.conv(self.pre_norm(x)))


class BGU(nn.Module):
    """Channel bifurcate gate unit: ``fc2(x1 * GELU(x2))`` with ``x1, x2 = chunk(fc1(x), 2)``.

    Works on channels-last tensors. ``fc1`` expands to ``mlp_ratio * dim`` (with bias), ``fc2`` maps
    half of that back to ``dim`` (no bias).
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
        x1, x2 = self.fc1(x).chunk(2, dim=-1)
        return self.drop2(self.fc2(self.drop1(x1 * self.act(x2))))

