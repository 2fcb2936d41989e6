"""Train ParCNetV2 on ImageFolder data with timm components; single process or ``torchrun``.

    torchrun --nproc_per_node=8 -m parcnetv2.classification.train /data/imagenet \\
        -c configs/classification/imagenet_parcnetv2_tiny.yaml -b 128 --grad-accum-steps 4
    python -m parcnetv2.classification.train -c configs/classification/builtin.yaml  # built-in data

``-c FILE`` reads a recipe of option defaults as timm's train.py does and the flags override it; without
one the defaults are timm's neutral ones (``args.py``). Without DATA_PATH the built-in set in
``data/synthetic_cls`` is used; it is never generated here (``python -m parcnetv2.builtin_data cls``).
Each epoch writes, atomically and in this order, ``last.pth.tar``, ``best.pth.tar`` (a copy of it when
the epoch is the best so far), then ``metrics.json``/``metrics.csv`` (which record the best epoch) and
``curves.png``; at the end the best weights are exported alone as ``best_weights.safetensors`` and as the
timm model folder ``best_model/``, from the recorded best epoch.

On SIGTERM or SIGUSR1 (``--preempt-signals``) every rank finishes the same optimizer update, rank 0
writes ``recovery.pth.tar`` and the process exits with status 75; ``--resume RUN/recovery.pth.tar``
continues mid-epoch with the same samples, augmentation and random streams (``--recovery-interval N``
also writes it every N updates). After a kill or a write error ``--resume`` repairs the run's files
(``checkpointing.restore_run_files``).
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from timm.utils import random_seed
from torch.nn.parallel import DistributedDataParallel

from parcnetv2.cli import run_cli
from parcnetv2.preemption import PREEMPTED_STATUS, ignore_signals

from . import checkpointing as ckpts
from .args import parse_train_args, resolve_input_size
from .components import build_ema, build_loss, build_mixup, build_optimizer, build_scheduler
from .data import (
    CheckedImageDataset,
    build_eval_loader,
    build_train_loader,
    set_epoch,
    train_random_erasing,
    worker_errors_in_one_line,
)
from .distributed import DistInfo, all_gather_objects, all_reduce_sum, barrier, init_distributed, shutdown
from .engine import EpochState, TrainComponents, autocast_for, epoch_record, train_one_epoch
from .export import export_best
from .folder_scan import DataError, check_same_classes, resolve_data_root, scan_splits
from .modeling import create_classifier, data_config_for
from .preemption import PreemptionGuard
from .run_log import Timer, format_duration, format_epoch_line, to_plain

__all__ = ["main", "run"]


@dataclass
class _RunState:
    """Where the run stands: epochs done, updates, records, best epoch, and how far into the next epoch
    (micro-batches, each rank's :class:`EpochState`) a recovery checkpoint was written."""

    start_epoch: int = 0
    num_updates: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"epoch": None, "top1": -math.inf})
    start_step: int = 0
    epoch_states: list[dict[str, Any]] = field(default_factory=list)


def _output_dir(args: argparse.Namespace, dist_info: DistInfo) -> Path:
    if args.output:
        return Path(args.output)
    if args.resume:
        return Path(args.resume).resolve().parent
    stamp = all_gather_objects(time.strftime("%Y%m%d-%H%M%S"), dist_info)[0]
    return Path("outputs") / "classification" / f"{args.model}-{stamp}"


def _load_data(args: argparse.Namespace, root: Path, dist_info: DistInfo, run_dir: Path, log: Any) -> tuple:
    """The two checked splits of ``root`` (the same classes; ``--num-classes`` must match them)."""
    if args.builtin_data:
        log(f"no DATA_PATH: training on the built-in data set {root}")
    if args.config:
        log(f"recipe {args.config} (the command line overrides it)")
    start = time.perf_counter()
    train_split, val_split = scan_splits(root, [args.train_split, args.val_split], dist_info, run_dir)
    images = train_split.num_images + val_split.num_images
    log(f"data check: {images} images in {time.perf_counter() - start:.1f}s")
    check_same_classes(train_split, val_split)
    if args.num_classes is not None and args.num_classes != len(train_split.classes):
        found = len(train_split.classes)
        raise DataError(f"--num-classes {args.num_classes} but {train_split.root} has {found} class folders")
    args.num_classes = len(train_split.classes)
    return train_split, val_split


def _resume(
    ckpt: dict,
    args: argparse.Namespace,
    parts: TrainComponents,
    model: Any,
    dist_info: DistInfo,
    logger: logging.Logger,
) -> _RunState:
    """Load the checkpoint into ``model`` and ``parts``; returns where the run stands."""
    if not ckpts.load_training_state(ckpt, model, parts.optimizer, parts.loss_scaler, parts.model_ema):
        logger.warning("the resumed checkpoint has no EMA weights: EMA starts from the current weights")
        parts.model_ema = build_ema(args, model)
    state = _RunState(int(ckpt["epoch"]), int(ckpt["num_updates"]), list(ckpt.get("history", [])))
    state.best = dict(ckpt.get("best", state.best))
    recovery = ckpt.get("recovery")
    if recovery is not None:
        state.start_step, state.epoch_states = int(recovery["step"]), list(recovery["epoch_states"])
    where = f", {state.start_step} batches into epoch {state.start_epoch + 1}" if recovery else ""
    logger.info(
        f"resumed from {args.resume}: {state.start_epoch} epochs done{where}, {state.num_updates} updates"
    )
    if state.start_epoch >= args.epochs:
        logger.warning(
            f"the checkpoint has already done {state.start_epoch} of --epochs {args.epochs}: nothing to train"
        )
    return state


def _train(
    args: argparse.Namespace, dist_info: DistInfo, timer: Timer, guard: PreemptionGuard
) -> dict[str, Any]:
    device = dist_info.device
    ckpt = ckpts.read_training_checkpoint(args.resume) if args.resume else None  # before making anything
    if not args.model:
        raise ValueError("no --model: give one (e.g. --model parcnetv2_tiny) or a recipe with -c")
    root = resolve_data_root(args.data_dir)
    output_dir = _output_dir(args, dist_info)
    logger = ckpts.open_run_folder(output_dir, ckpt is None, dist_info.primary)
    log = logger.info
    random_seed(args.seed, dist_info.rank)
    train_split, val_split = _load_data(args, root, dist_info, output_dir, log)
    if ckpt is not None:
        ckpts.check_resume(ckpt, args, train_split.class_to_idx, dist_info.world_size)
    model = create_classifier(
        args.model, args.num_classes, args.drop_path, args.head_dropout, args.model_kwargs
    )
    data_config = data_config_for(model, resolve_input_size(args), args.crop_pct, args.interpolation)
    model.to(device)
    log(
        f"model {args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
        f"{args.num_classes} classes, input {data_config['input_size']}, eval crop_pct "
        f"{data_config['crop_pct']} ({data_config['interpolation']})"
    )
    autocast, loss_scaler = autocast_for(args.amp, args.amp_dtype, device)
    workers_ignore = functools.partial(ignore_signals, args.preempt_signals)
    dataset_train = CheckedImageDataset(train_split, skip_unreadable=True)
    loader_train = build_train_loader(dataset_train, args, data_config, dist_info, workers_ignore)
    eval_options = (args.validation_batch_size, args.workers, dist_info, args.pin_mem, workers_ignore)
    loader_val = build_eval_loader(CheckedImageDataset(val_split), data_config, *eval_options)
    num_batches = len(loader_train)
    updates_per_epoch = math.ceil(num_batches / args.grad_accum_steps)
    mixup_fn = build_mixup(args, args.num_classes)
    parts = TrainComponents(
        model=model,
        optimizer=build_optimizer(args, model, dist_info.world_size, log),
        loss_fn=build_loss(args, mixup_fn is not None).to(device),
        scheduler=None,
        autocast=autocast,
        loss_scaler=loss_scaler,
        mixup_fn=mixup_fn,
        model_ema=build_ema(args, model),
        random_erasing=train_random_erasing(args, device),
        grad_accum_steps=args.grad_accum_steps,
        clip_grad=args.clip_grad,
        clip_mode=args.clip_mode,
    )
    state = _RunState() if ckpt is None else _resume(ckpt, args, parts, model, dist_info, logger)
    parts.scheduler, parts.num_updates = build_scheduler(
        args, parts.optimizer, updates_per_epoch, ckpt, state.num_updates, logger
    )
    if dist_info.distributed:
        parts.model = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    global_batch = args.batch_size * args.grad_accum_steps * dist_info.world_size
    log(
        f"{len(dataset_train)} train / {len(loader_val.loader.dataset)} val images; {dist_info.world_size} "
        f"process(es) on {device.type}; {num_batches} batches of {args.batch_size} per epoch per process; "
        f"{updates_per_epoch} updates/epoch of {global_batch} images; {args.epochs} epochs, "
        f"warmup {args.warmup_epochs}"
    )
    best_key = "ema_eval_top1" if parts.model_ema is not None else "eval_top1"
    run_info = dict(
        model=args.model,
        data=str(root),
        builtin_data=args.builtin_data,
        device=device.type,
        world_size=dist_info.world_size,
        global_batch=global_batch,
        best_metric=best_key,
        args=to_plain(vars(args)),
    )
    title = f"{args.model} on {root.name}"
    if ckpt is not None:
        ckpts.restore_rng_states(ckpt, dist_info, logger)
        if dist_info.primary:
            state.best = ckpts.restore_run_files(
                ckpt, Path(args.resume), output_dir, best_key, run_info, title, logger
            )
        state.best = all_gather_objects(state.best, dist_info)[0]
        ckpt = None  # its tensors are loaded; free them

    meta = dict(
        arch=args.model,
        updates_per_epoch=updates_per_epoch,
        args=to_plain(vars(args)),
        class_to_idx=train_split.class_to_idx,
        pretrained_cfg=to_plain(data_config),
    )

    def checkpoint(epochs_done: int) -> dict[str, Any]:
        records = {**meta, "history": state.history, "best": state.best}
        return ckpts.training_state(parts, model, epochs_done, records, dist_info)

    def after_update(epoch: int, epoch_state: EpochState) -> bool:
        """Stop on a signal (all ranks at this update) and write recovery.pth.tar when due."""
        bad = epoch_state.unreadable + dataset_train.unreadable.value
        if bad > args.max_unreadable * len(dataset_train) / dist_info.world_size:
            raise DataError(
                f"{bad} training images failed to decode, more than --max-unreadable "
                f"{args.max_unreadable} of this process's share: is the data intact?"
            )
        stop = guard.should_stop()
        if stop or (args.recovery_interval and parts.num_updates % args.recovery_interval == 0):
            full = all_gather_objects({**asdict(epoch_state), "unreadable": bad}, dist_info)
            saved = checkpoint(epoch)
            if dist_info.primary:
                path = ckpts.save_recovery(saved, epoch_state.step, full, output_dir)
                if stop:
                    where = f"(epoch {epoch + 1}, batch {epoch_state.step}/{num_batches})"
                    log(
                        f"stopped by {guard.received} after update {parts.num_updates} {where}: saved "
                        f"{path}; exit status {PREEMPTED_STATUS}, continue with --resume {path}"
                    )
            barrier(dist_info)
        return stop

    resume_from = None  # set when a signal stops the run
    for epoch in range(state.start_epoch, args.epochs):
        if mixup_fn is not None and args.mixup_off_epoch and epoch >= args.mixup_off_epoch:
            mixup_fn.mixup_enabled = False
        epoch_state = EpochState(**state.epoch_states[dist_info.rank]) if state.start_step else EpochState()
        set_epoch(loader_train, epoch, state.start_step)
        state.start_step = 0
        with worker_errors_in_one_line():
            metrics = train_one_epoch(
                parts,
                loader_train,
                num_batches,
                epoch,
                args.epochs,
                dist_info,
                logger,
                args.log_interval,
                epoch_state,
                functools.partial(after_update, epoch),
            )
        if metrics["stopped"]:
            resume_from = output_dir / "recovery.pth.tar"
            break
        bad = epoch_state.unreadable + dataset_train.unreadable.value
        metrics["unreadable"] = int(all_reduce_sum([bad], dist_info)[0])
        with worker_errors_in_one_line():
            row = {
                **epoch_record(epoch, metrics, model, parts, loader_val, dist_info),
                "wall_s": timer.elapsed(),
            }
        state.history.append(row)
        is_best = row[best_key] > state.best["top1"]
        if is_best:
            state.best = {
                "epoch": epoch + 1,
                "top1": row[best_key],
                "top5": row[best_key.replace("top1", "top5")],
            }
        saved = checkpoint(epoch + 1)
        if dist_info.primary:
            ckpts.save_epoch(saved, is_best, output_dir, run_info, title)
        log(format_epoch_line(row, args.epochs, state.best, timer.elapsed()))
        barrier(dist_info)
        if epoch + 1 < args.epochs and guard.should_stop():
            log(
                f"stopped by {guard.received} after epoch {epoch + 1}: continue with --resume "
                f"{output_dir / 'last.pth.tar'} (exit status {PREEMPTED_STATUS})"
            )
            resume_from = output_dir / "last.pth.tar"
            break

    best, weights_path, model_dir = state.best, None, None
    if dist_info.primary and resume_from is None and not args.no_export and best["epoch"] is not None:
        weights_path, model_dir = export_best(
            output_dir, best, state.history, parts.model_ema is not None, log
        )
    final = state.history[-1] if state.history else {}
    if resume_from is None:
        top1 = final.get("eval_top1", float("nan"))
        log(
            f"done in {format_duration(timer.elapsed())}: final top-1 {top1:.2f}, "
            f"best {best['top1']:.2f} (epoch {best['epoch']}); run folder {output_dir}"
        )
    files = dict(last=output_dir / "last.pth.tar", best=output_dir / "best.pth.tar", resume_from=resume_from)
    files.update(weights=weights_path, model_dir=model_dir)
    return dict(
        output_dir=str(output_dir),
        data_dir=str(root),
        num_classes=args.num_classes,
        metrics=final,
        best=best,
        history=state.history,
        stopped=resume_from is not None,
        time_s=timer.elapsed(),
        checkpoints={k: str(v) if v else None for k, v in files.items()},
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train as ``args`` (from ``args.parse_train_args``) say; returns final metrics and file paths
    (``stopped``: a preemption signal ended the run early, with a recovery checkpoint)."""
    timer = Timer()
    dist_info = init_distributed(args.device, args.dist_backend)
    try:
        with PreemptionGuard(args.preempt_signals, dist_info) as guard:
            return _train(args, dist_info, timer, guard)
    finally:
        shutdown(dist_info)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; ``argv`` as for ``sys.argv[1:]``. Returns what ``run`` returns."""
    return run(parse_train_args(argv))


if __name__ == "__main__":
    if run_cli(main, prog="parcnetv2.classification.train")["stopped"]:
        raise SystemExit(PREEMPTED_STATUS)
