"""Draw a detector's or segmentor's predictions on an image.

    python tools/misc/image_demo.py IMAGE CONFIG CHECKPOINT [--out FILE] [--device cpu]
                                    [--score-thr 0.3] [--allow-partial]

Works for detection (mmdet) and segmentation (mmseg) configs alike: the config's task draws
(:func:`parcnetv2.openmmlab.predictor.build_predictor`). Detections are drawn as boxes, labels and
masks; segmentations as a colour overlay. A checkpoint that does not hold every weight of the model
(backbone / neck / heads) is refused unless ``--allow-partial``; an empty or undecodable image is named.
Errors are one line on stderr with exit status 1 (``--debug`` or ``PARCNETV2_DEBUG=1``: the traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from parcnetv2.cli import add_debug_argument, run_cli
from parcnetv2.openmmlab.predictor import build_predictor


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", help="image file")
    parser.add_argument("config", help="detection or segmentation config file")
    parser.add_argument("checkpoint", help="checkpoint written by training (epoch_*.pth / iter_*.pth)")
    parser.add_argument("--out", help="output picture (default: IMAGE_STEM_pred.png in the current folder)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--score-thr", type=float, default=0.3, help="detections below it are not drawn")
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="draw with a checkpoint that leaves part of the model (backbone/neck/heads) untrained",
    )
    add_debug_argument(parser)
    return parser.parse_args(argv)


def check_image(path: str | Path) -> None:
    """Raise ``ValueError`` naming ``path`` when it is empty or does not decode as an image."""
    import mmcv

    path = Path(path)
    if path.stat().st_size == 0:
        raise ValueError(f"image {path} is empty (0 bytes)")
    try:
        decoded = mmcv.imread(str(path))
    except Exception as err:  # cv2 errors do not name the file
        raise ValueError(f"cannot decode image {path}: {type(err).__name__}: {err}") from err
    if decoded is None:
        raise ValueError(f"cannot decode image {path}")


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(argv)
    for what, path in (("image", args.image), ("config", args.config), ("checkpoint", args.checkpoint)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{what} not found: {path}")
    check_image(args.image)
    out = Path(args.out) if args.out else Path(f"{Path(args.image).stem}_pred.png")
    predictor = build_predictor(args.config, args.checkpoint, args.device, args.allow_partial)
    written = predictor.draw(args.image, out, score_thr=args.score_thr)
    print(f"{type(predictor).__name__}: predictions drawn on {args.image} -> {written}")
    return written


if __name__ == "__main__":
    run_cli(main, sys.argv[1:], prog="tools/misc/image_demo.py")
