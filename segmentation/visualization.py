"""Drawing a segmentor's predictions (mmseg's ``SegLocalVisualizer``) beside the label map, with a legend."""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import mmcv
import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.apis import inference_model, init_model
from mmseg.registry import DATASETS
from mmseg.visualization import SegLocalVisualizer

from parcnetv2.openmmlab.predictor import Predictor, unique_name

__all__ = ["SegPredictor", "append_legend", "label_ground_truth"]


class SegPredictor(Predictor):
    """:class:`~parcnetv2.openmmlab.predictor.Predictor` of a segmentor: a colour overlay and a legend of
    the class colours under the picture."""

    def init_model(self, cfg: Config, device: str) -> nn.Module:
        return init_model(cfg, None, device=device)

    def build_visualizer(self) -> SegLocalVisualizer:
        return SegLocalVisualizer(name=unique_name("parcnetv2_seg"), alpha=0.6)

    def infer(self, image: str | np.ndarray) -> Any:
        return inference_model(self.model, image)

    def ground_truth(self, annotations: str | os.PathLike, image: str | os.PathLike, shape: tuple) -> dict:
        return label_ground_truth(self.cfg, annotations, shape)

    def draw_options(self, score_thr: float) -> dict[str, Any]:
        return dict(with_labels=False)  # the legend names the colours; labels on regions stack up

    def finish_picture(self, picture: Path) -> None:
        meta = self.model.dataset_meta
        append_legend(picture, meta["classes"], meta["palette"])


def append_legend(picture: Path, classes: Sequence[str], palette: Sequence[Sequence[int]]) -> None:
    """Add a row of colour swatches with the class names under ``picture`` (RGB palette)."""
    img = cv2.imread(os.fspath(picture))
    font, scale, height = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 26
    rows, row, x = [], np.full((height, img.shape[1], 3), 255, np.uint8), 6
    for name, colour in zip(classes, palette, strict=False):
        width = 22 + cv2.getTextSize(name, font, scale, 1)[0][0] + 12
        if x + width > img.shape[1] and x > 6:
            rows.append(row)
            row, x = np.full_like(row, 255), 6
        cv2.rectangle(row, (x, 6), (x + 14, 20), tuple(int(c) for c in colour[::-1]), -1)
        cv2.putText(row, name, (x + 20, 18), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
        x += width
    cv2.imwrite(os.fspath(picture), np.vstack([img, *rows, row]))


def label_ground_truth(cfg: Any, label_file: str | os.PathLike, shape: tuple[int, int]) -> dict[str, Any]:
    """``gt_sem_seg`` from a label PNG, with the test set's ``reduce_zero_label``, resized to ``shape``."""
    labels = mmcv.imread(os.fspath(label_file), flag="unchanged", backend="pillow")
    if labels is None:
        raise ValueError(f"cannot decode label map {label_file}")
    dataset = cfg.test_dataloader.dataset
    default = inspect.signature(DATASETS.get(dataset.type)).parameters.get("reduce_zero_label")
    if dataset.get("reduce_zero_label", default.default if default else False):
        labels = np.where(labels == 0, 255, labels.astype(np.int64) - 1)
    labels = mmcv.imresize(labels.astype(np.uint8), (shape[1], shape[0]), interpolation="nearest")
    return dict(gt_sem_seg=PixelData(data=torch.from_numpy(labels.astype(np.int64))[None]))
