"""The two runs of a downstream stage: from the classification checkpoint and from scratch.

Same config, budget and seed, side by side in two spawned processes of one thread each when the budget
says so; each run trains without validation (resuming from its work dir), then tests the checkpoint it
ended with through the one OpenMMLab driver (:func:`parcnetv2.openmmlab.runner.train_then_test`), and
keeps ``OUT/<stage>/<run>/run.json`` (a rerun reuses it).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .context import Context, say, stamp, write_json

__all__ = ["RUNS", "both_metrics", "downstream", "runs_record"]

RUNS = ("pretrained", "scratch")
"""The two runs of each downstream stage: from the classification checkpoint, and from scratch."""


def _pretrained(ctx: Context) -> str:
    checkpoint = ctx.results["classification"]["checkpoint"]
    if not checkpoint or not Path(checkpoint).is_file():
        raise FileNotFoundError(f"the classification stage left no weights file ({checkpoint!r})")
    return checkpoint


def downstream(ctx: Context, stage: str, build: Callable[[Path, str | None], Any]) -> dict:
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
            key += stamp(ctx, "classification")
        done = work_dir / "run.json"
        if done.is_file() and json.loads(done.read_text()).get("key") == key:
            say(f"{stage} {run}: already trained and tested ({done}); reusing it")
            jobs[run] = json.loads(done.read_text())
            continue
        jobs[run] = (cfg, key)
    todo = {run: job for run, job in jobs.items() if isinstance(job, tuple)}
    if todo and ctx.budget.parallel and len(todo) > 1:
        logs = ", ".join(str(ctx.out / stage / run / "stdout.log") for run in todo)
        say(f"{stage}: training {' and '.join(todo)} side by side, one thread each (logs: {logs})")
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
    write_json(work_dir / "run.json", result)
    return result


def both_metrics(runs: dict[str, dict], keys: dict[str, str], digits: int) -> dict[str, float]:
    """``{name: metric}`` of the pretrained run, then ``{scratch_<name>: metric}`` of the scratch run
    (``keys``: summary name -> the toolbox's metric key), rounded."""
    out = {}
    for prefix, run in (("", "pretrained"), ("scratch_", "scratch")):
        metrics = runs[run]["metrics"]
        out.update({prefix + name: round(metrics[key], digits) for name, key in keys.items()})
    return out


def runs_record(runs: dict[str, dict]) -> dict[str, Any]:
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
