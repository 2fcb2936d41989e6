"""Draw a detector's or segmentor's predictions on an image, and plot OpenMMLab training curves.

One entry point for detection (mmdet) and segmentation (mmseg) configs alike; the config's
``default_scope`` picks the toolbox. Used by ``tools/demo.py`` and the end-to-end demo
(:mod:`parcnetv2.demo`).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["Predictor", "plot_scalars", "read_scalars"]

_instance_ids = itertools.count()


def _unique(prefix: str) -> str:
    """A visualizer name no other instance uses (mmengine keeps one global instance per name)."""
    return f"{prefix}_{os.getpid()}_{next(_instance_ids)}"


class Predictor:
    """A model built from an mmdet or mmseg config and checkpoint, ready to draw its predictions.

    Args:
        config: config file (or loaded ``mmengine.Config``) of a detector or segmentor.
        checkpoint: weights written by training (``epoch_*.pth`` / ``iter_*.pth``).
        device: ``'cpu'`` or ``'cuda:0'`` ...
    """

    def __init__(self, config: str | os.PathLike | Any, checkpoint: str | os.PathLike, device: str = "cpu"):
        from mmengine.config import Config

        from parcnetv2.detection.compat import allow_mmengine_checkpoints
        from parcnetv2.detection.runtime import config_scope

        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
        cfg = config if isinstance(config, Config) else Config.fromfile(os.fspath(config))
        cfg = copy.deepcopy(cfg)
        cfg.model.backbone.init_cfg = None  # the checkpoint holds every weight
        allow_mmengine_checkpoints()
        self.scope = config_scope(cfg)
        if self.scope == "mmdet":
            from mmdet.apis import init_detector
            from mmdet.visualization import DetLocalVisualizer

            self.model = init_detector(cfg, os.fspath(checkpoint), device=device)
            self.visualizer = DetLocalVisualizer(name=_unique("parcnetv2_det"))
        else:
            from mmseg.apis import init_model
            from mmseg.visualization import SegLocalVisualizer

            self.model = init_model(cfg, os.fspath(checkpoint), device=device)
            self.visualizer = SegLocalVisualizer(name=_unique("parcnetv2_seg"), alpha=0.6)
        self.visualizer.dataset_meta = self.model.dataset_meta

    def predict(self, image: str | os.PathLike) -> Any:
        """The model's ``DetDataSample`` / ``SegDataSample`` for one image file."""
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
        if self.scope == "mmdet":
            from mmdet.apis import inference_detector

            return inference_detector(self.model, os.fspath(path))
        from mmseg.apis import inference_model

        return inference_model(self.model, os.fspath(path))

    def draw(self, image: str | os.PathLike, out_file: str | os.PathLike, score_thr: float = 0.3) -> Path:
        """Predict on ``image`` and write the drawing (boxes + masks, or a colour overlay) to ``out_file``."""
        import mmcv

        sample = self.predict(image)
        rgb = mmcv.imread(os.fspath(image), channel_order="rgb")
        if rgb is None:
            raise ValueError(f"cannot decode image {image}")
        out_file = Path(out_file)
        out_file.parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = dict(draw_gt=False, show=False, out_file=os.fspath(out_file))
        if self.scope == "mmdet":
            kwargs["pred_score_thr"] = score_thr
        self.visualizer.add_datasample(Path(image).stem, rgb, data_sample=sample, **kwargs)
        return out_file


def read_scalars(work_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The training records mmengine's ``LocalVisBackend`` wrote under ``work_dir/*/vis_data/scalars.json``
    (lines with a ``loss``), oldest run first; a resumed run's lines follow the first run's."""
    records: list[dict[str, Any]] = []
    for path in sorted(Path(work_dir).glob("*/vis_data/scalars.json")):
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                if "loss" in row:
                    records.append(row)
    return records


def plot_scalars(
    records: Sequence[dict[str, Any]],
    out_file: str | os.PathLike,
    keys: Sequence[str] = ("loss",),
    title: str = "",
) -> Path | None:
    """Plot ``keys`` against the training step (and the learning rate on a second axis) as a PNG.

    Returns None when there is nothing to plot."""
    rows = [r for r in records if "step" in r or "iter" in r]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r.get("step", r.get("iter")) for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    for key in keys:
        points = [(s, r[key]) for s, r in zip(steps, rows, strict=True) if key in r]
        if points:
            ax.plot(*zip(*points, strict=True), label=key, marker="." if len(points) < 30 else None)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if any("lr" in r for r in rows):
        lr_ax = ax.twinx()
        lr_points = [(s, r["lr"]) for s, r in zip(steps, rows, strict=True) if "lr" in r]
        lr_ax.plot(*zip(*lr_points, strict=True), color="tab:gray", linestyle="--", label="lr")
        lr_ax.set_ylabel("learning rate")
    ax.legend(loc="upper right")
    ax.set_title(title)
    fig.tight_layout()
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_file)
    plt.close(fig)
    return out_file
