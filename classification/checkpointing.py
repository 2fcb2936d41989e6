"""Training checkpoints (atomic, resumable) and weights-only exports for detection/segmentation.

A training checkpoint is a dict loadable with ``torch.load(weights_only=True)`` holding ``state_dict``
(the model), optionally ``state_dict_ema``, ``optimizer``, ``scheduler``, ``amp_scaler``, ``epoch``
(epochs completed), ``num_updates``, per-rank ``rng`` states, ``args``, ``class_to_idx``, ``history``
and ``best``. timm's loader and ``parcnetv2.backbone.load_checkpoint_into`` read it as is (timm prefers
the EMA weights when present). ``export_weights`` writes the bare model state dict.
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from parcnetv2.backbone.checkpoint import CheckpointError, read_checkpoint, strip_prefixes, unwrap_state_dict

__all__ = [
    "CHECKPOINT_FORMAT",
    "WriteError",
    "atomic_write",
    "atomic_save",
    "remove_stale_temp_files",
    "peek_checkpoint",
    "capture_rng_state",
    "restore_rng_state",
    "to_plain",
    "read_training_checkpoint",
    "export_weights",
]

CHECKPOINT_FORMAT = "parcnetv2-classification/1"

_UMASK = os.umask(0)
os.umask(_UMASK)


class WriteError(OSError):
    """Writing a file failed (disk full, no permission, ...); the message names the file."""


def atomic_write(path: str | os.PathLike, write: Any, suffix: str = "") -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then rename it over ``path``.

    Readers see either the old file or the complete new one, never a partial write. On an error the
    temporary file is removed and :class:`WriteError` names ``path``; a killed process leaves its
    temporary file (``.NAME.XXXXXXXX.tmp``), which :func:`remove_stale_temp_files` clears.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would make results private to the writer
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(err, WriteError) or not isinstance(err, Exception):  # Ctrl-C stays itself
            raise
        failure = WriteError(f"cannot write {path}: {type(err).__name__}: {err}")
        failure.errno = err.errno if isinstance(err, OSError) else None  # e.g. ENOSPC for a full disk
        raise failure from err
    return path


def remove_stale_temp_files(folder: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Delete the temporary files that killed :func:`atomic_write` calls for ``folder/NAME`` left behind.

    Only files named exactly as ``atomic_write`` names them for one of ``names`` (``.NAME.`` + the 8
    random characters of ``tempfile`` + ``.tmp``) are touched. Returns the removed paths.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    patterns = [re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp") for name in names]
    removed = []
    for entry in os.scandir(folder):
        if entry.is_file(follow_symlinks=False) and any(p.fullmatch(entry.name) for p in patterns):
            os.remove(entry.path)
            removed.append(Path(entry.path))
    return sorted(removed)


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically (temporary file + ``os.replace``)."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def to_plain(value: Any) -> Any:
    """``value`` as JSON-like builtins (dict/list/str/number/bool/None), safe for ``weights_only`` loads."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)


# ---------------------------------------------------------------------------------------- RNG state
def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU (and CUDA) generator states, in ``weights_only``-loadable types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss = random.getstate()
    state = {
        "python": [version, list(py_state), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what ``capture_rng_state`` captured."""
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------- reading
def read_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by the trainer; raise ``CheckpointError`` for anything else."""
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, Mapping) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a training checkpoint of this trainer (no format '{CHECKPOINT_FORMAT}'); "
            "--resume needs a last.pth.tar/best.pth.tar written by parcnetv2.classification.train"
        )
    return dict(checkpoint)


def peek_checkpoint(path: str | os.PathLike) -> dict[str, Any] | None:
    """A training checkpoint's contents, memory-mapped (cheap to inspect); None when absent or unreadable."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # missing, truncated, not a zip checkpoint, or not weights-only loadable
        return None
    if not isinstance(checkpoint, Mapping) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        return None
    return dict(checkpoint)


# ---------------------------------------------------------------------------------------- export
def export_weights(
    checkpoint: str | os.PathLike | Mapping[str, Any],
    out: str | os.PathLike,
    use_ema: bool = False,
    drop_head: bool = False,
) -> Path:
    """Write the model weights alone (no optimizer state) as ``.safetensors`` or ``.pth``.

    Args:
        checkpoint: a training checkpoint (path or loaded) or any state dict the backbone loader reads.
        out: destination; the suffix picks the format (``.safetensors``, ``.pth``/``.pt``/``.pth.tar``).
        use_ema: export the EMA weights (an error when the checkpoint has none).
        drop_head: leave out the classifier (``head.*``), e.g. for detection/segmentation backbones.

    A ``<out>.json`` sidecar records the model name, number of classes, class names and source,
    and the ``timm.create_model`` call that loads the file.
    """
    out = Path(out)
    if not out.name.endswith((".safetensors", ".pth", ".pt", ".pth.tar")):
        raise ValueError(f"export path must end in .safetensors, .pth, .pt or .pth.tar, got {out}")
    raw = read_checkpoint(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    if use_ema and not (isinstance(raw, Mapping) and isinstance(raw.get("state_dict_ema"), Mapping)):
        raise CheckpointError(
            f"{checkpoint if isinstance(checkpoint, (str, os.PathLike)) else 'checkpoint'} "
            "has no EMA weights (state_dict_ema); export without --ema"
        )
    state = strip_prefixes(unwrap_state_dict(raw, use_ema=use_ema))
    if drop_head:
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    if out.name.endswith(".safetensors"):
        from safetensors.torch import save_file

        atomic_write(out, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    else:
        atomic_save(state, out)

    meta = raw if isinstance(raw, Mapping) else {}
    args = meta.get("args") or {}
    head = state.get("head.weight")
    num_classes = int(head.shape[0]) if head is not None else 0
    model = args.get("model")
    class_to_idx = meta.get("class_to_idx") or {}
    info = {
        "model": model,
        "num_classes": num_classes,
        "model_kwargs": args.get("model_kwargs") or {},
        "classes": sorted(class_to_idx, key=class_to_idx.get),
        "input_size": (meta.get("pretrained_cfg") or {}).get("input_size"),
        "weights": "ema" if use_ema else "model",
        "epoch": meta.get("epoch"),
        "source": str(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else None,
        "timm": f"timm.create_model('{model or 'MODEL'}', pretrained=True, "
        f"pretrained_cfg_overlay=dict(file='{out.name}', num_classes={num_classes}))",
    }
    text = json.dumps(to_plain(info), indent=2) + "\n"
    atomic_write(Path(f"{out}.json"), lambda tmp: Path(tmp).write_text(text))
    return out
