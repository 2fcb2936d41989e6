"""Training checkpoints (resumable, written atomically) and exports for timm, detection and segmentation.

A training checkpoint is a dict loadable with ``torch.load(weights_only=True)`` holding ``state_dict``
(the model), optionally ``state_dict_ema``, ``optimizer``, ``scheduler``, ``amp_scaler``, ``epoch``
(epochs completed), ``num_updates``, per-rank ``rng`` states, ``args``, ``class_to_idx``, ``history``,
``best`` and ``pretrained_cfg``. timm's loader and ``parcnetv2.backbone.load_checkpoint_into`` read it as
is (timm prefers the EMA weights when present). ``export_weights`` writes the bare model state dict,
``export_model_folder`` a timm model folder (``save_for_hf``'s layout).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from parcnetv2.backbone.checkpoint import (
    CheckpointError,
    load_checkpoint_into,
    read_checkpoint,
    strip_prefixes,
    unwrap_state_dict,
)

from parcnetv2.fileio import atomic_save, atomic_write, atomic_write_folder

__all__ = [
    "CHECKPOINT_FORMAT",
    "MODEL_FOLDER_FILES",
    "peek_checkpoint",
    "capture_rng_state",
    "restore_rng_state",
    "to_plain",
    "read_training_checkpoint",
    "describe_checkpoint",
    "read_described_checkpoint",
    "has_ema_weights",
    "export_weights",
    "export_model_folder",
]

CHECKPOINT_FORMAT = "parcnetv2-classification/1"

MODEL_FOLDER_FILES = ("config.json", "model.safetensors")
"""What a timm model folder (``save_for_hf``'s layout, ``timm.create_model("local-dir:PATH")``) holds."""


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


def describe_checkpoint(raw: Any, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Model name, kwargs, class names and data config recorded with a checkpoint, if any.

    A training checkpoint records them itself; a weights file exported by :func:`export_weights` in its
    ``<file>.json`` sidecar. Keys: ``model``, ``model_kwargs``, ``classes``, ``input_size``,
    ``pretrained_cfg`` (only those found).
    """
    if isinstance(raw, Mapping) and "args" in raw:
        args, mapping = raw["args"], raw.get("class_to_idx") or {}
        cfg = dict(raw.get("pretrained_cfg") or {})
        return dict(
            model=args.get("model"),
            model_kwargs=args.get("model_kwargs") or {},
            classes=sorted(mapping, key=mapping.get),
            input_size=cfg.get("input_size"),
            pretrained_cfg=cfg,
        )
    side = Path(f"{path}.json") if path is not None else None
    info = json.loads(side.read_text()) if side is not None and side.is_file() else {}
    keys = ("model", "model_kwargs", "classes", "input_size", "pretrained_cfg")
    return {k: v for k, v in info.items() if k in keys}


def read_described_checkpoint(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Read a checkpoint file or a timm model folder; returns (contents, :func:`describe_checkpoint`).

    A model folder (``config.json`` + ``model.safetensors``, as :func:`export_model_folder` writes it)
    is described by its ``config.json``: architecture, model args, class names, ``pretrained_cfg``.
    """
    folder = Path(path)
    if not (folder.is_dir() and (folder / "config.json").is_file()):
        raw = read_checkpoint(path)
        return raw, describe_checkpoint(raw, path)
    try:
        config = json.loads((folder / "config.json").read_text())
    except ValueError as err:
        raise CheckpointError(f"{folder / 'config.json'} is no valid JSON: {err}") from None
    cfg = dict(config.get("pretrained_cfg") or {})
    own = ("num_classes", "drop_path_rate", "head_dropout", "drop_rate")  # set by create_classifier
    model_args = {k: v for k, v in (config.get("model_args") or {}).items() if k not in own}
    info = dict(
        model=config.get("architecture"),
        model_kwargs=model_args,
        classes=list(config.get("label_names") or []),
        input_size=cfg.get("input_size"),
        pretrained_cfg=cfg,
    )
    return read_checkpoint(folder / MODEL_FOLDER_FILES[1]), info


def has_ema_weights(raw: Any) -> bool:
    """Whether a loaded checkpoint holds EMA weights (``state_dict_ema``)."""
    return isinstance(raw, Mapping) and isinstance(raw.get("state_dict_ema"), Mapping)


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
    if use_ema and not has_ema_weights(raw):
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
        "pretrained_cfg": meta.get("pretrained_cfg") or {},
        "weights": "ema" if use_ema else "model",
        "epoch": meta.get("epoch"),
        "source": str(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else None,
        "timm": f"timm.create_model('{model or 'MODEL'}', pretrained=True, "
        f"pretrained_cfg_overlay=dict(file='{out.name}', num_classes={num_classes}))",
    }
    text = json.dumps(to_plain(info), indent=2) + "\n"
    atomic_write(Path(f"{out}.json"), lambda tmp: Path(tmp).write_text(text))
    return out


def export_model_folder(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    use_ema: bool = False,
    drop_head: bool = False,
    model_name: str | None = None,
) -> Path:
    """Write a timm model folder (``config.json`` + ``model.safetensors``) as ``timm``'s ``save_for_hf`` does.

    ``timm.create_model("local-dir:OUT", pretrained=True)`` (after ``import parcnetv2``) rebuilds the
    model (architecture, ``num_classes``, model kwargs) with these weights and their ``pretrained_cfg``
    (input size, crop, interpolation, mean/std); ``label_names`` holds the class names;
    ``timm.models.push_to_hf_hub`` uploads the same layout. The model name comes from the checkpoint (or
    its ``.json`` sidecar), else ``model_name``.
    """
    from timm.models._hub import save_for_hf

    from .modeling import create_classifier

    raw, info = read_described_checkpoint(checkpoint)
    if use_ema and not has_ema_weights(raw):
        raise CheckpointError(f"{checkpoint} has no EMA weights (state_dict_ema); export without --ema")
    name = model_name or info.get("model")
    if not name:
        raise CheckpointError(f"{checkpoint} does not record its model: pass --model (e.g. parcnetv2_tiny)")
    state = strip_prefixes(unwrap_state_dict(raw, use_ema=use_ema))
    if drop_head:
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    head = state.get("head.weight")
    num_classes = int(head.shape[0]) if head is not None else 0
    model = create_classifier(name, num_classes, model_kwargs=info.get("model_kwargs"))
    load_checkpoint_into(model, state)
    cfg = info.get("pretrained_cfg") or {}
    data_config = {
        k: cfg[k] for k in ("input_size", "crop_pct", "interpolation", "mean", "std") if cfg.get(k)
    }
    if info.get("input_size") and "input_size" not in data_config:
        data_config["input_size"] = info["input_size"]
    classes = list(info.get("classes") or [])
    model_config = {"label_names": classes} if classes and len(classes) == num_classes else {}
    return atomic_write_folder(
        out,
        lambda tmp: save_for_hf(
            model,
            str(tmp),
            model_config=model_config,
            safe_serialization=True,
            data_config=data_config or None,
        ),
        replaceable=MODEL_FOLDER_FILES,
    )
