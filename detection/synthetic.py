"""A small, deterministic COCO-format instance-segmentation set: rendered shapes on varied backgrounds.

``python -m parcnetv2.detection.synthetic [--out data/synthetic_coco] [--num-train 400] [--num-val 100]``
writes::

    OUT/train/000000.png ...            OUT/val/000000.png ...
    OUT/annotations/instances_train.json OUT/annotations/instances_val.json
    OUT/meta.json                        (the generation parameters; a rerun with the same ones is a no-op)

Five classes (circle, square, triangle, star, hexagon), 2-7 objects per image with random size
(about 6-45 % of the shorter side), rotation, aspect, colour, and partial occlusion (painter's order,
a new object may hide at most half of an earlier one); backgrounds are flat, gradients, stripes,
checkers or smooth noise. Images are rendered at 4x and area-downsampled (anti-aliased edges);
polygons are traced on the 4x visible masks, so the annotations are the *visible* parts.
The same arguments always produce byte-identical files (NumPy ``default_rng`` per image, OpenCV drawing).

:func:`generate` and :func:`main` serve scripts and the demo; :func:`set_data_root` points a loaded
config (the ``*_synthetic-coco.py`` ones) at another copy of the data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .runtime import set_data_root

__all__ = [
    "CLASSES",
    "PALETTE",
    "DEFAULT_ROOT",
    "CONFIG",
    "config_path",
    "generate",
    "load_config",
    "main",
    "set_data_root",
]

CLASSES = ("circle", "square", "triangle", "star", "hexagon")
PALETTE = [(220, 20, 60), (0, 128, 255), (0, 200, 0), (255, 170, 0), (160, 32, 240)]
DEFAULT_ROOT = "data/synthetic_coco"
CONFIG = "configs/mask_rcnn/mask-rcnn_parcnetv2-xt_fpn_4e_synthetic-coco.py"
"""The built-in-data config, relative to the repository root."""
_SUPERSAMPLE = 4
_FORMAT_VERSION = 1


def _cv2() -> Any:
    import cv2  # opencv comes with mmcv; imported lazily so the module imports without it

    return cv2


# ------------------------------------------------------------------------------------ geometry
def _shape_polygon(kind: str, rng: np.random.Generator, size: float) -> np.ndarray:
    """Vertices (N, 2) of a shape centred at 0 with a bounding radius of about ``size / 2``."""
    r = size / 2
    angle = rng.uniform(0, 2 * math.pi)
    if kind == "circle":  # an ellipse with a mild aspect, as a 48-gon
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        aspect = rng.uniform(0.8, 1.0)
        pts = np.stack([r * np.cos(t), aspect * r * np.sin(t)], 1)
    elif kind == "square":  # a rectangle of aspect 0.75-1
        aspect = rng.uniform(0.75, 1.0)
        h = r / math.sqrt(1 + aspect**2)
        pts = np.array([[-h, -aspect * h], [h, -aspect * h], [h, aspect * h], [-h, aspect * h]]) * 1.35
    elif kind == "triangle":
        t = np.array([0, 2 * math.pi / 3, 4 * math.pi / 3]) + rng.uniform(-0.15, 0.15, 3)
        pts = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    elif kind == "star":  # five points, inner radius 0.45
        t = np.arange(10) * math.pi / 5
        radius = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
        pts = np.stack([radius * np.cos(t), radius * np.sin(t)], 1)
    elif kind == "hexagon":
        t = np.arange(6) * math.pi / 3
        pts = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    else:
        raise ValueError(kind)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return pts @ rot.T


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An (H, W, 3) uint8 background: flat, gradient, stripes, checker or smooth noise."""
    cv2 = _cv2()
    kind = rng.integers(5)
    c1, c2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == 0:
        img = np.broadcast_to(c1, (height, width, 3)).astype(np.float32)
    elif kind == 1:
        theta = rng.uniform(0, 2 * math.pi)
        t = (xx * math.cos(theta) + yy * math.sin(theta)) / max(height, width)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        img = c1 * (1 - t[..., None]) + c2 * t[..., None]
    elif kind == 2:
        theta, period = rng.uniform(0, math.pi), rng.uniform(16, 64) * _SUPERSAMPLE
        t = (np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period) > 0).astype(
            np.float32
        )
        img = c1 * (1 - t[..., None]) + c2 * t[..., None]
    elif kind == 3:
        cell = int(rng.integers(12, 40)) * _SUPERSAMPLE
        t = (((xx // cell) + (yy // cell)) % 2).astype(np.float32)
        img = c1 * (1 - t[..., None]) + c2 * t[..., None]
    else:
        small = rng.uniform(0, 1, (6, 6, 3)).astype(np.float32)
        noise = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        img = 40 + 175 * np.clip(noise, 0, 1)
    jitter = rng.normal(0, 6, (height // _SUPERSAMPLE, width // _SUPERSAMPLE, 3)).astype(np.float32)
    img = img + cv2.resize(jitter, (width, height), interpolation=cv2.INTER_NEAREST)
    return np.clip(img, 0, 255).astype(np.uint8)


def _contrasting_colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    mean = background.reshape(-1, 3).mean(0)
    for _ in range(20):
        colour = rng.integers(0, 256, 3)
        if np.abs(colour - mean).sum() > 120:
            return colour
    return 255 - mean.astype(np.int64)


def _polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer contours of a (4x) mask as COCO polygons in 1x pixel coordinates."""
    cv2 = _cv2()
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for contour in contours:
        contour = cv2.approxPolyDP(contour, 1.0, True).reshape(-1, 2).astype(np.float64)
        if len(contour) < 3:
            continue
        pts = (contour + 0.5) / _SUPERSAMPLE  # pixel centres at 4x -> continuous 1x coordinates
        polys.append([round(float(v), 2) for v in pts.reshape(-1)])
    return polys


def _render_image(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One image (H, W, 3 BGR uint8) and its visible-instance annotations (without ids)."""
    cv2 = _cv2()
    s = _SUPERSAMPLE
    big_h, big_w = height * s, width * s
    canvas = _background(rng, big_h, big_w)
    masks: list[np.ndarray] = []  # visible masks so far (4x), updated as later shapes occlude them
    labels: list[int] = []
    short = min(height, width)
    for _ in range(int(rng.integers(2, 8))):
        for _attempt in range(15):
            label = int(rng.integers(len(CLASSES)))
            size = rng.uniform(0.06, 0.45) * short
            pts = _shape_polygon(CLASSES[label], rng, size * s)
            cx = rng.uniform(size / 2, width - size / 2) * s
            cy = rng.uniform(size / 2, height - size / 2) * s
            poly = np.round(pts + [cx, cy]).astype(np.int32)
            shape_mask = np.zeros((big_h, big_w), np.uint8)
            cv2.fillPoly(shape_mask, [poly], 1)
            # a new shape may hide at most half of any earlier shape's visible part, and may not leave
            # an earlier shape with a hole (COCO polygons have no holes)
            acceptable = True
            for m in masks:
                visible = m.sum()
                remaining = m & (1 - shape_mask)
                if remaining.sum() < 0.5 * visible:
                    acceptable = False
                    break
                if remaining.sum() < visible and _has_hole(remaining):
                    acceptable = False
                    break
            if acceptable:
                break
        else:
            continue
        colour = _contrasting_colour(rng, canvas[shape_mask.astype(bool)])
        canvas[shape_mask.astype(bool)] = colour
        masks = [m & (1 - shape_mask) for m in masks]
        masks.append(shape_mask)
        labels.append(label)
    image = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
    instances = []
    for label, mask in zip(labels, masks, strict=True):
        area = float(mask.sum()) / (s * s)
        polys = _polygons(mask)
        if area < 12 or not polys:
            continue
        xs = np.concatenate([np.asarray(p[0::2]) for p in polys])
        ys = np.concatenate([np.asarray(p[1::2]) for p in polys])
        x0, y0 = float(max(xs.min() - 0.5 / s, 0)), float(max(ys.min() - 0.5 / s, 0))
        x1, y1 = float(min(xs.max() + 0.5 / s, width)), float(min(ys.max() + 0.5 / s, height))
        bbox = [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]
        instances.append(
            dict(category_id=label + 1, segmentation=polys, area=round(area, 2), bbox=bbox, iscrowd=0)
        )
    return image, instances


def _has_hole(mask: np.ndarray) -> bool:
    cv2 = _cv2()
    _, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return hierarchy is not None and bool((hierarchy[0, :, 3] >= 0).any())


# ------------------------------------------------------------------------------------ dataset
def _split(out: Path, split: str, count: int, seed: int, min_size: int, max_size: int) -> dict[str, Any]:
    cv2 = _cv2()
    (out / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    split_offset = {"train": 0, "val": 1}[split]
    for index in range(count):
        rng = np.random.default_rng([seed, split_offset, index])
        height, width = (int(v) for v in rng.integers(min_size // 16, max_size // 16 + 1, 2) * 16)
        image, instances = _render_image(rng, height, width)
        file_name = f"{index:06d}.png"
        cv2.imwrite(str(out / split / file_name), image)
        image_id = index + 1
        images.append(dict(id=image_id, file_name=file_name, width=width, height=height))
        for inst in instances:
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id, **inst))
    return dict(
        info=dict(description=f"ParCNetV2 synthetic shapes ({split})", version=str(_FORMAT_VERSION)),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[dict(id=i + 1, name=name, supercategory="shape") for i, name in enumerate(CLASSES)],
    )


def generate(
    out: str | os.PathLike = DEFAULT_ROOT,
    num_train: int = 400,
    num_val: int = 100,
    seed: int = 0,
    min_size: int = 160,
    max_size: int = 256,
    force: bool = False,
) -> Path:
    """Write the data set to ``out`` (skipped when ``out/meta.json`` records the same parameters)."""
    if not 32 <= min_size <= max_size:
        raise ValueError(f"need 32 <= min_size <= max_size, got {min_size}, {max_size}")
    out = Path(out)
    params = dict(
        format=_FORMAT_VERSION,
        num_train=num_train,
        num_val=num_val,
        seed=seed,
        min_size=min_size,
        max_size=max_size,
    )
    meta = out / "meta.json"
    if not force and meta.is_file() and json.loads(meta.read_text()) == params:
        return out
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for split, count in (("train", num_train), ("val", num_val)):
        coco = _split(out, split, count, seed, min_size, max_size)
        (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
    meta.write_text(json.dumps(params, indent=1) + "\n")
    return out


def config_path() -> Path:
    """The synthetic-data config in this checkout (the package is installed editable from the repository)."""
    path = Path(__file__).resolve().parent.parent / CONFIG
    if not path.is_file():
        raise FileNotFoundError(
            f"{CONFIG} not found next to the package ({path}); run from a repository checkout"
        )
    return path


def load_config(
    data_root: str | os.PathLike | None = None,
    work_dir: str | os.PathLike | None = None,
    pretrained: str | os.PathLike | None = None,
    options: dict[str, Any] | None = None,
) -> Any:
    """The synthetic-data Mask R-CNN config, ready for ``mmengine.runner.Runner.from_cfg``.

    Args:
        data_root: where :func:`generate` wrote the data (default: the config's, ``data/synthetic_coco``).
        work_dir: logs and checkpoints (default: ``work_dirs/<config name>``).
        pretrained: a classification checkpoint for the backbone (ours or published format).
        options: further ``--cfg-options``-style overrides (``{'train_cfg.max_epochs': 2}``).
    """
    from mmengine.config import Config

    cfg = Config.fromfile(str(config_path()))
    if data_root is not None:
        set_data_root(cfg, data_root)
    cfg.work_dir = (
        os.fspath(work_dir) if work_dir is not None else os.path.join("work_dirs", Path(CONFIG).stem)
    )
    if pretrained is not None:
        cfg.model.backbone.init_cfg = dict(type="Pretrained", checkpoint=os.fspath(pretrained))
    if options:
        cfg.merge_from_dict(options)
    return cfg


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], prog="python -m parcnetv2.detection.synthetic"
    )
    parser.add_argument("--out", default=DEFAULT_ROOT, help=f"output folder (default: {DEFAULT_ROOT})")
    parser.add_argument("--num-train", type=int, default=400)
    parser.add_argument("--num-val", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-size", type=int, default=160, help="smallest image side (multiple of 16)")
    parser.add_argument("--max-size", type=int, default=256, help="largest image side (multiple of 16)")
    parser.add_argument("--force", action="store_true", help="regenerate even if OUT/meta.json matches")
    args = parser.parse_args(argv)
    out = generate(
        args.out, args.num_train, args.num_val, args.seed, args.min_size, args.max_size, args.force
    )
    for split in ("train", "val"):
        coco = json.loads((out / "annotations" / f"instances_{split}.json").read_text())
        print(f"{split}: {len(coco['images'])} images, {len(coco['annotations'])} instances -> {out / split}")
    return out


if __name__ == "__main__":
    main()
