"""Datasets and timm loaders over scanned ImageFolder splits (:mod:`.folder_scan`), resumable mid-epoch.

Each training sample's augmentation draws from generators seeded by ``(seed, epoch, index)``, and the
training sampler can start part-way into its epoch's order, so a resumed epoch sees the same images with
the same augmentation in the same order as an uninterrupted one, whatever the worker count. A training
image that fails to decode (a truncated JPEG behind a valid header) is skipped with a warning that names
it (the next readable image stands in) and counted; an evaluation image that fails is an error naming it.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from timm.data import auto_augment, create_transform
from timm.data.loader import PrefetchLoader, fast_collate
from timm.data.random_erasing import RandomErasing
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .distributed import DistInfo
from .folder_scan import DataError, FolderSplit
from .run_log import LOGGER

__all__ = [
    "UnreadableImageError",
    "CheckedImageDataset",
    "EpochSampler",
    "ShardSampler",
    "build_train_loader",
    "build_eval_loader",
    "train_random_erasing",
    "set_epoch",
    "worker_errors_in_one_line",
    "input_size_3d",
]


class UnreadableImageError(OSError):
    """An image file that cannot be opened or decoded."""


@contextlib.contextmanager
def _seeded(*key: int) -> Iterator[None]:
    """Python, NumPy and torch (CPU) generators seeded by ``key`` inside, restored after."""
    seed = int(np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0])
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


class CheckedImageDataset(Dataset):
    """The samples of a scanned split, decoded with Pillow (RGB) and transformed.

    ``skip_unreadable``: an image that fails to decode is skipped with a warning naming it and counted in
    ``unreadable`` (shared with the loader's worker processes); otherwise it raises
    ``UnreadableImageError`` with its path. ``augment_seed`` and ``epoch`` (set by :func:`set_epoch`) make
    each sample's transform a function of ``(augment_seed, epoch, index)``.
    """

    def __init__(self, split: FolderSplit, transform: Any = None, skip_unreadable: bool = False) -> None:
        self.samples, self.classes, self.root = list(split.samples), split.classes, split.root
        if len(self.samples) != split.num_images:
            raise DataError(f"{split.root}: the scan lists {len(self.samples)} of {split.num_images} images")
        self.transform = transform
        self.unreadable = multiprocessing.Value("q", 0) if skip_unreadable else None
        self.augment_seed: int | None = None
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def _decode(self, index: int) -> tuple[Image.Image, int]:
        path, target = self.samples[index]
        try:
            with Image.open(path) as img:
                return img.convert("RGB"), target  # decodes the pixels, so truncated files fail here
        except Exception as err:
            raise UnreadableImageError(f"cannot read image {path}: {type(err).__name__}: {err}") from err

    def __getitem__(self, index: int) -> tuple[Any, int]:
        try:
            img, target = self._decode(index)
        except UnreadableImageError as err:
            if self.unreadable is None:
                raise
            LOGGER.warning(f"skipped: {err}")
            with self.unreadable.get_lock():
                self.unreadable.value += 1
            img, target = self._stand_in(index)
        if self.transform is None:
            return img, target
        if self.augment_seed is None:
            return self.transform(img), target
        with _seeded(self.augment_seed, self.epoch, index):
            return self.transform(img), target

    def _stand_in(self, index: int, tries: int = 64) -> tuple[Image.Image, int]:
        """The next readable image after ``index`` (its own turn counts it if it fails)."""
        tries = min(tries, len(self.samples) - 1)
        for offset in range(1, tries + 1):
            with contextlib.suppress(UnreadableImageError):
                return self._decode((index + offset) % len(self.samples))
        raise DataError(
            f"{self.samples[index][0]} and the {tries} images after it fail to decode: is the data intact?"
        )


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


class EpochSampler(DistributedSampler):
    """torch's ``DistributedSampler`` (disjoint shards, shuffled by ``(seed, epoch)``, ``drop_last``) that
    starts ``start`` samples into its epoch's order: a resumed epoch continues where it stopped."""

    start = 0

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return super().__len__() - self.start


def _seed_generator(seed: int) -> torch.Generator:
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def build_train_loader(
    dataset: CheckedImageDataset,
    args: Any,
    data_config: dict[str, Any],
    dist_info: DistInfo,
    worker_init_fn: Callable[[int], None] | None = None,
) -> PrefetchLoader:
    """timm training transforms (RandAugment, RandomResizedCrop, flip) and loader over this rank's shard.

    Each rank gets a disjoint shard (:class:`EpochSampler`, seeded with ``args.seed``); call
    ``set_epoch(loader, epoch)`` before each epoch. Random erasing is left to the training step
    (:func:`train_random_erasing`): timm's prefetcher would draw it one batch ahead of the step, from the
    random stream the step uses.
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
            use_prefetcher=True,
        )
    )
    dataset.augment_seed = args.seed
    sampler = EpochSampler(
        dataset,
        num_replicas=dist_info.world_size,
        rank=dist_info.rank,
        shuffle=True,
        seed=args.seed,
        drop_last=True,
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
        pin_memory=args.pin_mem and dist_info.device.type == "cuda",
        drop_last=True,
        worker_init_fn=worker_init_fn,
        generator=_seed_generator(args.seed),  # worker seeds drawn here, not from the global stream
    )
    return PrefetchLoader(loader, mean=data_config["mean"], std=data_config["std"], device=dist_info.device)


def train_random_erasing(args: Any, device: torch.device) -> RandomErasing | None:
    """timm's batch random erasing (``--reprob``, ``--remode``, ``--recount``), or None."""
    if args.no_aug or args.reprob <= 0:
        return None
    return RandomErasing(probability=args.reprob, mode=args.remode, max_count=args.recount, device=device)


def set_epoch(loader: PrefetchLoader, epoch: int, start_batch: int = 0) -> None:
    """Make ``loader`` yield ``epoch``'s shard from batch ``start_batch`` on, with its augmentation; its
    dataset's count of unreadable images starts again from 0."""
    loader.sampler.set_epoch(epoch)
    loader.sampler.start = start_batch * loader.loader.batch_size
    dataset = loader.loader.dataset
    dataset.epoch = epoch
    if dataset.unreadable is not None:
        dataset.unreadable.value = 0


@contextlib.contextmanager
def worker_errors_in_one_line() -> Iterator[None]:
    """Re-raise an error a data-loader worker raised with its own message, without the worker's traceback
    that torch's loader puts into it."""
    try:
        yield
    except (UnreadableImageError, DataError) as err:
        lines = str(err).strip().splitlines()
        if len(lines) < 2 or not lines[0].startswith("Caught "):
            raise
        raise type(err)(lines[-1].split(": ", 1)[-1]) from None


def build_eval_loader(
    dataset: CheckedImageDataset,
    data_config: dict[str, Any],
    batch_size: int,
    workers: int,
    dist_info: DistInfo,
    pin_memory: bool = False,
    worker_init_fn: Callable[[int], None] | None = None,
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
        sampler=ShardSampler(len(dataset), dist_info.rank, dist_info.world_size),
        num_workers=workers,
        collate_fn=fast_collate,
        pin_memory=pin_memory and dist_info.device.type == "cuda",
        drop_last=False,
        worker_init_fn=worker_init_fn,
    )
    return PrefetchLoader(loader, mean=data_config["mean"], std=data_config["std"], device=dist_info.device)


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
