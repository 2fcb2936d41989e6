"""Convert ParCNetV2 checkpoints for the detection/segmentation side.

    python tools/model_converters/convert_checkpoint.py SRC DST [--mode backbone|publish] [--use-ema]
                                                        [--arch tiny]

``backbone`` (default): from a classification checkpoint of ours, a published-format one, a timm one or
an mmdet/mmseg one (any wrapper, ``module.``/``backbone.`` prefixes; read by
:func:`parcnetv2.backbone.checkpoint.fit_checkpoint`, the one checkpoint path), write the backbone
tensors alone (``downsample_layers.*``/``stages.*``, classifier dropped) as ``{'state_dict': ...}`` --
the file ``init_cfg=dict(type='Pretrained', checkpoint=DST)`` loads. With ``--arch`` the result is checked by
loading it into that backbone (every tensor must fit).

``publish``: from an mmengine training checkpoint (mmdet/mmseg), keep ``state_dict`` and ``meta``
(without the message hub), drop optimizer/scheduler state, and append the first 8 hex digits of the
file's sha256 to the name (``DST-xxxxxxxx.pth``), as OpenMMLab's ``publish_model``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Sequence

from parcnetv2.cli import add_debug_argument, run_cli  # first: it quiets mmengine's import-time warning

# isort: split
import torch

from parcnetv2.backbone.checkpoint import (
    CheckpointError,
    backbone_part,
    drop_prefixes,
    load_state,
    read_checkpoint,
)
from parcnetv2.openmmlab.backbone import CLASSIFIER_PREFIXES, ParCNetV2Backbone, load_pretrained_backbone
from parcnetv2.openmmlab.weights_only import allow_mmengine_checkpoints


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Convert ParCNetV2 checkpoints")
    parser.add_argument("src", help="source checkpoint (.pth/.pt/.safetensors)")
    parser.add_argument("dst", help="destination .pth")
    parser.add_argument("--mode", choices=["backbone", "publish"], default="backbone")
    parser.add_argument(
        "--use-ema", action="store_true", help="take the EMA weights of a classification checkpoint"
    )
    parser.add_argument("--arch", help="check the backbone file by loading it into this ParCNetV2 arch")
    add_debug_argument(parser)
    return parser.parse_args(argv)


def backbone_state(src: str, use_ema: bool = False) -> dict[str, torch.Tensor]:
    """The backbone tensors of ``src`` (classifier dropped, ``module.``/``backbone.`` prefixes removed)."""
    state, _ = drop_prefixes(backbone_part(load_state(src, use_ema)), CLASSIFIER_PREFIXES)
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    body = [k for k in state if k.startswith(("downsample_layers.", "stages."))]
    if not body:
        raise CheckpointError(f"{src}: no ParCNetV2 backbone tensors (downsample_layers.*, stages.*) found")
    return state


def publish(src: str, dst: str) -> str:
    checkpoint = read_checkpoint(src)
    if "state_dict" not in checkpoint:
        raise CheckpointError(f"{src} is not an mmengine checkpoint (no 'state_dict')")
    meta = {k: v for k, v in dict(checkpoint.get("meta", {})).items() if k != "message_hub"}
    torch.save(dict(state_dict=checkpoint["state_dict"], meta=meta), dst)
    with open(dst, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:8]
    stem = dst[: -len(".pth")] if dst.endswith(".pth") else dst
    final = f"{stem}-{digest}.pth"
    os.replace(dst, final)
    return final


def main(argv: Sequence[str] | None = None) -> str:
    args = parse_args(argv)
    allow_mmengine_checkpoints()
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    if args.mode == "publish":
        out = publish(args.src, args.dst)
        print(f"published {args.src} -> {out}")
        return out
    state = backbone_state(args.src, args.use_ema)
    if args.arch:
        load_pretrained_backbone(ParCNetV2Backbone(arch=args.arch), dict(state_dict=state))
    torch.save(dict(state_dict=state), args.dst)
    print(f"wrote {len(state)} backbone tensors from {args.src} -> {args.dst}")
    return args.dst


if __name__ == "__main__":
    run_cli(main, sys.argv[1:], prog="tools/model_converters/convert_checkpoint.py")
