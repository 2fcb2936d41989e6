"""The demo's last stage: training curves of every stage and ground truth beside predictions.

The curves come from each run's mmengine scalars (:func:`parcnetv2.visualize.plot_runs`), the pictures
from the task's predictor (:func:`parcnetv2.openmmlab.predictor.build_predictor`: mmdet's and mmseg's
visualizers), all listed with a note in ``index.md``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .context import Context

__all__ = ["stage_pictures"]


def _val_images(folder: Path, count: int) -> list[Path]:
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    if not images:
        raise FileNotFoundError(f"no validation images in {folder}")
    step = max(1, len(images) // count)
    return images[::step][:count]


_CURVE_KEYS = {
    "detection": ("loss", "loss_rpn_cls", "loss_cls", "loss_bbox", "loss_mask"),
    "segmentation": ("loss", "decode.loss_ce", "aux.loss_ce"),
}


def stage_pictures(ctx: Context) -> dict[str, Any]:
    from parcnetv2.openmmlab.predictor import build_predictor
    from parcnetv2.visualize import plot_runs, read_scalars, write_index

    b, out = ctx.budget, ctx.out / "pictures"
    out.mkdir(parents=True, exist_ok=True)
    det, seg, data = ctx.results["detection"], ctx.results["segmentation"], ctx.results["data"]
    files: dict[str, Any] = {"classification_curves": str(out / "classification_curves.png")}
    shutil.copyfile(ctx.results["classification"]["curves"], files["classification_curves"])
    for task, result in (("detection", det), ("segmentation", seg)):
        runs = {
            "from the classifier": read_scalars(result["work_dir"]),
            "from scratch": read_scalars(result["scratch_work_dir"]),
        }
        if not all(runs.values()):
            raise RuntimeError(
                f"no training records under {result['work_dir']} or {result['scratch_work_dir']}"
            )
        files[f"{task}_curves"] = str(
            plot_runs(runs, out / f"{task}_curves.png", _CURVE_KEYS[task], result["model"])
        )
    coco, ade = Path(data["coco"]), Path(data["ade"])
    for task, result, folder, ground_truth in (
        ("detection", det, coco / "val", lambda img: coco / "annotations" / "instances_val.json"),
        ("segmentation", seg, ade / "images" / "validation",
         lambda img: ade / "annotations" / "validation" / f"{img.stem}.png"),
    ):  # fmt: skip
        predictor = build_predictor(result["config"], result["checkpoint"])
        files[f"{task}_predictions"] = [
            str(
                predictor.draw(
                    img, out / f"{task}_{img.stem}.png", b.det_score_thr, ground_truth(img), b.picture_width
                )
            )
            for img in _val_images(folder, b.num_pictures)
        ]
    files["index"] = str(write_index(out / "index.md", files, _picture_notes(ctx.results)))
    return dict(folder=str(out), files=files)


def _picture_notes(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    det, seg = results["detection"], results["segmentation"]
    return {
        "classification_curves": f"classification: {results['classification']['model']}, "
        f"top-1 {results['classification']['top1']:.2f} %",
        "detection_curves": f"detection losses, from the classifier (bbox mAP {det['bbox_mAP']:.3f}) and "
        f"from scratch ({det['scratch_bbox_mAP']:.3f})",
        "segmentation_curves": f"segmentation losses, from the classifier (mIoU {seg['mIoU']:.2f}) and from "
        f"scratch ({seg['scratch_mIoU']:.2f})",
        "detection_predictions": "detection on validation images: ground truth (left), prediction from the "
        "classifier-initialised model (right)",
        "segmentation_predictions": "segmentation on validation images: ground truth (left), prediction "
        "(right); 0 / unlabelled clutter is not coloured",
    }
