"""ParCNetV2 for object detection and instance segmentation with mmdet 3.x.

Importing ``parcnetv2.detection`` (what the configs' ``custom_imports`` do):

* registers :class:`ParCNetV2Backbone` as ``type='ParCNetV2'`` in mmdet's ``MODELS``;
* registers :class:`ParCNetV2LayerDecayOptimizerConstructor` in mmengine's root
  ``OPTIM_WRAPPER_CONSTRUCTORS`` (visible from the mmdet and mmseg scopes);
* allow-lists mmengine's checkpoint contents for torch's ``weights_only`` loading
  (:func:`allow_mmengine_checkpoints`), so ``--resume``, ``load_from`` and ``test.py`` work on torch 2.14.

``backbone``, ``layer_decay`` and ``compat`` import no mmdet; the segmentation side reuses them.
"""

from .backbone import ParCNetV2Backbone, load_pretrained_backbone
from .compat import allow_mmengine_checkpoints
from .layer_decay import ParCNetV2LayerDecayOptimizerConstructor

__all__ = [
    "ParCNetV2Backbone",
    "ParCNetV2LayerDecayOptimizerConstructor",
    "allow_mmengine_checkpoints",
    "load_pretrained_backbone",
]

allow_mmengine_checkpoints()


def _register_in_mmdet() -> None:
    try:
        from mmdet.registry import MODELS
    except ModuleNotFoundError as err:  # an mmseg-only install: nothing to register here
        if err.name != "mmdet" and not (err.name or "").startswith("mmdet."):
            raise
        return
    registered = MODELS.module_dict.get("ParCNetV2")
    if registered is None:
        MODELS.register_module("ParCNetV2", module=ParCNetV2Backbone)
    elif registered is not ParCNetV2Backbone:
        raise KeyError(f"mmdet MODELS already has another 'ParCNetV2': {registered!r}")


_register_in_mmdet()
