"""The main job: pretrain, transfer and report on the built-in data, end to end, on a CPU.

    python -m parcnetv2.demo [--out results] [--budget full|tiny]      (``make demo``)

Stages, each with the project's real pipelines:

1. ``data``: generate the three built-in sets if absent (classification, COCO-format instances,
   ADE20K-layout scenes);
2. ``classification``: pretrain ``parcnetv2_xt`` with :mod:`parcnetv2.classification.train`;
3. ``detection``: fine-tune Mask R-CNN from that checkpoint with mmdet's ``Runner``, then evaluate it as
   mmdet's ``tools/test.py`` does (bbox and segm mAP, ``CocoMetric``);
4. ``segmentation``: the same for UperNet with mmseg (mIoU, ``IoUMetric``, sliding window);
5. ``pictures``: training curves, and predictions drawn on validation images with mmdet's and mmseg's
   visualizers.

Each stage writes ``OUT/<stage>/result.json`` when it finishes; a rerun skips finished stages (and
resumes an interrupted training from its last checkpoint) unless their inputs changed. The summary
table is printed at the end and written to ``OUT/summary.md`` and ``OUT/summary.json``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["BUDGETS", "Budget", "main", "run"]

STAGES = ("data", "classification", "detection", "segmentation", "pictures")


@dataclass(frozen=True)
class Budget:
    """How much of everything the demo does; ``full`` is ``make demo``, ``tiny`` is for the tests."""

    name: str
    # classification: built-in set (images per class, size) and training
    cls_image_size: int = 96
    cls_train_per_class: int = 300
    cls_val_per_class: int = 60
    cls_epochs: int = 4
    cls_input_size: int = 64
    cls_batch_size: int = 32
    # detection: built-in COCO-format set and Mask R-CNN fine-tuning
    det_num_train: int = 400
    det_num_val: int = 100
    det_image_sizes: tuple[int, int] = (160, 256)
    det_epochs: int = 2
    # segmentation: built-in ADE20K-layout set and UperNet fine-tuning
    seg_num_train: int = 300
    seg_num_val: int = 60
    seg_min_size: tuple[int, int] = (112, 144)
    seg_max_size: tuple[int, int] = (160, 208)
    seg_iters: int = 600
    # pictures: validation images drawn per task; detections drawn from this score up (a few minutes of
    # CPU training leaves the toy detector's scores around 0.1-0.25, below mmdet's usual 0.3)
    num_pictures: int = 4
    det_score_thr: float = 0.15

    def key(self, *fields: str) -> str:
        """A short hash of the named fields: a finished stage is redone when its inputs change."""
        values = asdict(self)
        return hashlib.sha1(json.dumps([values[f] for f in fields], sort_keys=True).encode()).hexdigest()[:12]


BUDGETS = {
    "full": Budget("full"),
    "tiny": Budget(
        "tiny",
        cls_image_size=32,
        cls_train_per_class=4,
        cls_val_per_class=2,
        cls_epochs=1,
        cls_input_size=32,
        cls_batch_size=8,
        det_num_train=4,
        det_num_val=2,
        det_image_sizes=(64, 96),
        det_epochs=1,
        seg_num_train=4,
        seg_num_val=2,
        seg_min_size=(64, 64),
        seg_max_size=(80, 96),
        seg_iters=2,
        num_pictures=1,
    ),
}

_CLS_FIELDS = ("cls_image_size", "cls_train_per_class", "cls_val_per_class")
_DET_FIELDS = ("det_num_train", "det_num_val", "det_image_sizes")
_SEG_FIELDS = ("seg_num_train", "seg_num_val", "seg_min_size", "seg_max_size")


# ------------------------------------------------------------------------------------------ plumbing
def _say(message: str) -> None:
    print(f"\n[demo] {message}", flush=True)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _write_json(path: Path, obj: Any) -> None:
    """Write atomically: a stage counts as done only once its result file is complete."""
    from parcnetv2.classification.checkpointing import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n"))


@dataclass
class _Context:
    out: Path
    data_dir: Path
    budget: Budget
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> str:
        return _duration(time.perf_counter() - self.start)


def _run_stage(ctx: _Context, index: int, name: str, key: str, body: Callable[[_Context], dict]) -> None:
    """Run ``body`` unless ``OUT/<name>/result.json`` records the same ``key``; keep its result."""
    result_path = ctx.out / name / "result.json"
    header = f"stage {index}/{len(STAGES)}: {name}"
    if result_path.is_file():
        done = json.loads(result_path.read_text())
        if done.get("key") == key:
            _say(f"{header} already done ({_duration(done['wall_s'])}, {result_path}); skipping")
            ctx.results[name] = done
            return
        _say(f"{header}: inputs changed since the last run, redoing it")
    _say(f"{header} (total elapsed {ctx.elapsed()})")
    begin = time.perf_counter()
    result = body(ctx)
    result.update(key=key, wall_s=round(time.perf_counter() - begin, 1), finished=time.time())
    _write_json(result_path, result)
    ctx.results[name] = result
    _say(f"{header} finished in {_duration(result['wall_s'])}")


def _stamp(ctx: _Context, name: str) -> str:
    """Identifies one finished run of a stage: what depends on it is redone when it is redone."""
    return f"{ctx.results[name]['key']}@{ctx.results[name]['finished']}"


# ------------------------------------------------------------------------------------------ stages
def _data_roots(ctx: _Context) -> dict[str, Path]:
    return {task: ctx.data_dir / f"synthetic_{task}" for task in ("cls", "coco", "ade")}


def _stage_data(ctx: _Context) -> dict[str, Any]:
    from parcnetv2.classification.synthetic import SyntheticSpec
    from parcnetv2.classification.synthetic import ensure_synthetic_dataset as ensure_cls
    from parcnetv2.detection.synthetic import generate as generate_coco
    from parcnetv2.segmentation.synthetic import SyntheticSegSpec
    from parcnetv2.segmentation.synthetic import ensure_synthetic_dataset as ensure_ade

    b, roots = ctx.budget, _data_roots(ctx)
    ensure_cls(roots["cls"], SyntheticSpec(0, b.cls_image_size, b.cls_train_per_class, b.cls_val_per_class))
    low, high = b.det_image_sizes
    generate_coco(roots["coco"], b.det_num_train, b.det_num_val, seed=0, min_size=low, max_size=high)
    ensure_ade(
        roots["ade"], SyntheticSegSpec(0, b.seg_num_train, b.seg_num_val, b.seg_min_size, b.seg_max_size)
    )
    return {task: str(root) for task, root in roots.items()}


def _stage_classification(ctx: _Context) -> dict[str, Any]:
    from parcnetv2.classification.config import BUILTIN_DEFAULTS
    from parcnetv2.classification.train import main as train_classifier

    b, run_dir = ctx.budget, ctx.out / "classification"
    # the pipeline's defaults for its built-in data (not the ImageNet recipe it uses for a data path)
    argv = ["--drop-path", "0.0"]
    for name, value in BUILTIN_DEFAULTS.items():
        argv += [f"--{name.replace('_', '-')}", *map(str, value if isinstance(value, list) else [value])]
    argv += [
        "--data-dir", ctx.results["data"]["cls"],
        "--model", "parcnetv2_xt",
        "--epochs", str(b.cls_epochs),
        "--input-size", str(b.cls_input_size),
        "-b", str(b.cls_batch_size),
        "--output", str(run_dir),
    ]  # fmt: skip
    last = run_dir / "last.pth.tar"
    if last.is_file():
        _say(f"resuming the interrupted classification run from {last}")
        argv += ["--resume", str(last)]
    run = train_classifier(argv)
    metrics = run["metrics"]
    return dict(
        model="parcnetv2_xt",
        top1=round(float(metrics["eval_top1"]), 2),
        top5=round(float(metrics["eval_top5"]), 2),
        best_top1=round(float(run["best"]["top1"]), 2),
        epochs=b.cls_epochs,
        checkpoint=run["checkpoints"]["weights"],
        run_dir=str(run_dir),
        curves=str(run_dir / "curves.png"),
    )


def _test(cfg: Any, checkpoint: str) -> dict[str, float]:
    """Evaluate ``checkpoint`` on the config's test set, as mmdet's/mmseg's ``tools/test.py`` do."""
    from mmengine.runner import Runner

    cfg = copy.deepcopy(cfg)
    cfg.load_from = checkpoint
    cfg.model.backbone.init_cfg = None
    cfg.work_dir = str(Path(cfg.work_dir) / "test")
    return {k: float(v) for k, v in Runner.from_cfg(cfg).test().items()}


def _train_then_test(cfg: Any, checkpoint_name: Callable[[Any], str]) -> tuple[Any, str, dict[str, float]]:
    """Train ``cfg`` without validation (resuming from the work dir's last checkpoint if any), then
    evaluate the checkpoint it ended with (``checkpoint_name(runner)`` in the work dir); returns the
    runner, that checkpoint and the test metrics."""
    from mmengine.runner import Runner

    train_cfg = copy.deepcopy(cfg)
    train_cfg.resume = True
    train_cfg.val_dataloader = train_cfg.val_cfg = train_cfg.val_evaluator = None
    runner = Runner.from_cfg(train_cfg)
    runner.train()
    checkpoint = str(Path(cfg.work_dir) / checkpoint_name(runner))
    return runner, checkpoint, _test(cfg, checkpoint)


def _pretrained(ctx: _Context) -> str:
    checkpoint = ctx.results["classification"]["checkpoint"]
    if not checkpoint or not Path(checkpoint).is_file():
        raise FileNotFoundError(f"the classification stage left no weights file ({checkpoint!r})")
    return checkpoint


def _stage_detection(ctx: _Context) -> dict[str, Any]:
    from parcnetv2.detection.synthetic import load_config

    epochs, work_dir = ctx.budget.det_epochs, ctx.out / "detection"
    cfg = load_config(
        ctx.results["data"]["coco"],
        work_dir=work_dir,
        pretrained=_pretrained(ctx),
        options={
            "train_cfg.max_epochs": epochs,
            "optim_wrapper.paramwise_cfg.decay_rate": 0.9,  # fine-tuning: lower lr for earlier layers
            "train_dataloader.num_workers": 1,
            "test_dataloader.num_workers": 1,
        },
    )
    for sched in cfg.param_scheduler:
        if sched.type == "CosineAnnealingLR":
            sched.end = epochs
    runner, checkpoint, metrics = _train_then_test(cfg, lambda r: f"epoch_{r.epoch}.pth")
    return dict(
        model="Mask R-CNN + ParCNetV2-XT",
        bbox_mAP=round(metrics["coco/bbox_mAP"], 3),
        bbox_mAP_50=round(metrics["coco/bbox_mAP_50"], 3),
        segm_mAP=round(metrics["coco/segm_mAP"], 3),
        segm_mAP_50=round(metrics["coco/segm_mAP_50"], 3),
        epochs=epochs,
        iterations=runner.iter,
        checkpoint=checkpoint,
        work_dir=str(work_dir),
        config=cfg.filename,
    )


def _stage_segmentation(ctx: _Context) -> dict[str, Any]:
    from parcnetv2.segmentation.quickstart import BUILTIN_CONFIG, build_config

    iters, work_dir = ctx.budget.seg_iters, ctx.out / "segmentation"
    cfg = build_config(
        BUILTIN_CONFIG,
        data_root=ctx.results["data"]["ade"],
        work_dir=work_dir,
        pretrained=_pretrained(ctx),
        max_iters=iters,
        num_workers=1,
    )
    runner, checkpoint, metrics = _train_then_test(cfg, lambda r: f"iter_{r.iter}.pth")
    return dict(
        model="UperNet + ParCNetV2-XT",
        mIoU=round(metrics["mIoU"], 2),
        mAcc=round(metrics["mAcc"], 2),
        aAcc=round(metrics["aAcc"], 2),
        iterations=runner.iter,
        checkpoint=checkpoint,
        work_dir=str(work_dir),
        config=str(BUILTIN_CONFIG),
    )


def _val_images(folder: Path, count: int) -> list[Path]:
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    if not images:
        raise FileNotFoundError(f"no validation images in {folder}")
    step = max(1, len(images) // count)
    return images[::step][:count]


def _stage_pictures(ctx: _Context) -> dict[str, Any]:
    from parcnetv2.visualize import Predictor, plot_scalars, read_scalars

    out, n = ctx.out / "pictures", ctx.budget.num_pictures
    out.mkdir(parents=True, exist_ok=True)
    det, seg = ctx.results["detection"], ctx.results["segmentation"]
    pictures = {"classification_curves": str(out / "classification_curves.png")}
    shutil.copyfile(ctx.results["classification"]["curves"], pictures["classification_curves"])
    for task, result, keys in (
        ("detection", det, ("loss", "loss_rpn_cls", "loss_cls", "loss_bbox", "loss_mask")),
        ("segmentation", seg, ("loss", "decode.loss_ce", "aux.loss_ce")),
    ):
        curve = plot_scalars(
            read_scalars(result["work_dir"]), out / f"{task}_curves.png", keys=keys, title=result["model"]
        )
        if curve is None:
            raise RuntimeError(f"no training records under {result['work_dir']} to plot")
        pictures[f"{task}_curves"] = str(curve)
    data = ctx.results["data"]
    for task, result, folder in (
        ("detection", det, Path(data["coco"]) / "val"),
        ("segmentation", seg, Path(data["ade"]) / "images" / "validation"),
    ):
        predictor = Predictor(result["config"], result["checkpoint"])
        drawn = [
            str(predictor.draw(img, out / f"{task}_{img.stem}.png", ctx.budget.det_score_thr))
            for img in _val_images(folder, n)
        ]
        pictures[f"{task}_predictions"] = drawn
    return dict(folder=str(out), files=pictures)


# ------------------------------------------------------------------------------------------ summary
def summary_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    """The summary table (header first): one row per stage with its metrics, time and checkpoint."""
    cls, det, seg = results["classification"], results["detection"], results["segmentation"]
    return [
        ["stage", "what", "result", "wall time", "checkpoint / output"],
        ["data", "built-in cls / COCO-format / ADE20K-layout sets", "-", _duration(results["data"]["wall_s"]),
         str(Path(results["data"]["cls"]).parent)],
        ["classification", f"{cls['model']}, {cls['epochs']} epochs", f"top-1 {cls['top1']:.2f} %, top-5 "
         f"{cls['top5']:.2f} %", _duration(cls["wall_s"]), cls["checkpoint"]],
        ["detection", f"{det['model']}, {det['epochs']} epochs", f"bbox mAP {det['bbox_mAP']:.3f}, segm mAP "
         f"{det['segm_mAP']:.3f}", _duration(det["wall_s"]), det["checkpoint"]],
        ["segmentation", f"{seg['model']}, {seg['iterations']} iterations", f"mIoU {seg['mIoU']:.2f} %",
         _duration(seg["wall_s"]), seg["checkpoint"]],
        ["pictures", "training curves, predictions on val images", "-",
         _duration(results["pictures"]["wall_s"]), results["pictures"]["folder"]],
    ]  # fmt: skip


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (readable as plain text too)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ entry points
def run(out: str | os.PathLike, budget: Budget, data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run (or finish) every stage into ``out``; returns the summary (also ``out/summary.json``)."""
    ctx = _Context(Path(out), Path(data_dir) if data_dir else Path(out) / "data", budget)
    ctx.out.mkdir(parents=True, exist_ok=True)
    data_key = budget.key(*_CLS_FIELDS, *_DET_FIELDS, *_SEG_FIELDS)
    _run_stage(ctx, 1, "data", data_key, _stage_data)
    cls_key = budget.key(*_CLS_FIELDS, "cls_epochs", "cls_input_size", "cls_batch_size")
    _run_stage(ctx, 2, "classification", cls_key, _stage_classification)
    # downstream stages depend on the exact checkpoint they started from
    upstream = _stamp(ctx, "classification")
    det_key = budget.key(*_DET_FIELDS, "det_epochs") + upstream
    _run_stage(ctx, 3, "detection", det_key, _stage_detection)
    seg_key = budget.key(*_SEG_FIELDS, "seg_iters") + upstream
    _run_stage(ctx, 4, "segmentation", seg_key, _stage_segmentation)
    pic_key = _stamp(ctx, "detection") + _stamp(ctx, "segmentation")
    pic_key += budget.key("num_pictures", "det_score_thr")
    _run_stage(ctx, 5, "pictures", pic_key, _stage_pictures)

    table = format_table(summary_rows(ctx.results))
    total = sum(r["wall_s"] for r in ctx.results.values())
    summary = dict(budget=asdict(budget), stages=ctx.results, total_wall_s=round(total, 1), table=table)
    _write_json(ctx.out / "summary.json", summary)
    (ctx.out / "summary.md").write_text(
        f"# ParCNetV2 demo ({budget.name} budget)\n\n{table}\n\nTotal stage time: {_duration(total)}.\n"
    )
    _say(f"summary ({budget.name} budget, stage time {_duration(total)}; also in {ctx.out / 'summary.md'}):")
    print(table, flush=True)
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m parcnetv2.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results", help="results folder (default: %(default)s)")
    p.add_argument("--budget", choices=sorted(BUDGETS), default="full", help="full: make demo; tiny: tests")
    p.add_argument("--data-dir", help="where the built-in sets are generated (default: OUT/data)")
    p.add_argument("--seg-iters", type=int, help="override the budget's segmentation iterations")
    p.add_argument("--det-epochs", type=int, help="override the budget's detection epochs")
    p.add_argument("--cls-epochs", type=int, help="override the budget's classification epochs")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    budget = BUDGETS[args.budget]
    overrides = {k: v for k, v in (("seg_iters", args.seg_iters), ("det_epochs", args.det_epochs),
                                   ("cls_epochs", args.cls_epochs)) if v is not None}  # fmt: skip
    if any(v < 1 for v in overrides.values()):
        raise SystemExit(f"epochs and iterations must be >= 1, got {overrides}")
    return run(args.out, replace(budget, **overrides), args.data_dir)


if __name__ == "__main__":
    main()
