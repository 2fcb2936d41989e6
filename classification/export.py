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
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from parcnetv2.cli import add_debug_argument, run_cli

from .checkpointing import export_model_folder, export_weights

__all__ = ["main", "WEIGHT_SUFFIXES"]

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".pth.tar")
"""An OUTPUT ending in one of these is a weights file; one without a suffix a timm model folder."""


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
