"""Built-in data: a small, deterministic semantic-segmentation set in the ADE20K layout.

Outdoor scenes rendered from scratch -- sky, buildings with windows, trees, grass, roads with lane
marks, water with ripples, cars and people -- with a pixel-exact label map. The files follow
ADE20K's ``ADEChallengeData2016`` layout and label convention, so mmseg's ADE20K pipeline (with
``reduce_zero_label=True``) reads them unchanged::

    <root>/images/{training,validation}/scene_00000.jpg
    <root>/annotations/{training,validation}/scene_00000.png   # uint8, 0 = unlabeled (ignored)
    <root>/manifest.json                                          # what was generated

Label ``k`` (1..8) is ``CLASSES[k - 1]``; 0 marks unlabeled clutter, exactly as ADE20K marks pixels
outside its 150 classes. Every image is a pure function of ``(seed, split, index)``; sizes vary per
image and are generally not multiples of 32. Needs only numpy and Pillow.

    python -m parcnetv2.segmentation.synthetic --out data/synthetic_ade
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from parcnetv2.generated import ensure_generated, read_manifest, write_generated

__all__ = [
    "CLASSES",
    "DEFAULT_DIR",
    "PALETTE",
    "SyntheticSegSpec",
    "ensure_synthetic_dataset",
    "generate_dataset",
    "main",
    "read_manifest",
    "render_scene",
]

CLASSES = ("sky", "building", "tree", "grass", "road", "water", "car", "person")
"""Class names; label value ``k`` in the annotation PNGs is ``CLASSES[k - 1]`` (0 = unlabeled)."""

PALETTE = (
    (70, 130, 180),
    (180, 120, 120),
    (4, 200, 3),
    (150, 230, 120),
    (140, 140, 140),
    (61, 230, 250),
    (0, 102, 200),
    (150, 5, 61),
)
"""Display colour per class (for mmseg's visualiser)."""

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "data" / "synthetic_ade"
"""Where the built-in set lives unless told otherwise (``data/`` is git-ignored)."""

_FORMAT_VERSION = 2
_SPLITS = {"training": 0, "validation": 1}
_SUPERSAMPLE = 2
SKY, BUILDING, TREE, GRASS, ROAD, WATER, CAR, PERSON = range(1, 9)
IGNORE = 0


@dataclass(frozen=True)
class SyntheticSegSpec:
    """What to generate; stored as ``manifest.json`` so a folder can be checked against a request."""

    seed: int = 0
    num_train: int = 300
    num_val: int = 60
    min_size: tuple[int, int] = (112, 144)  # (height, width) lower bounds
    max_size: tuple[int, int] = (160, 208)  # (height, width) upper bounds
    version: int = _FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.num_train < 1 or self.num_val < 1:
            raise ValueError(
                "a synthetic segmentation set needs at least one training and one validation image"
            )
        lo, hi = tuple(self.min_size), tuple(self.max_size)
        if len(lo) != 2 or len(hi) != 2 or min(lo) < 64 or any(a > b for a, b in zip(lo, hi, strict=True)):
            raise ValueError(
                f"min_size/max_size must be (height, width) pairs with 64 <= min <= max, got {lo} and {hi}"
            )
        object.__setattr__(self, "min_size", lo)
        object.__setattr__(self, "max_size", hi)

    def to_json(self) -> dict:
        return {
            **asdict(self),
            "min_size": list(self.min_size),
            "max_size": list(self.max_size),
            "classes": list(CLASSES),
        }


# ------------------------------------------------------------------------------------------ textures
def _noise(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Smooth value noise in [-1, 1] with features about ``scale`` pixels wide."""
    gh, gw = max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)
    coarse = Image.fromarray(((rng.uniform(-1, 1, (gh, gw)) + 1) * 127.5).astype(np.uint8), "L")
    return np.asarray(coarse.resize((w, h), Image.BICUBIC), np.float64) / 127.5 - 1


def _jitter(rng: np.random.Generator, colour: Sequence[float], amount: float) -> np.ndarray:
    return np.clip(np.asarray(colour, np.float64) + rng.uniform(-amount, amount, 3), 0, 255)


def _sky(rng: np.random.Generator, h: int, w: int, horizon: int) -> np.ndarray:
    kind = rng.integers(3)  # clear, overcast, dusk
    top = [(40, 90, 190), (150, 155, 165), (90, 60, 140)][kind]
    low = [(150, 200, 240), (205, 205, 210), (250, 170, 100)][kind]
    top, low = _jitter(rng, top, 25), _jitter(rng, low, 25)
    t = np.clip(np.arange(h, dtype=np.float64) / max(horizon, 1), 0, 1)[:, None, None]
    img = top * (1 - t) + low * t + np.zeros((1, w, 1))
    clouds = np.clip(_noise(rng, h, w, rng.uniform(14, 30)) - rng.uniform(0.1, 0.5), 0, 1)
    return img * (1 - clouds[..., None]) + 245 * clouds[..., None]


def _building(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = _jitter(
        rng, [(170, 90, 70), (190, 180, 160), (120, 120, 130), (210, 200, 170)][rng.integers(4)], 30
    )
    img = base + 10 * _noise(rng, h, w, 6)[..., None]
    win = _jitter(rng, [(40, 50, 70), (230, 220, 150)][rng.integers(2)], 20)
    period_y, period_x = rng.integers(10, 18), rng.integers(10, 18)
    yy, xx = np.mgrid[0:h, 0:w]
    windows = ((yy % period_y) < period_y * 0.55) & ((xx % period_x) < period_x * 0.5)
    img[windows] = win
    return img


def _tree(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = _jitter(rng, (40, 100, 35), 25)
    leaves = _noise(rng, h, w, 3) + 0.5 * _noise(rng, h, w, 9)
    return base * (1 + 0.35 * leaves[..., None])


def _grass(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = _jitter(rng, (110, 160, 60), 30)
    blades = np.repeat(rng.uniform(-1, 1, (h // 4 + 1, w)), 4, axis=0)[:h]  # short vertical strokes
    return base * (1 + 0.18 * blades[..., None] + 0.12 * _noise(rng, h, w, 20)[..., None])


def _road(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = _jitter(rng, (95, 95, 100), 20)
    return base * (1 + 0.08 * rng.uniform(-1, 1, (h, w, 1)) + 0.06 * _noise(rng, h, w, 25)[..., None])


def _water(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = _jitter(rng, [(40, 90, 150), (30, 110, 120)][rng.integers(2)], 20)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    period = rng.uniform(4, 8)
    ripples = np.sin(2 * np.pi * (yy / period + 0.15 * _noise(rng, h, w, 12)))
    glints = (ripples > 0.93) * (rng.uniform(size=(h, w)) > 0.4)
    img = base * (1 + 0.15 * ripples[..., None])
    img[glints] = 230
    del xx
    return img


def _flat(
    rng: np.random.Generator, h: int, w: int, colour: Sequence[float], amount: float = 25
) -> np.ndarray:
    return _jitter(rng, colour, amount) * (1 + 0.05 * _noise(rng, h, w, 8)[..., None])


# ------------------------------------------------------------------------------------------ scenes
class _Canvas:
    """An RGB image and its label map, painted shape by shape (later shapes occlude earlier ones)."""

    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.img = np.zeros((h, w, 3), np.float64)
        self.label = np.zeros((h, w), np.uint8)

    def paint(self, shapes: Sequence[tuple], texture: np.ndarray, label: int) -> None:
        """Fill the union of ``shapes`` with ``texture`` and ``label``.

        Shapes: ``("rect", box)``, ``("ellipse", box)``, ``("rrect", box, radius)``, ``("polygon", points)``
        with ``box = [x0, y0, x1, y1]``.
        """
        mask_img = Image.new("L", (self.w, self.h), 0)
        draw = ImageDraw.Draw(mask_img)
        for kind, geometry, *extra in shapes:
            if kind == "rect":
                draw.rectangle(geometry, fill=255)
            elif kind == "ellipse":
                draw.ellipse(geometry, fill=255)
            elif kind == "rrect":
                draw.rounded_rectangle(geometry, extra[0], fill=255)
            elif kind == "polygon":
                draw.polygon(geometry, fill=255)
            else:
                raise ValueError(f"unknown shape {kind!r}")
        mask = np.asarray(mask_img) > 127
        self.img[mask] = texture[mask]
        self.label[mask] = label


def render_scene(rng: np.random.Generator, height: int, width: int) -> tuple[Image.Image, Image.Image]:
    """One scene: an RGB image and its ADE20K-style label map (mode ``L``), both ``width`` x ``height``."""
    s = _SUPERSAMPLE
    h, w = height * s, width * s
    c = _Canvas(h, w)
    horizon = int(h * rng.uniform(0.35, 0.6))

    c.paint([("rect", [0, 0, w, horizon])], _sky(rng, h, w, horizon), SKY)
    c.paint([("rect", [0, horizon, w, h])], _grass(rng, h, w), GRASS)

    if rng.uniform() < 0.6:  # a lake: an irregular polygon on the ground
        cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(horizon + 0.15 * (h - horizon), h)
        rx, ry = rng.uniform(0.15, 0.4) * w, rng.uniform(0.1, 0.3) * (h - horizon)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 12))
        radii = rng.uniform(0.7, 1.0, 12)
        pts = [
            (cx + rx * r * np.cos(a), max(horizon, cy + ry * r * np.sin(a)))
            for a, r in zip(angles, radii, strict=True)
        ]
        c.paint([("polygon", pts)], _water(rng, h, w), WATER)

    road = None
    if rng.uniform() < 0.8:  # a road from the bottom edge to a vanishing point on the horizon
        vx = rng.uniform(0.3, 0.7) * w
        half = rng.uniform(0.2, 0.4) * w
        bx = rng.uniform(0.3, 0.7) * w
        road = (vx, bx, half)
        pts = [(vx - 0.02 * w, horizon), (vx + 0.02 * w, horizon), (bx + half, h), (bx - half, h)]
        texture = _road(rng, h, w)
        mark = _jitter(rng, [(235, 235, 235), (230, 200, 60)][rng.integers(2)], 15)
        for i in range(8):  # dashed centre line, drawn into the texture (it is still road)
            t0, t1 = i / 8, i / 8 + 0.06
            y0, y1 = int(horizon + t0 * (h - horizon)), int(horizon + t1 * (h - horizon))
            for y in range(y0, min(y1, h)):
                t = (y - horizon) / max(h - horizon, 1)
                x = int(vx + t * (bx - vx))
                half_w = max(1, int(t * 0.012 * w))
                texture[y, max(0, x - half_w) : x + half_w] = mark
        c.paint([("polygon", pts)], texture, ROAD)

    for _ in range(rng.integers(0, 4)):  # buildings standing on the horizon
        bw, bh = rng.uniform(0.1, 0.3) * w, rng.uniform(0.3, 0.9) * horizon
        x0 = rng.uniform(-0.05, 0.95) * w
        base = horizon + rng.uniform(0, 0.05) * h
        c.paint([("rect", [x0, base - bh, x0 + bw, base])], _building(rng, h, w), BUILDING)

    objects = []  # (ground y, kind) painted far to near
    objects += [(rng.uniform(horizon, h), "tree") for _ in range(rng.integers(0, 5))]
    objects += [(rng.uniform(horizon + 0.4 * (h - horizon), h), "person") for _ in range(rng.integers(1, 5))]
    if road is not None:
        objects += [
            (rng.uniform(horizon + 0.35 * (h - horizon), h), "car") for _ in range(rng.integers(1, 4))
        ]
    for y, kind in sorted(objects):
        depth = 0.25 + 0.75 * (y - horizon) / max(h - horizon, 1)  # perspective scale
        if kind == "tree":
            x = rng.uniform(0, w)
            r, trunk = depth * rng.uniform(0.06, 0.12) * h, depth * rng.uniform(0.05, 0.12) * h
            tw = max(2.0, 0.25 * r)
            c.paint(
                [("rect", [x - tw / 2, y - trunk - r, x + tw / 2, y])], _flat(rng, h, w, (90, 60, 35)), TREE
            )
            blobs = [
                (x + rng.uniform(-0.5, 0.5) * r, y - trunk - r + rng.uniform(-0.4, 0.4) * r) for _ in range(3)
            ]
            c.paint(
                [("ellipse", [bx - r, by - r, bx + r, by + r]) for bx, by in blobs],
                _tree(rng, h, w),
                TREE,
            )
        elif kind == "person":
            x = rng.uniform(0.05, 0.95) * w
            ph = depth * rng.uniform(0.3, 0.5) * h
            pw, head = 0.28 * ph, 0.11 * ph
            shirt = _flat(rng, h, w, rng.uniform(0, 255, 3), 10)
            c.paint(
                [("rect", [x - pw / 3, y - 0.45 * ph, x + pw / 3, y])], _flat(rng, h, w, (40, 40, 70)), PERSON
            )
            c.paint([("ellipse", [x - pw / 2, y - 0.8 * ph, x + pw / 2, y - 0.4 * ph])], shirt, PERSON)
            c.paint(
                [("ellipse", [x - head, y - ph, x + head, y - ph + 2 * head])],
                _flat(rng, h, w, (220, 180, 150), 30),
                PERSON,
            )
        else:  # a car on the road
            vx, bx, half = road
            t = (y - horizon) / max(h - horizon, 1)
            x = vx + t * (bx - vx) + rng.uniform(-0.6, 0.6) * t * half
            cw, ch = depth * rng.uniform(0.3, 0.45) * w, depth * rng.uniform(0.1, 0.15) * h
            body = _flat(rng, h, w, rng.uniform(0, 255, 3), 10)
            c.paint([("rrect", [x - cw / 2, y - ch, x + cw / 2, y - 0.2 * ch], 0.2 * ch)], body, CAR)
            c.paint(
                [("rrect", [x - cw / 3, y - 1.6 * ch, x + cw / 4, y - 0.9 * ch], 0.25 * ch)],
                _flat(rng, h, w, (60, 80, 100), 15),
                CAR,
            )
            wr = 0.28 * ch
            c.paint(
                [("ellipse", [wx - wr, y - 2 * wr, wx + wr, y]) for wx in (x - cw / 3, x + cw / 3)],
                _flat(rng, h, w, (25, 25, 25), 10),
                CAR,
            )

    for _ in range(rng.integers(0, 3)):  # unlabeled clutter: random polygons marked 0, like ADE20K
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.03, 0.08) * min(h, w)
        pts = [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in np.sort(rng.uniform(0, 2 * np.pi, 5))]
        c.paint([("polygon", pts)], _flat(rng, h, w, rng.uniform(0, 255, 3), 10), IGNORE)

    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    light = 1 + rng.uniform(-0.25, 0.25) * (xx - 0.5) + rng.uniform(-0.25, 0.25) * (yy - 0.5)
    img = c.img * rng.uniform(0.8, 1.15) * light[..., None] + rng.normal(0, rng.uniform(2, 6), c.img.shape)
    image = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").resize(
        (width, height), Image.LANCZOS
    )
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 0.5)))
    label = Image.fromarray(c.label, "L").resize((width, height), Image.NEAREST)
    return image, label


# ------------------------------------------------------------------------------------------ writing
def _scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLITS[split], index])


def _scene_size(rng: np.random.Generator, spec: SyntheticSegSpec) -> tuple[int, int]:
    return tuple(int(rng.integers(lo, hi + 1)) for lo, hi in zip(spec.min_size, spec.max_size, strict=True))


def generate_dataset(root: str | os.PathLike, spec: SyntheticSegSpec = SyntheticSegSpec()) -> Path:
    """Write the set described by ``spec`` to ``root`` (which must not exist), atomically."""

    def fill(tmp: Path) -> None:
        for split, count in (("training", spec.num_train), ("validation", spec.num_val)):
            (tmp / "images" / split).mkdir(parents=True)
            (tmp / "annotations" / split).mkdir(parents=True)
            for i in range(count):
                rng = _scene_rng(spec.seed, split, i)
                height, width = _scene_size(rng, spec)
                image, label = render_scene(rng, height, width)
                image.save(tmp / "images" / split / f"scene_{i:05d}.jpg", quality=92)
                label.save(tmp / "annotations" / split / f"scene_{i:05d}.png")

    return write_generated(root, fill, spec.to_json())


def ensure_synthetic_dataset(
    root: str | os.PathLike = DEFAULT_DIR,
    spec: SyntheticSegSpec = SyntheticSegSpec(),
    log: Callable[[str], None] = print,
) -> Path:
    """Generate the built-in set at ``root`` unless an identical one is already there.

    Raises:
        FileExistsError: ``root`` exists but holds something else (no manifest, or a different spec).
    """
    details = (
        f" (seed {spec.seed}, {len(CLASSES)} classes, "
        f"{spec.num_train}+{spec.num_val} images, {spec.min_size}-{spec.max_size} px)"
    )
    return ensure_generated(
        root, spec.to_json(), lambda r: generate_dataset(r, spec), "built-in segmentation set", log, details
    )


# ------------------------------------------------------------------------------------------ command line
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m parcnetv2.segmentation.synthetic", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", default=str(DEFAULT_DIR), help="folder to create (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=SyntheticSegSpec.seed)
    parser.add_argument("--num-train", type=int, default=SyntheticSegSpec.num_train)
    parser.add_argument("--num-val", type=int, default=SyntheticSegSpec.num_val)
    parser.add_argument(
        "--min-size", type=int, nargs=2, default=SyntheticSegSpec.min_size, metavar=("H", "W")
    )
    parser.add_argument(
        "--max-size", type=int, nargs=2, default=SyntheticSegSpec.max_size, metavar=("H", "W")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> Path:
    """Command line: generate the built-in segmentation set unless it exists (``--help`` for options)."""
    args = build_parser().parse_args(argv)
    spec = SyntheticSegSpec(
        args.seed, args.num_train, args.num_val, tuple(args.min_size), tuple(args.max_size)
    )
    root = ensure_synthetic_dataset(args.out, spec)
    print(f"built-in segmentation set ready: {root}")
    return root


if __name__ == "__main__":
    main()
