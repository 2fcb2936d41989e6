"""The built-in segmentation set as an mmseg dataset (ADE20K layout and label convention)."""

from __future__ import annotations

from typing import Any

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from parcnetv2 import builtin_data

__all__ = ["CLASSES", "PALETTE", "SyntheticADEDataset"]

CLASSES = ("background", *builtin_data.OBJECTS)
"""Class names; label value ``k`` (1..6) in the annotation PNGs is ``CLASSES[k - 1]`` (0 = unlabelled)."""

PALETTE = ((120, 120, 120), *builtin_data.PALETTE)
"""Display colour per class (for mmseg's visualiser)."""


@DATASETS.register_module()
class SyntheticADEDataset(BaseSegDataset):
    """The ``ade`` set of :mod:`parcnetv2.builtin_data`, read like ADE20K.

    ``images/<split>/*.jpg`` with ``annotations/<split>/*.png``; label 0 is unlabelled and, as for
    ADE20K, ``reduce_zero_label=True`` turns it into the ignore index (255) and labels 1..6 into classes
    0..5 (``CLASSES``). The data root must exist and hold the split's images: a missing or empty one is
    a ``FileNotFoundError`` naming it and the command that generates the set (nothing is generated here).

    Args:
        **kwargs: :class:`mmseg.datasets.BaseSegDataset` arguments.
    """

    METAINFO = dict(classes=CLASSES, palette=[list(c) for c in PALETTE])

    def __init__(
        self,
        img_suffix: str = ".jpg",
        seg_map_suffix: str = ".png",
        reduce_zero_label: bool = True,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("data_root") and not kwargs.get("lazy_init"):
            builtin_data.require(
                kwargs["data_root"], "ade", dict(kwargs.get("data_prefix") or {}).get("img_path", "")
            )
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs,
        )
