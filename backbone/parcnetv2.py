"""ParCNetV2: Oversized Kernel with Enhanced Attention (Xu et al., ICCV 2023).

One definition of the model, numerically identical to the published one and loading its
checkpoints (``downsample_layers.{i}``, ``stages.{i}.{j}``, ``norm``, ``head``), plus:

* resolution-adaptive oversized convolution (``oc_mode="adaptive"``, the default);
* timm's model contract (pretrained cfgs, ``forward_features``/``forward_head``,
  ``forward_intermediates``, ``features_only``, gradient checkpointing, ``group_matcher``).

Paper: https://arxiv.org/abs/2211.07157 -- official code: https://github.com/XuRuihan/ParCNetV2
"""

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, calculate_drop_path_rates, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices  # what timm's own models import
from torch.fx._symbolic_trace import is_fx_symbolic_tracing
from torch.utils.checkpoint import checkpoint

from .checkpoint import fit_state_dict, load_state, unwrap_state_dict
from .layers import (
    BGU,
    Downsample,
    L2LayerNorm,
    Scale,
    gelu_,
    pointwise_to_channels_first,
    pointwise_to_channels_last,
)
from .oversized_conv import OC_MODES, OCMode, OversizedConv2d, runtime_mode

__all__ = ["ParCNetV2", "ParCNetV2Block", "ParCTokenMixer", "MIN_INPUT_SIZE", "VARIANTS"]

MIN_INPUT_SIZE = 32
"""Smallest input side accepted: the 32x downsampled map must keep at least one pixel."""

VARIANTS: dict[str, dict[str, tuple[int, ...]]] = {
    "xt": dict(depths=(3, 3, 9, 2), dims=(48, 96, 192, 320)),
    "tiny": dict(depths=(3, 3, 12, 3), dims=(64, 128, 320, 512)),
    "small": dict(depths=(3, 9, 24, 3), dims=(64, 128, 320, 512)),
    "base": dict(depths=(3, 9, 24, 3), dims=(96, 192, 384, 576)),
}
"""Published depths and widths per variant."""


class ParCTokenMixer(nn.Module):
    """Spatial bifurcate gate with the uniform local-global convolution (``ParC_V2`` in the paper code).

    ``pwconv1`` (C -> 2C, bias) splits into a gate ``x1`` and a branch ``x2``; the branch goes through
    GELU, then oversized conv + 7x7 depthwise conv (summed); the product ``x1 * x2`` goes through
    ``pwconv2`` (C -> C, no bias). Input and output are channels-last (B, H, W, C).
    """

    def __init__(
        self, dim: int, kernel_size: int, oc_mode: OCMode = "adaptive", expansion_ratio: int = 2
    ) -> None:
        super().__init__()
        hidden = expansion_ratio * dim
        self.pwconv1 = nn.Conv2d(dim, hidden, 1, bias=True)
        self.act = nn.GELU()
        self.dwconv1 = OversizedConv2d(hidden // 2, kernel_size, mode=oc_mode)
        self.dwconv2 = nn.Conv2d(hidden // 2, hidden // 2, 7, padding=3, groups=hidden // 2, bias=False)
        self.pwconv2 = nn.Conv2d(hidden // 2, dim, 1, bias=False)

    def forward(
        self, x: torch.Tensor, shortcut: torch.Tensor | None = None, mode: str = "traced"
    ) -> torch.Tensor:
        """The mixed (B, H, W, C) tensor, plus ``shortcut`` if given (traced: inside ``pwconv2``'s matmul).

        ``mode``: the model's :func:`~.oversized_conv.runtime_mode` (``"eager"``: the fast variants).
        """
        eager = mode == "eager"
        # The spatial part runs channels-first (what the OC's matmuls and the 7x7 conv want), as NCHW
        # views of channels-last results (what the 7x7 conv reads fastest; the OC reads a contiguous
        # copy that it does not keep for backward). pwconv1 as two matmuls on its weight's halves
        # (gate, branch): chunking its output instead would concatenate the halves' gradients in
        # backward, a copy of the whole output
        weight, bias, half = self.pwconv1.weight, self.pwconv1.bias, self.pwconv2.in_channels
        assert bias is not None  # built with one (and TorchScript needs the refinement)
        gate = pointwise_to_channels_first(x, weight[:half], bias[:half])
        branch = pointwise_to_channels_first(x, weight[half:], bias[half:])
        if eager and not gate.requires_grad:
            # inference: activate and gate inside pwconv1's output (fewer large allocations)
            spatial = self._spatial(gelu_(branch, self.act.approximate), mode)
            gated = gate.mul_(spatial) if spatial.dtype == gate.dtype else gate * spatial
        else:
            gated = gate * self._spatial(self.act(branch), mode)
        return pointwise_to_channels_last(gated, self.pwconv2.weight, shortcut=shortcut)

    def _spatial(self, branch: torch.Tensor, mode: str) -> torch.Tensor:
        """Oversized conv + 7x7 depthwise conv of the activated branch.

        The 7x7 conv reads channels-last memory: oneDNN's depthwise kernels are several times faster
        on it than on NCHW (forward and backward). Eager, the sum lands in its channels-last output,
        the layout of the gate it meets next (elementwise ops between mixed layouts run slower, in
        backward too: bf16 training 4-9 % faster than summing into the OC's NCHW output); traced, in
        the OC's output, whose layout inductor then keeps (compiled training at 224x224 1.06x of
        compiled convnext_tiny, against 1.26x the other way round).
        """
        local = self.dwconv2(branch.contiguous(memory_format=torch.channels_last))
        global_ = self.dwconv1(branch, mode)
        return local.add_(global_) if mode == "eager" else global_.add_(local)


class ParCNetV2Block(nn.Module):
    """Pre-norm MetaFormer block: ``x = rs1(x) + dp(mixer(norm1(x)))``, ``x = rs2(x) + dp(bgu(norm2(x)))``.

    Channels-last in and out. ``res_scale`` (stages 3-4) is a learnable per-channel scale on the shortcut.
    Without autograd, the sums are written into the ``token_mixer``/``mlp`` outputs (as torchvision's
    ``ReLU(inplace=True)`` does), so forward hooks on those two see them overwritten; block outputs are not.
    """

    def __init__(
        self,
        dim: int,
        kernel_size: int,
        oc_mode: OCMode = "adaptive",
        mlp_ratio: float = 5.0,
        drop_path: float = 0.0,
        res_scale_init_value: float | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = L2LayerNorm(dim)
        self.token_mixer = ParCTokenMixer(dim, kernel_size, oc_mode)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.res_scale1 = Scale(dim, res_scale_init_value) if res_scale_init_value else nn.Identity()
        self.norm2 = L2LayerNorm(dim)
        self.mlp = BGU(dim, mlp_ratio)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.res_scale2 = Scale(dim, res_scale_init_value) if res_scale_init_value else nn.Identity()
        self.has_drop_path = drop_path > 0

    def forward(self, x: torch.Tensor, mode: str = "traced") -> torch.Tensor:
        """``mode``: the model's :func:`~.oversized_conv.runtime_mode` (``"eager"``: the fast variants)."""
        eager = mode == "eager"
        if eager and not torch.is_grad_enabled():
            return self._forward_in_place(x)
        if not eager and not (self.training and self.has_drop_path):
            # traced: each residual sum is computed by the branch's last matmul (see linear_add)
            x = self.token_mixer(self.norm1(x), shortcut=self.res_scale1(x), mode=mode)
            return self.mlp(self.norm2(x), shortcut=self.res_scale2(x))
        x = self.res_scale1(x) + self.drop_path1(self.token_mixer(self.norm1(x, eager), mode=mode))
        return self.res_scale2(x) + self.drop_path2(self.mlp(self.norm2(x, eager), eager=eager))

    @torch.jit.unused
    def _forward_in_place(self, x: torch.Tensor) -> torch.Tensor:
        """Eager inference: the residual sums are written into the branch outputs (fresh tensors)."""
        mixed = self.token_mixer(self.norm1(x, True), mode="eager")
        x = self._residual(x, self.res_scale1, self.drop_path1(mixed))
        return self._residual(x, self.res_scale2, self.drop_path2(self.mlp(self.norm2(x, True), eager=True)))

    @staticmethod
    def _residual(x: torch.Tensor, scale: nn.Module, y: torch.Tensor) -> torch.Tensor:
        """``scale(x) + y``, written into ``y`` (a res-scale folded into ``addcmul_``) when that keeps the
        dtype the out-of-place sum would have."""
        weight = scale.scale if isinstance(scale, Scale) else None
        dtypes = {x.dtype, y.dtype} if weight is None else {x.dtype, y.dtype, weight.dtype}
        if y.requires_grad or len(dtypes) > 1 or y.shape != x.shape:
            return x + y if weight is None else torch.addcmul(y, x, weight)
        return y.add_(x) if weight is None else y.addcmul_(x, weight)


class ParCNetV2Stage(nn.Sequential):
    """A stage of blocks: NCHW in, NCHW out (channels-last inside, as the published blocks)."""

    def __init__(self, *blocks: nn.Module) -> None:
        super().__init__(*blocks)
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor, mode: str = "traced") -> torch.Tensor:
        """``mode``: the model's :func:`~.oversized_conv.runtime_mode`, handed to each block."""
        x = x.permute(0, 2, 3, 1)
        if self.grad_checkpointing and not torch.jit.is_scripting() and torch.is_grad_enabled():
            x = self._checkpointed(x, mode)
        else:
            for block in self:
                x = block(x, mode)
        return x.permute(0, 3, 1, 2)

    @torch.jit.unused
    def _checkpointed(self, x: torch.Tensor, mode: str) -> torch.Tensor:
        for block in self:
            x = checkpoint(block, x, mode, use_reentrant=False)
        return x


class ParCNetV2(nn.Module):
    """ParCNetV2 image classifier and backbone.

    Args:
        in_chans: input channels.
        num_classes: classifier outputs; 0 for no classifier.
        global_pool: ``"avg"`` or ``""`` (no pooling: ``forward_head`` keeps the spatial map).
        depths: blocks per stage.
        dims: channels per stage.
        kernel_sizes: stored oversized-kernel length per stage (2H-1 at 224 input: 111/55/27/13).
        oc_mode: ``"adaptive"`` (kernels resized to 2H-1 / 2W-1 for each input) or ``"fixed"``.
        mlp_ratio: BGU expansion.
        res_scale_init_values: per-stage init of the shortcut scale, ``None`` for none.
        drop_rate: dropout before the classifier (timm's ``--drop``), used when ``head_dropout`` is None.
        head_dropout: dropout before the classifier (the published flag; it crashed there when > 0).
        drop_path_rate: stochastic depth, rising linearly over all blocks.
        device, dtype: where and in which dtype the parameters are created (timm's factory kwargs;
            ``device="meta"`` allocates nothing).
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        depths: Sequence[int] = VARIANTS["tiny"]["depths"],
        dims: Sequence[int] = VARIANTS["tiny"]["dims"],
        kernel_sizes: Sequence[int] = (111, 55, 27, 13),
        oc_mode: OCMode = "adaptive",
        mlp_ratio: float = 5.0,
        res_scale_init_values: Sequence[float | None] = (None, None, 1.0, 1.0),
        drop_rate: float = 0.0,
        head_dropout: float | None = None,
        drop_path_rate: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if kwargs:
            raise TypeError(f"ParCNetV2 got unexpected arguments: {sorted(kwargs)}")
        if oc_mode not in OC_MODES:
            raise ValueError(f"oc_mode must be one of {OC_MODES}, got {oc_mode!r}")
        if global_pool not in ("avg", ""):
            raise ValueError(f"global_pool must be 'avg' or '', got {global_pool!r}")
        num_stages = len(depths)
        if not (len(dims) == len(kernel_sizes) == len(res_scale_init_values) == num_stages):
            raise ValueError("depths, dims, kernel_sizes and res_scale_init_values need one entry per stage")
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.depths = tuple(depths)
        self.dims = tuple(dims)
        self.oc_mode = oc_mode
        self.num_features = self.head_hidden_size = dims[-1]

        with torch.device(device) if device is not None else contextlib.nullcontext():
            self.downsample_layers = nn.ModuleList()
            for i in range(num_stages):
                if i == 0:
                    layer = Downsample(in_chans, dims[0], kernel_size=7, stride=4, padding=2, post_norm=True)
                else:
                    layer = Downsample(
                        dims[i - 1], dims[i], kernel_size=3, stride=2, padding=1, pre_norm=True
                    )
                self.downsample_layers.append(layer)

            rates = calculate_drop_path_rates(
                drop_path_rate, list(depths), stagewise=True
            )  # linear 0 -> rate
            self.stages = nn.ModuleList()
            self.feature_info = []
            for i in range(num_stages):
                self.stages.append(
                    ParCNetV2Stage(
                        *[
                            ParCNetV2Block(
                                dims[i],
                                kernel_sizes[i],
                                oc_mode=oc_mode,
                                mlp_ratio=mlp_ratio,
                                drop_path=rates[i][j],
                                res_scale_init_value=res_scale_init_values[i],
                            )
                            for j in range(depths[i])
                        ]
                    )
                )
                self.feature_info.append(dict(num_chs=dims[i], reduction=4 * 2**i, module=f"stages.{i}"))

            self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
            self.head_drop = nn.Dropout(drop_rate if head_dropout is None else head_dropout)
            self.head = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()
            self.apply(self._init_weights)
        if dtype is not None:
            self.to(dtype)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    # ----------------------------------------------------------------------------- input checks
    @torch.jit.unused
    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` for anything but a (B, in_chans, H, W) tensor with H, W >= 32.

        Also while compiling or exporting (as shape guards); skipped by FX's symbolic tracer.
        """
        if is_fx_symbolic_tracing():
            return
        if x.ndim != 4:
            raise ValueError(f"ParCNetV2 expects a 4-D (B, C, H, W) tensor, got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_chans:
            raise ValueError(
                f"ParCNetV2 expects {self.in_chans} input channels, got {x.shape[1]} (shape {tuple(x.shape)})"
            )
        if min(x.shape[-2:]) < MIN_INPUT_SIZE:
            raise ValueError(
                f"ParCNetV2 needs inputs of at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}, "
                f"got {x.shape[-2]}x{x.shape[-1]}"
            )

    # ----------------------------------------------------------------------------- timm contract
    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(
            stem=r"^downsample_layers\.0\.",
            blocks=r"^(?:downsample_layers|stages)\.(\d+)"
            if coarse
            else [
                (r"^downsample_layers\.(\d+)", (0,)),
                (r"^stages\.(\d+)\.(\d+)", None),
                (r"^norm", (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return set()

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(f"global_pool must be 'avg' or '', got {global_pool!r}")
            self.global_pool = global_pool
        self.num_classes = num_classes
        weight = self.downsample_layers[0].conv.weight
        self.head = (
            nn.Linear(self.num_features, num_classes, device=weight.device, dtype=weight.dtype)
            if num_classes > 0
            else nn.Identity()
        )
        self.head.train(self.training)
        if num_classes > 0:
            self._init_weights(self.head)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Stage outputs (NCHW) at ``indices``, and optionally the final feature map.

        ``norm`` is accepted for timm compatibility; ParCNetV2 has no norm before pooling.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"ParCNetV2 intermediates are NCHW only, got output_fmt={output_fmt!r}")
        mode = "traced"
        if not torch.jit.is_scripting():
            self.check_input(x)
            mode = runtime_mode()  # the one test of the runtime: handed down to every module
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        intermediates = []
        last = max_index if stop_early or intermediates_only else len(self.stages) - 1
        for i in range(last + 1):
            x = self.stages[i](self.downsample_layers[i](x, mode == "eager"), mode)
            if i in take_indices:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last of ``indices`` (and the head); returns the kept indices."""
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        self.stages = self.stages[: max_index + 1]
        self.downsample_layers = self.downsample_layers[: max_index + 1]
        self.feature_info = self.feature_info[: max_index + 1]
        if prune_head:
            self.norm = nn.Identity() if prune_norm else self.norm
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's (B, num_features, H/32, W/32) map."""
        mode = "traced"
        if not torch.jit.is_scripting():
            self.check_input(x)
            mode = runtime_mode()  # the one test of the runtime: handed down to every module
        for downsample, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(downsample(x, mode == "eager"), mode)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "avg":
            x = self.norm(x.mean((2, 3)))
            x = self.head_drop(x)
            return x if pre_logits else self.head(x)
        x = self.head_drop(self.norm(x.permute(0, 2, 3, 1)))  # no pooling: per-position norm/classifier
        return (x if pre_logits else self.head(x)).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# --------------------------------------------------------------------------------- timm registration
def checkpoint_filter_fn(state_dict: dict[str, Any], model: ParCNetV2) -> dict[str, torch.Tensor]:
    """Adapt a published or wrapped checkpoint to ``model`` for timm's pretrained loader.

    Unwraps ``state_dict``/``model``/``module`` containers (timm's own reader, for a url or the hub) and
    resizes oversized kernels whose length differs (:func:`~parcnetv2.backbone.checkpoint.fit_state_dict`);
    other shape mismatches raise with the keys named. The classifier (``head.*``) passes through: timm
    drops it when ``num_classes`` differs, and timm's strict load names any other key that does not fit.
    """
    state = unwrap_state_dict(state_dict)
    return fit_state_dict(state, model.state_dict(), unchecked=("head.",), strict=False).state


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return dict(
        url="",
        num_classes=1000,
        input_size=(3, 224, 224),
        pool_size=(7, 7),
        crop_pct=1.0,  # the authors evaluated at crop 1.0 (their development code's default cfg)
        interpolation="bicubic",
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        first_conv="downsample_layers.0.conv",
        classifier="head",
        license="mit",
        paper_ids="arXiv:2211.07157",
        paper_name="ParCNetV2: Oversized Kernel with Enhanced Attention",
        origin_url="https://github.com/XuRuihan/ParCNetV2",
        **kwargs,
    )


default_cfgs = generate_default_cfgs(
    {f"parcnetv2_{name}": _cfg() for name in ("xt", "tiny", "small", "base")}
)


def _has_weight_source(kwargs: dict[str, Any]) -> bool:
    sources = ("file", "url", "state_dict", "hf_hub_id")
    for key in ("pretrained_cfg_overlay", "pretrained_cfg"):
        cfg = kwargs.get(key)
        cfg = cfg if isinstance(cfg, dict) else vars(cfg) if cfg is not None else {}
        if any(cfg.get(s) for s in sources):
            return True
    return False


def _read_pretrained_file(kwargs: dict[str, Any]) -> bool:
    """Read ``pretrained_cfg_overlay=dict(file=...)`` once, with our reader (any wrapper, safetensors,
    ``weights_only``; the EMA weights first, as timm's file loader), and hand timm the tensors. Without
    ``num_classes`` anywhere the model gets the file's classifier size (a 10-class checkpoint gives a
    10-class model, not a load error)."""
    overlay = kwargs.get("pretrained_cfg_overlay")
    if (
        not isinstance(overlay, dict)
        or not overlay.get("file")
        or overlay.get("source")
        or overlay.get("state_dict")
    ):
        return False
    state = load_state(overlay["file"], use_ema=True)  # read, unwrap, strip: once; timm's filter fits it
    overlay = {**overlay, "state_dict": state}
    head = state.get("head.weight")
    if "num_classes" not in kwargs and "num_classes" not in overlay and head is not None and head.ndim == 2:
        overlay["num_classes"] = int(head.shape[0])
    kwargs["pretrained_cfg_overlay"] = overlay
    return True


def _create_parcnetv2(variant: str, arch: str, pretrained: bool = False, **kwargs: Any) -> ParCNetV2:
    if pretrained and not _has_weight_source(kwargs):
        raise ValueError(
            f"{variant}: no published weights are bundled; pass "
            "pretrained_cfg_overlay=dict(file='/path/to/checkpoint.pth') with pretrained=True"
        )
    read = pretrained and _read_pretrained_file(kwargs)
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3))
    model = build_model_with_cfg(
        ParCNetV2,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, feature_cls="getter"),
        **{**VARIANTS[arch], **kwargs},
    )
    for module in (model, getattr(model, "model", None)) if read else ():  # tensors for loading only
        cfg = getattr(module, "pretrained_cfg", None)
        if isinstance(cfg, dict):
            cfg.pop("state_dict", None)
    return model


@register_model
def parcnetv2_xt(pretrained: bool = False, **kwargs: Any) -> ParCNetV2:
    return _create_parcnetv2("parcnetv2_xt", "xt", pretrained, **kwargs)


@register_model
def parcnetv2_tiny(pretrained: bool = False, **kwargs: Any) -> ParCNetV2:
    return _create_parcnetv2("parcnetv2_tiny", "tiny", pretrained, **kwargs)


@register_model
def parcnetv2_small(pretrained: bool = False, **kwargs: Any) -> ParCNetV2:
    return _create_parcnetv2("parcnetv2_small", "small", pretrained, **kwargs)


@register_model
def parcnetv2_base(pretrained: bool = False, **kwargs: Any) -> ParCNetV2:
    return _create_parcnetv2("parcnetv2_base", "base", pretrained, **kwargs)
