"""Model and data-config construction shared by training and evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import timm
import torch.nn as nn
from timm.data import resolve_data_config

import parcnetv2  # noqa: F401  (registers the ParCNetV2 models in timm)
from parcnetv2.backbone import MIN_INPUT_SIZE

from .data import input_size_3d

__all__ = ["create_classifier", "data_config_for"]


def create_classifier(
    name: str,
    num_classes: int,
    drop_path: float | None = None,
    head_dropout: float = 0.0,
    model_kwargs: dict[str, Any] | None = None,
) -> nn.Module:
    """``timm.create_model`` with ``drop_path_rate`` (None: the model's default) and ``head_dropout``
    (``drop_rate`` for other models)."""
    if name not in timm.list_models():
        parc = [m for m in timm.list_models("parcnetv2*")]
        raise ValueError(f"unknown model {name!r}; ParCNetV2 models: {parc}")
    head = {"head_dropout": head_dropout} if name.startswith("parcnetv2") else {"drop_rate": head_dropout}
    rates = {"drop_path_rate": drop_path} if drop_path is not None else {}
    return timm.create_model(name, num_classes=num_classes, **rates, **head, **(model_kwargs or {}))


def data_config_for(
    model: nn.Module,
    input_size: Sequence[int] | None,
    crop_pct: float | None = None,
    interpolation: str = "",
) -> dict[str, Any]:
    """timm's data config for ``model`` at ``input_size`` (S, H W or C H W; None: the model's); crop and
    interpolation default to the model's.

    ParCNetV2's own default is ``crop_pct=1.0`` (resize the short side to the input size, then centre
    crop), as in the authors' development code.
    """
    if crop_pct is not None and not 0 < crop_pct <= 1.5:
        raise ValueError(f"--crop-pct must be in (0, 1.5], got {crop_pct}")
    cfg = {"crop_pct": crop_pct, "interpolation": interpolation}
    if input_size:
        cfg["input_size"] = input_size_3d(input_size)
    cfg = resolve_data_config(cfg, model=model)
    height, width = cfg["input_size"][1:]
    if min(height, width) < MIN_INPUT_SIZE:
        raise ValueError(
            f"input size {height}x{width} is below ParCNetV2's minimum {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}"
        )
    return cfg
