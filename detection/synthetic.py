"""The built-in COCO-format set and its Mask R-CNN config: :mod:`parcnetv2.builtin_data`'s ``coco`` view.

``python -m parcnetv2.builtin_data coco [--out data/synthetic_coco]`` writes::

    OUT/train/000000.png ...            OUT/val/000000.png ...
    OUT/annotations/instances_train.json OUT/annotations/instances_val.json
    OUT/manifest.json                    (the spec; an identical finished set is reused)

Five categories (``CLASSES``: circle, square, triangle, star, cross, the built-in classification set's),
1-4 non-overlapping objects per image at 15-50 % of the shorter side, polygons as annotations.
:func:`load_config` loads the ``*_synthetic-coco.py`` config through the one config loader,
:func:`parcnetv2.openmmlab.config.load_config`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from parcnetv2 import builtin_data
from parcnetv2.builtin_data import OBJECTS as CLASSES
from parcnetv2.builtin_data import PALETTE, CocoSpec
from parcnetv2.openmmlab.config import load_config as _load_config
from parcnetv2.openmmlab.config import set_data_root

__all__ = [
    "CLASSES",
    "PALETTE",
    "DEFAULT_ROOT",
    "CONFIG",
    "CocoSpec",
    "config_path",
    "generate",
    "load_config",
    "main",
    "set_data_root",
]

DEFAULT_ROOT = str(builtin_data.DEFAULT_DIRS["coco"])
CONFIG = "configs/mask_rcnn/mask-rcnn_parcnetv2-xt_fpn_4e_synthetic-coco.py"
"""The built-in-data config, relative to the repository root."""


def generate(
    out: str | os.PathLike = DEFAULT_ROOT,
    num_train: int = CocoSpec.num_train,
    num_val: int = CocoSpec.num_val,
    seed: int = 0,
    min_size: int = 128,
    max_size: int = 192,
) -> Path:
    """Write the set to ``out`` (absent or an empty folder), or reuse it when its manifest matches."""
    spec = CocoSpec(seed, num_train, num_val, (min_size, min_size), (max_size, max_size))
    out = Path(out)
    if out.is_dir() and not any(out.iterdir()):
        return builtin_data.generate(out, spec)
    return builtin_data.ensure(out, spec, log=lambda _: None)


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
    """The synthetic-data Mask R-CNN config: :func:`parcnetv2.openmmlab.config.load_config` of
    :func:`config_path` (``options`` are its ``cfg_options``)."""
    return _load_config(
        config_path(), data_root=data_root, work_dir=work_dir, pretrained=pretrained, cfg_options=options
    )


def main(argv: Sequence[str] | None = None) -> Path:
    """``python -m parcnetv2.builtin_data coco`` under its old name."""
    return builtin_data.main(["coco", *(argv if argv is not None else __import__("sys").argv[1:])])


if __name__ == "__main__":
    main()
