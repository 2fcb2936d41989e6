"""Segmentation's part of the shared OpenMMLab tools, registered in mmseg's ``TASK_UTILS``."""

from __future__ import annotations

import os
from typing import Any

import torch.nn as nn
from mmengine.config import Config
from mmseg.registry import TASK_UTILS
from mmseg.structures import SegDataSample

from parcnetv2.openmmlab.task import TASK_NAME, OpenMMLabTask, image_meta

from .export import SegmentorLogits, exportable_pools

__all__ = ["SegmentationTask"]


@TASK_UTILS.register_module(TASK_NAME)
class SegmentationTask(OpenMMLabTask):
    """Segmentors (``default_scope='mmseg'``): counted without the auxiliary head (a training-only
    branch), exported as ``encode_decode`` (logits at the input size)."""

    def data_sample(self, height: int, width: int) -> SegDataSample:
        return SegDataSample(metainfo=dict(image_meta(height, width), padding_size=[0, 0, 0, 0]))

    def counted_model(self, model: nn.Module) -> nn.Module:
        if getattr(model, "auxiliary_head", None) is not None:
            model.auxiliary_head = None
        return model

    def export_part(self, model: nn.Module) -> tuple[nn.Module, str]:
        logits = SegmentorLogits(exportable_pools(model)).eval()
        return logits, "segmentor encode_decode (logits at the input size)"

    def set_test_outputs(self, cfg: Config, out: str | None, show_dir: str | None) -> None:
        """``out``: a folder of predicted masks (``IoUMetric``'s ``output_dir``, keeping the results);
        ``show_dir``: the visualizer's ``save_dir``."""
        if out is not None:
            cfg.test_evaluator["output_dir"] = out
            cfg.test_evaluator["keep_results"] = True
        if show_dir:
            cfg.visualizer["save_dir"] = show_dir

    def predictor(self, cfg: Config, checkpoint: str | os.PathLike, device: str, allow_partial: bool) -> Any:
        from .visualization import SegPredictor

        return SegPredictor(cfg, checkpoint, device, allow_partial)
