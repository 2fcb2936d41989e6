"""ParCNetV2 outside eager PyTorch: ``torch.export`` programs and ONNX files at any input size.

    python tools/deployment/export_onnx.py OUT.onnx --model parcnetv2_xt [--checkpoint CKPT] [--features-only]
    python tools/deployment/export_onnx.py OUT.onnx --config CONFIG [--checkpoint CKPT]  # UperNet, Mask R-CNN

Batch, height and width stay dynamic (height and width from :data:`MIN_EXPORT_SIZE`): the oversized
convolution exports as standard ops (its kernels resized by index arithmetic, Toeplitz matrices
gathered, two ``MatMul``), so one file serves every resolution. Each export is checked against
PyTorch (onnxruntime for ONNX) at several sizes, non-square included.

What an OpenMMLab config exports is its task's choice (:func:`build_openmmlab_part`): a segmentor's
``encode_decode`` (logits at the input size, :mod:`parcnetv2.segmentation.export`) and a detector's
``extract_feat`` (backbone + FPN maps); proposal sampling, RoI heads and NMS stay in PyTorch (see the
README).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

__all__ = [
    "CHECK_SIZES",
    "MIN_EXPORT_SIZE",
    "ExportReport",
    "ImageFunction",
    "build_classifier",
    "build_openmmlab_part",
    "check_onnx",
    "check_program",
    "dynamic_shapes",
    "export_onnx",
    "export_program",
]

MIN_EXPORT_SIZE = 35
"""Smallest exported height/width: torch.export treats sizes 0 and 1 apart, and below 35 px the last
stage's map is 1 x 1 (eager PyTorch takes 32 px and up)."""

CHECK_SIZES = ((224, 224), (256, 320), (193, 161))
"""Input sizes (H, W) every export is checked at by default."""


@dataclass
class ExportReport:
    """What an export wrote and how closely it matches PyTorch (max |diff| / max |reference|, per size)."""

    path: Path | None
    opset: int | None
    size_bytes: int
    seconds: float
    errors: dict[tuple[int, int], float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        head = f"wrote {self.path} ({self.size_bytes / 2**20:.1f} MiB"
        head += f", opset {self.opset})" if self.opset is not None else ")"
        checks = [f"  {h}x{w}: max relative difference {err:.2e}" for (h, w), err in self.errors.items()]
        return [f"{head} in {self.seconds:.0f} s", *checks]


def dynamic_shapes(max_size: int = 4096, fixed_size: bool = False) -> dict[str, dict[int, Any]]:
    """Dynamic batch, height and width for an image input named ``x`` (``fixed_size``: batch only)."""
    from torch.export import Dim

    batch = {0: Dim("batch", min=1, max=1024)}
    if fixed_size:
        return {"x": batch}
    return {
        "x": {
            **batch,
            2: Dim("height", min=MIN_EXPORT_SIZE, max=max_size),
            3: Dim("width", min=MIN_EXPORT_SIZE, max=max_size),
        }
    }


def _example(batch: int = 2, height: int = 96, width: int = 128) -> torch.Tensor:
    return torch.randn(batch, 3, height, width)


class ImageFunction(nn.Module):
    """``fn(x)`` as a module with one image input named ``x`` (the exporters trace ``forward(x)``)."""

    def __init__(self, module: nn.Module, method: str) -> None:
        super().__init__()
        self.module = module
        self.method = method

    def forward(self, x: torch.Tensor) -> Any:
        return getattr(self.module, self.method)(x)


def build_classifier(name: str, checkpoint: str | None = None, features_only: bool = False) -> nn.Module:
    """A timm ParCNetV2 (``features_only``: the 4-level backbone) with optional weights, in eval mode."""
    import timm

    import parcnetv2  # noqa: F401  (registers the models)

    kwargs: dict[str, Any] = dict(features_only=features_only)
    if checkpoint:
        kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=os.fspath(checkpoint)))
    return timm.create_model(name, **kwargs).eval()


def build_openmmlab_part(config: str, checkpoint: str | None = None) -> tuple[nn.Module, str]:
    """The exportable part of a detection/segmentation config, as its task defines it
    (:meth:`parcnetv2.openmmlab.task.OpenMMLabTask.export_part`): ``(module, description)``, in eval mode."""
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint

    from parcnetv2.openmmlab.runner import build_bare_model
    from parcnetv2.openmmlab.task import task_of

    cfg = Config.fromfile(config)
    model = build_bare_model(cfg).eval()  # weights come from --checkpoint (or stay random)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location="cpu", strict=True)
    module, description = task_of(cfg).export_part(model)
    return module.eval(), description


def export_program(model: nn.Module, example: torch.Tensor | None = None) -> torch.export.ExportedProgram:
    """``torch.export.export`` with dynamic batch, height and width."""
    example = _example() if example is None else example
    with torch.no_grad():
        return torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes())


def _relative_error(actual: Any, expected: Any) -> float:
    actual = actual if isinstance(actual, (list, tuple)) else [actual]
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    if len(actual) != len(expected):
        raise ValueError(f"export returned {len(actual)} outputs, PyTorch {len(expected)}")
    worst = 0.0
    for a, e in zip(actual, expected, strict=True):
        a, e = torch.as_tensor(a).float(), torch.as_tensor(e).float()
        if a.shape != e.shape:
            raise ValueError(f"exported output of shape {tuple(a.shape)}, PyTorch {tuple(e.shape)}")
        worst = max(worst, float((a - e).abs().max() / e.abs().max().clamp_min(1e-12)))
    return worst


def check_program(
    program: torch.export.ExportedProgram, model: nn.Module, sizes: Sequence[tuple[int, int]] = CHECK_SIZES
) -> dict[tuple[int, int], float]:
    """Relative error of the exported program against ``model`` on a random image of each size."""
    module = program.module()
    errors = {}
    with torch.no_grad():
        for height, width in sizes:
            x = torch.randn(1, 3, height, width)
            errors[(height, width)] = _relative_error(module(x), model(x))
    return errors


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    opset: int | None = None,
    size: tuple[int, int] | None = None,
) -> ExportReport:
    """Export ``model`` to ONNX (``torch.onnx.export(dynamo=True)``) with dynamic batch, height and width.

    ``size`` (H, W): a fixed-size export instead (batch stays dynamic). Everything that depends on
    the size and the weights alone -- the OC's resized kernels and Toeplitz matrices -- is then
    constant: onnxruntime folds it once when it loads the model rather than at every inference.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if size is not None and min(size) < MIN_EXPORT_SIZE:
        raise ValueError(
            f"export size must be at least {MIN_EXPORT_SIZE}x{MIN_EXPORT_SIZE}, got {size[0]}x{size[1]}"
        )
    example = _example() if size is None else _example(2, *size)  # batch 2: torch.export specialises 1
    start = time.perf_counter()
    with torch.no_grad():
        program = torch.onnx.export(
            model,
            (example,),
            input_names=["x"],
            dynamic_shapes=dynamic_shapes(fixed_size=size is not None),
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    tmp = path.with_name(f".{path.name}.tmp")
    program.save(os.fspath(tmp))
    os.replace(tmp, path)  # never a half-written model at PATH
    import onnx

    opset_found = next(
        (
            o.version
            for o in onnx.load(os.fspath(path), load_external_data=False).opset_import
            if o.domain in ("", "ai.onnx")
        ),
        None,
    )
    return ExportReport(path, opset_found, path.stat().st_size, time.perf_counter() - start)


def check_onnx(
    path: str | os.PathLike, model: nn.Module, sizes: Sequence[tuple[int, int]] = CHECK_SIZES, batch: int = 1
) -> dict[tuple[int, int], float]:
    """Relative error of onnxruntime (CPU) running ``path`` against ``model`` at each size."""
    import onnxruntime as ort

    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    errors = {}
    with torch.no_grad():
        for height, width in sizes:
            x = torch.randn(batch, 3, height, width)
            errors[(height, width)] = _relative_error(session.run(None, {name: x.numpy()}), model(x))
    return errors
