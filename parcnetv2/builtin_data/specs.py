"""What a built-in set holds: one frozen spec per set, stored as the set's manifest, that writes it.

:class:`ClsSpec` (ImageFolder), :class:`CocoSpec` (COCO instances) and :class:`AdeSpec` (ADE20K layout)
render their images with :mod:`.render`; every image is a pure function of ``(seed, split, index)``, and
the training and validation splits use disjoint random streams.
"""

from __future__ import annotations

import abc
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .render import OBJECTS, TEXTURES, render_object_image, render_scene

__all__ = ["FORMAT_VERSION", "SPECS", "AdeSpec", "ClsSpec", "CocoSpec"]

FORMAT_VERSION = 5
"""Bumped whenever the renderer or a layout changes: a set of another version is not reused."""
_SPLIT_STREAMS = {"train": 0, "val": 1, "training": 0, "validation": 1}


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
