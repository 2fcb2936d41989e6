"""ParCNetV2 for object detection and instance segmentation with mmdet 3.x: what is detection's own.

Importing it (the detection configs' ``custom_imports`` name it, after :mod:`parcnetv2.openmmlab`, which
registers the backbone and the layer-decay constructor) registers in mmdet's registries:

* :class:`~.datasets.SyntheticCocoDataset` (``DATASETS``): the built-in COCO-format set, refusing a
  missing data root with the command that writes it;
* :class:`~.task.DetectionTask` (``TASK_UTILS``, as ``ParCNetV2Task``): what the shared tools leave to
  detection -- the data sample FLOP counting and benchmarking feed, the exported part (backbone + FPN),
  ``tools/test.py --out``/``--show-dir``, and drawing (:mod:`.visualization`).
"""

import parcnetv2.openmmlab  # noqa: F401  (the backbone and layer decay: registered in mmengine's root)

from .datasets import SyntheticCocoDataset
from .task import DetectionTask

__all__ = ["DetectionTask", "SyntheticCocoDataset"]
