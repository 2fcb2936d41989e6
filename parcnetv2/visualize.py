"""Draw a detector's or segmentor's predictions on an image, and plot OpenMMLab training curves.

One entry point for detection (mmdet) and segmentation (mmseg) configs alike; the config's
``default_scope`` picks the toolbox. Used by ``tools/misc/image_demo.py`` and the end-to-end demo
(:mod:`parcnetv2.demo`).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Predictor", "plot_scalars", "read_scalars"]

_instance_ids = itertools.count()


def _unique(prefix: str) -> str:
    """A visualizer name no other instance uses (mmengine keeps one global instance per name)."""
    return f"{prefix}_{os.getpid()}_{next(_instance_ids)}"


class Predictor:
    """A model built from an mmdet or mmseg config and checkpoint, ready to draw its predictions.

    The checkpoint must hold every weight of the model (:func:`check_checkpoint_covers`): a checkpoint
    of another task or a classification checkpoint is refused with the missing key groups named, unless
    ``allow_partial``.

    Args:
        config: config file (or loaded ``mmengine.Config``) of a detector or segmentor.
        checkpoint: weights written by training (``epoch_*.pth`` / ``iter_*.pth``).
        device: ``'cpu'`` or ``'cuda:0'`` ...
        allow_partial: load a checkpoint that leaves some weights at their initial values (with a warning).
    """

    def __init__(
        self,
        config: str | os.PathLike | Any,
        checkpoint: str | os.PathLike,
        device: str = "cpu",
        allow_partial: bool = False,
    ):
        from mmengine.config import Config

        from parcnetv2.openmmlab.checkpoint_coverage import check_checkpoint_covers
        from parcnetv2.openmmlab.config import config_scope
        from parcnetv2.openmmlab.weights_only import allow_mmengine_checkpoints

        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
        cfg = config if isinstance(config, Config) else Config.fromfile(os.fspath(config))
        cfg = copy.deepcopy(cfg)
        cfg.model.backbone.init_cfg = None  # the checkpoint holds every weight
        allow_mmengine_checkpoints()
        self.cfg, self.scope = cfg, config_scope(cfg)
        if self.scope == "mmdet":
            from mmdet.apis import init_detector
            from mmdet.visualization import DetLocalVisualizer

            with warnings.catch_warnings():  # "checkpoint is None": the weights and class names come next
                warnings.simplefilter("ignore", UserWarning)
                self.model = init_detector(cfg, None, device=device)
            self.visualizer = DetLocalVisualizer(name=_unique("parcnetv2_det"))
        else:
            from mmseg.apis import init_model
            from mmseg.visualization import SegLocalVisualizer

            self.model = init_model(cfg, None, device=device)
            self.visualizer = SegLocalVisualizer(name=_unique("parcnetv2_seg"), alpha=0.6)
        check_checkpoint_covers(self.model, checkpoint, allow_partial=allow_partial)
        self._load(checkpoint)
        self.visualizer.dataset_meta = self.model.dataset_meta

    def _load(self, checkpoint: Path) -> None:
        """Load the weights and the class names the checkpoint records, as ``init_detector`` does."""
        from mmengine.runner import load_checkpoint

        loaded = load_checkpoint(self.model, os.fspath(checkpoint), map_location="cpu", strict=False)
        meta = loaded.get("meta", {}).get("dataset_meta") if isinstance(loaded, dict) else None
        if meta:
            self.model.dataset_meta = meta

    def predict(self, image: str | os.PathLike | np.ndarray) -> Any:
        """The model's ``DetDataSample`` / ``SegDataSample`` for one image file (or a BGR array)."""
        if not isinstance(image, np.ndarray):
            path = Path(image)
            if not path.is_file():
                raise FileNotFoundError(f"image not found: {path}")
            image = os.fspath(path)
        if self.scope == "mmdet":
            from mmdet.apis import inference_detector

            return inference_detector(self.model, image)
        from mmseg.apis import inference_model

        return inference_model(self.model, image)

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
            annotations: the ground truth to draw beside the prediction: a COCO json holding ``image``
                (detection) or the image's label PNG (segmentation, in the config's label convention).
            min_width: upscale the image (bicubic) to at least this width before predicting and drawing.
        """
        import mmcv

        bgr = mmcv.imread(os.fspath(image))
        if bgr is None:
            raise ValueError(f"cannot decode image {image}")
        scale = max(1.0, min_width / bgr.shape[1])
        if scale > 1:
            bgr = mmcv.imresize(
                bgr, (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale)), interpolation="bicubic"
            )
        sample = self.predict(bgr)
        if annotations is not None:
            gt = (
                _coco_gt(annotations, image, bgr.shape[:2])
                if self.scope == "mmdet"
                else _seg_gt(self.cfg, annotations, bgr.shape[:2])
            )
            sample.set_data(gt)
        out_file = Path(out_file)
        out_file.parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = dict(
            draw_gt=annotations is not None, show=False, out_file=os.fspath(out_file)
        )
        if self.scope == "mmdet":
            kwargs["pred_score_thr"] = score_thr
        else:
            kwargs["with_labels"] = False  # the legend below names the colours; labels on regions stack up
        self.visualizer.add_datasample(Path(image).stem, mmcv.bgr2rgb(bgr), data_sample=sample, **kwargs)
        if self.scope == "mmseg":
            meta = self.model.dataset_meta
            _append_legend(out_file, meta["classes"], meta["palette"])
        return out_file


def _append_legend(picture: Path, classes: Sequence[str], palette: Sequence[Sequence[int]]) -> None:
    """Add a row of colour swatches with the class names under ``picture`` (RGB palette)."""
    import cv2

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


def _coco_gt(ann_file: str | os.PathLike, image: str | os.PathLike, shape: tuple[int, int]) -> dict[str, Any]:
    """``gt_instances`` (boxes, labels, masks) of ``image`` from a COCO json, scaled to ``shape``."""
    import torch
    from mmdet.structures.mask import PolygonMasks
    from mmengine.structures import InstanceData

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


def _seg_gt(cfg: Any, label_file: str | os.PathLike, shape: tuple[int, int]) -> dict[str, Any]:
    """``gt_sem_seg`` from a label PNG, with the test set's ``reduce_zero_label``, resized to ``shape``."""
    import inspect

    import mmcv
    import torch
    from mmengine.structures import PixelData
    from mmseg.registry import DATASETS

    labels = mmcv.imread(os.fspath(label_file), flag="unchanged", backend="pillow")
    if labels is None:
        raise ValueError(f"cannot decode label map {label_file}")
    dataset = cfg.test_dataloader.dataset
    default = inspect.signature(DATASETS.get(dataset.type)).parameters.get("reduce_zero_label")
    if dataset.get("reduce_zero_label", default.default if default else False):
        labels = np.where(labels == 0, 255, labels.astype(np.int64) - 1)
    labels = mmcv.imresize(labels.astype(np.uint8), (shape[1], shape[0]), interpolation="nearest")
    return dict(gt_sem_seg=PixelData(data=torch.from_numpy(labels.astype(np.int64))[None]))


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
    return _save_figure(fig, out_file)


def plot_runs(
    runs: Mapping[str, Sequence[dict[str, Any]]],
    out_file: str | os.PathLike,
    keys: Sequence[str] = ("loss",),
    title: str = "",
) -> Path:
    """One panel per loss in ``keys``, each with a curve per run (``{label: records}``), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in keys if any(k in r for records in runs.values() for r in records)]
    if not keys:
        raise ValueError(f"none of the runs {list(runs)} recorded a loss to plot")
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), dpi=100, squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        for label, records in runs.items():
            points = [(r.get("step", r.get("iter")), r[key]) for r in records if key in r]
            if points:
                marker = "o" if len(points) < 30 else None
                ax.plot(*zip(*points, strict=True), label=label, linewidth=1.2, marker=marker)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=9)
    fig.suptitle(title)
    return _save_figure(fig, out_file)


def _save_figure(fig: Any, out_file: str | os.PathLike) -> Path:
    """Lay out, write and close a matplotlib figure as a PNG."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_file)
    plt.close(fig)
    return out_file


def write_index(
    out_file: str | os.PathLike, files: Mapping[str, str | Sequence[str]], notes: Mapping[str, str]
) -> Path:
    """A Markdown page that shows every picture in ``files`` (``{name: path or [paths]}``) under its note."""
    out_file = Path(out_file)
    lines = ["# ParCNetV2 demo: pictures", ""]
    for name, paths in files.items():
        lines += [f"## {notes.get(name, name.replace('_', ' '))}", ""]
        for path in [paths] if isinstance(paths, str) else paths:
            rel = os.path.relpath(path, out_file.parent)
            lines += [f"![{Path(path).stem}]({rel})", ""]
    out_file.write_text("\n".join(lines))
    return out_file
