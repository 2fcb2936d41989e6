"""A run's log: progress lines (or a bar on a terminal), the per-epoch history as JSON/CSV, PNG curves,
and ``to_plain``, which turns records into JSON-like builtins."""

from __future__ import annotations

import csv
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from parcnetv2.fileio import atomic_write

__all__ = [
    "LOGGER",
    "setup_logging",
    "Progress",
    "write_history",
    "plot_history",
    "format_duration",
    "to_plain",
]

LOGGER = logging.getLogger("parcnetv2.classification")
"""The package's logger (:func:`setup_logging` configures it; data-loader workers inherit it)."""


def to_plain(value: Any) -> Any:
    """``value`` as JSON-like builtins (dict/list/str/number/bool/None), safe for ``weights_only`` loads."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)


def setup_logging(output_dir: Path | None, primary: bool) -> logging.Logger:
    """Log INFO to stdout (primary rank only) and to ``output_dir/log.txt``; returns the package logger."""
    LOGGER.setLevel(logging.INFO if primary else logging.WARNING)
    LOGGER.propagate = False
    for handler in list(LOGGER.handlers):
        LOGGER.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S")
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(formatter)
    LOGGER.addHandler(stream)
    if output_dir is not None and primary:
        output_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(output_dir / "log.txt")
        file_handler.setFormatter(formatter)
        LOGGER.addHandler(file_handler)
    return LOGGER


def format_duration(seconds: float) -> str:
    return str(timedelta(seconds=int(max(0.0, seconds))))


def format_epoch_line(row: Mapping[str, Any], epochs: int, best: Mapping[str, Any], elapsed: float) -> str:
    """The log line of a finished epoch: losses, accuracy (and EMA's), the best so far, skipped images."""
    return (
        f"[epoch {row['epoch']}/{epochs}] train loss {row['train_loss']:.4f} | "
        f"val loss {row['eval_loss']:.4f} top-1 {row['eval_top1']:.2f} top-5 {row['eval_top5']:.2f}"
        + (f" | EMA top-1 {row['ema_eval_top1']:.2f}" if "ema_eval_top1" in row else "")
        + f" | best top-1 {best['top1']:.2f} (epoch {best['epoch']})"
        + (f" | {row['unreadable']} unreadable image(s) skipped" if row.get("unreadable") else "")
        + f" | {format_duration(elapsed)} elapsed"
    )


class Progress:
    """Per-step progress: a log line every ``interval`` steps, or a live bar when stdout is a terminal.

    On a terminal the bar replaces the console lines (they still go to ``log.txt``).
    """

    def __init__(
        self, logger: logging.Logger, total: int, interval: int, prefix: str, enabled: bool = True
    ) -> None:
        self.logger, self.total, self.interval, self.prefix = logger, total, max(1, interval), prefix
        self.enabled = enabled
        self.bar = None
        if enabled and sys.stdout.isatty():
            try:
                from tqdm import tqdm
            except ImportError:  # no bar, the lines go to the terminal instead
                return
            self.bar = tqdm(total=total, desc=prefix, leave=False, dynamic_ncols=True)

    def update(self, step: int, fields: Mapping[str, str]) -> None:
        """Report that ``step`` (1-based) of ``total`` is done, with ``fields`` already formatted."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix_str(" ".join(f"{k} {v}" for k, v in fields.items()), refresh=False)
        if step % self.interval == 0 or step == self.total:
            line = f"{self.prefix} step {step}/{self.total} " + " ".join(
                f"{k} {v}" for k, v in fields.items()
            )
            if self.bar is None:
                self.logger.info(line)
            else:  # the bar owns the terminal: the line goes to the log file only
                record = self.logger.makeRecord(self.logger.name, logging.INFO, "", 0, line, (), None)
                for handler in self.logger.handlers:
                    if isinstance(handler, logging.FileHandler):
                        handler.handle(record)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Timer:
    """Wall time since construction."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def write_history(
    history: Sequence[Mapping[str, Any]], output_dir: Path, run_info: Mapping[str, Any]
) -> None:
    """Write ``metrics.json`` (run info + one entry per epoch) and ``metrics.csv``, atomically."""
    payload = {"run": to_plain(run_info), "epochs": [to_plain(h) for h in history]}
    atomic_write(
        output_dir / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=2) + "\n")
    )
    fields: list[str] = []
    for row in history:
        fields += [k for k in row if k not in fields]

    def write_csv(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(history)

    atomic_write(output_dir / "metrics.csv", write_csv)


def plot_history(history: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> Path | None:
    """Plot loss, accuracy and learning rate per epoch to a PNG; None (with a warning) without matplotlib."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state
    except ImportError:
        LOGGER.warning("matplotlib is not installed: no curves.png (pip install matplotlib)")
        return None
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(13, 3.6), layout="tight")
    axes = fig.subplots(1, 3)

    def curve(ax: Any, key: str, label: str, style: str = "-") -> None:
        points = [(e, h[key]) for e, h in zip(epochs, history, strict=True) if h.get(key) is not None]
        if points:
            ax.plot(*zip(*points, strict=True), style, marker="o", markersize=3, label=label)

    curve(axes[0], "train_loss", "train")
    curve(axes[0], "eval_loss", "val")
    curve(axes[0], "ema_eval_loss", "val (EMA)", "--")
    axes[0].set_title("loss")
    curve(axes[1], "eval_top1", "top-1")
    curve(axes[1], "eval_top5", "top-5")
    curve(axes[1], "ema_eval_top1", "top-1 (EMA)", "--")
    axes[1].set_title("val accuracy (%)")
    curve(axes[2], "lr", "lr")
    axes[2].set_title("learning rate (end of epoch)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if title:
        fig.suptitle(title)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return path
