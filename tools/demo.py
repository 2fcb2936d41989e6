"""Draw a detector's or segmentor's predictions on an image.

    python tools/demo.py IMAGE CONFIG CHECKPOINT [--out FILE] [--device cpu] [--score-thr 0.3]

Works for detection (mmdet) and segmentation (mmseg) configs alike: the config's ``default_scope`` picks
the toolbox. Detections are drawn as boxes, labels and masks; segmentations as a colour overlay.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from parcnetv2.visualize import Predictor


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", help="image file")
    parser.add_argument("config", help="detection or segmentation config file")
    parser.add_argument("checkpoint", help="checkpoint written by training (epoch_*.pth / iter_*.pth)")
    parser.add_argument("--out", help="output picture (default: IMAGE_STEM_pred.png in the current folder)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--score-thr", type=float, default=0.3, help="detections below it are not drawn")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(argv)
    for what, path in (("image", args.image), ("config", args.config), ("checkpoint", args.checkpoint)):
        if not Path(path).is_file():
            raise SystemExit(f"{what} not found: {path}")
    out = Path(args.out) if args.out else Path(f"{Path(args.image).stem}_pred.png")
    predictor = Predictor(args.config, args.checkpoint, device=args.device)
    written = predictor.draw(args.image, out, score_thr=args.score_thr)
    print(f"{predictor.scope} predictions drawn on {args.image} -> {written}")
    return written


if __name__ == "__main__":
    main(sys.argv[1:])
