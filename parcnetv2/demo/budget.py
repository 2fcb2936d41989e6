"""How much the demo does: data sizes and training lengths, ``full`` (``make demo``) or ``tiny`` (tests).

Only what is the demo's own: how many images of what size each built-in set holds, and how long each
stage trains. The recipes are the pipelines' own: ``configs/classification/builtin.yaml`` (model, input
size, batch, lr, warmup) and the two built-in OpenMMLab configs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

__all__ = ["BUDGETS", "Budget"]


@dataclass(frozen=True)
class Budget:
    """How much of everything the demo does; ``full`` is ``make demo``, ``tiny`` is for the tests."""

    name: str
    # classification: built-in set (images per class, size) and epochs of the recipe: 10,000 images
    # rendered at the recipe's input size (32 px, the smallest input the backbone takes, buys the most
    # updates per CPU minute), 6 epochs of 312 updates (docs/demo-notes.md: the measurements behind these)
    cls_image_size: int = 32
    cls_train_per_class: int = 2000
    cls_val_per_class: int = 100
    cls_epochs: int = 6
    # detection: built-in COCO-format set and Mask R-CNN, from the classifier and from scratch
    det_num_train: int = 300
    det_num_val: int = 60
    det_image_sizes: tuple[int, int] = (128, 160)
    det_epochs: int = 4
    # segmentation: built-in ADE20K-layout set and UperNet, from the classifier and from scratch (the
    # built-in config, whole scenes at 96 px, for 1500 of its 2000 iterations: the 20 minutes;
    # docs/demo-notes.md)
    seg_num_train: int = 300
    seg_num_val: int = 60
    seg_min_size: tuple[int, int] = (128, 128)
    seg_max_size: tuple[int, int] = (192, 192)
    seg_iters: int = 1500
    # the pretrained and the scratch run of a downstream task side by side, one thread each
    parallel: bool = True
    # pictures: validation images drawn per task, detections drawn from this score up, panel width
    num_pictures: int = 4
    det_score_thr: float = 0.3
    picture_width: int = 512

    def key(self, *fields: str) -> str:
        """A short hash of the named fields: a finished stage is redone when its inputs change."""
        values = asdict(self)
        return hashlib.sha1(json.dumps([values[f] for f in fields], sort_keys=True).encode()).hexdigest()[:12]


BUDGETS = {
    "full": Budget("full"),
    "tiny": Budget(
        "tiny",
        cls_train_per_class=7,  # 35 images: one batch of the recipe's 32
        cls_val_per_class=2,
        cls_epochs=1,
        det_num_train=4,
        det_num_val=2,
        det_image_sizes=(64, 96),
        det_epochs=1,
        seg_num_train=4,
        seg_num_val=2,
        seg_min_size=(64, 64),
        seg_max_size=(80, 96),
        seg_iters=2,
        num_pictures=1,
        picture_width=128,
    ),
}

CLS_DATA = ("cls_image_size", "cls_train_per_class", "cls_val_per_class")
DET_DATA = ("det_num_train", "det_num_val", "det_image_sizes")
SEG_DATA = ("seg_num_train", "seg_num_val", "seg_min_size", "seg_max_size")
"""The fields each built-in set depends on."""
