"""Draw a detector's or segmentor's predictions on an image: the part both tasks share.

:func:`build_predictor` loads the config, asks its task (:func:`parcnetv2.openmmlab.task.task_of`) for
its :class:`Predictor` subclass (:class:`parcnetv2.detection.visualization.DetPredictor`,
:class:`parcnetv2.segmentation.visualization.SegPredictor`), which builds the model with its toolbox's
API, checks and loads the checkpoint, predicts and draws with the toolbox's visualizer. Used by
``tools/misc/image_demo.py`` and the demo's pictures.
"""

from __future__ import annotations

import abc
import copy
import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn as nn
from mmengine.config import Config

__all__ = ["Predictor", "build_predictor"]

_instance_ids = itertools.count()


def unique_name(prefix: str) -> str:
    """A visualizer name no other instance uses (mmengine keeps one global instance per name)."""
    return f"{prefix}_{os.getpid()}_{next(_instance_ids)}"


class Predictor(abc.ABC):
    """A model built from a config and a checkpoint, ready to draw its predictions.

    The checkpoint must hold every weight of the model (:func:`check_checkpoint_covers`): a checkpoint
    of another task or a classification checkpoint is refused with the missing key groups named, unless
    ``allow_partial``.

    Args:
        cfg: the loaded config of a detector or segmentor.
        checkpoint: weights written by training (``epoch_*.pth`` / ``iter_*.pth``).
        device: ``'cpu'`` or ``'cuda:0'`` ...
        allow_partial: load a checkpoint that leaves some weights at their initial values (with a warning).
    """

    def __init__(
        self, cfg: Config, checkpoint: str | os.PathLike, device: str = "cpu", allow_partial: bool = False
    ) -> None:
        from .checkpoint_coverage import check_checkpoint_covers
        from .weights_only import allow_mmengine_checkpoints

        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
        cfg = copy.deepcopy(cfg)
        cfg.model.backbone.init_cfg = None  # the checkpoint holds every weight
        allow_mmengine_checkpoints()
        self.cfg = cfg
        self.model = self.init_model(cfg, device)
        self.visualizer = self.build_visualizer()
        check_checkpoint_covers(self.model, checkpoint, allow_partial=allow_partial)
        self._load(checkpoint)
        self.visualizer.dataset_meta = self.model.dataset_meta

    @abc.abstractmethod
    def init_model(self, cfg: Config, device: str) -> nn.Module:
        """The toolbox's model for ``cfg``, without weights, with the dataset's class names."""

    @abc.abstractmethod
    def build_visualizer(self) -> Any:
        """The toolbox's local visualizer, under a name of its own."""

    @abc.abstractmethod
    def infer(self, image: str | np.ndarray) -> Any:
        """The toolbox's inference API on one image path or BGR array: its data sample."""

    @abc.abstractmethod
    def ground_truth(self, annotations: str | os.PathLike, image: str | os.PathLike, shape: tuple) -> dict:
        """The ground-truth fields of a data sample for ``image`` drawn at ``shape`` (H, W)."""

    def draw_options(self, score_thr: float) -> dict[str, Any]:
        """Keyword arguments of the visualizer's ``add_datasample`` besides the data."""
        return {}

    def finish_picture(self, picture: Path) -> None:  # noqa: B027  (optional hook, default: nothing)
        """Anything drawn on the written picture afterwards."""

    def _load(self, checkpoint: Path) -> None:
        """Load the weights and the class names the checkpoint records, as ``init_detector`` does."""
        from mmengine.runner import load_checkpoint

        loaded = load_checkpoint(self.model, os.fspath(checkpoint), map_location="cpu", strict=False)
        meta = loaded.get("meta", {}).get("dataset_meta") if isinstance(loaded, dict) else None
        if meta:
            self.model.dataset_meta = meta

    def predict(self, image: str | os.PathLike | np.ndarray) -> Any:
        """The model's ``DetDataSample`` / ``SegDataSample`` for one image file (or a BGR array)."""
        return self.infer(image if isinstance(image, np.ndarray) else _existing(image))

    def draw(
        self,
        image: str | os.PathLike,
        out_file: str | os.PathLike,
        score_thr: float = 0.3,
        annotations: str | os.PathLike | None = None,
        min_width: int = 0,
    ) -> Path:
        """Predict on ``image`` and write the drawing (boxes + masks, or a colour overlay) to ``out_file``.

        Args:
            score_thr: draw detections from this score up (detection).
            annotations: the ground truth to draw beside the prediction: a COCO json holding ``image``
                (detection) or the image's label PNG (segmentation, in the config's label convention).
            min_width: upscale the image (bicubic) to at least this width before predicting and drawing.
        """
        import mmcv

        bgr = mmcv.imread(_existing(image))
        if bgr is None:
            raise ValueError(f"cannot decode image {image}")
        scale = max(1.0, min_width / bgr.shape[1])
        if scale > 1:
            bgr = mmcv.imresize(
                bgr, (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale)), interpolation="bicubic"
            )
        sample = self.predict(bgr)
        if annotations is not None:
            sample.set_data(self.ground_truth(annotations, image, bgr.shape[:2]))
        out_file = Path(out_file)
        out_file.parent.mkdir(parents=True, exist_ok=True)
        self.visualizer.add_datasample(
            Path(image).stem,
            mmcv.bgr2rgb(bgr),
            data_sample=sample,
            draw_gt=annotations is not None,
            show=False,
            out_file=os.fspath(out_file),
            **self.draw_options(score_thr),
        )
        self.finish_picture(out_file)
        return out_file


def _existing(image: str | os.PathLike) -> str:
    if not Path(image).is_file():
        raise FileNotFoundError(f"image not found: {image}")
    return os.fspath(image)


def build_predictor(
    config: str | os.PathLike | Config,
    checkpoint: str | os.PathLike,
    device: str = "cpu",
    allow_partial: bool = False,
) -> Predictor:
    """The config's task's :class:`Predictor` (``config``: a file or a loaded config)."""
    from .task import task_of

    cfg = config if isinstance(config, Config) else Config.fromfile(os.fspath(config))
    return task_of(cfg).predictor(cfg, checkpoint, device, allow_partial)
