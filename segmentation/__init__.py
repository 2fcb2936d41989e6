"""ParCNetV2 for semantic segmentation with mmseg 1.x: what is segmentation's own.

Importing it (the segmentation configs' ``custom_imports`` name it, after :mod:`parcnetv2.openmmlab`,
which registers the backbone and the layer-decay constructor) registers in mmseg's registries:

* :class:`~.datasets.SyntheticADEDataset` (``DATASETS``): the built-in ADE20K-layout set, refusing a
  missing data root with the command that writes it;
* :class:`~.task.SegmentationTask` (``TASK_UTILS``, as ``ParCNetV2Task``): what the shared tools leave
  to segmentation -- the data sample and the counted model of FLOP counting (no auxiliary head), the
  exported part (:mod:`.export`: logits at the input size), ``tools/test.py --out``/``--show-dir``, and
  drawing (:mod:`.visualization`).
"""

import parcnetv2.openmmlab  # noqa: F401  (the backbone and layer decay: registered in mmengine's root)

from .datasets import SyntheticADEDataset
from .task import SegmentationTask

__all__ = ["SegmentationTask", "SyntheticADEDataset"]
