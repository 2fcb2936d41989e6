"""Layer-wise / stage-wise learning-rate decay for detectors and segmentors with a ParCNetV2 backbone.

mmdet's and mmseg's ``LearningRateDecayOptimizerConstructor`` refuse every backbone whose class name
lacks "ConvNeXt", so this is ParCNetV2's own constructor, registered under a unique name in mmengine's
*root* ``OPTIM_WRAPPER_CONSTRUCTORS`` (found from the ``mmdet`` and the ``mmseg`` scope alike)::

    optim_wrapper = dict(
        type='AmpOptimWrapper',
        constructor='ParCNetV2LayerDecayOptimizerConstructor',
        paramwise_cfg=dict(decay_rate=0.95, decay_type='layer_wise', num_layers=7),
        optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))

Layer ids (the published ParCNetV2 rule), with ``c = cumsum(depths)`` read off the model's
``backbone.stages.{i}.{j}`` parameters:

* ``layer_wise``: stem ``backbone.downsample_layers.0`` -> 0; block ``j`` of stage ``i`` ->
  ``c[i-1] // 3 + 1 + j // 3`` (``c[-1] = 0``: one id per three blocks); ``downsample_layers.i`` (i > 0)
  -> the id of the first block of stage ``i``; everything else (out norms ``norm{i}``, neck, heads)
  -> ``num_layers + 1``. ``num_layers = sum(depths) // 3`` for T/S/B (7/13/13), 6 for XT.
* ``stage_wise``: ``downsample_layers`` -> 0, ``stages.i`` -> ``i + 1``, everything else ->
  ``num_layers + 1``.

Each group's ``lr = base_lr * decay_rate ** (num_layers + 1 - layer_id)``. Parameters that are 1-D
(norm weights, res scales) or named ``*.bias`` get no weight decay; frozen ones are left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import torch.nn as nn
from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = [
    "ParCNetV2LayerDecayOptimizerConstructor",
    "backbone_depths",
    "get_layer_id_layer_wise",
    "get_layer_id_stage_wise",
]

DECAY_TYPES = ("layer_wise", "stage_wise")
_STAGE = re.compile(r"^backbone\.stages\.(\d+)\.(\d+)\.")
_DOWNSAMPLE = re.compile(r"^backbone\.downsample_layers\.(\d+)\.")


def backbone_depths(param_names: Sequence[str]) -> tuple[int, ...]:
    """Blocks per stage, counted from ``backbone.stages.{i}.{j}`` parameter names."""
    depths: dict[int, int] = {}
    for name in param_names:
        match = _STAGE.match(name)
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            depths[stage] = max(depths.get(stage, 0), block + 1)
    if not depths:
        raise ValueError(
            "ParCNetV2LayerDecayOptimizerConstructor: the model has no 'backbone.stages.{i}.{j}' parameters "
            "(is the backbone a ParCNetV2?)"
        )
    return tuple(depths.get(i, 0) for i in range(max(depths) + 1))


def get_layer_id_layer_wise(name: str, depths: Sequence[int], num_layers: int) -> int:
    """The published ParCNetV2 layer id of parameter ``name`` (one id per three blocks)."""
    starts = [0]
    for depth in depths[:-1]:
        starts.append(starts[-1] + depth)  # starts[i] = cumsum(depths)[i-1]
    match = _STAGE.match(name)
    if match:
        stage, block = int(match.group(1)), int(match.group(2))
        return starts[stage] // 3 + 1 + block // 3
    match = _DOWNSAMPLE.match(name)
    if match:
        stage = int(match.group(1))
        return 0 if stage == 0 else starts[stage] // 3 + 1
    return num_layers + 1


def get_layer_id_stage_wise(name: str, num_layers: int) -> int:
    """Stage-wise id: downsampling layers 0, stage ``i`` -> ``i + 1``, everything else ``num_layers + 1``."""
    match = _STAGE.match(name)
    if match:
        return int(match.group(1)) + 1
    if _DOWNSAMPLE.match(name):
        return 0
    return num_layers + 1


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ParCNetV2LayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Optimizer-wrapper constructor with layer-/stage-wise lr decay for a ParCNetV2 backbone.

    ``paramwise_cfg``: ``decay_rate`` (float in (0, 1]), ``decay_type`` (``'layer_wise'`` or
    ``'stage_wise'``), ``num_layers`` (the largest backbone id; the rest of the model gets
    ``num_layers + 1``, i.e. scale 1). ``optim_wrapper.optimizer.lr``/``weight_decay`` are the bases.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        cfg = dict(self.paramwise_cfg)
        unknown = set(cfg) - {"decay_rate", "decay_type", "num_layers"}
        if unknown:
            raise ValueError(
                f"ParCNetV2LayerDecayOptimizerConstructor: unsupported paramwise_cfg keys {sorted(unknown)} "
                "(supported: decay_rate, decay_type, num_layers)"
            )
        if "decay_rate" not in cfg or "num_layers" not in cfg:
            raise ValueError(
                "ParCNetV2LayerDecayOptimizerConstructor needs paramwise_cfg.decay_rate and num_layers"
            )
        self.decay_rate = float(cfg["decay_rate"])
        self.decay_type = cfg.get("decay_type", "layer_wise")
        self.num_layers = int(cfg["num_layers"])
        if self.decay_type not in DECAY_TYPES:
            raise ValueError(f"decay_type must be one of {DECAY_TYPES}, got {self.decay_type!r}")
        if not 0.0 < self.decay_rate <= 1.0:
            raise ValueError(f"decay_rate must be in (0, 1], got {self.decay_rate}")

    def layer_id(self, name: str, depths: Sequence[int]) -> int:
        if self.decay_type == "layer_wise":
            return get_layer_id_layer_wise(name, depths, self.num_layers)
        return get_layer_id_stage_wise(name, self.num_layers)

    def add_params(self, params: list[dict], module: nn.Module, **kwargs) -> None:
        """Fill ``params`` with one group per (layer id, decay / no decay)."""
        names = [n for n, _ in module.named_parameters()]
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        depths = backbone_depths(names)
        deepest = max(self.layer_id(n, depths) for n in names if _STAGE.match(n) or _DOWNSAMPLE.match(n))
        if deepest > self.num_layers:
            raise ValueError(
                f"paramwise_cfg.num_layers={self.num_layers} is smaller than the deepest backbone layer id "
                f"{deepest} ({self.decay_type}, depths {depths}); use num_layers={deepest}"
            )
        groups: dict[str, dict] = {}
        for name, param in named:
            no_decay = param.ndim == 1 or name.endswith(".bias")
            layer_id = self.layer_id(name, depths)
            group_name = f"layer_{layer_id}_{'no_decay' if no_decay else 'decay'}"
            if group_name not in groups:
                scale = self.decay_rate ** (self.num_layers + 1 - layer_id)
                groups[group_name] = dict(
                    params=[], param_names=[], lr=scale * self.base_lr, lr_scale=scale, group_name=group_name
                )
                if no_decay:
                    groups[group_name]["weight_decay"] = 0.0
                elif self.base_wd is not None:
                    groups[group_name]["weight_decay"] = self.base_wd
            groups[group_name]["params"].append(param)
            groups[group_name]["param_names"].append(name)
        ordered = [groups[k] for k in sorted(groups, key=lambda g: (int(g.split("_")[1]), g))]
        params.extend(ordered)
        if get_rank() == 0:
            summary = {
                g["group_name"]: dict(
                    lr_scale=round(g["lr_scale"], 6),
                    lr=g["lr"],
                    weight_decay=g.get("weight_decay"),
                    num_params=len(g["params"]),
                )
                for g in ordered
            }
            print_log(
                f"ParCNetV2 {self.decay_type} lr decay (decay_rate={self.decay_rate}, "
                f"num_layers={self.num_layers}, depths={depths}): {json.dumps(summary)}",
                logger="current",
            )
