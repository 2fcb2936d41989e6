"""The ImageFolder check at start-up (``train/<class>/*``, ``val/<class>/*``): once per job, cached per run.

A missing root, a missing or empty split, a class folder without images, images outside class folders,
a val split whose classes differ from train's, and an empty (0-byte) or non-image file under an image
name (found from each file's first bytes) are errors that name the cause, never silent skips. The
listing of a split (its class folders and file names) is cheap; opening every file is not (1.28 M opens
for ImageNet), so a run folder's ``data_check.json`` records the listings whose files passed, and a
resume over the same listing does not open them again. Under torchrun rank 0 scans and the other ranks
receive its result (``scan_splits``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from timm.data.readers.img_extensions import get_img_extensions
from timm.utils import natural_key

from parcnetv2 import builtin_data
from parcnetv2.fileio import atomic_write

from .distributed import DistInfo, broadcast_object

__all__ = [
    "DataError",
    "FolderSplit",
    "resolve_data_root",
    "scan_split",
    "scan_splits",
    "scan_split_or_folder",
    "check_same_classes",
    "check_image_files",
]

CHECK_FILE = "data_check.json"
"""In a run folder: the listing keys of the splits whose files passed the check."""


class DataError(ValueError):
    """The data folder does not have the expected ImageFolder layout."""


@dataclass(frozen=True)
class FolderSplit:
    """One scanned split: its folder, class names (sorted like timm's reader), images per class, the
    ``(path, class index)`` samples in timm's order, and the key of its listing."""

    root: Path
    classes: tuple[str, ...]
    counts: tuple[int, ...]
    samples: tuple[tuple[str, int], ...] = ()
    listing_key: str = ""

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    @property
    def num_images(self) -> int:
        return sum(self.counts)


def resolve_data_root(data_dir: str | os.PathLike | None) -> Path:
    """``data_dir``, or without one the built-in set's folder; a missing or empty root is refused with one
    line naming it and the command that writes the built-in set (nothing is generated here)."""
    root = builtin_data.DEFAULT_DIRS["cls"] if data_dir is None else data_dir
    return builtin_data.require(root, "cls")


_IMAGE_EXTENSIONS = frozenset(get_img_extensions(as_set=True))
_CHUNK = 1024  # files a thread reads in a row: the pool's cost per task is paid once per chunk


_DIGITS = re.compile(r"(\d+)")


def _is_image(name: str) -> bool:
    return name[name.rfind(".") :].lower() in _IMAGE_EXTENSIONS


def _natural_key(text: str) -> list[int | str]:
    """timm's ``natural_key`` (the order of its ``ImageFolder`` reader), with the pattern compiled once."""
    return [int(s) if s.isdigit() else s for s in _DIGITS.split(text.lower())]


_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def _not_an_image(path: str) -> str | None:
    """Why ``path`` is no image (``'empty (0 bytes)'``, ``'not an image ...'``), or None.

    Reads the first bytes only: JPEG, PNG, GIF, BMP, TIFF and WebP signatures pass at once; anything else
    must be identified by Pillow (header only, no decoding).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            head = os.read(fd, 16)
        finally:
            os.close(fd)
    except OSError as err:
        return f"unreadable ({err.strerror or err})"
    if not head:
        return "empty (0 bytes)"
    if head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return None
    try:
        with Image.open(path):
            return None
    except Exception:
        return f"not an image (starts with {head[:8]!r})"


def check_image_files(folder: Path, paths: Sequence[str]) -> None:
    """Raise ``DataError`` naming the empty or non-image files among ``paths`` (their first bytes only).

    Threads read chunks of files, so a network file system's latency overlaps."""
    chunks = [paths[i : i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 1) * 4)) as pool:
        reasons = [
            why for chunk in pool.map(lambda c: [_not_an_image(p) for p in c], chunks) for why in chunk
        ]
    bad = [f"{path} is {why}" for path, why in zip(paths, reasons, strict=True) if why]
    if bad:
        more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
        raise DataError(f"{len(bad)} file(s) in {folder} are no readable images: {'; '.join(bad[:5])}{more}")


def _list_split(folder: Path) -> tuple[list[str], list[list[str]]]:
    """Class folder names (natural order) and the image names in each; raises on a bad layout."""
    entries = list(os.scandir(folder))
    stray = sorted(e.name for e in entries if e.is_file() and _is_image(e.name))
    if stray:
        raise DataError(
            f"{folder} has images outside class folders (e.g. {stray[:3]}); put them in <class>/ folders"
        )
    classes = sorted((e.name for e in entries if e.is_dir(follow_symlinks=True)), key=natural_key)
    if not classes:
        raise DataError(f"{folder} has no class folders (ImageFolder layout: {folder.name}/<class>/<image>)")
    names, empty, nested = [], [], []
    for name in classes:
        inner = list(os.scandir(folder / name))
        found = [e.name for e in inner if e.is_file() and _is_image(e.name)]
        names.append(found)
        if not found:
            empty.append(name)
        if any(e.is_dir() for e in inner):
            nested.append(name)
    if empty:
        raise DataError(f"{len(empty)} class folder(s) in {folder} hold no images: {empty[:10]}")
    if nested:
        raise DataError(
            f"class folders in {folder} must hold images directly, not sub-folders: {nested[:10]}"
        )
    return classes, names


def scan_split(root: str | os.PathLike, split: str, checked: Collection[str] = ()) -> FolderSplit:
    """Check ``root/split`` holds one folder per class, each with images directly inside it.

    The files are opened (first bytes) unless the split's listing key is in ``checked``. Samples are in
    timm's ``ImageFolder`` order (natural sort of the paths).

    Raises:
        DataError: the split folder is missing, has no class folders, has images outside class folders,
            a class folder holds no images, a class folder has sub-folders with images, or a file with
            an image name is empty or no image.
    """
    folder = Path(root) / split
    if not folder.is_dir():
        hint = f" (found: {sorted(p.name for p in Path(root).iterdir())})" if Path(root).is_dir() else ""
        raise DataError(
            f"expected a '{split}' folder in {root} (ImageFolder layout: {split}/<class>/<image>){hint}"
        )
    classes, names = _list_split(folder)
    digest = hashlib.sha1(str(folder.resolve()).encode())
    for name, files in zip(classes, names, strict=True):
        digest.update(("\0".join([name, *sorted(files)]) + "\n").encode())
    key = digest.hexdigest()
    # timm sorts the full paths; under one folder (ending in a separator) that is the order of the
    # relative paths, which are shorter to split
    relative = sorted(
        ((f"{c}{os.sep}{f}", i) for i, c in enumerate(classes) for f in names[i]),
        key=lambda sample: _natural_key(sample[0]),
    )
    samples = [(f"{folder}{os.sep}{path}", i) for path, i in relative]
    if key not in checked:
        check_image_files(folder, [path for path, _ in samples])
    return FolderSplit(folder, tuple(classes), tuple(len(n) for n in names), tuple(samples), key)


def scan_splits(
    root: Path, splits: Sequence[str], dist_info: DistInfo, run_dir: Path | None = None
) -> list[FolderSplit]:
    """``scan_split`` of each split, done once per job: rank 0 scans (skipping the files of listings that
    ``run_dir/data_check.json`` records as checked, and recording the new ones), the other ranks receive
    its result, or its error."""
    result: list[FolderSplit] | str = []
    if dist_info.primary:
        record = run_dir / CHECK_FILE if run_dir is not None else None
        checked = set(json.loads(record.read_text())) if record is not None and record.is_file() else set()
        try:
            result = [scan_split(root, split, checked) for split in splits]
        except DataError as err:
            result = str(err)
        if record is not None and not isinstance(result, str):
            keys = sorted(checked | {s.listing_key for s in result})
            atomic_write(record, lambda tmp: Path(tmp).write_text(json.dumps(keys, indent=1) + "\n"))
    result = broadcast_object(result, dist_info)
    if isinstance(result, str):
        raise DataError(result)
    return result


def scan_split_or_folder(path: str | os.PathLike, split: str) -> FolderSplit:
    """``path/split`` when it exists, else ``path`` itself as the split folder (``data/val``), as timm's
    validate accepts either the root or the split."""
    path = Path(path)
    if (path / split).is_dir() or not path.is_dir() or not _holds_class_folders(path):
        return scan_split(path, split)  # the root (or neither: the error names the missing split)
    return scan_split(path.parent, path.name)


def _holds_class_folders(path: Path) -> bool:
    """Whether a sub-folder of ``path`` holds images directly (``path`` is then a split folder)."""
    for entry in os.scandir(path):
        if entry.is_dir() and any(e.is_file() and _is_image(e.name) for e in os.scandir(entry.path)):
            return True
    return False


def check_same_classes(train: FolderSplit, val: FolderSplit) -> None:
    """Raise ``DataError`` unless both splits have exactly the same class folders."""
    if train.classes == val.classes:
        return
    only_train = sorted(set(train.classes) - set(val.classes))
    only_val = sorted(set(val.classes) - set(train.classes))
    raise DataError(
        f"class folders differ between {train.root} ({len(train.classes)}) and {val.root} "
        f"({len(val.classes)}): "
        f"only in train {only_train[:10]}, only in val {only_val[:10]}"
    )
