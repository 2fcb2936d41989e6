"""Export the weights of a checkpoint alone (no optimizer): a timm model folder or one weights file.

    python -m parcnetv2.classification.export run/best.pth.tar parcnetv2_xt_shapes  # timm model folder
    python -m parcnetv2.classification.export run/best.pth.tar parcnetv2_tiny.safetensors [--ema] [--no-head]

An OUTPUT without a suffix is a model folder as timm's ``save_for_hf`` writes it (``config.json`` with
the architecture, ``num_classes``, model args, class names and ``pretrained_cfg``, plus
``model.safetensors``): ``timm.create_model("local-dir:OUTPUT", pretrained=True)`` loads it after
``import parcnetv2``, and ``timm.models.push_to_hf_hub`` can upload it. An OUTPUT ending in
``.safetensors`` or ``.pth`` is a bare state dict with the model's own key names, which
``parcnetv2.backbone.load_checkpoint_into``, ``timm.create_model(..., pretrained=True,
pretrained_cfg_overlay=dict(file=...))`` and the detection/segmentation backbone configs read; a
``<output>.json`` sidecar records the model name, classes and the exact timm call.

The functions behind it (``export_weights``, ``export_model_folder``, and ``export_best``, which the
trainer calls at the end of a run) and the readers that describe a checkpoint for ``validate`` live here.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from parcnetv2.backbone.checkpoint import (
    CheckpointError,
    load_checkpoint_into,
    read_checkpoint,
    strip_prefixes,
    unwrap_state_dict,
)
from parcnetv2.cli import add_debug_argument, run_cli
from parcnetv2.fileio import atomic_save, atomic_write, atomic_write_folder

from .checkpointing import describe_file, holds_epoch, to_plain

__all__ = [
    "MODEL_FOLDER_FILES",
    "WEIGHT_SUFFIXES",
    "describe_checkpoint",
    "read_described_checkpoint",
    "has_ema_weights",
    "export_weights",
    "export_model_folder",
    "export_best",
    "main",
]

MODEL_FOLDER_FILES = ("config.json", "model.safetensors")
"""What a timm model folder (``save_for_hf``'s layout, ``timm.create_model("local-dir:PATH")``) holds."""

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".pth.tar")
"""An OUTPUT ending in one of these is a weights file; one without a suffix a timm model folder."""


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
    if not out.name.endswith(WEIGHT_SUFFIXES):
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


def export_best(
    output_dir: Path, best: dict[str, Any], history: list[dict[str, Any]], use_ema: bool, log: Callable
) -> tuple[Path, Path]:
    """Export a run's recorded best epoch: ``best_weights.safetensors`` and the timm folder ``best_model/``;
    refuses a ``best.pth.tar`` of another epoch."""
    best_path = output_dir / "best.pth.tar"
    if not holds_epoch(best_path, best["epoch"], history):
        raise CheckpointError(
            f"{describe_file(best_path)}, not the best epoch {best['epoch']} this run records: "
            f"best_weights.safetensors not exported (--resume {output_dir / 'last.pth.tar'} restores or "
            "rebuilds it)"
        )
    weights_path = export_weights(best_path, output_dir / "best_weights.safetensors", use_ema=use_ema)
    model_dir = export_model_folder(best_path, output_dir / "best_model", use_ema=use_ema)
    log(
        f"exported the best weights ({'EMA' if use_ema else 'raw'}) to {weights_path} and the timm model "
        f"folder {model_dir} (timm.create_model('local-dir:{model_dir}', pretrained=True))"
    )
    return weights_path, model_dir


def main(argv: Sequence[str] | None = None) -> Path:
    """Command-line entry point; returns the written path."""
    p = argparse.ArgumentParser(
        prog="python -m parcnetv2.classification.export", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("checkpoint", help="training checkpoint (last.pth.tar / best.pth.tar) or a state dict")
    p.add_argument(
        "output", help="a timm model folder (no suffix), or a weights file ending in .safetensors or .pth"
    )
    p.add_argument(
        "--ema", action="store_true", help="export the EMA weights (the checkpoint must have them)"
    )
    p.add_argument("--no-head", action="store_true", help="leave out the classifier (backbone only)")
    p.add_argument("--model", help="timm model name, for a model folder from a file that does not record it")
    add_debug_argument(p)
    args = p.parse_args(argv)
    what = f"{'EMA' if args.ema else 'model'} weights{', no head' if args.no_head else ''}"
    out = Path(args.output)
    if out.name.endswith(WEIGHT_SUFFIXES):
        out = export_weights(args.checkpoint, out, use_ema=args.ema, drop_head=args.no_head)
        print(f"wrote {out} ({what}) and {out}.json")
        return out
    if out.suffix:
        raise ValueError(
            f"{out} ends in {out.suffix}: a weights file ends in {', '.join(WEIGHT_SUFFIXES)}, "
            "a timm model folder has no suffix"
        )
    out = export_model_folder(
        args.checkpoint, out, use_ema=args.ema, drop_head=args.no_head, model_name=args.model
    )
    print(
        f"wrote the timm model folder {out} ({what}): timm.create_model('local-dir:{out}', pretrained=True)"
    )
    return out


if __name__ == "__main__":
    run_cli(main, prog="parcnetv2.classification.export")
