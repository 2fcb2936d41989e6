"""Built-in data: one scene renderer, three small deterministic sets that share their object categories.

Every image is a scene of rendered objects -- ``OBJECTS``: circle, square, triangle, star, cross, with a
random colour (or a two-colour texture), size, aspect and rotation -- on a varied background (gradients,
smooth noise, faint stripes or checkers), with unlabelled clutter (thin lines, small blobs), uneven
lighting, noise and blur. The class of an object is its shape, never its colour. Every object is lighter
than the ground under it (by ``LIGHTER_BY`` in luma), whatever its class: one contrast polarity for all
classes. With a random polarity per object, LayerNorm networks from scratch (``parcnetv2_xt``, timm's
ConvNeXt-atto) stayed at chance for hundreds to thousands of updates while a BatchNorm CNN learnt the
same images (docs/demo-notes.md). The three sets are
views of such scenes, so a classifier pretrained on the first has learnt the categories the other two
detect and segment:

* ``cls``: one object per image, at 35-85 % of the image side (ImageFolder layout
  ``train/<class>/*.jpg``, ``val/<class>/*.jpg``);
* ``coco``: 1-4 non-overlapping objects per image at 15-50 % of the shorter side, COCO instances format
  (``train/*.png``, ``val/*.png``, ``annotations/instances_{train,val}.json``, polygons);
* ``ade``: the same kind of scenes in ADE20K's layout and label convention
  (``images/{training,validation}/*.jpg``, ``annotations/...*.png``; 0 = unlabelled clutter, ignored;
  1 = background; 2.. = the objects).

Every image is a pure function of ``(seed, split, index)`` (NumPy ``default_rng``, Pillow drawing), and
the train and validation splits use disjoint random streams. A set is written into a temporary sibling
folder and renamed into place with its ``manifest.json`` (the spec), so an interrupted run never leaves
a half-written set; the next run removes the leftover and writes it again, and an identical finished
set is reused.

    python -m parcnetv2.builtin_data {cls,coco,ade} [--out DIR] [--seed N] [--num-train N] ...
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = [
    "OBJECTS",
    "TEXTURES",
    "PALETTE",
    "ClsSpec",
    "CocoSpec",
    "AdeSpec",
    "SPECS",
    "DEFAULT_DIRS",
    "Scene",
    "render_scene",
    "render_object_image",
    "generate",
    "ensure",
    "require",
    "read_manifest",
    "main",
]

OBJECTS = ("circle", "square", "triangle", "star", "cross")
"""The object categories of all three sets (detection category ``i + 1`` is ``OBJECTS[i]``)."""
TEXTURES = ("checker", "dots", "stripes", "zigzag")
"""Extra classification-only classes (a large textured region); not in the default specs."""
PALETTE = ((220, 20, 60), (0, 128, 255), (0, 200, 0), (255, 170, 0), (160, 32, 240))
"""Display colour per object category (visualizers)."""

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIRS = {task: REPO_ROOT / "data" / f"synthetic_{task}" for task in ("cls", "coco", "ade")}
"""Where each set lives unless told otherwise: the repository's git-ignored ``data/``."""

MANIFEST = "manifest.json"
FORMAT_VERSION = 5
_SUPERSAMPLE = 2
_SPLIT_STREAMS = {"train": 0, "val": 1, "training": 0, "validation": 1}


# ------------------------------------------------------------------------------------------ painting
def _value_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1], about ``cells`` features across the larger side."""
    gh, gw = max(2, cells * h // max(h, w) + 1), max(2, cells * w // max(h, w) + 1)
    grid = rng.uniform(0, 1, (gh, gw)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((w, h), Image.BICUBIC), np.float64)


def _pattern(kind: str, rng: np.random.Generator, h: int, w: int, period: float) -> np.ndarray:
    """A binary (H, W) pattern -- stripes, checker, dots or zigzag -- at a random angle and phase."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    angle = rng.uniform(0, math.pi)
    u = x * math.cos(angle) + y * math.sin(angle) + rng.uniform(0, period)
    v = -x * math.sin(angle) + y * math.cos(angle) + rng.uniform(0, period)
    if kind == "stripes":
        return (np.sin(2 * math.pi * u / period) > 0).astype(np.float64)
    if kind == "checker":
        return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float64)
    if kind == "dots":
        du, dv = (u / period) % 1.0 - 0.5, (v / period) % 1.0 - 0.5
        return (du**2 + dv**2 < rng.uniform(0.08, 0.14)).astype(np.float64)
    if kind == "zigzag":
        wave = np.abs((u / (period * 1.2)) % 2.0 - 1.0) * period * rng.uniform(0.8, 1.4)
        return (np.sin(2 * math.pi * (v + wave) / period) > 0).astype(np.float64)
    raise ValueError(f"unknown texture {kind!r}")


_LUMA = np.array([0.299, 0.587, 0.114])
LIGHTER_BY = 60.0
"""How much lighter (in luma, 0-255) an object is than the ground under it: every object is lighter than
its surroundings, whatever its class and colour (a contrast polarity shared by all classes)."""


def _colour(
    rng: np.random.Generator,
    against: np.ndarray | None = None,
    distance: float = 120.0,
    min_luma: float | None = None,
) -> np.ndarray:
    """A random RGB colour at least ``distance`` (Euclidean) from ``against`` and, given ``min_luma``, of
    at least that luma."""
    for _ in range(64):
        colour = rng.uniform(0, 255, 3)
        far = against is None or np.linalg.norm(colour - against) >= distance
        if far and (min_luma is None or float(colour @ _LUMA) >= min_luma):
            return colour
    if min_luma is not None:  # a light colour: every channel at least min_luma (capped below white)
        return rng.uniform(min(max(min_luma, 0.0), 235.0), 255.0, 3)
    return 255.0 - against


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An (H, W, 3) float background: gradient, smooth noise, faint stripes/checker, or flat."""
    kind = int(rng.integers(4))
    grey = rng.uniform(40, 170)  # room above it for the lighter objects
    c0, c1 = (grey + (rng.uniform(0, 255, 3) - grey) * rng.uniform(0.2, 0.8) for _ in range(2))
    if kind == 0:
        y, x = np.mgrid[0:h, 0:w] / max(h, w)
        angle = rng.uniform(0, 2 * math.pi)
        t = np.clip((math.cos(angle) * (x - 0.5) + math.sin(angle) * (y - 0.5)) * 1.4 + 0.5, 0, 1)
    elif kind == 1:
        t = _value_noise(rng, h, w, int(rng.integers(3, 8)))
    elif kind == 2:
        kind_name = ("stripes", "checker")[int(rng.integers(2))]
        t = _pattern(kind_name, rng, h, w, rng.uniform(0.08, 0.25) * max(h, w)) * rng.uniform(0.2, 0.45)
    else:
        t = np.zeros((h, w))
    return c0 + t[..., None] * (c1 - c0)


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def shape_polygon(kind: str, rng: np.random.Generator, size: float) -> np.ndarray:
    """Vertices (N, 2) of one object of ``kind`` (in ``OBJECTS``), centred at 0, about ``size`` across."""
    r = size / 2
    if kind == "circle":  # an ellipse of mild aspect, as a 40-gon
        t = np.linspace(0, 2 * math.pi, 40, endpoint=False)
        pts = np.stack([r * np.cos(t), rng.uniform(0.8, 1.0) * r * np.sin(t)], 1)
    elif kind == "square":  # a rectangle of aspect 0.75-1
        a = rng.uniform(0.75, 1.0)
        half = r / math.sqrt(1 + a * a) * 1.2
        pts = np.array([[-half, -a * half], [half, -a * half], [half, a * half], [-half, a * half]])
    elif kind == "triangle":
        t = np.array([0, 2 * math.pi / 3, 4 * math.pi / 3]) + rng.uniform(-0.15, 0.15, 3)
        pts = np.stack([r * np.cos(t), r * np.sin(t)], 1) + [r * 0.2, 0]
    elif kind == "star":
        t = np.arange(10) * math.pi / 5
        radius = np.where(np.arange(10) % 2 == 0, r, rng.uniform(0.38, 0.5) * r)
        pts = np.stack([radius * np.cos(t), radius * np.sin(t)], 1)
    elif kind == "cross":
        arm = r * rng.uniform(0.28, 0.38)
        pts = np.array(
            [[-arm, -r], [arm, -r], [arm, -arm], [r, -arm], [r, arm], [arm, arm],
             [arm, r], [-arm, r], [-arm, arm], [-r, arm], [-r, -arm], [-arm, -arm]]
        )  # fmt: skip
    else:
        raise ValueError(f"unknown object {kind!r}; known: {OBJECTS}")
    return _rotate(pts, rng.uniform(0, 2 * math.pi))


def _clutter_polygon(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A thin line or a small blob (no category), as a polygon in image coordinates."""
    short = min(h, w)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    if rng.random() < 0.5:
        length, width = rng.uniform(0.15, 0.4) * short, max(1.0, rng.uniform(0.01, 0.02) * short)
        pts = np.array([[-length / 2, -width / 2], [length / 2, -width / 2], [length / 2, width / 2],
                        [-length / 2, width / 2]])  # fmt: skip
    else:
        t = np.linspace(0, 2 * math.pi, 16, endpoint=False)
        rx, ry = rng.uniform(0.02, 0.06, 2) * short
        pts = np.stack([rx * np.cos(t), ry * np.sin(t)], 1)
    return _rotate(pts, rng.uniform(0, math.pi)) + [cx, cy]


class _Painter:
    """An image painted polygon by polygon at ``_SUPERSAMPLE`` x, later polygons over earlier ones."""

    def __init__(self, rng: np.random.Generator, h: int, w: int) -> None:
        self.rng, self.h, self.w = rng, h, w
        self.img = _background(rng, h * _SUPERSAMPLE, w * _SUPERSAMPLE)

    def mask(self, polygon: np.ndarray) -> np.ndarray:
        """The polygon (image coordinates) as a soft (H*s, W*s, 1) coverage in [0, 1]."""
        canvas = Image.new("L", (self.w * _SUPERSAMPLE, self.h * _SUPERSAMPLE), 0)
        ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in polygon * _SUPERSAMPLE], fill=255)
        return np.asarray(canvas, np.float64)[..., None] / 255

    def paint(
        self, polygon: np.ndarray, texture: str | None = None, alpha: float = 1.0, lighter: bool = False
    ) -> None:
        """Fill ``polygon`` with a colour contrasting with what lies under it (or a two-colour texture);
        ``lighter``: both colours at least ``LIGHTER_BY`` lighter (luma) than the ground under it."""
        coverage = self.mask(polygon)
        under = (self.img * coverage).reshape(-1, 3).sum(0) / max(float(coverage.sum()), 1.0)
        min_luma = float(under @ _LUMA) + LIGHTER_BY if lighter else None
        c0 = _colour(self.rng, under, 130.0, min_luma)
        if texture is None:
            shade = self.rng.uniform(-0.15, 0.15) * (
                np.mgrid[0 : self.h * _SUPERSAMPLE, 0:1][0] / self.img.shape[0]
            )
            fill = c0 * (1 + shade[..., None])
        else:
            c1 = _colour(self.rng, c0, 110.0 if min_luma is None else 80.0, min_luma)
            period = self.rng.uniform(0.05, 0.1) * max(self.img.shape[:2])
            pattern = _pattern(texture, self.rng, *self.img.shape[:2], period)[..., None]
            fill = c0 + pattern * (c1 - c0)
        self.img = self.img * (1 - alpha * coverage) + fill * alpha * coverage

    def finish(self) -> Image.Image:
        """Lighting, noise, downsampling and a slight blur: the final RGB image."""
        hs, ws = self.img.shape[:2]
        y, x = np.mgrid[0:hs, 0:ws] / np.array([hs, ws])[:, None, None]
        light = 1 + self.rng.uniform(-0.25, 0.25) * (x - 0.5) + self.rng.uniform(-0.25, 0.25) * (y - 0.5)
        img = self.img * light[..., None] + self.rng.normal(0, self.rng.uniform(2, 7), self.img.shape)
        out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").resize(
            (self.w, self.h), Image.LANCZOS
        )
        return out.filter(ImageFilter.GaussianBlur(self.rng.uniform(0.0, 0.5)))


@dataclass
class Scene:
    """A rendered image with its objects (category index into ``OBJECTS``, polygon in pixels) and the
    clutter polygons (no category)."""

    image: Image.Image
    objects: list[tuple[int, np.ndarray]] = field(default_factory=list)
    clutter: list[np.ndarray] = field(default_factory=list)

    def label_map(self) -> Image.Image:
        """ADE20K-style labels (mode ``L``): 0 = clutter (ignored), 1 = background, 2.. = objects."""
        canvas = Image.new("L", self.image.size, 1)
        draw = ImageDraw.Draw(canvas)
        for polygon in self.clutter:
            draw.polygon([(float(x), float(y)) for x, y in polygon], fill=0)
        for label, polygon in self.objects:
            draw.polygon([(float(x), float(y)) for x, y in polygon], fill=label + 2)
        return canvas


def _place(
    rng: np.random.Generator, kind: str, h: int, w: int, size_range: tuple[float, float], taken: list
) -> np.ndarray | None:
    """A polygon of ``kind`` inside the image whose box keeps clear of the boxes in ``taken``."""
    short = min(h, w)
    for _ in range(30):
        local = shape_polygon(kind, rng, rng.uniform(*size_range) * short)
        lo, hi = local.min(0), local.max(0)
        if (hi - lo).max() >= short - 2:
            continue
        cx = rng.uniform(1 - lo[0], w - 1 - hi[0])
        cy = rng.uniform(1 - lo[1], h - 1 - hi[1])
        box = (cx + lo[0] - 2, cy + lo[1] - 2, cx + hi[0] + 2, cy + hi[1] + 2)
        if all(box[2] <= t[0] or t[2] <= box[0] or box[3] <= t[1] or t[3] <= box[1] for t in taken):
            taken.append(box)
            return local + [cx, cy]
    return None


def render_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    num_objects: tuple[int, int] = (1, 4),
    size_range: tuple[float, float] = (0.15, 0.5),
    kinds: Sequence[int] | None = None,
) -> Scene:
    """One scene of ``num_objects`` (inclusive range) objects of random (or the given) categories."""
    painter = _Painter(rng, height, width)
    scene = Scene(image=None)  # type: ignore[arg-type]
    for _ in range(int(rng.integers(0, 4))):  # under the objects: they never hide an object
        polygon = _clutter_polygon(rng, height, width)
        painter.paint(polygon, alpha=rng.uniform(0.5, 0.9))
        scene.clutter.append(polygon)
    count = int(rng.integers(num_objects[0], num_objects[1] + 1)) if kinds is None else len(kinds)
    labels = [int(rng.integers(len(OBJECTS))) for _ in range(count)] if kinds is None else list(kinds)
    taken: list = []
    for label in labels:
        polygon = _place(rng, OBJECTS[label], height, width, size_range, taken)
        if polygon is None:
            continue
        texture = ("stripes", "checker")[int(rng.integers(2))] if rng.random() < 0.2 else None
        painter.paint(polygon, texture, lighter=True)
        scene.objects.append((label, polygon))
    scene.image = painter.finish()
    return scene


def render_object_image(name: str, rng: np.random.Generator, image_size: int) -> Image.Image:
    """One square classification image of ``name``: an object of ``OBJECTS`` (35-85 % of the side), or a
    large region filled with one of ``TEXTURES``."""
    if name in OBJECTS:
        return render_scene(
            rng, image_size, image_size, size_range=(0.35, 0.85), kinds=[OBJECTS.index(name)]
        ).image
    if name not in TEXTURES:
        raise ValueError(f"unknown class {name!r}; known: {OBJECTS + TEXTURES}")
    painter = _Painter(rng, image_size, image_size)
    t = np.linspace(0, 2 * math.pi, 32, endpoint=False)
    rx, ry = rng.uniform(0.3, 0.45, 2) * image_size
    region = np.stack([rx * np.cos(t), ry * np.sin(t)], 1) + rng.uniform(0.45, 0.55, 2) * image_size
    painter.paint(region, texture=name)
    return painter.finish()


# ------------------------------------------------------------------------------------------ specs
@dataclass(frozen=True)
class _Spec(abc.ABC):
    """What to generate; stored as the set's manifest, so a folder can be checked against a request."""

    task: ClassVar[str] = ""
    title: ClassVar[str] = ""

    def __init_subclass__(cls, task: str = "", title: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if task:
            cls.task, cls.title = task, title

    def to_json(self) -> dict[str, Any]:
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        return {"task": self.task, **values}

    def describe(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in asdict(self).items() if k != "version")

    @abc.abstractmethod
    def write(self, root: Path) -> None:
        """Write the set's files into ``root`` (a fresh folder; :func:`generate` adds the manifest)."""


def _image_rng(seed: int, split: str, *index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_STREAMS[split], *index])


@dataclass(frozen=True)
class ClsSpec(_Spec, task="cls", title="built-in classification set"):
    """The classification set: ``train_per_class`` + ``val_per_class`` square images per class."""

    seed: int = 0
    image_size: int = 64
    train_per_class: int = 240
    val_per_class: int = 60
    classes: tuple[str, ...] = OBJECTS
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        if not 32 <= self.image_size <= 512:
            raise ValueError(f"built-in image_size must be in [32, 512], got {self.image_size}")
        if self.train_per_class < 1 or self.val_per_class < 1:
            raise ValueError("the classification set needs at least one train and one val image per class")
        known = OBJECTS + TEXTURES
        if set(self.classes) - set(known) or len(set(self.classes)) < 2:
            raise ValueError(f"classes must be >= 2 distinct names from {known}, got {self.classes}")

    def write(self, root: Path) -> None:
        known = OBJECTS + TEXTURES
        for split, per_class in (("train", self.train_per_class), ("val", self.val_per_class)):
            for name in self.classes:
                folder = root / split / name
                folder.mkdir(parents=True)
                for i in range(per_class):
                    rng = _image_rng(self.seed, split, known.index(name), i)
                    render_object_image(name, rng, self.image_size).save(
                        folder / f"{name}_{i:05d}.jpg", quality=92
                    )


def _check_sizes(lo: tuple[int, int], hi: tuple[int, int]) -> None:
    if len(lo) != 2 or len(hi) != 2 or min(lo) < 64 or any(a > b for a, b in zip(lo, hi, strict=True)):
        raise ValueError(
            f"min_size/max_size must be (height, width) pairs with 64 <= min <= max, got {lo}, {hi}"
        )


@dataclass(frozen=True)
class _SceneSpec(_Spec):
    seed: int = 0
    num_train: int = 300
    num_val: int = 60
    min_size: tuple[int, int] = (128, 128)  # (height, width) lower bounds
    max_size: tuple[int, int] = (192, 192)  # (height, width) upper bounds
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "min_size", tuple(int(v) for v in self.min_size))
        object.__setattr__(self, "max_size", tuple(int(v) for v in self.max_size))
        if self.num_train < 1 or self.num_val < 0:
            raise ValueError(f"need num_train >= 1 and num_val >= 0, got {self.num_train}, {self.num_val}")
        _check_sizes(self.min_size, self.max_size)

    def scenes(self, split: str, count: int):
        for i in range(count):
            rng = _image_rng(self.seed, split, i)
            h, w = (
                int(rng.integers(lo, hi + 1)) for lo, hi in zip(self.min_size, self.max_size, strict=True)
            )
            yield i, render_scene(rng, h, w)


@dataclass(frozen=True)
class CocoSpec(_SceneSpec, task="coco", title="built-in COCO-format set"):
    """The COCO-format instance segmentation set (visible objects as polygons)."""

    def write(self, root: Path) -> None:
        (root / "annotations").mkdir(parents=True)
        for split, count in (("train", self.num_train), ("val", self.num_val)):
            (root / split).mkdir()
            images, annotations = [], []
            for i, scene in self.scenes(split, count):
                w, h = scene.image.size
                scene.image.save(root / split / f"{i:06d}.png")
                images.append(dict(id=i + 1, file_name=f"{i:06d}.png", width=w, height=h))
                for label, polygon in scene.objects:
                    annotations.append(
                        dict(id=len(annotations) + 1, image_id=i + 1, **_coco_instance(label, polygon, w, h))
                    )
            coco = dict(
                info=dict(description=f"ParCNetV2 built-in shapes ({split})", version=str(self.version)),
                licenses=[],
                images=images,
                annotations=annotations,
                categories=[dict(id=k + 1, name=n, supercategory="shape") for k, n in enumerate(OBJECTS)],
            )
            (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))


def _coco_instance(label: int, polygon: np.ndarray, width: int, height: int) -> dict[str, Any]:
    pts = np.clip(polygon, 0, [width, height])
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    x, y = pts[:, 0], pts[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
    return dict(
        category_id=label + 1,
        segmentation=[[round(float(v), 2) for v in pts.reshape(-1)]],
        area=round(area, 2),
        bbox=[round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2), round(float(y1 - y0), 2)],
        iscrowd=0,
    )


@dataclass(frozen=True)
class AdeSpec(_SceneSpec, task="ade", title="built-in segmentation set"):
    """The semantic segmentation set, in ADE20K's layout and label convention."""

    def write(self, root: Path) -> None:
        for split, count in (("training", self.num_train), ("validation", self.num_val)):
            (root / "images" / split).mkdir(parents=True)
            (root / "annotations" / split).mkdir(parents=True)
            for i, scene in self.scenes(split, count):
                scene.image.save(root / "images" / split / f"scene_{i:05d}.jpg", quality=92)
                scene.label_map().save(root / "annotations" / split / f"scene_{i:05d}.png")


SPECS: dict[str, type[_Spec]] = {"cls": ClsSpec, "coco": CocoSpec, "ade": AdeSpec}


# ------------------------------------------------------------------------------------------ storing
def read_manifest(root: str | os.PathLike) -> dict | None:
    """The manifest of a generated set, or None when ``root`` has none."""
    path = Path(root) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def _tmp_prefix(root: Path) -> str:
    return f".{root.name}.tmp-"


def _remove_stale_tmp(root: Path) -> list[Path]:
    """Remove leftovers of interrupted writes of ``root`` (ours by name, their writer process gone)."""
    removed = []
    for tmp in root.parent.glob(_tmp_prefix(root) + "*") if root.parent.is_dir() else ():
        pid = tmp.name[len(_tmp_prefix(root)) :].split("-")[0]
        if pid.isdigit() and _alive(int(pid)):
            continue
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def generate(root: str | os.PathLike, spec: _Spec) -> Path:
    """Write the set ``spec`` describes to ``root`` (absent or an empty folder), atomically: into a
    temporary sibling folder, the manifest last, then renamed into place (the first of concurrent writers
    wins)."""
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"refusing to overwrite {root}: not an empty folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_tmp_prefix(root)}{os.getpid()}-", dir=root.parent))
    try:
        spec.write(tmp)
        (tmp / MANIFEST).write_text(json.dumps(spec.to_json(), indent=2) + "\n")
        if root.is_dir():
            root.rmdir()  # the empty folder we were given
        try:
            os.rename(tmp, root)
        except OSError:
            if read_manifest(root) is None:
                raise  # nobody else won the race: a real error
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def ensure(root: str | os.PathLike, spec: _Spec, log: Callable[[str], None] = print) -> Path:
    """Reuse the set at ``root`` if its manifest is ``spec``; generate it if ``root`` is absent (after
    removing any half-written leftover of an interrupted run).

    Raises:
        FileExistsError: ``root`` exists but holds something else (no manifest, or a different spec).
    """
    root = Path(root)
    for tmp in _remove_stale_tmp(root):
        log(f"removed {tmp}, left by an interrupted generation")
    if not root.exists():
        log(f"generating the {spec.title} ({spec.describe()}) in {root}")
        generate(root, spec)
    found = read_manifest(root)
    if found != spec.to_json():
        raise FileExistsError(
            f"{root} exists but is not the requested built-in data set ({spec.title}: manifest {found}, "
            f"wanted {spec.to_json()}); remove it or choose another folder"
        )
    return root


def command(task: str, root: str | os.PathLike) -> str:
    """The command line that writes the ``task`` set to ``root``."""
    return f"python -m parcnetv2.builtin_data {task} --out {root}"


def require(root: str | os.PathLike, task: str, inside: str = "") -> Path:
    """``root`` as given, if it holds files (under ``inside``); otherwise a ``FileNotFoundError`` naming the
    path and the command that generates the set. Never generates anything."""
    path = Path(root)
    probe = path / inside
    if not probe.is_dir() or not any(probe.iterdir()):
        what = "is missing" if not path.exists() else f"has no {inside or 'files'}"
        raise FileNotFoundError(
            f"data root {path} {what}: generate the {SPECS[task].title} with `{command(task, path)}`, "
            "or point the config's data_root at it"
        )
    return path


# ------------------------------------------------------------------------------------------ command line
def _add_spec_options(parser: argparse.ArgumentParser, spec_type: type[_Spec]) -> None:
    for f in dataclasses.fields(spec_type):
        if f.name == "version":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if isinstance(default, tuple):
            kind = str if default and isinstance(default[0], str) else int
            parser.add_argument(flag, type=kind, nargs="+", default=list(default), help=f"default: {default}")
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"default: {default}")


def build_parser(tasks: Sequence[str] = tuple(SPECS)) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m parcnetv2.builtin_data", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="task", required=True)
    for task in tasks:
        p = sub.add_parser(task, help=SPECS[task].title)
        p.add_argument(
            "--out", default=str(DEFAULT_DIRS[task]), help="folder to create (default: %(default)s)"
        )
        _add_spec_options(p, SPECS[task])
    return parser


def main(argv: Sequence[str] | None = None) -> Path:
    """Command line: write (or reuse) one built-in set and print what it holds."""
    args = vars(build_parser().parse_args(argv))
    task, out = args.pop("task"), args.pop("out")
    try:
        root = ensure(out, SPECS[task](**args))
    except (ValueError, FileExistsError) as err:
        raise SystemExit(f"error: {err}") from None
    print(f"{SPECS[task].title} ready: {root}")
    return root


if __name__ == "__main__":
    main()
