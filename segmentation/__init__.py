"""ParCNetV2 for semantic segmentation with mmseg 1.x.

Importing ``parcnetv2.segmentation`` (what the configs' ``custom_imports`` do):

* registers the detection side's :class:`~parcnetv2.detection.backbone.ParCNetV2Backbone` -- the same
  class, not a copy -- as ``type='ParCNetV2'`` in mmseg's ``MODELS`` (same options, same loud
  pretrained loading, adaptive oversized convolution by default);
* makes :class:`~parcnetv2.detection.layer_decay.ParCNetV2LayerDecayOptimizerConstructor` available
  (registered in mmengine's root ``OPTIM_WRAPPER_CONSTRUCTORS``, so the mmseg scope finds it);
* allow-lists mmengine's checkpoint contents for torch's ``weights_only`` loading, so mmseg's own
  ``tools/train.py --resume`` and ``tools/test.py`` work on torch >= 2.6;
* registers :class:`SyntheticADEDataset`, the built-in ADE20K-layout data set
  (:mod:`parcnetv2.segmentation.synthetic` writes it).
"""

from parcnetv2.detection.backbone import ParCNetV2Backbone, load_pretrained_backbone
from parcnetv2.detection.compat import allow_mmengine_checkpoints
from parcnetv2.detection.layer_decay import ParCNetV2LayerDecayOptimizerConstructor

from .datasets import SyntheticADEDataset

__all__ = [
    "ParCNetV2Backbone",
    "ParCNetV2LayerDecayOptimizerConstructor",
    "SyntheticADEDataset",
    "allow_mmengine_checkpoints",
    "load_pretrained_backbone",
]

allow_mmengine_checkpoints()


def _register_in_mmseg() -> None:
    from mmseg.registry import MODELS

    registered = MODELS.module_dict.get("ParCNetV2")
    if registered is None:
        MODELS.register_module("ParCNetV2", module=ParCNetV2Backbone)
    elif registered is not ParCNetV2Backbone:
        raise KeyError(f"mmseg MODELS already has another 'ParCNetV2': {registered!r}")


_register_in_mmseg()
