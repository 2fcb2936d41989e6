"""The OpenMMLab layer shared by detection (mmdet 3.x) and segmentation (mmseg 1.x).

Importing ``parcnetv2.openmmlab`` (what the configs' ``custom_imports`` do):

* registers :class:`ParCNetV2Backbone` as ``type='ParCNetV2'`` once, in mmengine's root ``MODELS``,
  which mmdet's and mmseg's ``MODELS`` search as their parent;
* registers :class:`ParCNetV2LayerDecayOptimizerConstructor` in mmengine's root
  ``OPTIM_WRAPPER_CONSTRUCTORS`` (visible from the mmdet and mmseg scopes alike);
* registers :class:`PreemptionHook` in mmengine's root ``HOOKS`` and the ``atomic_local`` file backend
  (:mod:`.preemption`);
* allow-lists mmengine's checkpoint contents for torch's ``weights_only`` loading
  (:func:`allow_mmengine_checkpoints`), so ``--resume``, ``load_from`` and ``test.py`` work on torch 2.14.

Modules: :mod:`.backbone` (the adapter), :mod:`.layer_decay`, :mod:`.weights_only` (the allow-list),
:mod:`.config` (the one config loader and the overrides), :mod:`.launch` (the command lines of
``tools/train.py`` and ``tools/test.py``, torchrun on CPU), :mod:`.runner` (the one driver: model and
runner builds, train, test, train then test), :mod:`.checkpoint_coverage`, :mod:`.complexity` (FLOPs),
:mod:`.predictor` (drawing predictions) and :mod:`.task` (the interface each task registers). Nothing
here imports mmdet or mmseg or branches on the task: what is a task's own (its dataset, data sample,
exported part, test outputs, drawing) is in :mod:`parcnetv2.detection` and
:mod:`parcnetv2.segmentation`, found through the config's scope (:func:`.task.task_of`).
"""

from mmengine.registry import MODELS

from .backbone import ParCNetV2Backbone, load_pretrained_backbone
from .config import load_config
from .layer_decay import ParCNetV2LayerDecayOptimizerConstructor
from .preemption import PreemptionHook
from .weights_only import allow_mmengine_checkpoints

__all__ = [
    "ParCNetV2Backbone",
    "ParCNetV2LayerDecayOptimizerConstructor",
    "PreemptionHook",
    "allow_mmengine_checkpoints",
    "load_config",
    "load_pretrained_backbone",
]

allow_mmengine_checkpoints()
if "ParCNetV2" not in MODELS.module_dict:  # once per process (a module reload keeps the first class)
    MODELS.register_module("ParCNetV2", module=ParCNetV2Backbone)
