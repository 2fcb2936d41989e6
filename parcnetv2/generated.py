"""Folders of generated data, written atomically and identified by a ``manifest.json``.

Shared by the built-in classification and segmentation sets: a set is rendered into a temporary sibling
folder that is renamed into place once complete, so an interrupted run never leaves a half-written set
and concurrent writers (several distributed ranks) cannot mix their files: the first rename wins.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["ensure_generated", "read_manifest", "write_generated"]

MANIFEST = "manifest.json"


def write_generated(
    root: str | os.PathLike, fill: Callable[[Path], None], manifest: Mapping[str, Any]
) -> Path:
    """Create ``root`` (which must not exist): ``fill(tmp)`` writes the files, the manifest follows, then
    the temporary folder is renamed to ``root``."""
    root = Path(root)
    if root.exists():
        raise FileExistsError(f"refusing to overwrite existing path {root}")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        fill(tmp)
        (tmp / MANIFEST).write_text(json.dumps(dict(manifest), indent=2) + "\n")
        try:
            os.rename(tmp, root)
        except OSError:
            if not root.exists():
                raise  # nobody else won the race: a real error
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def read_manifest(root: str | os.PathLike) -> dict | None:
    """The manifest of a generated set, or None when ``root`` has none."""
    path = Path(root) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def ensure_generated(
    root: str | os.PathLike,
    manifest: Mapping[str, Any],
    generate: Callable[[Path], Any],
    what: str,
    log: Callable[[str], None] = print,
    details: str = "",
) -> Path:
    """Call ``generate(root)`` unless ``root`` exists; then check that it holds exactly ``manifest``.

    ``what`` names the set in messages; ``details`` (e.g. its size) is added to the generation line.

    Raises:
        FileExistsError: ``root`` exists but holds something else (no manifest, or a different one).
    """
    root = Path(root)
    if not root.exists():
        log(f"generating {what}{details} in {root}")
        generate(root)
    found = read_manifest(root)
    if found != dict(manifest):
        raise FileExistsError(
            f"{root} exists but is not the requested {what} (manifest {found}, wanted "
            f"{dict(manifest)}); remove it or choose another folder"
        )
    return root
