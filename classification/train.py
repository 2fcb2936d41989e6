"""Train ParCNetV2 on ImageFolder data with timm components; single process or ``torchrun``.

    torchrun --nproc_per_node=8 -m parcnetv2.classification.train /data/imagenet \\
        --model parcnetv2_tiny --opt adamw --lr 4e-3 --warmup-epochs 20 -b 128 --grad-accum-steps 4 \\
        --drop-path 0.2 --head-dropout 0.0
    python -m parcnetv2.classification.train -c configs/classification/builtin.yaml  # built-in data

Defaults are the published recipe (``configs/classification/imagenet_parcnetv2_tiny.yaml`` spells it
out); ``-c FILE`` reads another recipe as timm's train.py does, and the flags override it. Without
DATA_PATH the built-in synthetic set is generated (once) and used. Each epoch writes, atomically and in
this order, ``last.pth.tar``, ``best.pth.tar`` (a copy of it when the epoch is the best so far), then
``metrics.json``/``metrics.csv`` (which record the best epoch) and ``curves.png``; at the end the best
weights are exported alone as ``best_weights.safetensors`` and as the timm model folder ``best_model/``
(``timm.create_model("local-dir:RUN/best_model", pretrained=True)``), from the recorded best epoch.

After a kill or a write error nothing is lost: ``--resume`` checks that ``best.pth.tar`` is this run's
checkpoint of the epoch recorded as best and restores it when it is not (an interrupted copy is redone
from ``last.pth.tar``; into a new ``--output`` the best is carried over from the resumed run's folder;
when it is gone for good, a warning says so and it is rebuilt from the resumed epoch). Temporary files of
interrupted writes are removed at the next start.
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from parcnetv2.backbone.checkpoint import CheckpointError, load_checkpoint_into
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3, random_seed
from torch.nn.parallel import DistributedDataParallel

from parcnetv2.cli import run_cli
from parcnetv2.fileio import atomic_save, atomic_write, remove_stale_temp_files

from .args import parse_train_args, resolve_input_size
from .checkpointing import (
    CHECKPOINT_FORMAT,
    capture_rng_state,
    export_model_folder,
    export_weights,
    peek_checkpoint,
    read_training_checkpoint,
    restore_rng_state,
    to_plain,
)
from .data import (
    CheckedImageDataset,
    DataError,
    FolderSplit,
    build_eval_loader,
    build_train_loader,
    check_same_classes,
    resolve_data_root,
    scan_split,
    set_epoch,
)
from .distributed import DistInfo, all_gather_objects, barrier, init_distributed, shutdown
from .engine import TrainComponents, autocast_for, evaluate, train_one_epoch
from .modeling import create_classifier, data_config_for
from .run_log import Timer, format_duration, plot_history, setup_logging, write_history

__all__ = ["main", "run"]

_SCHEDULE_ARGS = ("sched", "epochs", "lr", "min_lr", "warmup_lr", "warmup_epochs", "cooldown_epochs")
RUN_FILES = (
    "last.pth.tar",
    "best.pth.tar",
    "metrics.json",
    "metrics.csv",
    "curves.png",
    "best_weights.safetensors",
    "best_weights.safetensors.json",
    "best_model",
)
"""What a run writes into its folder (atomically; their temporary files are cleared at start)."""


def _output_dir(args: argparse.Namespace, dist_info: DistInfo) -> Path:
    if args.output:
        return Path(args.output)
    if args.resume:
        return Path(args.resume).resolve().parent
    stamp = all_gather_objects(time.strftime("%Y%m%d-%H%M%S"), dist_info)[0]
    return Path("outputs") / "classification" / f"{args.model}-{stamp}"


def _loss_fn(args: argparse.Namespace, mixup_active: bool) -> torch.nn.Module:
    if mixup_active:
        return SoftTargetCrossEntropy()  # Mixup already applies the label smoothing
    if args.smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=args.smoothing)
    return torch.nn.CrossEntropyLoss()


def _check_resume(ckpt: dict, args: argparse.Namespace, class_to_idx: dict[str, int]) -> None:
    saved = ckpt.get("args", {})
    if saved.get("model") != args.model:
        raise CheckpointError(f"--resume checkpoint is for model {saved.get('model')!r}, not {args.model!r}")
    if ckpt.get("class_to_idx") != class_to_idx:
        raise CheckpointError("--resume checkpoint was trained on different classes than the data given")


def _schedule_changed(ckpt: dict, args: argparse.Namespace, updates_per_epoch: int) -> list[str]:
    saved = ckpt.get("args", {})
    changed = [k for k in _SCHEDULE_ARGS if saved.get(k) != to_plain(getattr(args, k))]
    if ckpt.get("updates_per_epoch") != updates_per_epoch:
        changed.append("updates_per_epoch")
    return changed


def _holds_epoch(path: Path, epoch: int, history: Sequence[dict[str, Any]]) -> bool:
    """Whether ``path`` is this run's checkpoint of ``epoch`` (that epoch, the same history up to it)."""
    peek = peek_checkpoint(path)
    return (
        peek is not None
        and peek.get("epoch") == epoch
        and to_plain(peek.get("history", [])) == to_plain(list(history[:epoch]))
    )


def _describe_file(path: Path) -> str:
    peek = peek_checkpoint(path)
    if peek is not None:
        return f"{path} holds epoch {peek.get('epoch')}"
    return f"{path} is {'unreadable' if path.exists() else 'missing'}"


def _restore_best(
    ckpt: dict[str, Any], resume_path: Path, best_path: Path, best_key: str, logger: Any
) -> dict[str, Any]:
    """Make ``best_path`` this run's checkpoint of the best epoch the resumed checkpoint records.

    Kept when it already is; otherwise copied from the resumed checkpoint (when the best epoch is the
    resumed one: an interrupted copy) or from ``best.pth.tar`` next to it (resuming into a new folder);
    when neither holds it, a warning says so and it is rebuilt from the resumed epoch. Returns the best
    record to continue with.
    """
    best = dict(ckpt.get("best") or {})
    epoch, done, history = best.get("epoch"), int(ckpt["epoch"]), list(ckpt.get("history", []))
    if epoch is None:
        return {"epoch": None, "top1": -math.inf}
    if _holds_epoch(best_path, epoch, history):
        return best
    what = f"best.pth.tar of epoch {epoch} (top-1 {best['top1']:.2f})"
    sources = [resume_path] if epoch == done else []
    sources.append(resume_path.parent / "best.pth.tar")
    for source in sources:
        if source.resolve() == best_path.resolve() or not _holds_epoch(source, epoch, history):
            continue
        found = _describe_file(best_path)
        atomic_write(best_path, lambda tmp, source=source: shutil.copyfile(source, tmp))
        if source.parent.resolve() != best_path.parent.resolve():
            logger.info(f"carried the {what} over from {source}")
        else:
            logger.warning(f"{found}, not the {what} the checkpoint records: restored it from {source}")
        return best
    found = "; ".join(
        _describe_file(path) for path in dict.fromkeys(p.resolve() for p in [best_path, *sources])
    )
    row = history[done - 1] if len(history) >= done else {}
    top1 = row.get(best_key, row.get("eval_top1", -math.inf))
    top5 = row.get(best_key.replace("top1", "top5"), row.get("eval_top5"))
    rebuilt = {"epoch": done, "top1": top1, "top5": top5}
    atomic_save({**ckpt, "best": rebuilt}, best_path)
    logger.warning(
        f"the {what} is lost ({found}): rebuilding best.pth.tar from the resumed epoch {done} "
        f"(top-1 {top1:.2f}); later epochs replace it when better"
    )
    return rebuilt


def _restore_last(
    ckpt: dict[str, Any], resume_path: Path, last_path: Path, best: dict[str, Any], logger: Any
) -> None:
    """Make ``last_path`` the resumed checkpoint (with the best record the run continues with), unless it
    already is: resuming into a new folder carries it over, a rebuilt best record is written into it."""
    done, history = int(ckpt["epoch"]), list(ckpt.get("history", []))
    unchanged = best == dict(ckpt.get("best") or {})
    if unchanged and _holds_epoch(last_path, done, history):
        return
    if unchanged:
        atomic_write(last_path, lambda tmp: shutil.copyfile(resume_path, tmp))
    else:
        atomic_save({**ckpt, "best": best}, last_path)
    logger.info(f"{last_path} is the resumed checkpoint (epoch {done}, best epoch {best.get('epoch')})")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train as ``args`` (from ``args.parse_train_args``) say; returns final metrics and file paths."""
    timer = Timer()
    dist_info = init_distributed(args.device, args.dist_backend)
    try:
        return _train(args, dist_info, timer)
    finally:
        shutdown(dist_info)


@dataclass
class _Data:
    root: Path
    train_split: FolderSplit
    dataset_train: CheckedImageDataset
    dataset_val: CheckedImageDataset

    @property
    def num_classes(self) -> int:
        return len(self.train_split.classes)


@dataclass
class _Progress:
    """Where the run stands: epochs done, optimizer updates, per-epoch records, best epoch."""

    start_epoch: int = 0
    num_updates: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"epoch": None, "top1": -math.inf})


def _open_run(args: argparse.Namespace, dist_info: DistInfo) -> tuple[dict | None, Path, logging.Logger]:
    """Read ``--resume`` (before any folder or log file is made), then open the run folder and its log."""
    ckpt = read_training_checkpoint(args.resume) if args.resume else None
    output_dir = _output_dir(args, dist_info)
    stale = remove_stale_temp_files(output_dir, RUN_FILES) if dist_info.primary else []
    logger = setup_logging(output_dir, dist_info.primary)
    if stale:
        logger.warning(
            f"removed {len(stale)} temporary file(s) left by interrupted writes: "
            + ", ".join(p.name for p in stale)
        )
    if ckpt is None and dist_info.primary:
        previous = peek_checkpoint(output_dir / "last.pth.tar")
        if previous is not None:
            logger.warning(
                f"{output_dir} holds a run (last.pth.tar of epoch {previous.get('epoch')}); without --resume "
                "this run starts from scratch and replaces its checkpoints"
            )
    return ckpt, output_dir, logger


def _load_data(args: argparse.Namespace, dist_info: DistInfo, log: Any) -> _Data:
    """Scan both splits (same classes; ``--num-classes`` must match them)."""
    root = resolve_data_root(args.data_dir, args.synthetic_dir, args.synthetic_seed, dist_info, log)
    if args.builtin_data:
        log(f"no DATA_PATH: training on the built-in data set {root}")
    if args.config:
        log(f"recipe {args.config} (the command line overrides it)")
    train_split = scan_split(root, args.train_split)
    val_split = scan_split(root, args.val_split)
    check_same_classes(train_split, val_split)
    num_classes = len(train_split.classes)
    if args.num_classes is not None and args.num_classes != num_classes:
        raise DataError(
            f"--num-classes {args.num_classes} but {train_split.root} has {num_classes} class folders"
        )
    args.num_classes = num_classes
    return _Data(root, train_split, CheckedImageDataset(train_split), CheckedImageDataset(val_split))


def _build_model(
    args: argparse.Namespace, num_classes: int, device: torch.device, log: Any
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The classifier on ``device`` and its data config (input size, crop, interpolation, mean/std)."""
    model = create_classifier(args.model, num_classes, args.drop_path, args.head_dropout, args.model_kwargs)
    data_config = data_config_for(model, resolve_input_size(args), args.crop_pct, args.interpolation)
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log(
        f"model {args.model}: {n_params / 1e6:.2f}M parameters, {num_classes} classes, input "
        f"{data_config['input_size']}, eval crop_pct {data_config['crop_pct']} "
        f"({data_config['interpolation']})"
    )
    return model, data_config


def _build_optimizer(args: argparse.Namespace, model: torch.nn.Module) -> torch.optim.Optimizer:
    opt_kwargs = {k: v for k, v in dict(eps=args.opt_eps, betas=args.opt_betas).items() if v is not None}
    return create_optimizer_v2(
        model, opt=args.opt, lr=args.lr, weight_decay=args.weight_decay, momentum=args.momentum, **opt_kwargs
    )


def _build_ema(args: argparse.Namespace, model: torch.nn.Module) -> ModelEmaV3 | None:
    if not args.model_ema:
        return None
    return ModelEmaV3(model, decay=args.model_ema_decay, use_warmup=args.model_ema_warmup)


def _resume_weights(
    ckpt: dict[str, Any],
    args: argparse.Namespace,
    data: _Data,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_scaler: Any,
    model_ema: ModelEmaV3 | None,
    logger: logging.Logger,
) -> tuple[_Progress, ModelEmaV3 | None]:
    """Load model, optimizer, loss scaler and EMA from the checkpoint; returns where the run stands."""
    _check_resume(ckpt, args, data.train_split.class_to_idx)
    load_checkpoint_into(model, ckpt["state_dict"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if loss_scaler is not None and "amp_scaler" in ckpt:
        loss_scaler.load_state_dict(ckpt["amp_scaler"])
    if model_ema is not None:
        if "state_dict_ema" in ckpt:
            load_checkpoint_into(model_ema.module, ckpt["state_dict_ema"])
        else:
            logger.warning("the resumed checkpoint has no EMA weights: EMA starts from the current weights")
            model_ema = _build_ema(args, model)
    state = _Progress(int(ckpt["epoch"]), int(ckpt["num_updates"]), list(ckpt.get("history", [])))
    state.best = dict(ckpt.get("best", state.best))
    logger.info(
        f"resumed from {args.resume}: {state.start_epoch} epochs done, {state.num_updates} optimizer updates"
    )
    if state.start_epoch >= args.epochs:
        logger.warning(
            f"the checkpoint has already done {state.start_epoch} of --epochs {args.epochs}: nothing to train"
        )
    return state, model_ema


def _build_loaders(
    args: argparse.Namespace, data: _Data, data_config: dict[str, Any], dist_info: DistInfo
) -> tuple[Any, Any]:
    device, rank, world = dist_info.device, dist_info.rank, dist_info.world_size
    loader_train = build_train_loader(data.dataset_train, args, data_config, device, rank, world)
    loader_val = build_eval_loader(
        data.dataset_val,
        data_config,
        args.validation_batch_size,
        args.workers,
        device,
        rank,
        world,
        args.pin_mem,
    )
    return loader_train, loader_val


def _build_scheduler(
    args: argparse.Namespace,
    optimizer: torch.optim.Optimizer,
    updates_per_epoch: int,
    ckpt: dict[str, Any] | None,
    state: _Progress,
    logger: logging.Logger,
) -> Any:
    """timm's scheduler, stepped per update; a resumed run's follows the checkpoint unless its settings
    changed."""
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched=args.sched,
        num_epochs=args.epochs,
        min_lr=args.min_lr,
        warmup_lr=args.warmup_lr,
        warmup_epochs=args.warmup_epochs,
        cooldown_epochs=args.cooldown_epochs,
        step_on_epochs=False,
        updates_per_epoch=updates_per_epoch,
    )
    if ckpt is not None:
        changed = _schedule_changed(ckpt, args, updates_per_epoch)
        if changed:
            state.num_updates = state.start_epoch * updates_per_epoch
            logger.warning(
                f"schedule settings changed since the checkpoint ({', '.join(changed)}): the lr "
                f"schedule follows the command line from update {state.num_updates}"
            )
        else:
            scheduler.load_state_dict(ckpt["scheduler"])
    scheduler.step_update(num_updates=state.num_updates)
    return scheduler


def _build_mixup(args: argparse.Namespace, num_classes: int) -> Mixup | None:
    if not _mixup_active(args):
        return None
    return Mixup(
        mixup_alpha=args.mixup,
        cutmix_alpha=args.cutmix,
        prob=args.mixup_prob,
        switch_prob=args.mixup_switch_prob,
        mode=args.mixup_mode,
        label_smoothing=args.smoothing,
        num_classes=num_classes,
    )


def _mixup_active(args: argparse.Namespace) -> bool:
    return (args.mixup > 0 or args.cutmix > 0) and args.mixup_prob > 0


def _restore_rng(ckpt: dict[str, Any], dist_info: DistInfo, logger: logging.Logger) -> None:
    rng = ckpt.get("rng") or []
    if len(rng) == dist_info.world_size:
        restore_rng_state(rng[dist_info.rank])
    else:
        logger.warning(
            f"checkpoint has RNG states for {len(rng)} process(es), this run has "
            f"{dist_info.world_size}: random streams restart from the seed"
        )


def _epoch_row(
    epoch: int,
    train_metrics: dict[str, Any],
    model: torch.nn.Module,
    parts: TrainComponents,
    loader_val: Any,
    dist_info: DistInfo,
    timer: Timer,
) -> dict[str, Any]:
    """Evaluate the model (and its EMA) after an epoch; the epoch's record."""
    eval_metrics = evaluate(model, loader_val, dist_info, parts.autocast)
    row = {
        "epoch": epoch + 1,
        "train_loss": train_metrics["loss"],
        "lr": train_metrics["lr"],
        "eval_loss": eval_metrics["loss"],
        "eval_top1": eval_metrics["top1"],
        "eval_top5": eval_metrics["top5"],
    }
    if parts.model_ema is not None:
        ema_metrics = evaluate(parts.model_ema.module, loader_val, dist_info, parts.autocast)
        row.update(
            ema_eval_loss=ema_metrics["loss"],
            ema_eval_top1=ema_metrics["top1"],
            ema_eval_top5=ema_metrics["top5"],
        )
    row.update(
        train_images_per_s=train_metrics["images_per_s"],
        train_time_s=train_metrics["time_s"],
        updates=parts.num_updates,
        wall_s=timer.elapsed(),
    )
    return row


def _save_epoch(
    state: dict[str, Any],
    is_best: bool,
    output_dir: Path,
    history: list[dict[str, Any]],
    run_info: dict[str, Any],
    title: str,
) -> None:
    """Write ``last.pth.tar``, then ``best.pth.tar`` (a copy, when best), then the records.

    A kill in between leaves a last.pth.tar whose best record --resume can restore (the copy is redone),
    and records that never claim more.
    """
    last_path, best_path = output_dir / "last.pth.tar", output_dir / "best.pth.tar"
    atomic_save(state, last_path)
    if is_best:
        atomic_write(best_path, lambda tmp: shutil.copyfile(last_path, tmp))
    write_history(history, output_dir, {**run_info, "best": state["best"]})
    plot_history(history, output_dir / "curves.png", title=title)


def _export_best(
    output_dir: Path, best: dict[str, Any], history: list[dict[str, Any]], use_ema: bool, log: Any
) -> tuple[Path, Path]:
    """Export the recorded best epoch's weights: ``best_weights.safetensors`` and the timm folder
    ``best_model/``; refuses a ``best.pth.tar`` of another epoch."""
    best_path = output_dir / "best.pth.tar"
    if not _holds_epoch(best_path, best["epoch"], history):
        raise CheckpointError(
            f"{_describe_file(best_path)}, not the best epoch {best['epoch']} this run records: "
            f"best_weights.safetensors not exported (--resume {output_dir / 'last.pth.tar'} restores or "
            "rebuilds it)"
        )
    weights_path = export_weights(best_path, output_dir / "best_weights.safetensors", use_ema=use_ema)
    model_dir = export_model_folder(best_path, output_dir / "best_model", use_ema=use_ema)
    log(
        f"exported the best weights ({'EMA' if use_ema else 'raw'}) to {weights_path} and the timm model "
        f"folder {model_dir} (timm.create_model('local-dir:{model_dir}', pretrained=True))"
    )
    return weights_path, model_dir


def _train(args: argparse.Namespace, dist_info: DistInfo, timer: Timer) -> dict[str, Any]:
    device = dist_info.device
    ckpt, output_dir, logger = _open_run(args, dist_info)
    log = logger.info
    random_seed(args.seed, dist_info.rank)
    data = _load_data(args, dist_info, log)
    model, data_config = _build_model(args, data.num_classes, device, log)
    optimizer = _build_optimizer(args, model)
    autocast, loss_scaler = autocast_for(args.amp, args.amp_dtype, device)
    model_ema = _build_ema(args, model)
    state = _Progress()
    if ckpt is not None:
        state, model_ema = _resume_weights(ckpt, args, data, model, optimizer, loss_scaler, model_ema, logger)

    train_model = model
    if dist_info.distributed:
        device_ids = [device] if device.type == "cuda" else None
        train_model = DistributedDataParallel(model, device_ids=device_ids)
    loader_train, loader_val = _build_loaders(args, data, data_config, dist_info)
    num_batches = len(loader_train)
    updates_per_epoch = math.ceil(num_batches / args.grad_accum_steps)
    scheduler = _build_scheduler(args, optimizer, updates_per_epoch, ckpt, state, logger)
    mixup_fn = _build_mixup(args, data.num_classes)
    parts = TrainComponents(
        model=train_model,
        optimizer=optimizer,
        loss_fn=_loss_fn(args, mixup_fn is not None).to(device),
        scheduler=scheduler,
        autocast=autocast,
        loss_scaler=loss_scaler,
        mixup_fn=mixup_fn,
        model_ema=model_ema,
        grad_accum_steps=args.grad_accum_steps,
        clip_grad=args.clip_grad,
        clip_mode=args.clip_mode,
        num_updates=state.num_updates,
    )
    global_batch = args.batch_size * args.grad_accum_steps * dist_info.world_size
    log(
        f"{len(data.dataset_train)} train / {len(data.dataset_val)} val images; {dist_info.world_size} "
        f"process(es) on {device.type}; {num_batches} batches of {args.batch_size} per epoch per process; "
        f"{updates_per_epoch} updates/epoch of {global_batch} images; {args.epochs} epochs, "
        f"warmup {args.warmup_epochs}"
    )
    if ckpt is not None:
        _restore_rng(ckpt, dist_info, logger)

    last_path, best_path = output_dir / "last.pth.tar", output_dir / "best.pth.tar"
    best_key = "ema_eval_top1" if model_ema is not None else "eval_top1"
    run_info = dict(
        model=args.model,
        data=str(data.root),
        builtin_data=args.builtin_data,
        device=device.type,
        world_size=dist_info.world_size,
        global_batch=global_batch,
        best_metric=best_key,
        args=to_plain(vars(args)),
    )
    title = f"{args.model} on {data.root.name}"
    history, best = state.history, state.best
    if ckpt is not None:
        if dist_info.primary:
            best = _restore_best(ckpt, Path(args.resume), best_path, best_key, logger)
            _restore_last(ckpt, Path(args.resume), last_path, best, logger)
            write_history(history, output_dir, {**run_info, "best": best})
            plot_history(history, output_dir / "curves.png", title=title)
        best = all_gather_objects(best, dist_info)[0]
        ckpt = None  # its tensors are loaded; free them
    for epoch in range(state.start_epoch, args.epochs):
        if mixup_fn is not None and args.mixup_off_epoch and epoch >= args.mixup_off_epoch:
            mixup_fn.mixup_enabled = False
        set_epoch(loader_train, epoch, args.seed, dist_info.rank)
        train_metrics = train_one_epoch(
            parts, loader_train, num_batches, epoch, args.epochs, dist_info, logger, args.log_interval
        )
        row = _epoch_row(epoch, train_metrics, model, parts, loader_val, dist_info, timer)
        history.append(row)
        is_best = row[best_key] > best["top1"]
        if is_best:
            best = {"epoch": epoch + 1, "top1": row[best_key], "top5": row[best_key.replace("top1", "top5")]}

        rng_states = all_gather_objects(capture_rng_state(), dist_info)
        if dist_info.primary:
            checkpoint = {
                "format": CHECKPOINT_FORMAT,
                "arch": args.model,
                "epoch": epoch + 1,
                "num_updates": parts.num_updates,
                "updates_per_epoch": updates_per_epoch,
                "state_dict": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": rng_states,
                "args": to_plain(vars(args)),
                "class_to_idx": data.train_split.class_to_idx,
                "history": history,
                "best": best,
                "pretrained_cfg": to_plain(data_config),
            }
            if model_ema is not None:
                checkpoint["state_dict_ema"] = model_ema.module.state_dict()
            if loss_scaler is not None:
                checkpoint["amp_scaler"] = loss_scaler.state_dict()
            _save_epoch(checkpoint, is_best, output_dir, history, run_info, title)
        log(
            f"[epoch {epoch + 1}/{args.epochs}] train loss {row['train_loss']:.4f} | "
            f"val loss {row['eval_loss']:.4f} top-1 {row['eval_top1']:.2f} top-5 {row['eval_top5']:.2f}"
            + (f" | EMA top-1 {row['ema_eval_top1']:.2f}" if model_ema is not None else "")
            + f" | best top-1 {best['top1']:.2f} (epoch {best['epoch']})"
            + f" | {format_duration(timer.elapsed())} elapsed"
        )
        barrier(dist_info)

    weights_path = model_dir = None
    if dist_info.primary and not args.no_export and best["epoch"] is not None:
        weights_path, model_dir = _export_best(output_dir, best, history, model_ema is not None, log)
    final = history[-1] if history else {}
    log(
        f"done in {format_duration(timer.elapsed())}: "
        f"final top-1 {final.get('eval_top1', float('nan')):.2f}, "
        f"best {best['top1']:.2f} (epoch {best['epoch']}); run folder {output_dir}"
    )
    return {
        "output_dir": str(output_dir),
        "data_dir": str(data.root),
        "num_classes": data.num_classes,
        "metrics": final,
        "best": best,
        "history": history,
        "checkpoints": {
            "last": str(last_path),
            "best": str(best_path),
            "weights": str(weights_path) if weights_path else None,
            "model_dir": str(model_dir) if model_dir else None,
        },
        "time_s": timer.elapsed(),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; ``argv`` as for ``sys.argv[1:]``. Returns what ``run`` returns."""
    return run(parse_train_args(argv))


if __name__ == "__main__":
    run_cli(main, prog="parcnetv2.classification.train")
