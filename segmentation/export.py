"""The exportable part of a segmentor: its logits at the input size, with pooling that exports at any size.

mmseg's ``EncoderDecoder.encode_decode`` of an unpadded image (:class:`SegmentorLogits`), with every
fixed-output ``nn.AdaptiveAvgPool2d`` (UperNet's pyramid pooling) replaced by
:class:`MatmulAdaptiveAvgPool2d`: the exporters bake ``adaptive_avg_pool2d``'s bins for the example's
size, two matmuls with averaging matrices stay dynamic.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["MatmulAdaptiveAvgPool2d", "SegmentorLogits", "exportable_pools"]


def _pool_matrix(out_size: int, size: int, like: torch.Tensor) -> torch.Tensor:
    """(out_size, size) averaging matrix of adaptive average pooling along one axis (PyTorch's bins)."""
    rows = torch.arange(out_size, device=like.device)[:, None]
    cols = torch.arange(size, device=like.device)[None, :]
    start = torch.div(rows * size, out_size, rounding_mode="floor")
    end = torch.div((rows + 1) * size + out_size - 1, out_size, rounding_mode="floor")
    inside = ((cols >= start) & (cols < end)).to(like.dtype)
    return inside / inside.sum(dim=1, keepdim=True)


class MatmulAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as two matmuls with averaging matrices: the same values, and it exports at
    dynamic input sizes (the exporters bake the bins of ``adaptive_avg_pool2d`` for the example's size)."""

    def __init__(self, output_size: int | tuple[int, int]) -> None:
        super().__init__()
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = _pool_matrix(self.output_size[0], x.shape[-2], x)
        cols = _pool_matrix(self.output_size[1], x.shape[-1], x)
        return rows @ x @ cols.transpose(0, 1)


def exportable_pools(model: nn.Module) -> nn.Module:
    """Replace every ``nn.AdaptiveAvgPool2d`` with fixed output size (e.g. UperNet's PPM) in place."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            size = getattr(child, "output_size", None)
            if isinstance(child, nn.AdaptiveAvgPool2d) and size is not None and None not in _as_pair(size):
                setattr(parent, name, MatmulAdaptiveAvgPool2d(size))
    return model


def _as_pair(size: Any) -> tuple:
    return (size, size) if isinstance(size, int) else tuple(size)


class SegmentorLogits(nn.Module):
    """mmseg ``EncoderDecoder.encode_decode`` of an unpadded image: decode-head logits at the input size."""

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.segmentor.decode_head(self.segmentor.extract_feat(x))
        return F.interpolate(
            logits, size=x.shape[2:], mode="bilinear", align_corners=self.segmentor.align_corners
        )
