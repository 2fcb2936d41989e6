"""Plot OpenMMLab training curves and list pictures in a Markdown page (the demo's pictures stage).

:func:`read_scalars` reads what mmengine's ``LocalVisBackend`` wrote, :func:`plot_runs` draws it with
matplotlib, :func:`write_index` shows every picture under its note. Drawing predictions is
:mod:`parcnetv2.openmmlab.predictor`'s.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_runs", "read_scalars", "write_index"]


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
