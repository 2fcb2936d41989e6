"""Detection's part of the shared OpenMMLab tools, registered in mmdet's ``TASK_UTILS``."""

from __future__ import annotations

import os
import os.path as osp
from typing import Any

import torch.nn as nn
from mmdet.registry import TASK_UTILS
from mmdet.structures import DetDataSample
from mmengine.config import Config

from parcnetv2.deploy import ImageFunction
from parcnetv2.openmmlab.task import TASK_NAME, OpenMMLabTask, image_meta

__all__ = ["DetectionTask"]


@TASK_UTILS.register_module(TASK_NAME)
class DetectionTask(OpenMMLabTask):
    """Detectors (``default_scope='mmdet'``): counted and benchmarked in ``mode='tensor'`` (RPN proposals
    from the input, as mmdet's own ``get_flops.py``), exported as ``extract_feat`` (backbone + neck maps;
    proposals, RoI heads and NMS stay in PyTorch)."""

    def data_sample(self, height: int, width: int) -> DetDataSample:
        return DetDataSample(metainfo=dict(image_meta(height, width), scale_factor=(1.0, 1.0), img_id=0))

    def export_part(self, model: nn.Module) -> tuple[nn.Module, str]:
        return ImageFunction(model, "extract_feat").eval(), "detector extract_feat (backbone + neck maps)"

    def set_test_outputs(self, cfg: Config, out: str | None, show_dir: str | None) -> None:
        """``out``: a pickle of the predictions (mmdet's ``DumpDetResults`` beside the config's metrics);
        ``show_dir``: the visualization hook's ``test_out_dir``."""
        if out is not None:
            if not out.endswith((".pkl", ".pickle")):
                raise ValueError("--out must be a .pkl file for detection configs")
            metrics = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
            cfg.test_evaluator = [*metrics, dict(type="DumpDetResults", out_file_path=osp.abspath(out))]
        if show_dir:
            cfg.default_hooks.visualization["test_out_dir"] = show_dir

    def predictor(self, cfg: Config, checkpoint: str | os.PathLike, device: str, allow_partial: bool) -> Any:
        from .visualization import DetPredictor

        return DetPredictor(cfg, checkpoint, device, allow_partial)
