"""ParCNetV2 as an OpenMMLab backbone (mmdet 3.x / mmseg 1.x), with pretrained loading that is loud.

A thin adapter over the one model class, :class:`parcnetv2.backbone.ParCNetV2`: it builds that model
without its classifier, exposes its ``downsample_layers`` and ``stages`` under the same names (so
published and classification checkpoints load as they are and the layer-decay rules parse
``backbone.downsample_layers.{i}`` / ``backbone.stages.{i}.{j}``), and adds per-stage output norms
``norm{i}`` (no clash with the classifier's ``norm``), ``frozen_stages`` and gradient checkpointing.

Pretrained weights come from ``init_cfg=dict(type='Pretrained', checkpoint=PATH[, prefix=...])`` and go
through the steps of :mod:`parcnetv2.backbone.checkpoint`: any wrapper (``state_dict``/``model``/
``module``/EMA), keys with or without ``module.``/``backbone.`` prefixes, the classifier dropped,
oversized kernels resized.
Anything that leaves a backbone parameter unloaded (or a missing file, or a wrong shape) raises a
``CheckpointError`` naming the keys; success logs ``loaded N/N backbone tensors``.

This module imports only torch, timm, mmengine and parcnetv2.backbone (no mmdet/mmseg);
:mod:`parcnetv2.openmmlab` registers the class once, in mmengine's root ``MODELS`` (found from the mmdet
and the mmseg scope alike).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from timm.layers import LayerNorm2d

from parcnetv2.backbone import VARIANTS, ParCNetV2
from parcnetv2.backbone.checkpoint import (
    CheckpointError,
    backbone_part,
    drop_prefixes,
    fit_state_dict,
    load_state,
    select_prefix,
)
from parcnetv2.backbone.layers import L2LayerNorm

__all__ = ["ParCNetV2Backbone", "ARCH_ALIASES", "load_pretrained_backbone"]

ARCH_ALIASES = {
    "xt": "xt",
    "t": "tiny",
    "tiny": "tiny",
    "s": "small",
    "small": "small",
    "b": "base",
    "base": "base",
}
"""Accepted ``arch`` spellings -> keys of :data:`parcnetv2.backbone.VARIANTS`."""

CLASSIFIER_PREFIXES = ("head.", "norm.", "head_drop.")
"""Classifier-only keys of a classification checkpoint (``norm`` is the pre-head LayerNorm)."""

_MAX_STAGES = 16


def _out_norm(kind: str, dim: int) -> nn.Module:
    if kind == "ln":
        return LayerNorm2d(dim, eps=1e-6)
    if kind == "l2":  # the published detection/segmentation backbones' out norms
        return L2LayerNorm(dim, channel_dim=1)
    raise ValueError(f"out_norm_type must be 'ln' or 'l2', got {kind!r}")


class ParCNetV2Backbone(BaseModule):
    """ParCNetV2 feature pyramid for OpenMMLab detectors and segmentors (registered as ``ParCNetV2``).

    Args:
        arch: ``'xt'``, ``'tiny'``, ``'small'`` or ``'base'`` (also ``'t'``/``'s'``/``'b'``); ignored
            for depths/dims when both ``depths`` and ``dims`` are given.
        depths: blocks per stage (overrides the arch's).
        dims: channels per stage (overrides the arch's).
        kernel_sizes: stored oversized-kernel length per stage (111/55/27/13 as pretrained at 224).
        oc_mode: ``'adaptive'`` (kernels resized to 2H-1 / 2W-1 for every input, the default) or
            ``'fixed'`` (stored kernels as they are: the published detection/segmentation setting).
        out_indices: stages whose outputs are returned (NCHW, strides 4/8/16/32).
        out_norms: add a norm ``norm{i}`` on every returned stage output.
        out_norm_type: ``'ln'`` (standard LayerNorm, default) or ``'l2'`` (the published L2 norm).
        drop_path_rate: stochastic depth, rising linearly over all blocks.
        frozen_stages: ``-1`` trains everything; ``k >= 0`` freezes the stem and stages ``0..k-1``
            (with their downsampling layers and out norms): parameters stop training, modules stay
            in eval mode.
        with_cp: gradient checkpointing of every block (less memory, slower).
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH, prefix=None, use_ema=False)`` to load
            a classification (or published, or mm) checkpoint; other init cfgs go to mmengine.
        **model_kwargs: further :class:`ParCNetV2` arguments (``mlp_ratio``, ``res_scale_init_values``,
            ``in_chans``).
    """

    def __init__(
        self,
        arch: str = "tiny",
        depths: Sequence[int] | None = None,
        dims: Sequence[int] | None = None,
        kernel_sizes: Sequence[int] = (111, 55, 27, 13),
        oc_mode: str = "adaptive",
        out_indices: Sequence[int] = (0, 1, 2, 3),
        out_norms: bool = True,
        out_norm_type: str = "ln",
        drop_path_rate: float = 0.0,
        frozen_stages: int = -1,
        with_cp: bool = False,
        init_cfg: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        **model_kwargs: Any,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if arch not in ARCH_ALIASES and (depths is None or dims is None):
            raise ValueError(
                f"arch must be one of {sorted(ARCH_ALIASES)} (or give depths and dims), got {arch!r}"
            )
        variant = VARIANTS[ARCH_ALIASES[arch]] if arch in ARCH_ALIASES else {}
        depths = tuple(depths if depths is not None else variant["depths"])
        dims = tuple(dims if dims is not None else variant["dims"])
        num_stages = len(depths)
        out_indices = tuple(sorted({i % num_stages for i in out_indices}))
        if not out_indices:
            raise ValueError("out_indices must name at least one stage")
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f"frozen_stages must be in [-1, {num_stages}], got {frozen_stages}")

        net = ParCNetV2(
            num_classes=0,
            global_pool="",
            depths=depths,
            dims=dims,
            kernel_sizes=kernel_sizes,
            oc_mode=oc_mode,
            drop_path_rate=drop_path_rate,
            **model_kwargs,
        )
        # Keep only what the returned stages need; no classifier (its norm/head are not built into
        # our parameter set, so 'norm.*'/'head.*' of classification checkpoints are dropped on load).
        net.prune_intermediate_layers(list(out_indices), prune_norm=True, prune_head=True)
        net.set_grad_checkpointing(with_cp)
        # Register the model's own modules under their names: parameters stay
        # ``downsample_layers.{i}.*`` / ``stages.{i}.{j}.*`` (checkpoint- and layer-decay-compatible).
        self.downsample_layers = net.downsample_layers
        self.stages = net.stages
        # The model object itself is kept out of the module tree (it would duplicate every parameter
        # name under another prefix); it only provides forward_intermediates over the shared modules.
        self.__dict__["_net"] = net

        self.arch = arch
        self.depths = depths
        self.dims = dims
        self.out_indices = out_indices
        self.num_stages = num_stages
        self.frozen_stages = frozen_stages
        self.with_cp = with_cp
        self.out_norms = out_norms
        if out_norms:
            for i in out_indices:
                self.add_module(f"norm{i}", _out_norm(out_norm_type, dims[i]))
        self._freeze_stages()

    # --------------------------------------------------------------------------------- forward
    @property
    def out_channels(self) -> list[int]:
        """Channels of each returned map (for the neck's ``in_channels``)."""
        return [self.dims[i] for i in self.out_indices]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self._net.forward_intermediates(x, indices=list(self.out_indices), intermediates_only=True)
        if self.out_norms:
            feats = [getattr(self, f"norm{i}")(f) for i, f in zip(self.out_indices, feats, strict=True)]
        # The blocks compute in channels-last memory; OpenMMLab's necks and heads expect NCHW-contiguous
        # maps (mmcv's CPU RoIAlign reads the raw buffer as NCHW: strided maps give scrambled RoI features).
        return tuple(f.contiguous() for f in feats)

    # --------------------------------------------------------------------------------- freezing
    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        modules: list[nn.Module] = [self.downsample_layers[0]]
        for i in range(min(self.frozen_stages, len(self.stages))):
            if i > 0:
                modules.append(self.downsample_layers[i])
            modules.append(self.stages[i])
            if self.out_norms and i in self.out_indices:
                modules.append(getattr(self, f"norm{i}"))
        return modules

    def _freeze_stages(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> ParCNetV2Backbone:
        super().train(mode)
        self._freeze_stages()
        return self

    # --------------------------------------------------------------------------------- weights
    def init_weights(self) -> None:
        """Apply non-pretrained init cfgs through mmengine, then load the pretrained checkpoint (if any)."""
        cfgs = (
            self.init_cfg
            if isinstance(self.init_cfg, (list, tuple))
            else [self.init_cfg]
            if self.init_cfg
            else []
        )
        pretrained = [c for c in cfgs if c.get("type") in ("Pretrained", "PretrainedInit")]
        if not pretrained:
            super().init_weights()
            return
        if len(pretrained) > 1:
            raise ValueError("ParCNetV2Backbone: give at most one Pretrained init_cfg")
        others = [c for c in cfgs if c not in pretrained]
        saved, self.init_cfg = self.init_cfg, (others or None)
        try:
            super().init_weights()
        finally:
            self.init_cfg = saved
        cfg = dict(pretrained[0])
        unknown = set(cfg) - {"type", "checkpoint", "prefix", "map_location", "use_ema"}
        if unknown:
            raise ValueError(f"ParCNetV2Backbone: unsupported Pretrained init_cfg keys {sorted(unknown)}")
        load_pretrained_backbone(
            self, cfg.get("checkpoint"), prefix=cfg.get("prefix"), use_ema=cfg.get("use_ema", False)
        )
        self._is_init = True


def load_pretrained_backbone(
    backbone: ParCNetV2Backbone,
    checkpoint: str | os.PathLike | Mapping[str, Any] | None,
    prefix: str | None = None,
    use_ema: bool = False,
    logger: str = "current",
) -> dict[str, list[str]]:
    """Load ``checkpoint`` into ``backbone``: every backbone parameter must be filled, or it raises.

    The checkpoint goes through the steps of :mod:`parcnetv2.backbone.checkpoint`: read and unwrap; with
    ``prefix``, only the keys under it, otherwise a whole detector/segmentor narrowed to ``backbone.*``;
    dropped on purpose: the classifier, stages past the last out index, out norms the backbone lacks;
    then checked and resized.

    Returns the ``loaded`` / ``resized`` (oversized kernels of another length) / ``new`` (out norms,
    initialised fresh) / ``ignored`` (classifier, stages beyond ``out_indices``) key lists.
    """
    if checkpoint is None or checkpoint == "":
        raise CheckpointError(
            "init_cfg=dict(type='Pretrained') needs a checkpoint path; "
            "remove the init_cfg to train from scratch"
        )
    source = os.fspath(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else "<in-memory checkpoint>"
    out_norms = tuple(
        f"norm{i}." for i in range(_MAX_STAGES) if getattr(backbone, f"norm{i}", None) is not None
    )
    kept = len(backbone.stages)
    pruned = tuple(
        f"{name}.{i}." for name in ("stages", "downsample_layers") for i in range(kept, _MAX_STAGES)
    )
    absent_norms = tuple(f"norm{i}." for i in range(_MAX_STAGES) if f"norm{i}." not in out_norms)
    model_state = backbone.state_dict()
    state = load_state(checkpoint, use_ema)
    state = select_prefix(state, prefix) if prefix else backbone_part(state)
    state, ignored = drop_prefixes(state, CLASSIFIER_PREFIXES + pruned + absent_norms)
    fitted = fit_state_dict(
        state,
        model_state,
        optional=out_norms,
        source=source,
        target=f"the ParCNetV2 backbone (depths={backbone.depths}, dims={backbone.dims})",
    )
    state = fitted.state
    result = backbone.load_state_dict(state, strict=False)
    new = sorted(k for k in model_state if k.startswith(out_norms) and k not in state) if out_norms else []
    if result.unexpected_keys or set(result.missing_keys) - set(new):  # cannot happen after fit_checkpoint
        raise CheckpointError(
            f"load_state_dict disagreed: missing {result.missing_keys}, unexpected {result.unexpected_keys}"
        )
    required = len(model_state) - sum(1 for k in model_state if out_norms and k.startswith(out_norms))
    loaded_norms = len(state) - sum(1 for k in state if not (out_norms and k.startswith(out_norms)))
    print_log(
        f"ParCNetV2Backbone: loaded {len(state) - loaded_norms}/{required} "
        f"backbone tensors from {source}"
        + (f" (+{loaded_norms} out-norm tensors)" if loaded_norms else "")
        + (f"; ignored {len(ignored)} classifier/unused tensors" if ignored else "")
        + (f"; resized {len(fitted.resized)} oversized kernels" if fitted.resized else "")
        + (f"; {len(new)} out-norm tensors initialised fresh" if new else ""),
        logger=logger,
    )
    return dict(loaded=sorted(state), resized=fitted.resized, new=new, ignored=ignored)
