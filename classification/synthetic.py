"""Built-in data: a small, deterministic, natural-looking image-classification set written to disk.

Ten classes, six shapes and four textures (see ``CLASSES``), rendered at 2x and downsampled, with random
colours, positions, scales, rotations, gradient and blotchy backgrounds, clutter, lighting, noise and
blur. Every image is a pure function of ``(seed, split, class, index)``, so the same seed always gives
the same pixels (for a given Pillow version). The layout is the ImageNet one: ``train/<class>/*.jpg``
and ``val/<class>/*.jpg``.

    python -m parcnetv2.classification.synthetic --out data/synthetic_cls
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from parcnetv2.generated import ensure_generated, write_generated

__all__ = [
    "CLASSES",
    "SyntheticSpec",
    "DEFAULT_DIR",
    "ensure_synthetic_dataset",
    "generate_dataset",
    "render",
]

CLASSES = ("checker", "circle", "cross", "dots", "ring", "square", "star", "stripes", "triangle", "zigzag")
"""Class names, in the order an ImageFolder reader sorts them."""

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "data" / "synthetic_cls"
"""Where the built-in set lives unless told otherwise (``data/`` is git-ignored)."""

_FORMAT_VERSION = 3
_SPLITS = {"train": 0, "val": 1}
_SUPERSAMPLE = 2


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate; stored as ``manifest.json`` so a folder can be checked against a request."""

    seed: int = 0
    image_size: int = 96
    train_per_class: int = 300
    val_per_class: int = 60
    classes: tuple[str, ...] = CLASSES
    version: int = _FORMAT_VERSION

    def __post_init__(self) -> None:
        if not 32 <= self.image_size <= 512:
            raise ValueError(f"synthetic image_size must be in [32, 512], got {self.image_size}")
        if self.train_per_class < 1 or self.val_per_class < 1:
            raise ValueError("synthetic sets need at least one train and one val image per class")
        unknown = set(self.classes) - set(CLASSES)
        if unknown or len(set(self.classes)) < 2:
            raise ValueError(
                f"synthetic classes must be >= 2 distinct names from {CLASSES}, got {self.classes}"
            )

    def to_json(self) -> dict:
        return {**asdict(self), "classes": list(self.classes)}


# ------------------------------------------------------------------------------------------ painting
def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, 3)


def _contrasting_colour(
    rng: np.random.Generator, against: np.ndarray, min_distance: float = 110.0
) -> np.ndarray:
    """A random colour at least ``min_distance`` (RGB Euclidean) from ``against``."""
    for _ in range(64):
        colour = _random_colour(rng)
        if np.linalg.norm(colour - against) >= min_distance:
            return colour
    return 255.0 - against  # the complement is always far enough from mid-range colours


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A muted two-colour linear gradient at a random angle plus low-frequency colour blotches (H, W, 3)."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    angle = rng.uniform(0, 2 * math.pi)
    t = (np.cos(angle) * (x - 0.5) + np.sin(angle) * (y - 0.5)) / math.sqrt(0.5) + 0.5
    grey = rng.uniform(60, 200)
    c0, c1 = (grey + (_random_colour(rng) - grey) * rng.uniform(0.2, 0.6) for _ in range(2))
    img = c0 + np.clip(t, 0, 1)[..., None] * (c1 - c0)
    grid = rng.normal(0, rng.uniform(5, 18), (rng.integers(3, 7), rng.integers(3, 7), 3))
    blotches = [
        np.asarray(
            Image.fromarray(grid[..., c].astype(np.float32), mode="F").resize((size, size), Image.BICUBIC)
        )
        for c in range(3)
    ]
    return img + np.stack(blotches, -1)


def _rotated(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _regular_polygon(n: int, radius: float, angle: float, inner: float | None = None) -> np.ndarray:
    """Vertices of a regular polygon (or a star with ``inner`` radius ratio) centred at the origin."""
    steps = 2 * n if inner else n
    radii = [radius if (i % 2 == 0 or not inner) else radius * inner for i in range(steps)]
    t = [angle + 2 * math.pi * i / steps for i in range(steps)]
    return np.array([[r * math.cos(a), r * math.sin(a)] for r, a in zip(radii, t, strict=True)])


def _shape_mask(kind: str, rng: np.random.Generator, size: int) -> Image.Image:
    """A white-on-black 'L' mask of one shape with random scale, position and rotation."""
    radius = rng.uniform(0.24, 0.38) * size
    margin = radius * 0.85
    cx, cy = rng.uniform(margin, size - margin, 2)
    angle = rng.uniform(0, 2 * math.pi)
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)

    def polygon(points: np.ndarray) -> None:
        draw.polygon([(float(px + cx), float(py + cy)) for px, py in points], fill=255)

    if kind == "circle":
        rx, ry = radius, radius * rng.uniform(0.85, 1.0)
        ellipse = Image.new("L", (size, size), 0)
        ImageDraw.Draw(ellipse).ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
        return ellipse.rotate(math.degrees(angle), center=(cx, cy), resample=Image.BILINEAR)
    if kind == "ring":
        width = radius * rng.uniform(0.28, 0.45)
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=255)
        inner = radius - width
        draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=0)
    elif kind == "square":
        polygon(_regular_polygon(4, radius * 1.1, angle))
    elif kind == "triangle":
        polygon(_regular_polygon(3, radius * 1.2, angle))
    elif kind == "star":
        polygon(_regular_polygon(5, radius * 1.15, angle, inner=rng.uniform(0.38, 0.5)))
    elif kind == "cross":
        arm = radius * rng.uniform(0.28, 0.4)
        bar = np.array([[-radius, -arm], [radius, -arm], [radius, arm], [-radius, arm]])
        polygon(_rotated(bar, angle))
        polygon(_rotated(bar, angle + math.pi / 2))
    else:
        raise ValueError(f"unknown shape {kind!r}")
    return mask


def _texture(kind: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """A binary (H, W) texture pattern with random period, orientation and phase."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    angle = rng.uniform(0, math.pi)
    u = x * math.cos(angle) + y * math.sin(angle) + rng.uniform(0, size)
    v = -x * math.sin(angle) + y * math.cos(angle) + rng.uniform(0, size)
    period = rng.uniform(0.15, 0.28) * size
    if kind == "stripes":
        return (np.sin(2 * math.pi * u / period) > 0).astype(np.float64)
    if kind == "checker":
        return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float64)
    if kind == "dots":
        du = (u / period) % 1.0 - 0.5
        dv = (v / period) % 1.0 - 0.5
        return (du**2 + dv**2 < rng.uniform(0.1, 0.16)).astype(np.float64)
    if kind == "zigzag":
        wave = np.abs((u / (period * 1.2)) % 2.0 - 1.0) * period * rng.uniform(0.8, 1.4)
        return (np.sin(2 * math.pi * (v + wave) / period) > 0).astype(np.float64)
    raise ValueError(f"unknown texture {kind!r}")


def _texture_region(rng: np.random.Generator, size: int) -> Image.Image:
    """A large soft-edged region (ellipse or rotated rectangle) that a texture fills."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    half = rng.uniform(0.36, 0.5, 2) * size
    cx, cy = rng.uniform(0.4, 0.6, 2) * size
    if rng.random() < 0.5:
        draw.ellipse([cx - half[0], cy - half[1], cx + half[0], cy + half[1]], fill=255)
    else:
        corners = np.array(
            [[-half[0], -half[1]], [half[0], -half[1]], [half[0], half[1]], [-half[0], half[1]]]
        )
        draw.polygon(
            [(float(px + cx), float(py + cy)) for px, py in _rotated(corners, rng.uniform(0, math.pi))],
            fill=255,
        )
    return mask


def _clutter(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Up to two small translucent ellipses or lines that belong to no class."""
    size = img.shape[0]
    for _ in range(rng.integers(0, 3)):
        mask = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(mask)
        cx, cy = rng.uniform(0, size, 2)
        if rng.random() < 0.5:
            rx, ry = rng.uniform(0.03, 0.09, 2) * size
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
        else:
            dx, dy = rng.uniform(-0.25, 0.25, 2) * size
            draw.line([cx, cy, cx + dx, cy + dy], fill=255, width=max(1, int(size * 0.015)))
        alpha = np.asarray(mask, np.float64)[..., None] / 255 * rng.uniform(0.2, 0.5)
        img = img * (1 - alpha) + _random_colour(rng) * alpha
    return img


def render(class_name: str, rng: np.random.Generator, image_size: int) -> Image.Image:
    """Render one RGB image of ``class_name`` (one of ``CLASSES``) using only ``rng`` for randomness."""
    size = image_size * _SUPERSAMPLE
    img = _clutter(rng, _background(rng, size))
    centre = img[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4].reshape(-1, 3).mean(0)
    if class_name in ("stripes", "checker", "dots", "zigzag"):
        pattern = _texture(class_name, rng, size)[..., None]
        c0 = _contrasting_colour(rng, centre, min_distance=130.0)
        c1 = _contrasting_colour(rng, c0, min_distance=130.0)
        fill = c0 + pattern * (c1 - c0)
        region = _texture_region(rng, size)
    else:
        fill = _contrasting_colour(rng, centre, min_distance=150.0)[None, None, :] * rng.uniform(0.9, 1.0)
        region = _shape_mask(class_name, rng, size)
    alpha = (
        np.asarray(region.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2))), np.float64)[..., None]
        / 255
    )
    img = img * (1 - alpha) + fill * alpha
    y, x = np.mgrid[0:size, 0:size] / size
    light = 1 + rng.uniform(-0.2, 0.2) * (x - 0.5) + rng.uniform(-0.2, 0.2) * (y - 0.5)
    img = img * light[..., None] + rng.normal(0, rng.uniform(2, 8), img.shape)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    out = out.resize((image_size, image_size), Image.LANCZOS)
    return out.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 0.6)))


# ------------------------------------------------------------------------------------------ writing
def _image_rng(seed: int, split: str, class_index: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLITS[split], class_index, index])


def generate_dataset(root: str | os.PathLike, spec: SyntheticSpec = SyntheticSpec()) -> Path:
    """Write the set described by ``spec`` to ``root`` (which must not exist), atomically."""

    def fill(tmp: Path) -> None:
        for split, per_class in (("train", spec.train_per_class), ("val", spec.val_per_class)):
            for name in spec.classes:
                folder = tmp / split / name
                folder.mkdir(parents=True)
                for i in range(per_class):
                    image = render(
                        name, _image_rng(spec.seed, split, CLASSES.index(name), i), spec.image_size
                    )
                    image.save(folder / f"{name}_{i:05d}.jpg", quality=92)

    return write_generated(root, fill, spec.to_json())


def ensure_synthetic_dataset(
    root: str | os.PathLike = DEFAULT_DIR,
    spec: SyntheticSpec = SyntheticSpec(),
    log: Callable[[str], None] = print,
) -> Path:
    """Generate the built-in set at ``root`` unless an identical one is already there.

    Raises:
        FileExistsError: ``root`` exists but holds something else (no manifest, or a different spec).
    """
    details = (
        f" (seed {spec.seed}, {len(spec.classes)} classes, "
        f"{spec.train_per_class}+{spec.val_per_class} images/class, {spec.image_size}px)"
    )
    return ensure_generated(
        root, spec.to_json(), lambda r: generate_dataset(r, spec), "built-in data set", log, details
    )


# ------------------------------------------------------------------------------------------ command line
def main(argv: Sequence[str] | None = None) -> Path:
    """Command line: generate the built-in data set (``--help`` for options)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(DEFAULT_DIR), help="folder to create (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=SyntheticSpec.seed)
    parser.add_argument("--image-size", type=int, default=SyntheticSpec.image_size)
    parser.add_argument("--train-per-class", type=int, default=SyntheticSpec.train_per_class)
    parser.add_argument("--val-per-class", type=int, default=SyntheticSpec.val_per_class)
    args = parser.parse_args(argv)
    spec = SyntheticSpec(args.seed, args.image_size, args.train_per_class, args.val_per_class)
    root = ensure_synthetic_dataset(args.out, spec)
    print(f"built-in data set ready: {root}")
    return root


if __name__ == "__main__":
    main()
