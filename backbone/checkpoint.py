"""Reading ParCNetV2 checkpoints in the formats researchers have, safely and loudly, in small steps.

Accepted: ``.pth``/``.pth.tar``/``.pt`` (read with ``torch.load(weights_only=True)``) and
``.safetensors``; a bare state dict or one wrapped under ``state_dict``, ``state_dict_ema``,
``model`` or ``module``; keys with or without ``module.`` (or other given) prefixes. Oversized
kernels whose length differs from the model's are resized; every other mismatch is an error that
names the keys.

The steps, which callers combine: **read** (:func:`read_checkpoint`), **unwrap**
(:func:`unwrap_state_dict`), **remap** (:func:`strip_prefixes`, :func:`select_prefix`,
:func:`backbone_part`, :func:`drop_prefixes`), **check** (:func:`check_keys`) and **resize**
(:func:`adapt_state_dict`). :func:`load_state` is read + unwrap + strip, :func:`fit_state_dict` check +
resize, :func:`fit_checkpoint` the two together. timm's ``checkpoint_filter_fn`` fits the tensors timm
hands it, :func:`load_checkpoint_into` loads a classifier, the OpenMMLab backbone's
``load_pretrained_backbone`` and ``tools/model_converters/convert_checkpoint.py`` add their remapping.
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
    "adapt_state_dict",
    "backbone_part",
    "check_keys",
    "describe_keys",
    "drop_prefixes",
    "fit_checkpoint",
    "fit_state_dict",
    "is_oc_kernel",
    "load_checkpoint_into",
    "load_state",
    "read_checkpoint",
    "select_prefix",
    "strip_prefixes",
    "unwrap_state_dict",
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
    """What :func:`fit_state_dict` made of a state dict.

    ``state`` holds every tensor (shapes fitted to the model where it has the key); ``missing``: model
    keys the checkpoint lacks; ``unexpected``: checkpoint keys the model lacks; ``resized``: oversized
    kernels resized to the model.
    """

    state: dict[str, torch.Tensor]
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)


def select_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The keys under ``prefix``, without it (an error naming some keys when there are none)."""
    selected = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not selected:
        raise CheckpointError(
            f"no checkpoint key starts with prefix {prefix!r} (keys: {sorted(state_dict)[:8]} ...)"
        )
    return selected


def backbone_part(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A whole detector/segmentor (``backbone.*`` beside ``neck.*``/heads) narrowed to its ``backbone.*``
    keys, without the prefix; any other state dict as it is."""
    if any(k.startswith("backbone.") for k in state_dict):
        return select_prefix(state_dict, "backbone.")
    return dict(state_dict)


def drop_prefixes(
    state_dict: Mapping[str, torch.Tensor], prefixes: Iterable[str]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The state dict without the keys under ``prefixes`` (e.g. the classifier), and those keys, sorted."""
    prefixes = tuple(prefixes)
    if not prefixes:
        return dict(state_dict), []
    dropped = sorted(k for k in state_dict if k.startswith(prefixes))
    return {k: v for k, v in state_dict.items() if not k.startswith(prefixes)}, dropped


def load_state(
    checkpoint: str | os.PathLike | Mapping[str, Any],
    use_ema: bool = False,
    strip: Iterable[str] = ("module.",),
) -> dict[str, torch.Tensor]:
    """Read (a file) + unwrap (EMA first when ``use_ema``) + strip ``strip`` prefixes: the tensors."""
    raw = read_checkpoint(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    return strip_prefixes(unwrap_state_dict(raw, use_ema), strip)


def check_keys(
    state_dict: Mapping[str, torch.Tensor],
    model_state: Mapping[str, torch.Tensor],
    optional: Iterable[str] = (),
    strict: bool = True,
    source: str | None = None,
    target: str = "the model",
) -> tuple[list[str], list[str]]:
    """The model keys the state dict lacks (but those under ``optional``) and its keys the model lacks.

    Raises:
        CheckpointError: ``strict`` and either list is not empty; the message names ``source`` (the file),
            ``target`` (the model) and the keys.
    """
    optional = tuple(optional)
    required = [k for k in model_state if not (optional and k.startswith(optional))]
    missing = [k for k in required if k not in state_dict]
    unexpected = [k for k in state_dict if k not in model_state]
    if strict and (missing or unexpected):
        lines = [f"checkpoint {source or '<in-memory checkpoint>'} does not fit {target}:"]
        if missing:
            count = f"{len(missing)}/{len(required)}"
            lines.append(f"missing from checkpoint ({count}): {describe_keys(missing)}")
        if unexpected:
            lines.append(f"not in the model ({len(unexpected)}): {describe_keys(unexpected)}")
        raise CheckpointError("\n  ".join(lines))
    return missing, unexpected


def fit_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    model_state: Mapping[str, torch.Tensor],
    optional: Iterable[str] = (),
    unchecked: Iterable[str] = (),
    strict: bool = True,
    source: str | None = None,
    target: str = "the model",
) -> FittedCheckpoint:
    """Check (:func:`check_keys`) and resize (:func:`adapt_state_dict`) tensors for ``model_state``.

    ``unchecked``: key prefixes passed through without shape fitting (timm's classifier, which timm drops
    itself when ``num_classes`` differs); the other arguments as :func:`check_keys`.
    """
    missing, unexpected = check_keys(state_dict, model_state, optional, strict, source, target)
    unchecked = tuple(unchecked)
    fit = {k: v for k, v in state_dict.items() if not (unchecked and k.startswith(unchecked))}
    resized = sorted(k for k, v in fit.items() if k in model_state and v.shape != model_state[k].shape)
    state = {**state_dict, **adapt_state_dict(fit, model_state)}
    return FittedCheckpoint(state, missing, unexpected, resized)


def fit_checkpoint(
    checkpoint: str | os.PathLike | Mapping[str, Any],
    model_state: Mapping[str, torch.Tensor],
    use_ema: bool = False,
    strict: bool = True,
    target: str = "the model",
) -> FittedCheckpoint:
    """:func:`load_state` then :func:`fit_state_dict`: a checkpoint file (published, timm, ours,
    mmengine/mmdet/mmseg) or a loaded checkpoint, fitted to ``model_state`` as it is (no remapping
    besides the ``module.`` prefix).

    Raises:
        CheckpointError: an unreadable or missing file, keys that do not fit (``strict``), or shapes that
            do not fit other than an oversized kernel's length; the message names the keys.
    """
    source = os.fspath(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else None
    state = load_state(checkpoint, use_ema)
    return fit_state_dict(state, model_state, strict=strict, source=source, target=target)


def load_checkpoint_into(
    model: nn.Module,
    checkpoint: str | os.PathLike | Mapping[str, Any],
    use_ema: bool = False,
    prefixes: Iterable[str] = ("module.",),
    ignore: Iterable[str] = (),
    strict: bool = True,
) -> dict[str, list[str]]:
    """Load a checkpoint (path or loaded object) into ``model``: :func:`load_state`, :func:`drop_prefixes`,
    :func:`fit_state_dict`.

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
    source = os.fspath(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else None
    state, _ = drop_prefixes(load_state(checkpoint, use_ema, prefixes), ignore)
    fitted = fit_state_dict(state, model_state, strict=strict, source=source)
    state = {k: v for k, v in fitted.state.items() if k in model_state}
    model.load_state_dict(state, strict=False)
    return dict(loaded=sorted(state), missing=fitted.missing, unexpected=fitted.unexpected)
