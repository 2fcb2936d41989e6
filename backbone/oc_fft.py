"""FFT path of the oversized convolution: a depthwise 1-D 'same' correlation by real FFTs.

The transform length covers the full linear convolution (n + K - 1, rounded up to a 2-3-5-smooth
size), so there is no wrap-around and the result is exact up to rounding; autograd differentiates
the transforms. Half-precision inputs are computed in float32 (CPU FFTs have no half kernels).
"""

import torch

__all__ = ["fft_conv1d", "fft_size"]


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


def fft_conv1d(x: torch.Tensor, weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Depthwise zero-padded 'same' correlation of NCHW ``x`` with an odd (C, K) kernel along ``dim``."""
    n = x.shape[dim]
    full = 2 * n - 1
    if weight.shape[-1] > full:  # taps beyond +-(n - 1) never meet the input
        weight = weight.narrow(-1, (weight.shape[-1] - full) // 2, full)
    taps = weight.shape[-1]
    out_dtype = x.dtype
    if x.dtype in (torch.float16, torch.bfloat16):
        x, weight = x.float(), weight.float()
    size = fft_size(n + taps - 1)
    # Correlation = convolution with the reversed kernel; output i sits at index i + K // 2.
    spectrum = torch.fft.rfft(weight.flip(-1), n=size, dim=-1)
    spectrum = spectrum[:, :, None] if dim == 2 else spectrum[:, None, :]
    full_conv = torch.fft.irfft(torch.fft.rfft(x, n=size, dim=dim) * spectrum, n=size, dim=dim)
    return full_conv.narrow(dim, taps // 2, n).to(out_dtype)
