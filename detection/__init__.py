"""ParCNetV2 for object detection and instance segmentation with mmdet 3.x: what is detection's own.

:mod:`.datasets` (the built-in COCO-format set as an mmdet dataset) and :mod:`.synthetic` (its config
helpers). The backbone, layer decay, weights-only allow-list, config loader and runner helpers are
shared with segmentation in :mod:`parcnetv2.openmmlab`; importing this package imports that one (so
configs whose ``custom_imports`` still name ``parcnetv2.detection`` keep working).
"""

import parcnetv2.openmmlab  # noqa: F401  (registers the backbone and the layer-decay constructor)
