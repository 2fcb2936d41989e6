"""Refuse evaluating or drawing with a checkpoint that does not hold the model's weights.

mmengine loads checkpoints non-strictly: a segmentation checkpoint on a detection config, or a
classification checkpoint, leaves most of the model at its random initialisation and prints only a
"do not match exactly" warning. :func:`check_checkpoint_covers` compares the checkpoint's keys (and
shapes) with the model's and names what is missing by group -- ``backbone``, ``neck``, ``heads``
(``rpn_head``, ``roi_head``, ``decode_head``, ``auxiliary_head`` ...) -- in a one-line error, or a
warning when the caller means it (``allow_partial``, ``--allow-partial`` in the tools).

Imports only torch (mmengine checkpoints are read through :mod:`parcnetv2.openmmlab.weights_only`'s
allow-list, still ``weights_only``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch.nn as nn

from parcnetv2.backbone.checkpoint import CheckpointError, load_state, strip_prefixes

__all__ = ["PartialCheckpointWarning", "check_checkpoint_covers", "key_group"]

_GROUP_ORDER = ("backbone", "neck", "heads")


class PartialCheckpointWarning(UserWarning):
    """A checkpoint that leaves part of the model at its initial weights, loaded on request."""


def key_group(key: str) -> str:
    """``'backbone'``, ``'neck'``, ``'heads'`` (any ``*head*`` module) or the key's first component."""
    top = key.split(".", 1)[0]
    if top in ("backbone", "neck"):
        return top
    return "heads" if "head" in top else top


def _state_of(checkpoint: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(checkpoint, (str, os.PathLike)):
        from .weights_only import allow_mmengine_checkpoints

        try:
            allow_mmengine_checkpoints()
        except ModuleNotFoundError:  # no mmengine installed: no mmengine checkpoints to allow for
            pass
    return load_state(checkpoint)


def _describe_group(group: str, missing: list[str], total: int) -> str:
    modules = sorted({k.split(".", 1)[0] for k in missing})
    where = f"{', '.join(modules)}: " if group == "heads" else ""
    count = f"all {total} keys" if len(missing) == total else f"{len(missing)} of {total} keys"
    return f"{group} ({where}{count})"


def check_checkpoint_covers(
    model: nn.Module,
    state_dict: str | os.PathLike | Mapping[str, Any],
    allow_partial: bool = False,
    name: str | None = None,
    hint: str = "pass --allow-partial to use it anyway",
) -> dict[str, list[str]]:
    """Check that ``state_dict`` has every weight of ``model`` with the model's shape.

    Args:
        model: the built detector/segmentor (a ``module.`` wrapper prefix is ignored on both sides).
        state_dict: a checkpoint file, a loaded checkpoint (``{'state_dict': ..., 'meta': ...}``) or a
            bare state dict.
        allow_partial: warn (:class:`PartialCheckpointWarning`) instead of raising.
        name: how to call the checkpoint in the message (default: its path, or ``'checkpoint'``).
        hint: appended to the error message.

    Returns:
        ``{group: [missing or mismatched keys]}`` for each group not fully covered (empty when covered).

    Raises:
        CheckpointError: one line, e.g. ``checkpoint seg.pth does not cover the model: missing neck (all
            16 keys), heads (roi_head, rpn_head: all 38 keys)``, unless ``allow_partial``.
    """
    if name is None:
        name = os.fspath(state_dict) if isinstance(state_dict, (str, os.PathLike)) else "checkpoint"
    state = _state_of(state_dict)
    model_state = strip_prefixes(model.state_dict())
    totals: dict[str, int] = {}
    missing: dict[str, list[str]] = {}
    mismatched = 0
    for key, value in model_state.items():
        group = key_group(key)
        totals[group] = totals.get(group, 0) + 1
        found = state.get(key)
        if found is None or getattr(found, "shape", None) != value.shape:
            missing.setdefault(group, []).append(key)
            mismatched += found is not None
    if not missing:
        return {}
    order = [g for g in _GROUP_ORDER if g in missing] + sorted(g for g in missing if g not in _GROUP_ORDER)
    missing = {g: missing[g] for g in order}
    parts = ", ".join(_describe_group(g, keys, totals[g]) for g, keys in missing.items())
    shapes = f" ({mismatched} of them with another shape)" if mismatched else ""
    message = f"checkpoint {name} does not cover the model: missing {parts}{shapes}"
    if not allow_partial:
        raise CheckpointError(f"{message}; {hint}" if hint else message)
    warnings.warn(
        f"{message}; those weights keep their initial values", PartialCheckpointWarning, stacklevel=2
    )
    return missing
