"""The built-in data set as an mmseg dataset (ADE20K layout and label convention)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .synthetic import CLASSES, PALETTE, SyntheticSegSpec, generate_dataset

__all__ = ["SyntheticADEDataset"]


@DATASETS.register_module()
class SyntheticADEDataset(BaseSegDataset):
    """The rendered outdoor scenes of :mod:`parcnetv2.segmentation.synthetic`, read like ADE20K.

    ``images/<split>/*.jpg`` with ``annotations/<split>/*.png``; label 0 is unlabeled and, as for
    ADE20K, ``reduce_zero_label=True`` turns it into the ignore index (255) and labels 1..8 into
    classes 0..7 (``CLASSES``).

    Args:
        auto_generate: when ``data_root`` does not exist, write the set there first (``True``: the
            default :class:`SyntheticSegSpec`; a dict: its arguments, e.g. ``dict(num_train=8)``;
            ``False``: never). An existing folder is used as it is. Concurrent writers (distributed
            ranks) are safe: the set is written to a temporary folder and renamed into place.
        **kwargs: :class:`mmseg.datasets.BaseSegDataset` arguments.
    """

    METAINFO = dict(classes=CLASSES, palette=[list(c) for c in PALETTE])

    def __init__(
        self,
        img_suffix: str = ".jpg",
        seg_map_suffix: str = ".png",
        reduce_zero_label: bool = True,
        auto_generate: bool | Mapping[str, Any] = True,
        **kwargs: Any,
    ) -> None:
        data_root = kwargs.get("data_root")
        if auto_generate and data_root and not Path(data_root).exists():
            spec = (
                SyntheticSegSpec(**dict(auto_generate))
                if isinstance(auto_generate, Mapping)
                else SyntheticSegSpec()
            )
            print_log(
                f"SyntheticADEDataset: {data_root} is missing; generating the built-in set ({spec})",
                "current",
            )
            generate_dataset(data_root, spec)
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs,
        )
