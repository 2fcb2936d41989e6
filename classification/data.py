"""ImageFolder data (``train/<class>/*``, ``val/<class>/*``), checked loudly, and timm loaders for it.

A missing or empty split, a class folder without images, images outside class folders, a val split whose
classes differ from train's, an empty (0-byte) or non-image file under an image name (found by the scan,
from each file's first bytes) and an image that fails to decode (named by path, when it is loaded) are
errors, never silent skips.
Samplers shard by rank without overlap and are seeded per epoch, so runs and resumed runs repeat.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from timm.data import ImageDataset, auto_augment, create_transform
from timm.data.loader import PrefetchLoader, fast_collate
from timm.data.readers.img_extensions import get_img_extensions
from timm.utils import natural_key
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from .distributed import DistInfo, barrier
from .synthetic import SyntheticSpec, ensure_synthetic_dataset

__all__ = [
    "DataError",
    "UnreadableImageError",
    "FolderSplit",
    "resolve_data_root",
    "scan_split",
    "scan_split_or_folder",
    "check_same_classes",
    "CheckedImageDataset",
    "ShardSampler",
    "build_train_loader",
    "build_eval_loader",
]


class DataError(ValueError):
    """The data folder does not have the expected ImageFolder layout."""


class UnreadableImageError(OSError):
    """An image file that cannot be opened or decoded."""


@dataclass(frozen=True)
class FolderSplit:
    """One scanned split: its folder, class names (sorted like timm's reader) and images per class."""

    root: Path
    classes: tuple[str, ...]
    counts: tuple[int, ...]

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    @property
    def num_images(self) -> int:
        return sum(self.counts)


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in get_img_extensions(as_set=True)


_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def _not_an_image(path: str) -> str | None:
    """Why ``path`` is no image (``'empty (0 bytes)'``, ``'not an image ...'``), or None.

    Reads the first bytes only: JPEG, PNG, GIF, BMP, TIFF and WebP signatures pass at once; anything else
    must be identified by Pillow (header only, no decoding).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(16)
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


def _check_image_files(folder: Path, paths: Sequence[str]) -> None:
    """Raise ``DataError`` naming the empty or non-image files among ``paths``."""
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 1) * 4)) as pool:
        reasons = list(pool.map(_not_an_image, paths, chunksize=256))
    bad = [f"{path} is {why}" for path, why in zip(paths, reasons, strict=True) if why]
    if bad:
        more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
        raise DataError(f"{len(bad)} file(s) in {folder} are no readable images: {'; '.join(bad[:5])}{more}")


def scan_split(root: str | os.PathLike, split: str) -> FolderSplit:
    """Check ``root/split`` holds one folder per class, each with images directly inside it.

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
    entries = list(os.scandir(folder))
    stray = sorted(e.name for e in entries if e.is_file() and _is_image(e.name))
    if stray:
        raise DataError(
            f"{folder} has images outside class folders (e.g. {stray[:3]}); put them in <class>/ folders"
        )
    classes = sorted((e.name for e in entries if e.is_dir(follow_symlinks=True)), key=natural_key)
    if not classes:
        raise DataError(f"{folder} has no class folders (ImageFolder layout: {split}/<class>/<image>)")
    counts, empty, nested, images = [], [], [], []
    for name in classes:
        inner = list(os.scandir(folder / name))
        found = [e.path for e in inner if e.is_file() and _is_image(e.name)]
        images += found
        n = len(found)
        counts.append(n)
        if n == 0:
            empty.append(name)
        if any(e.is_dir() for e in inner):
            nested.append(name)
    if empty:
        raise DataError(f"{len(empty)} class folder(s) in {folder} hold no images: {empty[:10]}")
    if nested:
        raise DataError(
            f"class folders in {folder} must hold images directly, not sub-folders: {nested[:10]}"
        )
    _check_image_files(folder, images)
    return FolderSplit(folder, tuple(classes), tuple(counts))


def resolve_data_root(
    data_dir: str | os.PathLike | None,
    synthetic_dir: str | os.PathLike,
    synthetic_seed: int,
    dist_info: DistInfo,
    log: Callable[[str], None] = print,
) -> Path:
    """The data folder: ``data_dir``, or (when None) the built-in set, generated by each node's first process.

    Raises:
        DataError: ``data_dir`` is not a folder.
    """
    if data_dir is not None:
        if not Path(data_dir).is_dir():
            raise DataError(f"data folder {data_dir} does not exist")
        return Path(data_dir)
    spec = SyntheticSpec(seed=synthetic_seed)
    if dist_info.local_rank == 0:
        ensure_synthetic_dataset(synthetic_dir, spec, log=log)
    barrier(dist_info)
    return ensure_synthetic_dataset(synthetic_dir, spec, log=log)


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


class CheckedImageDataset(ImageDataset):
    """timm's ``ImageDataset`` over a scanned split, raising (with the path) on an unreadable image.

    timm's dataset skips unreadable samples with a warning, which would silently change the data;
    here the error names the file instead.
    """

    def __init__(self, split: FolderSplit, transform: Any = None) -> None:
        super().__init__(str(split.root), class_map=split.class_to_idx, transform=transform)
        if len(self) != split.num_images:
            raise DataError(
                f"timm's reader found {len(self)} images in {split.root}, the scan {split.num_images}"
            )
        self.classes = split.classes

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, target = self.reader.samples[index]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")  # decodes the pixels, so truncated files fail here
        except Exception as err:
            raise UnreadableImageError(f"cannot read image {path}: {type(err).__name__}: {err}") from err
        if self.transform is not None:
            img = self.transform(img)
        return img, target


def _posterize_any_bits(img: Image.Image, bits_to_keep: int, **_: Any) -> Image.Image:
    """timm's posterize, also for 0 bits (an all-black image), which Pillow >= 13 rejects.

    RandAugment ``inc1`` asks for 4 - int(level * 0.4) bits, 0 at the top level (10) that ``mstd0.5``
    reaches a few percent of the time; older Pillow returned black there, as this does.
    """
    if bits_to_keep <= 0:
        return Image.new(img.mode, img.size)
    return auto_augment.posterize(img, bits_to_keep)


def _patch_posterize(transform: Any) -> Any:
    """Swap in ``_posterize_any_bits`` for timm's posterize in every AutoAugment/RandAugment op."""
    stack = [transform]
    while stack:
        item = stack.pop()
        if isinstance(item, auto_augment.AugmentOp):
            if item.aug_fn is auto_augment.posterize:
                item.aug_fn = _posterize_any_bits
            continue
        for attr in ("transforms", "ops", "policy"):
            stack.extend(getattr(item, attr, None) or [])
        if isinstance(item, (list, tuple)):
            stack.extend(item)
    return transform


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...`` in order: disjoint, complete shards for evaluation."""

    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = range(rank, length, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _seed_generator(seed: int) -> torch.Generator:
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def build_train_loader(
    dataset: CheckedImageDataset,
    args: Any,
    data_config: dict[str, Any],
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
) -> PrefetchLoader:
    """timm training transforms (RandAugment, RandomResizedCrop, flip, random erasing) and loader.

    Each rank gets a disjoint shard (``DistributedSampler``, seeded with ``args.seed``, ``drop_last``);
    call ``set_epoch(loader, epoch)`` before each epoch so shuffling and worker seeds follow the epoch.
    """
    dataset.transform = _patch_posterize(
        create_transform(
            data_config["input_size"],
            is_training=True,
            no_aug=args.no_aug,
            scale=tuple(args.scale),
            ratio=tuple(args.ratio),
            hflip=args.hflip,
            color_jitter=args.color_jitter,
            auto_augment=args.aa or None,
            interpolation=args.train_interpolation,
            mean=data_config["mean"],
            std=data_config["std"],
            re_prob=args.reprob,
            re_mode=args.remode,
            re_count=args.recount,
            use_prefetcher=True,
        )
    )
    sampler = DistributedSampler(
        dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=args.seed, drop_last=True
    )
    if len(sampler) < args.batch_size:
        raise DataError(
            f"{len(dataset)} training images give {len(sampler)} per process, fewer than one batch of "
            f"{args.batch_size}; lower --batch-size"
        )
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=args.workers,
        collate_fn=fast_collate,
        pin_memory=args.pin_mem and device.type == "cuda",
        drop_last=True,
        persistent_workers=False,  # fresh workers each epoch, seeded from the epoch: resumable
        generator=_seed_generator(args.seed),
    )
    return PrefetchLoader(
        loader,
        mean=data_config["mean"],
        std=data_config["std"],
        device=device,
        re_prob=0.0 if args.no_aug else args.reprob,
        re_mode=args.remode,
        re_count=args.recount,
    )


def set_epoch(loader: PrefetchLoader, epoch: int, seed: int, rank: int = 0) -> None:
    """Make the shuffle and the worker seeds of ``loader`` a function of ``(seed, epoch, rank)``."""
    loader.sampler.set_epoch(epoch)
    loader.loader.generator.manual_seed(seed * 100_003 + epoch * 1_009 + rank)


def build_eval_loader(
    dataset: CheckedImageDataset,
    data_config: dict[str, Any],
    batch_size: int,
    workers: int,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> PrefetchLoader:
    """timm evaluation transforms (resize to ``size / crop_pct``, centre crop) over this rank's shard."""
    dataset.transform = create_transform(
        data_config["input_size"],
        is_training=False,
        interpolation=data_config["interpolation"],
        mean=data_config["mean"],
        std=data_config["std"],
        crop_pct=data_config["crop_pct"],
        crop_mode=data_config.get("crop_mode"),
        use_prefetcher=True,
    )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ShardSampler(len(dataset), rank, world_size),
        num_workers=workers,
        collate_fn=fast_collate,
        pin_memory=pin_memory and device.type == "cuda",
        drop_last=False,
    )
    return PrefetchLoader(loader, mean=data_config["mean"], std=data_config["std"], device=device)


def input_size_3d(size: Sequence[int]) -> tuple[int, int, int]:
    """``S`` -> (3, S, S); ``H W`` -> (3, H, W); ``C H W`` kept (timm's form)."""
    size = tuple(int(s) for s in size)
    if len(size) == 1:
        return (3, size[0], size[0])
    if len(size) == 2:
        return (3, *size)
    if len(size) == 3:
        return size
    raise ValueError(f"--input-size takes S, H W or C H W, got {list(size)}")
