"""GEMM path of the oversized convolution: a depthwise 1-D 'same' convolution as a Toeplitz matmul.

Along an axis of length n, a zero-padded correlation with an odd kernel ``w`` of K <= 2n - 1 taps is
``y = T @ x`` with ``T[i, j] = w[j - i + K // 2]`` (zero outside the band), one n x n matrix per
channel, built from the kernel by a gather (:func:`toeplitz`).

Two formulations: :func:`toeplitz_pass`, one plain ``matmul`` that autograd differentiates and every
tracer records at symbolic sizes; and, for eager PyTorch, :func:`toeplitz_conv1d`, one batched
matmul per image whose backward is two more (input gradient, and the gram ``grad @ x^T`` whose
diagonal sums are the kernel gradient), with ``T`` rebuilt in backward rather than saved, so the
path keeps no more than the direct convolution does.
"""

import functools

import torch
import torch.nn.functional as F
from torch.autograd.function import FunctionCtx, once_differentiable

__all__ = ["toeplitz", "toeplitz_conv1d", "toeplitz_matmul", "toeplitz_pass"]


@functools.lru_cache(maxsize=64)
def _toeplitz_index(n: int, device: torch.device) -> torch.Tensor:
    """Flat (n * n) index ``j - i + n - 1`` into a (2n - 1)-tap kernel, row-major over (i, j)."""
    steps = torch.arange(n, device=device)
    return (steps[None, :] - steps[:, None] + (n - 1)).reshape(-1)


def toeplitz(weight: torch.Tensor, n: int) -> torch.Tensor:
    """The (C, n, n) matrices ``T[c, i, j] = weight[c, j - i + K // 2]`` (zero outside) of a (C, K) kernel.

    Built by index arithmetic and one gather, with no branch on ``n`` or ``K``: traceable at a
    symbolic ``n`` (torch.compile, torch.export, ONNX, FX, TorchScript).
    """
    taps = weight.shape[-1]
    steps = torch.arange(n, device=weight.device)
    index = steps[None, :] - steps[:, None] + taps // 2
    index = torch.where((index >= 0) & (index < taps), index, taps)  # taps: the appended zero
    return F.pad(weight, (0, 1))[:, index]


def toeplitz_pass(x: torch.Tensor, weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Depthwise 'same' correlation of NCHW ``x`` with a (C, K) kernel along ``dim`` as one plain matmul.

    The traceable formulation (autograd differentiates the gather and the matmul); any ``K``.
    """
    matrix = toeplitz(weight, x.shape[dim])
    if dim == 2:
        return torch.matmul(matrix, x)  # (C, H, H) @ (B, C, H, W)
    return torch.matmul(x, matrix.transpose(-1, -2))  # (B, C, H, W) @ (C, W, W)


def _diagonal_sums(grams: list[tuple[torch.Tensor, torch.Tensor]], n: int, taps: int) -> torch.Tensor:
    """Sums of the ``taps`` central diagonals of ``G = sum(a @ b for a, b in grams)`` ((C, n, n) each).

    Entry ``d`` of the result sums ``G[:, i, i + d - taps // 2]`` over ``i``; one scatter-add with the
    Toeplitz index (diagonal number of each entry) does it without a padded copy of ``G``.
    """
    gram = torch.bmm(*grams[0])
    for a, b in grams[1:]:
        gram.baddbmm_(a, b)
    channels = gram.shape[0]
    gram = gram.view(channels, n * n)
    if gram.dtype in (torch.float16, torch.bfloat16):
        gram = gram.float()
    index = _toeplitz_index(n, gram.device).expand(channels, n * n)
    sums = gram.new_zeros(channels, 2 * n - 1).scatter_add_(1, index, gram)
    return sums.narrow(-1, n - 1 - taps // 2, taps)


def toeplitz_matmul(x: torch.Tensor, matrix: torch.Tensor, dim: int) -> torch.Tensor:
    """``T @ column`` for every column (``dim=2``) or row (``dim=3``) of contiguous NCHW ``x``, T (C, n, n).

    Not differentiated through: the kernel gradient comes from :class:`_ToeplitzConv1d`; this is the
    forward it shares, and the inference path with precomputed matrices.
    """
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    for image, result in zip(x, out, strict=True):
        if dim == 2:
            torch.bmm(matrix, image, out=result)  # (C, n, n) @ (C, n, W)
        else:
            torch.bmm(image, matrix.mT, out=result)  # (C, H, n) @ (C, n, n)
    return out


class _ToeplitzConv1d(torch.autograd.Function):
    """Depthwise 'same' correlation of contiguous NCHW ``x`` with a (C, K) kernel along dim 2 or 3."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: torch.Tensor, weight: torch.Tensor, dim: int) -> torch.Tensor:
        out = toeplitz_matmul(x, toeplitz(weight, x.shape[dim]), dim)
        ctx.save_for_backward(x, weight)
        ctx.dim = dim
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        dim = ctx.dim
        n = x.shape[dim]
        grad = grad.contiguous()
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = toeplitz_matmul(grad, toeplitz(weight, n).mT, dim)  # the adjoint: T^T
        if ctx.needs_input_grad[1]:
            if dim == 2:  # G[c, i, j] = sum_w grad[c, i, w] x[c, j, w]
                grams = [(g, image.mT) for g, image in zip(grad, x, strict=True)]
            else:  # G[c, i, j] = sum_h grad[c, h, i] x[c, h, j]
                grams = [(g.mT, image) for g, image in zip(grad, x, strict=True)]
            grad_w = _diagonal_sums(grams, n, weight.shape[-1]).to(weight.dtype)
        return grad_x, grad_w, None


def toeplitz_conv1d(
    x: torch.Tensor, weight: torch.Tensor, dim: int, cache: dict | None = None
) -> torch.Tensor:
    """Depthwise zero-padded 'same' correlation of NCHW ``x`` with a (C, K) odd kernel along ``dim`` (2 or 3).

    Equal to ``F.conv2d`` with a (K x 1) or (1 x K) depthwise kernel and padding K // 2; K may
    exceed 2n - 1 (the outer taps then get a zero gradient). Returns a contiguous tensor.
    ``cache`` (inference only, used when autograd does not track the call): a dict owned by the
    caller, for this ``weight``, in which the Toeplitz matrix is kept and reused by (dim, n, dtype);
    the caller empties it when the kernel changes.
    """
    n = x.shape[dim]
    full = 2 * n - 1
    if weight.shape[-1] > full:
        weight = weight.narrow(-1, (weight.shape[-1] - full) // 2, full)
    x = x.contiguous()
    tracked = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    if cache is None or tracked:
        return _ToeplitzConv1d.apply(x, weight, dim)
    key = (dim, n, weight.dtype, weight.device)
    matrix = cache.get(key)
    if matrix is None:
        matrix = cache[key] = toeplitz(weight, n)
    return toeplitz_matmul(x, matrix, dim)
