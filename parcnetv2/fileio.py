"""Atomic file writes shared by the pipelines and the demo: readers never see a partial file.

``atomic_write(path, write)`` writes through a temporary sibling (``.NAME.XXXXXXXX.tmp``) renamed over
``path``; ``atomic_save`` is ``torch.save`` through it; ``remove_stale_temp_files`` clears what killed
writers left behind.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["WriteError", "atomic_write", "atomic_save", "atomic_write_folder", "remove_stale_temp_files"]

_UMASK = os.umask(0)
os.umask(_UMASK)


class WriteError(OSError):
    """Writing a file failed (disk full, no permission, ...); the message names the file."""


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any], suffix: str = "") -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then rename it over ``path``.

    Readers see either the old file or the complete new one, never a partial write. On an error the
    temporary file is removed and :class:`WriteError` names ``path``; a killed process leaves its
    temporary file (``.NAME.XXXXXXXX.tmp``), which :func:`remove_stale_temp_files` clears.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would make results private to the writer
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(err, WriteError) or not isinstance(err, Exception):  # Ctrl-C stays itself
            raise
        failure = WriteError(f"cannot write {path}: {type(err).__name__}: {err}")
        failure.errno = err.errno if isinstance(err, OSError) else None  # e.g. ENOSPC for a full disk
        raise failure from err
    return path


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically (temporary file + ``os.replace``)."""
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_folder(
    path: str | os.PathLike, write: Callable[[Path], Any], replaceable: Iterable[str]
) -> Path:
    """Call ``write(tmp_dir)`` on a temporary folder next to ``path``, then rename it to ``path``.

    An existing ``path`` is replaced only when it holds nothing but files named in ``replaceable`` (a
    previous write); anything else there is refused. On an error the temporary folder is removed and
    :class:`WriteError` names ``path``.
    """
    path = Path(path)
    if path.exists():
        foreign = (
            sorted(p.name for p in path.iterdir() if p.name not in set(replaceable)) if path.is_dir() else []
        )
        if not path.is_dir() or foreign:
            raise WriteError(
                f"cannot write {path}: it holds other things ({foreign or 'a file'}); choose a new folder"
            )
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        write(tmp)
        os.chmod(tmp, 0o777 & ~_UMASK)
        for child in tmp.iterdir():
            os.chmod(child, 0o666 & ~_UMASK)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp)
        if isinstance(err, WriteError) or not isinstance(err, Exception):
            raise
        raise WriteError(f"cannot write {path}: {type(err).__name__}: {err}") from err
    return path


def remove_stale_temp_files(folder: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Delete the temporary files (and folders) that killed :func:`atomic_write` (:func:`atomic_write_folder`)
    calls for ``folder/NAME`` left behind.

    Only entries named exactly as they name them for one of ``names`` (``.NAME.`` + the 8 random
    characters of ``tempfile`` + ``.tmp``) are touched. Returns the removed paths.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    patterns = [re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp") for name in names]
    removed = []
    for entry in os.scandir(folder):
        if not any(p.fullmatch(entry.name) for p in patterns):
            continue
        if entry.is_file(follow_symlinks=False):
            os.remove(entry.path)
        elif entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            continue
        removed.append(Path(entry.path))
    return sorted(removed)
