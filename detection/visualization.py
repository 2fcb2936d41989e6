"""Drawing a detector's predictions (mmdet's ``DetLocalVisualizer``) beside COCO ground truth."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from mmdet.apis import inference_detector, init_detector
from mmdet.structures.mask import PolygonMasks
from mmdet.visualization import DetLocalVisualizer
from mmengine.config import Config
from mmengine.structures import InstanceData

from parcnetv2.openmmlab.predictor import Predictor, unique_name

__all__ = ["DetPredictor", "coco_ground_truth"]


class DetPredictor(Predictor):
    """:class:`~parcnetv2.openmmlab.predictor.Predictor` of a detector: boxes, labels and masks."""

    def init_model(self, cfg: Config, device: str) -> nn.Module:
        with warnings.catch_warnings():  # "checkpoint is None": the weights and class names come next
            warnings.simplefilter("ignore", UserWarning)
            return init_detector(cfg, None, device=device)

    def build_visualizer(self) -> DetLocalVisualizer:
        return DetLocalVisualizer(name=unique_name("parcnetv2_det"))

    def infer(self, image: str | np.ndarray) -> Any:
        return inference_detector(self.model, image)

    def ground_truth(self, annotations: str | os.PathLike, image: str | os.PathLike, shape: tuple) -> dict:
        return coco_ground_truth(annotations, image, shape)

    def draw_options(self, score_thr: float) -> dict[str, Any]:
        return dict(pred_score_thr=score_thr)


def coco_ground_truth(
    ann_file: str | os.PathLike, image: str | os.PathLike, shape: tuple[int, int]
) -> dict[str, Any]:
    """``gt_instances`` (boxes, labels, masks) of ``image`` from a COCO json, scaled to ``shape``."""
    coco = json.loads(Path(ann_file).read_text())
    entry = next((i for i in coco["images"] if i["file_name"] == Path(image).name), None)
    if entry is None:
        raise ValueError(f"{ann_file} has no image named {Path(image).name}")
    fy, fx = shape[0] / entry["height"], shape[1] / entry["width"]
    cat_ids = sorted(c["id"] for c in coco["categories"])
    anns = [a for a in coco["annotations"] if a["image_id"] == entry["id"] and not a.get("iscrowd")]
    boxes = [[a["bbox"][0] * fx, a["bbox"][1] * fy, (a["bbox"][0] + a["bbox"][2]) * fx,
              (a["bbox"][1] + a["bbox"][3]) * fy] for a in anns]  # fmt: skip
    polygons = [
        [np.asarray(p, np.float64).reshape(-1, 2) * [fx, fy] for p in a["segmentation"]] for a in anns
    ]
    gt = InstanceData()
    gt.bboxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    gt.labels = torch.tensor([cat_ids.index(a["category_id"]) for a in anns], dtype=torch.long)
    gt.masks = PolygonMasks([[p.reshape(-1) for p in polys] for polys in polygons], *shape).to_bitmap()
    return dict(gt_instances=gt)
