"""Reading ParCNetV2 checkpoints in the formats researchers have, safely and loudly.

Accepted: ``.pth``/``.pth.tar``/``.pt`` (read with ``torch.load(weights_only=True)``) and
``.safetensors``; a bare state dict or one wrapped under ``state_dict``, ``state_dict_ema``,
``model`` or ``module``; keys with or without ``module.`` (or other given) prefixes. Oversized
kernels whose length differs from the model's are resized; every other mismatch is an error that
names the keys.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn as nn

from .oversized_conv import resize_oc_kernel

__all__ = [
    "CheckpointError",
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


def _describe(keys: Iterable[str], limit: int = 20) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_checkpoint_into(
    model: nn.Module,
    checkpoint: str | os.PathLike | Mapping[str, Any],
    use_ema: bool = False,
    prefixes: Iterable[str] = ("module.",),
    ignore: Iterable[str] = (),
    strict: bool = True,
) -> dict[str, list[str]]:
    """Load a checkpoint (path or loaded object) into ``model``.

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
    raw = read_checkpoint(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    state = strip_prefixes(unwrap_state_dict(raw, use_ema), prefixes)
    ignore = tuple(ignore)
    if ignore:
        state = {k: v for k, v in state.items() if not k.startswith(ignore)}
    model_state = model.state_dict()
    missing = [k for k in model_state if k not in state]
    unexpected = [k for k in state if k not in model_state]
    if strict and (missing or unexpected):
        lines = []
        if missing:
            lines.append(f"missing from checkpoint ({len(missing)}): {_describe(missing)}")
        if unexpected:
            lines.append(f"not in model ({len(unexpected)}): {_describe(unexpected)}")
        raise CheckpointError("checkpoint keys do not fit the model:\n  " + "\n  ".join(lines))
    state = adapt_state_dict({k: v for k, v in state.items() if k in model_state}, model_state)
    model.load_state_dict(state, strict=False)
    return dict(loaded=sorted(state), missing=missing, unexpected=unexpected)
