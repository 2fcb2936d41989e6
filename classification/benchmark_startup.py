"""Time the training start-up data check on a large generated ImageFolder, and extrapolate to ImageNet.

    python -m parcnetv2.classification.benchmark_startup --root /tmp/startup_bench --images 200000
    torchrun --nproc_per_node=2 -m parcnetv2.classification.benchmark_startup --root /tmp/startup_bench

Writes ``ROOT/train/<class>/*.jpg`` (one small valid JPEG, copied; ``--classes`` folders) and a 1-image
per class ``val`` split unless they exist, then times, ``--repeat`` times each, what a start costs:
listing the folder (names only), the check that opens every file (first bytes), a start whose listing a
run's ``data_check.json`` already records (a resume), and, for comparison, the second walk that timm's
``ImageDataset`` made of the folder before the scan handed it its samples. Under torchrun it times
``scan_splits`` on each rank (rank 0 scans, the others receive its result). The numbers are this
machine's with the files in the page cache; ``ImageNet`` scales them linearly to 1,281,167 images.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from .distributed import all_gather_objects, barrier, init_distributed, shutdown
from .folder_scan import scan_split, scan_splits

__all__ = ["main", "IMAGENET_TRAIN_IMAGES"]

IMAGENET_TRAIN_IMAGES = 1_281_167


def _write_folder(root: Path, images: int, classes: int) -> None:
    """``root/train`` with ``images`` copies of one 32x32 JPEG over ``classes`` folders, ``root/val`` one per
    class (skipped when ``root/train`` exists)."""
    if (root / "train").is_dir():
        return
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (120, 60, 200)).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    tmp = Path(tempfile.mkdtemp(prefix=".bench.", dir=root.parent if root.parent.is_dir() else None))
    for split, count in (("train", images), ("val", classes)):
        for i in range(count):
            folder = tmp / split / f"n{i % classes:08d}"
            if i < classes:
                folder.mkdir(parents=True)
            (folder / f"img_{i:08d}.jpg").write_bytes(data)
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        os.replace(tmp / split, root / split)
    tmp.rmdir()


def _times(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _row(name: str, times: Sequence[float], images: int) -> str:
    med = statistics.median(times)
    scaled = med * IMAGENET_TRAIN_IMAGES / images
    return f"| {name} | {med:.2f} | {min(times):.2f}-{max(times):.2f} | {images / med:,.0f} | {scaled:.1f} |"


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: write the folder if needed, print a table of times (per rank under torchrun)."""
    p = argparse.ArgumentParser(prog="python -m parcnetv2.classification.benchmark_startup")
    p.add_argument("--root", required=True, help="folder to write (or reuse) the generated ImageFolder in")
    p.add_argument("--images", type=int, default=200_000, help="training images to generate")
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    root = Path(args.root)
    dist_info = init_distributed("cpu")
    try:
        if dist_info.primary:
            start = time.perf_counter()
            _write_folder(root, args.images, args.classes)
            print(f"folder {root}: ready in {time.perf_counter() - start:.1f}s", flush=True)
        barrier(dist_info)
        images = sum(len(os.listdir(e.path)) for e in os.scandir(root / "train"))
        if dist_info.distributed:
            _per_rank(root, dist_info, args.repeat)
            return
        from timm.data.readers.reader_image_folder import find_images_and_targets

        key = scan_split(root, "train").listing_key
        print(
            f"{images:,} training images, {args.classes} classes; {os.cpu_count()} CPUs; {args.repeat} runs"
        )
        print("| step | median s | range s | images/s | ImageNet (1.28 M) s, scaled |")
        print("|---|---:|---:|---:|---:|")
        print(
            _row(
                "first start: list + open every file",
                _times(lambda: scan_split(root, "train"), args.repeat),
                images,
            )
        )
        print(
            _row(
                "resume: list, listing already checked",
                _times(lambda: scan_split(root, "train", {key}), args.repeat),
                images,
            )
        )
        print(
            _row(
                "before: timm's second walk (per rank)",
                _times(lambda: find_images_and_targets(str(root / "train")), args.repeat),
                images,
            )
        )
    finally:
        shutdown(dist_info)


def _per_rank(root: Path, dist_info: object, repeat: int) -> None:
    """Time ``scan_splits`` on each rank: a first start (no record) and a resume (the record exists)."""
    with tempfile.TemporaryDirectory() as run_dir:
        rows = []
        for name, record in (("first start", None), ("resume", Path(run_dir))):
            if record is not None:
                scan_splits(root, ["train"], dist_info, record)  # writes data_check.json
            times = []
            for _ in range(repeat):
                barrier(dist_info)
                start = time.perf_counter()
                scan_splits(root, ["train"], dist_info, record)
                times.append(time.perf_counter() - start)
            rows.append((name, all_gather_objects(times, dist_info)))
    if dist_info.primary:
        print("| step | rank | median s | range s |")
        print("|---|---:|---:|---:|")
        for name, per_rank in rows:
            for rank, times in enumerate(per_rank):
                spread = f"{min(times):.2f}-{max(times):.2f}"
                print(f"| {name} | {rank} | {statistics.median(times):.2f} | {spread} |")


if __name__ == "__main__":
    main()
