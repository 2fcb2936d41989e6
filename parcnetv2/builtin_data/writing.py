"""Writing a built-in set atomically, reusing an identical one, and refusing a missing one.

A set is written into a temporary sibling folder and renamed into place with its ``manifest.json`` (the
spec), so an interrupted run never leaves a half-written set: the next run removes the leftover and
writes it again, and an identical finished set is reused. :func:`require` is what training entry points
call: it never generates anything.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from parcnetv2 import REPO_ROOT

from .specs import SPECS, _Spec

__all__ = ["DEFAULT_DIRS", "MANIFEST", "command", "ensure", "generate", "read_manifest", "require"]

DEFAULT_DIRS = {task: REPO_ROOT / "data" / f"synthetic_{task}" for task in SPECS}
"""Where each set lives unless told otherwise: the repository's git-ignored ``data/``."""

MANIFEST = "manifest.json"


def read_manifest(root: str | os.PathLike) -> dict | None:
    """The manifest of a generated set, or None when ``root`` has none."""
    path = Path(root) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def _tmp_prefix(root: Path) -> str:
    return f".{root.name}.tmp-"


def _remove_stale_tmp(root: Path) -> list[Path]:
    """Remove leftovers of interrupted writes of ``root`` (ours by name, their writer process gone)."""
    removed = []
    for tmp in root.parent.glob(_tmp_prefix(root) + "*") if root.parent.is_dir() else ():
        pid = tmp.name[len(_tmp_prefix(root)) :].split("-")[0]
        if pid.isdigit() and _alive(int(pid)):
            continue
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def generate(root: str | os.PathLike, spec: _Spec) -> Path:
    """Write the set ``spec`` describes to ``root`` (absent or an empty folder), atomically: into a
    temporary sibling folder, the manifest last, then renamed into place (the first of concurrent writers
    wins)."""
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"refusing to overwrite {root}: not an empty folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_tmp_prefix(root)}{os.getpid()}-", dir=root.parent))
    try:
        spec.write(tmp)
        (tmp / MANIFEST).write_text(json.dumps(spec.to_json(), indent=2) + "\n")
        if root.is_dir():
            root.rmdir()  # the empty folder we were given
        try:
            os.rename(tmp, root)
        except OSError:
            if read_manifest(root) is None:
                raise  # nobody else won the race: a real error
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def ensure(root: str | os.PathLike, spec: _Spec, log: Callable[[str], None] = print) -> Path:
    """Reuse the set at ``root`` if its manifest is ``spec``; generate it if ``root`` is absent (after
    removing any half-written leftover of an interrupted run).

    Raises:
        FileExistsError: ``root`` exists but holds something else (no manifest, or a different spec).
    """
    root = Path(root)
    for tmp in _remove_stale_tmp(root):
        log(f"removed {tmp}, left by an interrupted generation")
    if not root.exists():
        log(f"generating the {spec.title} ({spec.describe()}) in {root}")
        generate(root, spec)
    found = read_manifest(root)
    if found != spec.to_json():
        raise FileExistsError(
            f"{root} exists but is not the requested built-in data set ({spec.title}: manifest {found}, "
            f"wanted {spec.to_json()}); remove it or choose another folder"
        )
    return root


def command(task: str, root: str | os.PathLike) -> str:
    """The command line that writes the ``task`` set to ``root``."""
    return f"python -m parcnetv2.builtin_data {task} --out {root}"


def require(root: str | os.PathLike, task: str, inside: str = "") -> Path:
    """``root`` as given, if it holds files (under ``inside``); otherwise a ``FileNotFoundError`` naming the
    path and the command that generates the set. Never generates anything."""
    path = Path(root)
    probe = path / inside
    if not probe.is_dir() or not any(probe.iterdir()):
        what = "is missing" if not path.exists() else f"has no {inside or 'files'}"
        raise FileNotFoundError(
            f"data root {path} {what}: generate the {SPECS[task].title} with `{command(task, path)}`, "
            "or point the config's data_root at it"
        )
    return path
