"""Parameters and FLOPs of a detector/segmentor at a fixed input size, oversized convolution included.

mmengine's ``FlopAnalyzer`` (what mmdet's and mmseg's own ``get_flops.py`` use) traces the forward
with ``torch.jit.trace``, under which the backbone records its plain formulation: 1x1 convolutions
as ``linear`` and every ``OversizedConv2d`` as the two depthwise convolutions it is defined as, with
the kernel lengths it applies to that H x W input (``2H-1`` / ``2W-1`` in ``adaptive`` mode, the
stored ``K`` cropped to ``2n-1`` in ``fixed`` mode), whatever algorithm eager PyTorch would run. So
the default op handles count it, as the direct convolution (``B*C*H*W * (Kh + Kw)``), and this count
is the one OpenMMLab's own tools print. :func:`oc_direct_flops` computes that OC count analytically
as a cross-check. As in mmdet/mmseg and the papers, one multiply-add counts as one FLOP.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from parcnetv2.backbone import OversizedConv2d

__all__ = ["Complexity", "format_count", "measure_complexity", "oc_direct_flops"]


@dataclass
class Complexity:
    """Counts of one forward: ``oc_flops`` analytic, ``oc_traced_flops`` as the analyzer counted the OCs."""

    flops: int
    params: int
    backbone_params: int
    oc_flops: int
    oc_traced_flops: int
    input_shape: tuple[int, int, int]
    unsupported_ops: dict[str, int] = field(default_factory=dict)
    table: str = ""


def format_count(value: float, unit: str = "") -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{suffix}{unit}"
    return f"{value:.0f}{unit}"


@contextmanager
def _forward_bound(model: nn.Module, data_samples: list) -> Iterator[None]:
    """Make ``model(inputs)`` run ``model(inputs, data_samples, mode='tensor')`` (what gets traced)."""
    original = model.forward

    def forward(inputs: torch.Tensor) -> Any:
        return original(inputs, data_samples, mode="tensor")

    model.forward = forward
    try:
        yield
    finally:
        del model.forward  # back to the class's forward


def _oc_kernel_lengths(module: OversizedConv2d, height: int, width: int) -> tuple[int, int]:
    """The taps an OC applies to an H x W input: 2H - 1 / 2W - 1 (adaptive), else its stored kernel's,
    cropped to the 2n - 1 that meet the input."""
    if module.mode == "adaptive":
        return 2 * height - 1, 2 * width - 1
    return min(module.kernel_size, 2 * height - 1), min(module.kernel_size, 2 * width - 1)


def oc_direct_flops(model: nn.Module, run: Any) -> dict[str, int]:
    """Multiply-adds of each ``OversizedConv2d`` (by module name) as direct convs, over the call ``run()``."""
    names = {m: n for n, m in model.named_modules() if isinstance(m, OversizedConv2d)}
    flops: dict[str, int] = dict.fromkeys(names.values(), 0)

    def hook(module: nn.Module, args: tuple, _output: Any) -> None:
        batch, channels, height, width = args[0].shape
        taps_h, taps_w = _oc_kernel_lengths(module, height, width)
        flops[names[module]] += batch * channels * height * width * (taps_h + taps_w)

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    return flops


def measure_complexity(
    model: nn.Module, data_sample: Any, height: int, width: int, table_depth: int = 0
) -> Complexity:
    """Count parameters and FLOPs of ``model`` (eval mode) on one random, normalised-looking H x W image,
    forwarded as ``model(inputs, [data_sample], mode='tensor')`` (the sample: the task's
    :meth:`~parcnetv2.openmmlab.task.OpenMMLabTask.data_sample`)."""
    from mmengine.analysis import FlopAnalyzer, parameter_count
    from mmengine.analysis.print_helper import complexity_stats_table

    model.eval()
    device = next(model.parameters()).device
    torch.manual_seed(0)
    inputs = torch.randn(1, 3, height, width, device=device)
    with _forward_bound(model, [data_sample]):
        oc = oc_direct_flops(model, lambda: model(inputs))
        analyzer = FlopAnalyzer(model, (inputs,))  # mmengine's default op handles, as mmdet's tool
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        analyzer.tracer_warnings("none")
        with torch.no_grad():
            total = analyzer.total()
            by_module = analyzer.by_module()
            unsupported = dict(analyzer.unsupported_ops())
            table = complexity_stats_table(analyzer, max_depth=table_depth) if table_depth > 0 else ""
    traced = sum(by_module.get(name, 0) for name in oc)
    params = parameter_count(model)
    backbone = getattr(model, "backbone", None)
    return Complexity(
        flops=int(total),
        params=int(params[""]),
        backbone_params=int(sum(p.numel() for p in backbone.parameters())) if backbone is not None else 0,
        oc_flops=int(sum(oc.values())),
        oc_traced_flops=int(traced),
        input_shape=(3, height, width),
        unsupported_ops=unsupported,
        table=table,
    )
