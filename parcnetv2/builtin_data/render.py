"""The scene renderer of the built-in data: objects of ``OBJECTS`` on varied backgrounds, with clutter.

Every object is a polygon -- circle, square, triangle, star, cross -- with a random colour (or a
two-colour texture), size, aspect and rotation, painted at twice the size and downsampled, over a
gradient, smooth noise, faint stripes or checkers, with unlabelled clutter (thin lines, small blobs),
uneven lighting, noise and blur. The class of an object is its shape, never its colour; every object is
lighter than the ground under it (by :data:`LIGHTER_BY` in luma), whatever its class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = [
    "LIGHTER_BY",
    "OBJECTS",
    "PALETTE",
    "TEXTURES",
    "Scene",
    "render_object_image",
    "render_scene",
    "shape_polygon",
]

OBJECTS = ("circle", "square", "triangle", "star", "cross")
"""The object categories of all three sets (detection category ``i + 1`` is ``OBJECTS[i]``)."""
TEXTURES = ("checker", "dots", "stripes", "zigzag")
"""Extra classification-only classes (a large textured region); not in the default specs."""
PALETTE = ((220, 20, 60), (0, 128, 255), (0, 200, 0), (255, 170, 0), (160, 32, 240))
"""Display colour per object category (visualizers)."""
_SUPERSAMPLE = 2


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
