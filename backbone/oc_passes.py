"""The exact ways to compute one pass of the oversized convolution, and the traceable Toeplitz builders.

A pass is a depthwise zero-padded 'same' correlation of an NCHW map along ``dim`` (2 or 3) with a
(C, K) kernel, K odd and at most 2n - 1 (the taps beyond reach no input: the plan crops them once).
Three exact paths, picked per pass by the cost model (:mod:`.oc_cost`):

* ``direct``: ``F.conv2d`` with a (K x 1) or (1 x K) depthwise kernel;
* ``gemm``: ``y = T @ x`` with the Toeplitz matrix ``T[i, j] = w[j - i + K // 2]`` (zero outside the
  band), one n x n matrix per channel. In eager PyTorch :class:`ToeplitzConv1d` builds T as strided
  windows of the kernel (:func:`toeplitz_windows`) and its backward is two more matmuls, with T
  rebuilt rather than saved; tracers record :func:`toeplitz_pass` (T built with no branch on sizes
  by :func:`toeplitz` -- for adaptive kernels a gather of channel rows, or copies of the kernel
  where it needs a gradient; a masked gather otherwise -- and a matmul that autograd differentiates);
* ``fft``: real FFTs of a length that covers the full linear convolution (no wrap-around).

The eager passes take ready kernels (the plan resized and cropped them): no checks, no copies.
"""

import functools

import torch
import torch.nn.functional as F
from torch.autograd.function import FunctionCtx, once_differentiable

__all__ = [
    "ToeplitzConv1d",
    "direct_pass",
    "fft_pass",
    "fft_size",
    "fft_spectrum",
    "toeplitz",
    "toeplitz_pass",
    "toeplitz_product",
    "toeplitz_windows",
]


# ----------------------------------------------------------------------------------------- direct
def direct_pass(x: torch.Tensor, weight: torch.Tensor, dim: int) -> torch.Tensor:
    """``F.conv2d`` of NCHW ``x`` with the (C, K) ``weight`` as a (K x 1) (``dim=2``) or (1 x K) kernel."""
    channels, taps = weight.shape
    if dim == 2:
        return F.conv2d(x, weight.view(channels, 1, taps, 1), padding=(taps // 2, 0), groups=channels)
    return F.conv2d(x, weight.view(channels, 1, 1, taps), padding=(0, taps // 2), groups=channels)


# ----------------------------------------------------------------------------------------- gemm
@functools.lru_cache(maxsize=64)
def _toeplitz_index(n: int, device: torch.device) -> torch.Tensor:
    """Flat (n * n) index ``j - i + n - 1`` into a (2n - 1)-tap kernel, row-major over (i, j)."""
    steps = torch.arange(n, device=device)
    return (steps[None, :] - steps[:, None] + (n - 1)).reshape(-1)


def toeplitz(weight: torch.Tensor, n: int, full: bool = False, transposed: bool = False) -> torch.Tensor:
    """The (C, n, n) matrices ``T[c, i, j] = weight[c, j - i + K // 2]`` (zero outside) of a (C, K) kernel.

    No branch on ``n`` or ``K``: traceable at a symbolic ``n`` (torch.compile, torch.export, ONNX,
    FX, TorchScript). ``full``: the caller guarantees K = 2n - 1 (adaptive kernels): T is then a
    gather of whole channel rows without autograd (exporters, inference: :func:`_toeplitz_rows`),
    and built by copies with it (:func:`_toeplitz_copies`, whose backward is a sum, not a
    scatter); other kernels take a masked gather. ``transposed``: ``T^T``
    built as such, not a transposed view that exporters would record as a ``Transpose``.
    """
    if full and not torch.is_grad_enabled():
        return _toeplitz_rows(weight, n, transposed)
    if transposed:
        weight = weight.flip(-1)
    if full:
        return _toeplitz_copies(weight, n)
    taps = weight.shape[-1]
    steps = torch.arange(n, device=weight.device)
    index = steps[None, :] - steps[:, None] + taps // 2
    index = torch.where((index >= 0) & (index < taps), index, taps)  # taps: the appended zero
    return F.pad(weight, (0, 1))[:, index]


def _toeplitz_rows(weight: torch.Tensor, n: int, transposed: bool = False) -> torch.Tensor:
    """:func:`toeplitz` of a (C, 2n - 1) kernel as a gather of the kernel's taps, each a row of C values.

    ``weight.t()[index]`` copies whole (C,)-rows (exporters record ``GatherND`` on the (2n - 1, C)
    kernel, then one ``Transpose`` of the (n, n, C) result); in onnxruntime 2-3x faster than
    :func:`_toeplitz_copies` and than a gather of single values along the taps. Its backward would
    be a scatter: used without autograd.
    """
    steps = torch.arange(n, device=weight.device)
    index = steps[:, None] - steps[None, :] if transposed else steps[None, :] - steps[:, None]
    return weight.t()[index + (n - 1)].permute(2, 0, 1)


def _toeplitz_copies(weight: torch.Tensor, n: int) -> torch.Tensor:
    """:func:`toeplitz` of a (C, 2n - 1) kernel by broadcast, reshapes and slices alone.

    With ``e`` the kernel and one zero (period 2n), n + 1 copies of ``e`` laid end to end and read
    from tap n - 1 in rows of 2n - 1 give ``e[(n - 1 - i + j) mod 2n] = w[j - i + n - 1]`` at
    (i, j < n): each row starts one tap earlier. Plain copies (``Expand``, ``Reshape``, ``Slice``),
    whose backward sums the copies: no index tensor, no scatter; and no size that can be 0 or 1 at
    a symbolic ``n`` (which torch.export would specialise).
    """
    channels, period = weight.shape[0], 2 * n
    extended = torch.cat((weight, weight.new_zeros(channels, 1)), 1)
    copies = extended[:, None, :].expand(channels, n + 1, period).reshape(channels, (n + 1) * period)
    return copies[:, n - 1 : n - 1 + n * (period - 1)].reshape(channels, n, period - 1)[:, :, :n]


def toeplitz_windows(weight: torch.Tensor, n: int) -> torch.Tensor:
    """:func:`toeplitz`'s matrices as strided windows: one copy, no index tensor (the eager path).

    With ``r`` the kernel zero-padded by n - 1 on both sides and reversed, row ``i`` of T is the
    window ``r[K // 2 + i : K // 2 + i + n]`` read backwards: an ``unfold`` view, materialised by the
    final ``flip``; 10-20x faster than the gather at detection sizes. (``unfold`` specialises a
    symbolic ``n`` in torch.compile, so tracers get :func:`toeplitz`.)
    """
    reversed_kernel = torch.constant_pad_nd(weight, (n - 1, n - 1)).flip(-1)
    return reversed_kernel.unfold(-1, n, 1).narrow(1, weight.shape[-1] // 2, n).flip(-1)


def toeplitz_product(x: torch.Tensor, matrix: torch.Tensor, dim: int) -> torch.Tensor:
    """``T @ column`` for every column (``dim=2``) or row (``dim=3``) of NCHW ``x``; T is (C, n, n).

    One broadcasting ``matmul`` for the whole batch; the result is contiguous.
    """
    if dim == 2:
        return torch.matmul(matrix, x)  # (C, H, H) @ (B, C, H, W)
    return torch.matmul(x, matrix.mT)  # (B, C, H, W) @ (C, W, W)


def toeplitz_pass(x: torch.Tensor, weight: torch.Tensor, dim: int, full: bool = False) -> torch.Tensor:
    """Depthwise 'same' correlation of NCHW ``x`` with a (C, K) kernel along ``dim`` as one plain matmul.

    The traceable formulation (autograd differentiates T's build and the matmul); any ``K``
    (``full``: K = 2n - 1, see :func:`toeplitz`).
    """
    if dim == 2:  # (C, H, H) @ (B, C, H, W)
        return torch.matmul(toeplitz(weight, x.shape[2], full), x)
    return torch.matmul(x, toeplitz(weight, x.shape[3], full, transposed=True))  # (B, C, H, W) @ (C, W, W)


def _diagonal_sums(gram: torch.Tensor, taps: int) -> torch.Tensor:
    """The ``taps`` central diagonal sums of a (C, n, n) gram G: ``d`` sums ``G[:, i, i + d - taps // 2]``.

    One scatter-add with the Toeplitz index (the diagonal of each entry), without a padded copy of G.
    """
    channels, n = gram.shape[0], gram.shape[-1]
    gram = gram.reshape(channels, n * n)
    if gram.dtype in (torch.float16, torch.bfloat16):
        gram = gram.float()
    index = _toeplitz_index(n, gram.device).expand(channels, n * n)
    sums = gram.new_zeros(channels, 2 * n - 1).scatter_add_(1, index, gram)
    return sums.narrow(-1, n - 1 - taps // 2, taps)


class ToeplitzConv1d(torch.autograd.Function):
    """The GEMM pass for eager PyTorch: ``ToeplitzConv1d.apply(dim, x, weight)``, K <= 2n - 1.

    Forward is one matmul with :func:`toeplitz_windows`' T; backward is the adjoint matmul (input
    gradient) and the gram ``grad @ x^T`` whose diagonal sums are the kernel gradient. T is rebuilt
    in backward, not saved, and ``x`` is kept as given, so the pass keeps no more than a direct
    convolution does. ``dim`` comes first so that a plan can bind it (``partial(apply, dim)``).
    """

    @staticmethod
    def forward(ctx: FunctionCtx, dim: int, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.dim = dim
        # toeplitz_windows and toeplitz_product written out: a training step's forward at an input
        # the OC has seen then runs no Python function but this one (and save_for_backward)
        n = x.shape[dim]
        windows = torch.constant_pad_nd(weight, (n - 1, n - 1)).flip(-1).unfold(-1, n, 1)
        matrix = windows.narrow(1, weight.shape[-1] // 2, n).flip(-1)
        return torch.matmul(matrix, x.contiguous()) if dim == 2 else torch.matmul(x.contiguous(), matrix.mT)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        dim = ctx.dim
        grad = grad.contiguous()  # BLAS-friendly strides: otherwise matmul copies matrix by matrix
        grad_x = grad_w = None
        if ctx.needs_input_grad[1]:  # the adjoint: T^T
            grad_x = toeplitz_product(grad, toeplitz_windows(weight, x.shape[dim]).mT, dim)
        if ctx.needs_input_grad[2]:  # G[c] = sum over images of grad[b, c] x[b, c]^T (along dim)
            x = x.contiguous()
            gram = torch.matmul(grad, x.mT) if dim == 2 else torch.matmul(grad.mT, x)
            half = gram.dtype in (torch.float16, torch.bfloat16)
            gram = gram[0] if gram.shape[0] == 1 else gram.sum(0, dtype=torch.float32 if half else None)
            grad_w = _diagonal_sums(gram, weight.shape[-1]).to(weight.dtype)
        return None, grad_x, grad_w


# ----------------------------------------------------------------------------------------- fft
def fft_size(length: int) -> int:
    """The smallest 2-3-5-smooth integer >= ``length`` (sizes the FFT libraries are fastest at)."""
    size = max(int(length), 1)
    while True:
        rest = size
        for p in (2, 3, 5):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return size
        size += 1


def fft_spectrum(weight: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """The length-``size`` spectrum of the reversed (C, K) kernel, shaped to broadcast against
    ``rfft(x)`` along ``dim`` (half precision in float32: CPU FFTs have no half kernels)."""
    if weight.dtype in (torch.float16, torch.bfloat16):
        weight = weight.float()
    spectrum = torch.fft.rfft(weight.flip(-1), n=size, dim=-1)
    return spectrum[:, :, None] if dim == 2 else spectrum[:, None, :]


def fft_pass(
    x: torch.Tensor, weight: torch.Tensor, dim: int, size: int, spectrum: torch.Tensor | None = None
) -> torch.Tensor:
    """Depthwise 'same' correlation of NCHW ``x`` with a (C, K) kernel along ``dim`` by real FFTs of
    length ``size`` >= n + K - 1 (:func:`fft_size`); autograd differentiates the transforms.

    ``spectrum``: the kernel's :func:`fft_spectrum`, when the caller keeps it (inference).
    """
    if spectrum is None:
        spectrum = fft_spectrum(weight, dim, size)
    out_dtype = x.dtype
    if out_dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    full_conv = torch.fft.irfft(torch.fft.rfft(x, n=size, dim=dim) * spectrum, n=size, dim=dim)
    # correlation = convolution with the reversed kernel: output i sits at index i + K // 2
    return full_conv.narrow(dim, weight.shape[-1] // 2, x.shape[dim]).to(out_dtype)
