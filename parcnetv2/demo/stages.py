"""The demo's first four stages: the built-in data, the classifier, Mask R-CNN and UperNet.

Each stage runs the project's own pipeline with its own recipe: ``configs/classification/builtin.yaml``
(``-c``) for the classifier, the two built-in OpenMMLab configs (:data:`DETECTION_CONFIG`,
:data:`SEGMENTATION_CONFIG`) for the downstream tasks; the budget adds only data sizes and training
lengths.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from parcnetv2 import REPO_ROOT
from parcnetv2.preemption import PREEMPTED_STATUS

from .context import Context, say
from .downstream import both_metrics, downstream, runs_record

__all__ = [
    "CLASSIFICATION_RECIPE",
    "DETECTION_CONFIG",
    "SEGMENTATION_CONFIG",
    "stage_classification",
    "stage_data",
    "stage_detection",
    "stage_segmentation",
]

CLASSIFICATION_RECIPE = REPO_ROOT / "configs" / "classification" / "builtin.yaml"
DETECTION_CONFIG = REPO_ROOT / "configs" / "mask_rcnn" / "mask-rcnn_parcnetv2-xt_fpn_4e_synthetic-coco.py"
SEGMENTATION_CONFIG = (
    REPO_ROOT / "configs" / "upernet" / "parcnetv2-xt_upernet_1xb4-2k_synthetic-ade-96x96.py"
)


def _data_roots(ctx: Context) -> dict[str, Path]:
    return {task: ctx.data_dir / f"synthetic_{task}" for task in ("cls", "coco", "ade")}


def stage_data(ctx: Context) -> dict[str, Any]:
    """Write (or reuse) the three built-in sets at the budget's sizes; their roots."""
    from parcnetv2.builtin_data import AdeSpec, ClsSpec, CocoSpec, ensure, read_manifest

    b, roots = ctx.budget, _data_roots(ctx)
    low, high = b.det_image_sizes
    specs = {
        "cls": ClsSpec(0, b.cls_image_size, b.cls_train_per_class, b.cls_val_per_class),
        "coco": CocoSpec(0, b.det_num_train, b.det_num_val, (low, low), (high, high)),
        "ade": AdeSpec(0, b.seg_num_train, b.seg_num_val, b.seg_min_size, b.seg_max_size),
    }
    for task, spec in specs.items():
        found = read_manifest(roots[task])
        if found is not None and found.get("task") == spec.task and found != spec.to_json():
            # a built-in set of another spec or format version (e.g. left by an older demo): it is
            # regenerated from its spec, so replace it rather than stop
            say(f"{roots[task]} holds another version of the {spec.title}; generating it again")
            shutil.rmtree(roots[task])
        ensure(roots[task], spec, log=say)
    return {task: str(root) for task, root in roots.items()}


def stage_classification(ctx: Context) -> dict[str, Any]:
    """Pretrain with the classification pipeline's built-in recipe, for the budget's epochs."""
    from parcnetv2.classification.train import main as train_classifier

    run_dir = ctx.out / "classification"
    argv = ["-c", str(CLASSIFICATION_RECIPE), "--data-dir", ctx.results["data"]["cls"]]
    argv += ["--epochs", str(ctx.budget.cls_epochs), "--output", str(run_dir)]
    # a preemption signal leaves recovery.pth.tar (mid-epoch), a kill the last epoch's last.pth.tar
    last = next((p for p in (run_dir / "recovery.pth.tar", run_dir / "last.pth.tar") if p.is_file()), None)
    if last is not None:
        say(f"resuming the interrupted classification run from {last}")
        argv += ["--resume", str(last)]
    run = train_classifier(argv)
    if run["stopped"]:
        say(f"stopped by a signal with {run['checkpoints']['resume_from']}: run the demo again to continue")
        raise SystemExit(PREEMPTED_STATUS)
    metrics = run["metrics"]
    return dict(
        model=yaml.safe_load(CLASSIFICATION_RECIPE.read_text())["model"],
        top1=round(float(metrics["eval_top1"]), 2),
        top5=round(float(metrics["eval_top5"]), 2),
        best_top1=round(float(run["best"]["top1"]), 2),
        epochs=ctx.budget.cls_epochs,
        checkpoint=run["checkpoints"]["weights"],
        run_dir=str(run_dir),
        curves=str(run_dir / "curves.png"),
    )


def _downstream_config(
    ctx: Context, config: Path, data: str, work_dir: Path, pretrained: str | None, **kw: Any
) -> Any:
    """The built-in ``config`` on the demo's data, seeded, loading in the main process when the two runs
    share the machine side by side."""
    from parcnetv2.openmmlab.config import load_config

    return load_config(
        config,
        data_root=ctx.results["data"][data],
        work_dir=work_dir,
        pretrained=pretrained,
        num_workers=0 if ctx.budget.parallel else 1,
        seed=0,
        **kw,
    )


def stage_detection(ctx: Context) -> dict[str, Any]:
    """Mask R-CNN from the classifier and from scratch, for the budget's epochs; COCO mAPs of both."""
    epochs = ctx.budget.det_epochs

    def build(work_dir: Path, pretrained: str | None) -> Any:
        options = {"train_cfg.max_epochs": epochs}  # the cosine schedule follows (merge_cfg_options)
        return _downstream_config(ctx, DETECTION_CONFIG, "coco", work_dir, pretrained, cfg_options=options)

    runs = downstream(ctx, "detection", build)
    names = ("bbox_mAP", "segm_mAP", "bbox_mAP_50", "segm_mAP_50")
    return dict(
        model="Mask R-CNN + ParCNetV2-XT",
        **both_metrics(runs, {name: f"coco/{name}" for name in names}, 3),
        epochs=epochs,
        **runs_record(runs),
    )


def stage_segmentation(ctx: Context) -> dict[str, Any]:
    """UperNet from the classifier and from scratch, for the budget's iterations; mIoU of both."""

    def build(work_dir: Path, pretrained: str | None) -> Any:
        return _downstream_config(
            ctx, SEGMENTATION_CONFIG, "ade", work_dir, pretrained, max_iters=ctx.budget.seg_iters
        )

    runs = downstream(ctx, "segmentation", build)
    return dict(
        model="UperNet + ParCNetV2-XT",
        **both_metrics(runs, {name: name for name in ("mIoU", "mAcc", "aAcc")}, 2),
        **runs_record(runs),
    )
