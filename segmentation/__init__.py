"""ParCNetV2 for semantic segmentation with mmseg 1.x: what is segmentation's own.

:mod:`.datasets` (:class:`SyntheticADEDataset`, the built-in ADE20K-layout set, registered in mmseg's
``DATASETS``), :mod:`.synthetic` (its generator names) and :mod:`.train_builtin` (train and
evaluate UperNet on it in one command). The backbone, layer decay, weights-only allow-list, config loader and
runner helpers are shared with detection in :mod:`parcnetv2.openmmlab`; importing this package imports
that one (so configs whose ``custom_imports`` still name ``parcnetv2.segmentation`` keep working).
"""

import parcnetv2.openmmlab  # noqa: F401  (registers the backbone and the layer-decay constructor)

from .datasets import SyntheticADEDataset

__all__ = ["SyntheticADEDataset"]
