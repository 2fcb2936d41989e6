"""The main job: pretrain, transfer and report on the built-in data, end to end, on a CPU.

    python -m parcnetv2.demo [--out results] [--budget full|tiny]      (``make demo``)

Stages, each with the project's real pipelines:

1. ``data``: generate the three built-in sets (:mod:`parcnetv2.builtin_data`: one renderer, the same
   object categories in a classification, a COCO-format and an ADE20K-layout set);
2. ``classification``: pretrain ``parcnetv2_xt`` with :mod:`parcnetv2.classification.train`;
3. ``detection``: Mask R-CNN with mmdet's ``Runner`` twice, from that checkpoint and from scratch (same
   budget and seed, side by side), each evaluated as mmdet's ``tools/test.py`` does (``CocoMetric``);
4. ``segmentation``: the same for UperNet with mmseg (mIoU, ``IoUMetric``);
5. ``pictures``: training curves of all three stages (both runs of the downstream ones), ground truth
   beside prediction on validation images (mmdet's and mmseg's visualizers), and ``index.md``.

Each stage writes ``OUT/<stage>/result.json`` when it finishes, each downstream run
``OUT/<stage>/<run>/run.json``; a rerun skips what is finished (and resumes an interrupted training from
its last checkpoint) unless its inputs changed. The summary table is printed at the end and written to
``OUT/summary.md`` and ``OUT/summary.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

__all__ = ["BUDGETS", "Budget", "main", "run"]

STAGES = ("data", "classification", "detection", "segmentation", "pictures")


@dataclass(frozen=True)
class Budget:
    """How much of everything the demo does; ``full`` is ``make demo``, ``tiny`` is for the tests."""

    name: str
    # classification: built-in set (images per class, size) and training: 10,000 images rendered at the
    # input size (32 px, the smallest input the backbone takes, buys the most updates per CPU minute),
    # 6 epochs of 312 updates (docs/demo-notes.md: the measurements behind these numbers)
    cls_image_size: int = 32
    cls_train_per_class: int = 2000
    cls_val_per_class: int = 100
    cls_epochs: int = 6
    cls_input_size: int = 32
    cls_batch_size: int = 32
    cls_lr: float = 1e-3
    cls_warmup_epochs: float = 0.15
    # detection: built-in COCO-format set and Mask R-CNN, from the classifier and from scratch
    det_num_train: int = 300
    det_num_val: int = 60
    det_image_sizes: tuple[int, int] = (128, 160)
    det_epochs: int = 4
    # segmentation: built-in ADE20K-layout set and UperNet, from the classifier and from scratch (the
    # built-in config, whole scenes at 96 px, batch 4, lr 3e-3, for 1500 of its 2000 iterations: the
    # 20 minutes; docs/demo-notes.md)
    seg_num_train: int = 300
    seg_num_val: int = 60
    seg_min_size: tuple[int, int] = (128, 128)
    seg_max_size: tuple[int, int] = (192, 192)
    seg_iters: int = 1500
    # the pretrained and the scratch run of a downstream task side by side, one thread each
    parallel: bool = True
    # pictures: validation images drawn per task, detections drawn from this score up, panel width
    num_pictures: int = 4
    det_score_thr: float = 0.3
    picture_width: int = 512

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
        picture_width=128,
    ),
}

_CLS_FIELDS = ("cls_image_size", "cls_train_per_class", "cls_val_per_class")
_DET_FIELDS = ("det_num_train", "det_num_val", "det_image_sizes")
_SEG_FIELDS = ("seg_num_train", "seg_num_val", "seg_min_size", "seg_max_size")
RUNS = ("pretrained", "scratch")
"""The two runs of each downstream stage: from the classification checkpoint, and from scratch."""


# ------------------------------------------------------------------------------------------ plumbing
def _say(message: str) -> None:
    print(f"\n[demo] {message}", flush=True)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _write_json(path: Path, obj: Any) -> None:
    """Write atomically: a stage counts as done only once its result file is complete."""
    from parcnetv2.fileio import atomic_write

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
            _say(f"{roots[task]} holds another version of the {spec.title}; generating it again")
            shutil.rmtree(roots[task])
        ensure(roots[task], spec, log=_say)
    return {task: str(root) for task, root in roots.items()}


def _stage_classification(ctx: _Context) -> dict[str, Any]:
    from parcnetv2.classification.args import CONFIG_DIR
    from parcnetv2.classification.train import main as train_classifier

    b, run_dir = ctx.budget, ctx.out / "classification"
    # the pipeline's recipe for its built-in data, with this budget's values on top
    argv = [
        "-c", str(CONFIG_DIR / "builtin.yaml"),
        "--data-dir", ctx.results["data"]["cls"],
        "--model", "parcnetv2_xt",
        "--epochs", str(b.cls_epochs),
        "--img-size", str(b.cls_input_size),
        "-b", str(b.cls_batch_size),
        "--lr", str(b.cls_lr),
        "--warmup-epochs", str(b.cls_warmup_epochs),
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


def _pretrained(ctx: _Context) -> str:
    checkpoint = ctx.results["classification"]["checkpoint"]
    if not checkpoint or not Path(checkpoint).is_file():
        raise FileNotFoundError(f"the classification stage left no weights file ({checkpoint!r})")
    return checkpoint


def _downstream(ctx: _Context, stage: str, build: Callable[[Path, str | None], Any]) -> dict:
    """Train and test ``build(work_dir, pretrained)`` twice -- from the classification checkpoint and from
    scratch, same budget and seed -- side by side when the budget says so; returns ``{run: result}``.

    Each run keeps ``OUT/<stage>/<run>/run.json`` once tested: a rerun reuses it (and an interrupted
    training resumes from its last checkpoint)."""
    jobs = {}
    for run in RUNS:
        work_dir = ctx.out / stage / run
        cfg = build(work_dir, _pretrained(ctx) if run == "pretrained" else None)
        key = hashlib.sha1(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:12]
        if run == "pretrained":
            key += _stamp(ctx, "classification")
        done = work_dir / "run.json"
        if done.is_file() and json.loads(done.read_text()).get("key") == key:
            _say(f"{stage} {run}: already trained and tested ({done}); reusing it")
            jobs[run] = json.loads(done.read_text())
            continue
        jobs[run] = (cfg, key)
    todo = {run: job for run, job in jobs.items() if isinstance(job, tuple)}
    if todo and ctx.budget.parallel and len(todo) > 1:
        logs = ", ".join(str(ctx.out / stage / run / "stdout.log") for run in todo)
        _say(f"{stage}: training {' and '.join(todo)} side by side, one thread each (logs: {logs})")
        results = _in_processes({run: (cfg, key) for run, (cfg, key) in todo.items()})
    else:
        results = {run: _train_test_run(cfg, key) for run, (cfg, key) in todo.items()}
    jobs.update(results)
    return {run: jobs[run] for run in RUNS}


def _in_processes(jobs: dict[str, tuple[Any, str]]) -> dict[str, dict]:
    """Run ``_train_test_run`` for each job in its own (spawned) process, concurrently."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(jobs), mp_context=context) as pool:
        futures = {run: pool.submit(_train_test_run, *job, True) for run, job in jobs.items()}
        return {run: future.result() for run, future in futures.items()}


def _train_test_run(cfg: Any, key: str, in_child: bool = False) -> dict[str, Any]:
    """Train ``cfg`` without validation (resuming from its work dir), then test the checkpoint it ended
    with as mmdet's/mmseg's ``tools/test.py`` do (:func:`parcnetv2.openmmlab.runner.train_then_test`);
    record it in ``work_dir/run.json``. ``in_child``: one thread, output to ``work_dir/stdout.log``."""
    from mmengine.utils import import_modules_from_strings

    from parcnetv2.openmmlab.runner import train_then_test

    work_dir = Path(cfg.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    if in_child:
        import torch

        torch.set_num_threads(1)
        log = os.open(work_dir / "stdout.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
    import_modules_from_strings(**cfg.get("custom_imports", {}))
    cfg.dump(str(work_dir / "config.py"))  # what the pictures stage and tools/misc/image_demo.py load
    begin = time.perf_counter()
    run = train_then_test(cfg, validate=False, resume=True, test_work_dir=work_dir / "test")
    result = dict(
        key=key, metrics=run["test_metrics"], checkpoint=run["checkpoint"], epochs=run["epochs"],
        iterations=run["iterations"], work_dir=str(work_dir), wall_s=round(time.perf_counter() - begin, 1),
        pretrained=(cfg.model.backbone.get("init_cfg") or {}).get("checkpoint"),
    )  # fmt: skip
    _write_json(work_dir / "run.json", result)
    return result


def _stage_detection(ctx: _Context) -> dict[str, Any]:
    from parcnetv2.detection.synthetic import load_config

    epochs = ctx.budget.det_epochs

    def build(work_dir: Path, pretrained: str | None) -> Any:
        cfg = load_config(
            ctx.results["data"]["coco"],
            work_dir=work_dir,
            pretrained=pretrained,
            options={"train_cfg.max_epochs": epochs, "randomness.seed": 0},
        )
        for sched in cfg.param_scheduler:
            if sched.type == "CosineAnnealingLR":
                sched.end = epochs
        _loader_workers(cfg, 0 if ctx.budget.parallel else 1)
        return cfg

    runs = _downstream(ctx, "detection", build)
    names = ("bbox_mAP", "segm_mAP", "bbox_mAP_50", "segm_mAP_50")
    return dict(
        model="Mask R-CNN + ParCNetV2-XT",
        **_both_metrics(runs, {name: f"coco/{name}" for name in names}, 3),
        epochs=epochs,
        **_runs_record(runs),
    )


def _both_metrics(runs: dict[str, dict], keys: dict[str, str], digits: int) -> dict[str, float]:
    """``{name: metric}`` of the pretrained run, then ``{scratch_<name>: metric}`` of the scratch run
    (``keys``: summary name -> the toolbox's metric key), rounded."""
    out = {}
    for prefix, run in (("", "pretrained"), ("scratch_", "scratch")):
        metrics = runs[run]["metrics"]
        out.update({prefix + name: round(metrics[key], digits) for name, key in keys.items()})
    return out


def _runs_record(runs: dict[str, dict]) -> dict[str, Any]:
    """What a downstream stage keeps of its two runs besides the metrics."""
    pre, scratch = runs["pretrained"], runs["scratch"]
    return dict(
        iterations=pre["iterations"],
        checkpoint=pre["checkpoint"],
        scratch_checkpoint=scratch["checkpoint"],
        work_dir=pre["work_dir"],
        scratch_work_dir=scratch["work_dir"],
        run_wall_s={r: runs[r]["wall_s"] for r in RUNS},
        config=str(Path(pre["work_dir"]) / "config.py"),
    )


def _loader_workers(cfg: Any, workers: int) -> None:
    for name in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[name].num_workers = workers
        cfg[name].persistent_workers = workers > 0


def _stage_segmentation(ctx: _Context) -> dict[str, Any]:
    from parcnetv2.openmmlab.config import load_config as build_config
    from parcnetv2.segmentation.train_builtin import BUILTIN_CONFIG

    iters = ctx.budget.seg_iters

    def build(work_dir: Path, pretrained: str | None) -> Any:
        cfg = build_config(
            BUILTIN_CONFIG, data_root=ctx.results["data"]["ade"], work_dir=work_dir, pretrained=pretrained,
            max_iters=iters, seed=0,
        )  # fmt: skip
        _loader_workers(cfg, 0 if ctx.budget.parallel else 1)
        return cfg

    runs = _downstream(ctx, "segmentation", build)
    return dict(
        model="UperNet + ParCNetV2-XT",
        **_both_metrics(runs, {name: name for name in ("mIoU", "mAcc", "aAcc")}, 2),
        **_runs_record(runs),
    )


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


def _stage_pictures(ctx: _Context) -> dict[str, Any]:
    from parcnetv2.visualize import Predictor, plot_runs, read_scalars, write_index

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
        predictor = Predictor(result["config"], result["checkpoint"])
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


# ------------------------------------------------------------------------------------------ summary
def summary_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    """The summary table (header first): one row per stage with its metrics (from the classifier and from
    scratch for the downstream stages), time and checkpoint."""
    cls, det, seg = results["classification"], results["detection"], results["segmentation"]
    return [
        ["stage", "what", "result", "from scratch", "wall time", "checkpoint / output"],
        ["data", "built-in cls / COCO-format / ADE20K-layout sets", "-", "-",
         _duration(results["data"]["wall_s"]), str(Path(results["data"]["cls"]).parent)],
        ["classification", f"{cls['model']}, {cls['epochs']} epochs", f"top-1 {cls['top1']:.2f} %, top-5 "
         f"{cls['top5']:.2f} %", "-", _duration(cls["wall_s"]), cls["checkpoint"]],
        ["detection", f"{det['model']}, {det['epochs']} epochs", f"bbox mAP {det['bbox_mAP']:.3f}, segm mAP "
         f"{det['segm_mAP']:.3f}", f"bbox mAP {det['scratch_bbox_mAP']:.3f}, segm mAP "
         f"{det['scratch_segm_mAP']:.3f}", _duration(det["wall_s"]), det["checkpoint"]],
        ["segmentation", f"{seg['model']}, {seg['iterations']} iterations", f"mIoU {seg['mIoU']:.2f} %",
         f"mIoU {seg['scratch_mIoU']:.2f} %", _duration(seg["wall_s"]), seg["checkpoint"]],
        ["pictures", "training curves, predictions on val images", "-", "-",
         _duration(results["pictures"]["wall_s"]), results["pictures"]["files"]["index"]],
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
    from parcnetv2.builtin_data import FORMAT_VERSION

    # the renderer's format version too: a new version of the data redoes the data and what follows
    data_key = budget.key(*_CLS_FIELDS, *_DET_FIELDS, *_SEG_FIELDS) + f"v{FORMAT_VERSION}"
    _run_stage(ctx, 1, "data", data_key, _stage_data)
    cls_fields = (f.name for f in fields(Budget) if f.name.startswith("cls_"))
    cls_key = budget.key(*cls_fields) + f"v{FORMAT_VERSION}"
    _run_stage(ctx, 2, "classification", cls_key, _stage_classification)
    # downstream stages depend on the exact checkpoint they started from
    upstream = _stamp(ctx, "classification")
    det_key = budget.key(*_DET_FIELDS, "det_epochs") + upstream
    _run_stage(ctx, 3, "detection", det_key, _stage_detection)
    seg_key = budget.key(*_SEG_FIELDS, "seg_iters") + upstream
    _run_stage(ctx, 4, "segmentation", seg_key, _stage_segmentation)
    pic_key = _stamp(ctx, "detection") + _stamp(ctx, "segmentation")
    pic_key += budget.key("num_pictures", "det_score_thr", "picture_width")
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
