"""Reading ParCNetV2 checkpoints in the formats researchers have, safely and loudly.

Accepted: ``.pth``/``.pth.tar``/``.pt`` (read with ``torch.load(weights_only=True)``) and
``.safetensors``; a bare state dict or one wrapped under ``state_dict``, ``state_dict_ema``,
``model`` or ``module``; keys with or without ``module.`` (or other given) prefixes. Oversized
kernels whose length differs from the model's are resized; every other mismatch is an error that
names the keys.

:func:`fit_checkpoint` is the one path from a checkpoint (file or loaded object) to tensors that fit a
model: timm's ``checkpoint_filter_fn``, :func:`load_checkpoint_into`, the OpenMMLab backbone's
``load_pretrained_backbone`` and ``tools/model_converters/convert_checkpoint.py`` all call it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from .oversized_conv import resize_oc_kernel

__all__ = [
    "CheckpointError",
    "FittedCheckpoint",
    "describe_keys",
    "fit_checkpoint",
    "read_checkpoint",
    "unwrap_state_dict",
    "strip_prefixes",
    "adapt_state_dict",
    "load_checkpoint_into",
    "is_oc_kernel",
]

_WRAPPER_KEYS = ("state_dict", "model", "module")
_EMA_KEYS = ("state_dict_ema", "model_ema")


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or does not fit the model."""


def read_checkpoint(path: str | os.PathLike) -> Any:
    """Load a checkpoint file without executing code from it (``weights_only=True``/safetensors)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path, device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt, truncated, or pickles arbitrary objects
        raise CheckpointError(f"cannot read checkpoint {path}: {type(err).__name__}: {err}") from err


def unwrap_state_dict(checkpoint: Mapping[str, Any], use_ema: bool = False) -> dict[str, torch.Tensor]:
    """Find the tensor dict in a checkpoint, preferring the EMA weights when ``use_ema``."""
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"expected a dict-like checkpoint, got {type(checkpoint).__name__}")
    order = (*_EMA_KEYS, *_WRAPPER_KEYS) if use_ema else (*_WRAPPER_KEYS, *_EMA_KEYS)
    for key in order:
        inner = checkpoint.get(key)
        if isinstance(inner, Mapping) and inner:
            return unwrap_state_dict(inner, use_ema)
    state = {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise CheckpointError(f"no tensors found in checkpoint (top-level keys: {sorted(checkpoint)[:10]})")
    return state


def strip_prefixes(
    state_dict: Mapping[str, torch.Tensor], prefixes: Iterable[str] = ("module.",)
) -> dict[str, torch.Tensor]:
    """Remove any of ``prefixes`` (repeatedly, e.g. ``module.backbone.``) from the start of each key."""
    prefixes = tuple(prefixes)
    out = {}
    for key, value in state_dict.items():
        stripped = True
        while stripped:
            stripped = False
            for prefix in prefixes:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix) :], True
        out[key] = value
    return out


def is_oc_kernel(key: str) -> bool:
    """Whether ``key`` names an oversized-convolution kernel (``...dwconv1.conv_h/conv_w.weight``)."""
    return key.endswith(("dwconv1.conv_h.weight", "dwconv1.conv_w.weight"))


def adapt_state_dict(
    state_dict: Mapping[str, torch.Tensor], model_state: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Resize oversized kernels to the model's lengths; raise on any other shape mismatch."""
    adapted, mismatched = {}, []
    for key, value in state_dict.items():
        target = model_state.get(key)
        if target is not None and value.shape != target.shape:
            axis = 2 if key.endswith("conv_h.weight") else 3
            same_except_length = (
                is_oc_kernel(key)
                and value.ndim == 4
                and value.shape[:axis] == target.shape[:axis]
                and value.shape[axis + 1 :] == target.shape[axis + 1 :]
            )
            if not same_except_length:
                mismatched.append(f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(target.shape)}")
                continue
            value = resize_oc_kernel(value.float(), target.shape[axis], axis).to(value.dtype)
        adapted[key] = value
    if mismatched:
        raise CheckpointError("checkpoint shapes do not fit the model:\n  " + "\n  ".join(mismatched))
    return adapted


def describe_keys(keys: Iterable[str], limit: int = 20) -> str:
    """``'a, b, c ... (+N more)'``: the first ``limit`` of ``keys``, sorted (for error messages)."""
    keys = sorted(keys)
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


@dataclass
class FittedCheckpoint:
    """What :func:`fit_checkpoint` made of a checkpoint.

    ``state`` holds every selected, not dropped tensor (shapes fitted to the model where it has the
    key); ``missing``: model keys the checkpoint lacks; ``unexpected``: checkpoint keys the model
    lacks; ``ignored``: keys dropped on purpose; ``resized``: oversized kernels resized to the model.
    """

    state: dict[str, torch.Tensor]
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)


def fit_checkpoint(
    checkpoint: str | os.PathLike | Mapping[str, Any],
    model_state: Mapping[str, torch.Tensor] | None = None,
    *,
    use_ema: bool = False,
    strip: Iterable[str] = ("module.",),
    select: str | None = None,
    backbone: bool = False,
    drop: Iterable[str] = (),
    optional: Iterable[str] = (),
    unchecked: Iterable[str] = (),
    strict: bool = True,
    target: str = "the model",
) -> FittedCheckpoint:
    """Read ``checkpoint`` and fit its tensors to ``model_state``: the one checkpoint path.

    Args:
        checkpoint: a ``.pth``/``.pth.tar``/``.pt``/``.safetensors`` file (published, timm, ours,
            mmengine/mmdet/mmseg), or an already loaded checkpoint / state dict.
        model_state: the model's state dict; ``None`` only selects (no key or shape check).
        use_ema: prefer ``state_dict_ema``/``model_ema`` when the checkpoint has them.
        strip: key prefixes removed (repeatedly) from every key (``module.`` from DDP).
        select: keep only the keys under this prefix, without it (an error when there are none).
        backbone: narrow a whole detector/segmentor (``backbone.*`` beside ``neck.*``/heads) to its
            ``backbone.*`` keys, without the prefix; any other state dict is kept as it is.
        drop: key prefixes left out on purpose (e.g. the classifier), listed in ``ignored``.
        optional: model key prefixes the checkpoint need not hold (e.g. new out norms).
        unchecked: key prefixes passed through without shape fitting (timm's classifier, which timm
            drops itself when ``num_classes`` differs).
        strict: raise when a (non-optional) model key is missing or a checkpoint key is unexpected.
        target: how the error message calls the model.

    Raises:
        CheckpointError: an unreadable or missing file, no key under ``select``, keys that do not fit
            (``strict``), or shapes that do not fit other than an oversized kernel's length; the
            message names the keys.
    """
    source = os.fspath(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else None
    raw = read_checkpoint(checkpoint) if source is not None else checkpoint
    state = strip_prefixes(unwrap_state_dict(raw, use_ema), strip)
    if select:
        selected = {k[len(select) :]: v for k, v in state.items() if k.startswith(select)}
        if not selected:
            raise CheckpointError(
                f"no checkpoint key starts with prefix {select!r} (keys: {sorted(state)[:8]} ...)"
            )
        state = selected
    elif backbone and any(k.startswith("backbone.") for k in state):
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    drop = tuple(drop)
    ignored = sorted(k for k in state if k.startswith(drop)) if drop else []
    if ignored:
        state = {k: v for k, v in state.items() if not k.startswith(drop)}
    if model_state is None:
        return FittedCheckpoint(state, ignored=ignored)

    optional, unchecked = tuple(optional), tuple(unchecked)
    required = [k for k in model_state if not (optional and k.startswith(optional))]
    missing = [k for k in required if k not in state]
    unexpected = [k for k in state if k not in model_state]
    if strict and (missing or unexpected):
        lines = [f"checkpoint {source or '<in-memory checkpoint>'} does not fit {target}:"]
        if missing:
            count = f"{len(missing)}/{len(required)}"
            lines.append(f"missing from checkpoint ({count}): {describe_keys(missing)}")
        if unexpected:
            lines.append(f"not in the model ({len(unexpected)}): {describe_keys(unexpected)}")
        raise CheckpointError("\n  ".join(lines))
    fit = {k: v for k, v in state.items() if not (unchecked and k.startswith(unchecked))}
    resized = sorted(k for k, v in fit.items() if k in model_state and v.shape != model_state[k].shape)
    state = {**state, **adapt_state_dict(fit, model_state)}
    return FittedCheckpoint(state, missing, unexpected, ignored, resized)


def load_checkpoint_into(
    model: nn.Module,
    checkpoint: str | os.PathLike | Mapping[str, Any],
    use_ema: bool = False,
    prefixes: Iterable[str] = ("module.",),
    ignore: Iterable[str] = (),
    strict: bool = True,
) -> dict[str, list[str]]:
    """Load a checkpoint (path or loaded object) into ``model`` through :func:`fit_checkpoint`.

    Args:
        model: the module to fill.
        checkpoint: a file path or an already loaded checkpoint/state dict.
        use_ema: prefer ``state_dict_ema`` when the checkpoint has both.
        prefixes: key prefixes to strip (``module.`` from DDP; add ``backbone.`` for mm checkpoints).
        ignore: key prefixes to drop from the checkpoint before matching (e.g. ``("head.",)``).
        strict: raise when a model parameter is left unloaded or a checkpoint key is unused.

    Returns:
        ``{"loaded": [...], "missing": [...], "unexpected": [...]}`` key lists.
    """
    model_state = model.state_dict()
    fitted = fit_checkpoint(
        checkpoint, model_state, use_ema=use_ema, strip=prefixes, drop=ignore, strict=strict
    )
    state = {k: v for k, v in fitted.state.items() if k in model_state}
    model.load_state_dict(state, strict=False)
    return dict(loaded=sorted(state), missing=fitted.missing, unexpected=fitted.unexpected)
