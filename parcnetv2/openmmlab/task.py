"""What a task adds to the shared OpenMMLab layer, found through the config's scope registry.

Detection (:mod:`parcnetv2.detection`) and segmentation (:mod:`parcnetv2.segmentation`) each register
one :class:`OpenMMLabTask` subclass as ``ParCNetV2Task`` in their toolbox's ``TASK_UTILS`` (mmdet's,
mmseg's); the configs' ``custom_imports`` name the task package, so loading a config registers it.
The shared tools (``tools/test.py``, ``get_flops.py``, ``benchmark.py``, ``export_onnx.py``,
``image_demo.py``) ask :func:`task_of` for the config's task and call its methods: no code here or in
the tools branches on the task.
"""

from __future__ import annotations

import abc
import importlib
import os
from typing import Any

import torch.nn as nn
from mmengine.config import Config

from .config import config_scope

__all__ = ["TASK_NAME", "OpenMMLabTask", "image_meta", "task_of"]

TASK_NAME = "ParCNetV2Task"
"""The name each task's :class:`OpenMMLabTask` is registered under in its scope's ``TASK_UTILS``."""


class OpenMMLabTask(abc.ABC):
    """The task-specific parts of the shared tools; each method is one job a tool leaves to the task."""

    @abc.abstractmethod
    def data_sample(self, height: int, width: int) -> Any:
        """The data sample a ``mode='tensor'`` forward of one unpadded (H, W) image needs (FLOPs, speed)."""

    def counted_model(self, model: nn.Module) -> nn.Module:
        """The part of ``model`` whose FLOPs ``get_flops.py`` counts (default: all of it)."""
        return model

    @abc.abstractmethod
    def export_part(self, model: nn.Module) -> tuple[nn.Module, str]:
        """The exportable part of ``model`` with one image input ``x``, and what it computes."""

    @abc.abstractmethod
    def set_test_outputs(self, cfg: Config, out: str | None, show_dir: str | None) -> None:
        """``tools/test.py --out`` (predictions) and ``--show-dir`` (painted images) in ``cfg``."""

    @abc.abstractmethod
    def predictor(self, cfg: Config, checkpoint: str | os.PathLike, device: str, allow_partial: bool) -> Any:
        """The task's :class:`parcnetv2.openmmlab.predictor.Predictor` for ``cfg`` and ``checkpoint``."""


def image_meta(height: int, width: int) -> dict[str, Any]:
    """The metainfo both toolboxes' data samples hold for one unpadded (H, W) image in a batch of one."""
    shape = (height, width)
    return dict(img_shape=shape, ori_shape=shape, pad_shape=shape, batch_input_shape=shape)


def task_of(cfg: Config) -> OpenMMLabTask:
    """The :class:`OpenMMLabTask` registered for the config's ``default_scope``.

    Raises:
        RuntimeError: no task is registered in that scope (the config's ``custom_imports`` do not name a
            task package).
    """
    scope = config_scope(cfg)
    registry = importlib.import_module(f"{scope}.registry").TASK_UTILS
    task = registry.get(TASK_NAME)
    if task is None:
        raise RuntimeError(
            f"no {TASK_NAME} is registered in {scope}'s TASK_UTILS: the config's custom_imports must name "
            "the task package (parcnetv2.detection or parcnetv2.segmentation)"
        )
    return task()
