"""The built-in classification set: :mod:`parcnetv2.builtin_data`'s ``cls`` view, under its old names.

One object per image (the class is its shape: ``OBJECTS``), ImageFolder layout ``train/<class>/*.jpg``
and ``val/<class>/*.jpg``; the same categories the built-in detection and segmentation sets use.

    python -m parcnetv2.builtin_data cls [--out data/synthetic_cls]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from parcnetv2 import builtin_data
from parcnetv2.builtin_data import OBJECTS, TEXTURES
from parcnetv2.builtin_data import ClsSpec as SyntheticSpec

__all__ = [
    "CLASSES",
    "DEFAULT_DIR",
    "SyntheticSpec",
    "ensure_synthetic_dataset",
    "generate_dataset",
    "render",
]

CLASSES = tuple(sorted(OBJECTS + TEXTURES))
"""Every class name the set can hold (the default spec holds ``OBJECTS``), as an ImageFolder sorts them."""

DEFAULT_DIR = builtin_data.DEFAULT_DIRS["cls"]
"""Where the built-in set lives unless told otherwise (``data/`` is git-ignored)."""


def render(class_name: str, rng: np.random.Generator, image_size: int) -> Image.Image:
    """One RGB image of ``class_name`` using only ``rng`` for randomness."""
    return builtin_data.render_object_image(class_name, rng, image_size)


def generate_dataset(root: str | os.PathLike, spec: SyntheticSpec | None = None) -> Path:
    """Write the set described by ``spec`` to ``root`` (absent or empty), atomically."""
    return builtin_data.generate(root, spec or SyntheticSpec())


def ensure_synthetic_dataset(
    root: str | os.PathLike = DEFAULT_DIR,
    spec: SyntheticSpec | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Generate the built-in set at ``root`` unless an identical one is already there.

    Raises:
        FileExistsError: ``root`` exists but holds something else (no manifest, or a different spec).
    """
    return builtin_data.ensure(root, spec or SyntheticSpec(), log)


def main(argv: Sequence[str] | None = None) -> Path:
    """``python -m parcnetv2.builtin_data cls`` under its old name."""
    return builtin_data.main(["cls", *(argv if argv is not None else __import__("sys").argv[1:])])


if __name__ == "__main__":
    main()
