"""Oversized convolution (OC): a depthwise (K x 1) then (1 x K) convolution with zero padding.

With K = 2H - 1 (resp. 2W - 1) every output position sees the whole column (row), so the two passes
together give each position a global receptive field. ``fixed`` mode runs the stored kernel as is
(the published behaviour); ``adaptive`` mode resizes it to 2H-1 x 1 and 1 x 2W-1 for each input
(bilinear, ``align_corners=True``), so the receptive field stays global at any resolution.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["OC_MODES", "OversizedConv2d", "oversized_conv", "resize_oc_kernel"]

OC_MODES = ("adaptive", "fixed")
OCMode = Literal["adaptive", "fixed"]


def resize_oc_kernel(weight: torch.Tensor, length: int, axis: int) -> torch.Tensor:
    """Resize an OC kernel to ``length`` taps along ``axis`` (2: (C, 1, K, 1); 3: (C, 1, 1, K)).

    Bilinear with ``align_corners=True`` (linear interpolation that keeps both end taps); returns
    ``weight`` itself when the length already matches.
    """
    if axis not in (2, 3) or weight.ndim != 4 or weight.shape[1] != 1 or weight.shape[5 - axis] != 1:
        raise ValueError(
            f"expected an OC kernel of shape (C, 1, K, 1) or (C, 1, 1, K), got {tuple(weight.shape)}"
        )
    if weight.shape[axis] == length:
        return weight
    size = (length, 1) if axis == 2 else (1, length)
    return F.interpolate(weight, size=size, mode="bilinear", align_corners=True)


def oversized_conv(x: torch.Tensor, weight_h: torch.Tensor, weight_w: torch.Tensor) -> torch.Tensor:
    """Depthwise vertical then horizontal 'same' convolution of NCHW ``x`` with odd-length kernels.

    Args:
        x: (B, C, H, W) input.
        weight_h: (C, 1, Kh, 1) vertical kernel, Kh odd; zero padding Kh // 2.
        weight_w: (C, 1, 1, Kw) horizontal kernel, Kw odd; zero padding Kw // 2.
    """
    channels = x.shape[1]
    kh, kw = weight_h.shape[2], weight_w.shape[3]
    x = F.conv2d(x, weight_h, padding=(kh // 2, 0), groups=channels)
    return F.conv2d(x, weight_w, padding=(0, kw // 2), groups=channels)


class OversizedConv2d(nn.Module):
    """Oversized depthwise convolution with kernels ``conv_h`` (K x 1) and ``conv_w`` (1 x K).

    Args:
        dim: channels.
        kernel_size: stored kernel length K (odd); 2H-1 for the feature size H it was trained at.
        mode: ``"adaptive"`` resizes the kernels to 2H-1 / 2W-1 per input; ``"fixed"`` uses K as is.
    """

    def __init__(self, dim: int, kernel_size: int, mode: OCMode = "adaptive") -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"oversized kernel length must be odd, got {kernel_size}")
        if mode not in OC_MODES:
            raise ValueError(f"oc_mode must be one of {OC_MODES}, got {mode!r}")
        self.dim = dim
        self.kernel_size = kernel_size
        self.mode = mode
        pad = kernel_size // 2
        self.conv_h = nn.Conv2d(dim, dim, (kernel_size, 1), padding=(pad, 0), groups=dim, bias=False)
        self.conv_w = nn.Conv2d(dim, dim, (1, kernel_size), padding=(0, pad), groups=dim, bias=False)

    def kernels_for(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The (vertical, horizontal) kernels this module applies to an H x W input."""
        if self.mode == "fixed":
            return self.conv_h.weight, self.conv_w.weight
        return (
            resize_oc_kernel(self.conv_h.weight, 2 * height - 1, axis=2),
            resize_oc_kernel(self.conv_w.weight, 2 * width - 1, axis=3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight_h, weight_w = self.kernels_for(x.shape[-2], x.shape[-1])
        return oversized_conv(x, weight_h, weight_w)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, kernel_size={self.kernel_size}, mode={self.mode}"
