"""The demo's plumbing: its messages, atomic result files, and stages that are skipped once done.

Each stage writes ``OUT/<stage>/result.json`` when it finishes, with a key of its inputs; a rerun skips a
stage whose key is unchanged (:func:`run_stage`), and :func:`stamp` identifies a finished stage for the
stages that depend on it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .budget import Budget

__all__ = ["STAGES", "Context", "duration", "run_stage", "say", "stamp", "write_json"]

STAGES = ("data", "classification", "detection", "segmentation", "pictures")


def say(message: str) -> None:
    print(f"\n[demo] {message}", flush=True)


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def write_json(path: Path, obj: Any) -> None:
    """Write atomically: a stage counts as done only once its result file is complete."""
    from parcnetv2.fileio import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n"))


@dataclass
class Context:
    out: Path
    data_dir: Path
    budget: Budget
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> str:
        return duration(time.perf_counter() - self.start)


def run_stage(ctx: Context, index: int, name: str, key: str, body: Callable[[Context], dict]) -> None:
    """Run ``body`` unless ``OUT/<name>/result.json`` records the same ``key``; keep its result."""
    result_path = ctx.out / name / "result.json"
    header = f"stage {index}/{len(STAGES)}: {name}"
    if result_path.is_file():
        done = json.loads(result_path.read_text())
        if done.get("key") == key:
            say(f"{header} already done ({duration(done['wall_s'])}, {result_path}); skipping")
            ctx.results[name] = done
            return
        say(f"{header}: inputs changed since the last run, redoing it")
    say(f"{header} (total elapsed {ctx.elapsed()})")
    begin = time.perf_counter()
    result = body(ctx)
    result.update(key=key, wall_s=round(time.perf_counter() - begin, 1), finished=time.time())
    write_json(result_path, result)
    ctx.results[name] = result
    say(f"{header} finished in {duration(result['wall_s'])}")


def stamp(ctx: Context, name: str) -> str:
    """Identifies one finished run of a stage: what depends on it is redone when it is redone."""
    return f"{ctx.results[name]['key']}@{ctx.results[name]['finished']}"
