"""The built-in COCO-format set as an mmdet dataset: ``CocoDataset`` that names a missing data root."""

from __future__ import annotations

import os.path as osp
from typing import Any

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from parcnetv2.builtin_data import command, require

__all__ = ["SyntheticCocoDataset"]


@DATASETS.register_module()
class SyntheticCocoDataset(CocoDataset):
    """mmdet's ``CocoDataset``, but a missing or empty ``data_root`` (or annotation file) is a
    ``FileNotFoundError`` naming the path and the command that generates the built-in set."""

    def __init__(self, **kwargs: Any) -> None:
        root = kwargs.get("data_root")
        if root and not kwargs.get("lazy_init"):
            require(root, "coco")
            ann_file = osp.join(root, kwargs.get("ann_file", ""))
            if not osp.isfile(ann_file):
                raise FileNotFoundError(
                    f"annotation file {ann_file} is missing: generate the built-in set with "
                    f"`{command('coco', root)}`, or point the config's data_root at it"
                )
        super().__init__(**kwargs)
