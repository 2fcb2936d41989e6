"""Export the weights of a training checkpoint alone (no optimizer), for timm, detection and segmentation.

    python -m parcnetv2.classification.export run/best.pth.tar parcnetv2_tiny.safetensors [--ema] [--no-head]

The output is a bare state dict (``.safetensors`` or ``.pth``) with the model's own key names, which
``parcnetv2.backbone.load_checkpoint_into``, ``timm.create_model(..., pretrained=True,
pretrained_cfg_overlay=dict(file=...))`` and the detection/segmentation backbone configs read. A
``<output>.json`` sidecar records the model name, classes and the exact timm call.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from parcnetv2.cli import add_debug_argument, run_cli

from .checkpointing import export_weights

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> Path:
    """Command-line entry point; returns the written path."""
    p = argparse.ArgumentParser(
        prog="python -m parcnetv2.classification.export", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("checkpoint", help="training checkpoint (last.pth.tar / best.pth.tar) or a state dict")
    p.add_argument("output", help="destination ending in .safetensors or .pth")
    p.add_argument(
        "--ema", action="store_true", help="export the EMA weights (the checkpoint must have them)"
    )
    p.add_argument("--no-head", action="store_true", help="leave out the classifier (backbone only)")
    add_debug_argument(p)
    args = p.parse_args(argv)
    out = export_weights(args.checkpoint, args.output, use_ema=args.ema, drop_head=args.no_head)
    what = f"{'EMA' if args.ema else 'model'} weights{', no head' if args.no_head else ''}"
    print(f"wrote {out} ({what}) and {out}.json")
    return out


if __name__ == "__main__":
    run_cli(main, prog="parcnetv2.classification.export")
