"""The built-in segmentation set: :mod:`parcnetv2.builtin_data`'s ``ade`` view, under its old names.

Scenes of the built-in object categories in ADE20K's ``ADEChallengeData2016`` layout and label
convention, so mmseg's ADE20K pipeline (``reduce_zero_label=True``) reads them unchanged::

    <root>/images/{training,validation}/scene_00000.jpg
    <root>/annotations/{training,validation}/scene_00000.png   # uint8, 0 = unlabelled clutter (ignored)
    <root>/manifest.json                                          # what was generated

Label ``k`` (1..6) is ``CLASSES[k - 1]``: background, then the objects of the detection and
classification sets.

    python -m parcnetv2.builtin_data ade [--out data/synthetic_ade]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from parcnetv2 import builtin_data
from parcnetv2.builtin_data import OBJECTS, read_manifest
from parcnetv2.builtin_data import AdeSpec as SyntheticSegSpec

__all__ = [
    "CLASSES",
    "DEFAULT_DIR",
    "PALETTE",
    "SyntheticSegSpec",
    "ensure_synthetic_dataset",
    "generate_dataset",
    "main",
    "read_manifest",
]

CLASSES = ("background", *OBJECTS)
"""Class names; label value ``k`` in the annotation PNGs is ``CLASSES[k - 1]`` (0 = unlabelled)."""

PALETTE = ((120, 120, 120), *builtin_data.PALETTE)
"""Display colour per class (for mmseg's visualiser)."""

DEFAULT_DIR = builtin_data.DEFAULT_DIRS["ade"]
"""Where the built-in set lives unless told otherwise (``data/`` is git-ignored)."""


def generate_dataset(root: str | os.PathLike, spec: SyntheticSegSpec | None = None) -> Path:
    """Write the set described by ``spec`` to ``root`` (absent or empty), atomically."""
    return builtin_data.generate(root, spec or SyntheticSegSpec())


def ensure_synthetic_dataset(
    root: str | os.PathLike = DEFAULT_DIR,
    spec: SyntheticSegSpec | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Generate the built-in set at ``root`` unless an identical one is already there.

    Raises:
        FileExistsError: ``root`` exists but holds something else (no manifest, or a different spec).
    """
    return builtin_data.ensure(root, spec or SyntheticSegSpec(), log)


def main(argv: Sequence[str] | None = None) -> Path:
    """``python -m parcnetv2.builtin_data ade`` under its old name."""
    return builtin_data.main(["ade", *(argv if argv is not None else __import__("sys").argv[1:])])


if __name__ == "__main__":
    main()
