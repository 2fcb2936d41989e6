"""The main job: every stage in order, skipping what is finished, then the summary table.

The table has one row per stage with its metrics (from the classifier and from scratch for the
downstream stages), time and checkpoint.

    python -m parcnetv2.demo [--out results] [--budget full|tiny] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from parcnetv2.builtin_data import FORMAT_VERSION

from .budget import BUDGETS, CLS_DATA, DET_DATA, SEG_DATA, Budget
from .context import Context, duration, run_stage, say, stamp, write_json
from .pictures import stage_pictures
from .stages import (
    CLASSIFICATION_RECIPE,
    stage_classification,
    stage_data,
    stage_detection,
    stage_segmentation,
)

__all__ = ["build_parser", "format_table", "main", "run", "summary_rows"]

DESCRIPTION = "The main job: pretrain, transfer and report on the built-in data, end to end, on a CPU."


def summary_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    """The summary table (header first): one row per stage with its metrics (from the classifier and from
    scratch for the downstream stages), time and checkpoint."""
    cls, det, seg = results["classification"], results["detection"], results["segmentation"]
    return [
        ["stage", "what", "result", "from scratch", "wall time", "checkpoint / output"],
        ["data", "built-in cls / COCO-format / ADE20K-layout sets", "-", "-",
         duration(results["data"]["wall_s"]), str(Path(results["data"]["cls"]).parent)],
        ["classification", f"{cls['model']}, {cls['epochs']} epochs", f"top-1 {cls['top1']:.2f} %, top-5 "
         f"{cls['top5']:.2f} %", "-", duration(cls["wall_s"]), cls["checkpoint"]],
        ["detection", f"{det['model']}, {det['epochs']} epochs", f"bbox mAP {det['bbox_mAP']:.3f}, segm mAP "
         f"{det['segm_mAP']:.3f}", f"bbox mAP {det['scratch_bbox_mAP']:.3f}, segm mAP "
         f"{det['scratch_segm_mAP']:.3f}", duration(det["wall_s"]), det["checkpoint"]],
        ["segmentation", f"{seg['model']}, {seg['iterations']} iterations", f"mIoU {seg['mIoU']:.2f} %",
         f"mIoU {seg['scratch_mIoU']:.2f} %", duration(seg["wall_s"]), seg["checkpoint"]],
        ["pictures", "training curves, predictions on val images", "-", "-",
         duration(results["pictures"]["wall_s"]), results["pictures"]["files"]["index"]],
    ]  # fmt: skip


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (readable as plain text too)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def run(out: str | os.PathLike, budget: Budget, data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run (or finish) every stage into ``out``; returns the summary (also ``out/summary.json``)."""
    ctx = Context(Path(out), Path(data_dir) if data_dir else Path(out) / "data", budget)
    ctx.out.mkdir(parents=True, exist_ok=True)
    # the renderer's format version too: a new version of the data redoes the data and what follows
    data_key = budget.key(*CLS_DATA, *DET_DATA, *SEG_DATA) + f"v{FORMAT_VERSION}"
    run_stage(ctx, 1, "data", data_key, stage_data)
    # the recipe file too: a changed recipe redoes the classifier and what follows
    recipe = hashlib.sha1(CLASSIFICATION_RECIPE.read_bytes()).hexdigest()[:8]
    cls_key = budget.key(*CLS_DATA, "cls_epochs") + f"v{FORMAT_VERSION}" + recipe
    run_stage(ctx, 2, "classification", cls_key, stage_classification)
    # downstream stages depend on the exact checkpoint they started from
    upstream = stamp(ctx, "classification")
    det_key = budget.key(*DET_DATA, "det_epochs") + upstream
    run_stage(ctx, 3, "detection", det_key, stage_detection)
    seg_key = budget.key(*SEG_DATA, "seg_iters") + upstream
    run_stage(ctx, 4, "segmentation", seg_key, stage_segmentation)
    pic_key = stamp(ctx, "detection") + stamp(ctx, "segmentation")
    pic_key += budget.key("num_pictures", "det_score_thr", "picture_width")
    run_stage(ctx, 5, "pictures", pic_key, stage_pictures)

    table = format_table(summary_rows(ctx.results))
    total = sum(r["wall_s"] for r in ctx.results.values())
    summary = dict(budget=asdict(budget), stages=ctx.results, total_wall_s=round(total, 1), table=table)
    write_json(ctx.out / "summary.json", summary)
    (ctx.out / "summary.md").write_text(
        f"# ParCNetV2 demo ({budget.name} budget)\n\n{table}\n\nTotal stage time: {duration(total)}.\n"
    )
    say(f"summary ({budget.name} budget, stage time {duration(total)}; also in {ctx.out / 'summary.md'}):")
    print(table, flush=True)
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m parcnetv2.demo", description=DESCRIPTION)
    p.add_argument("--out", default="results", help="results folder (default: %(default)s)")
    p.add_argument("--budget", choices=sorted(BUDGETS), default="full", help="full: make demo; tiny: tests")
    p.add_argument("--data-dir", help="where the built-in sets are generated (default: OUT/data)")
    p.add_argument("--seg-iters", type=int, help="override the budget's segmentation iterations")
    p.add_argument("--det-epochs", type=int, help="override the budget's detection epochs")
    p.add_argument("--cls-epochs", type=int, help="override the budget's classification epochs")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line (``--help``): run the job with the chosen budget; returns the summary."""
    args = build_parser().parse_args(argv)
    budget = BUDGETS[args.budget]
    overrides = {k: v for k, v in (("seg_iters", args.seg_iters), ("det_epochs", args.det_epochs),
                                   ("cls_epochs", args.cls_epochs)) if v is not None}  # fmt: skip
    if any(v < 1 for v in overrides.values()):
        raise SystemExit(f"epochs and iterations must be >= 1, got {overrides}")
    return run(args.out, replace(budget, **overrides), args.data_dir)


if __name__ == "__main__":
    main()
