"""Training checkpoints: written atomically, read back for an exact resume; the run folder opened, and its
files repaired after a kill.

A training checkpoint is a dict loadable with ``torch.load(weights_only=True)`` holding ``state_dict``
(the model), optionally ``state_dict_ema``, ``optimizer``, ``scheduler``, ``amp_scaler``, ``epoch``
(epochs completed), ``num_updates``, per-rank ``rng`` states, ``args``, ``class_to_idx``, ``history``,
``best`` and ``pretrained_cfg``. timm's loader and ``parcnetv2.backbone.load_checkpoint_into`` read it as
is (timm prefers the EMA weights when present). Each epoch ends with ``last.pth.tar`` and, when best,
``best.pth.tar`` (:func:`save_epoch`); ``recovery.pth.tar`` (:func:`save_recovery`) is the same state
part-way into an epoch (after a preemption signal or every ``--recovery-interval`` updates), with a
``recovery`` entry: micro-batches done in the epoch and each rank's running sums. After a kill or a
write error, :func:`restore_run_files` makes ``best.pth.tar`` and ``last.pth.tar`` again what the resumed
checkpoint records.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from parcnetv2.backbone.checkpoint import CheckpointError, load_checkpoint_into, read_checkpoint
from parcnetv2.fileio import atomic_save, atomic_write, remove_stale_temp_files

from .distributed import all_gather_objects
from .run_log import plot_history, setup_logging, to_plain, write_history

__all__ = [
    "CHECKPOINT_FORMAT",
    "RUN_FILES",
    "capture_rng_state",
    "restore_rng_state",
    "read_training_checkpoint",
    "peek_checkpoint",
    "open_run_folder",
    "holds_epoch",
    "describe_file",
    "check_resume",
    "schedule_changed",
    "restore_rng_states",
    "load_training_state",
    "training_state",
    "save_epoch",
    "save_recovery",
    "restore_run_files",
]

CHECKPOINT_FORMAT = "parcnetv2-classification/1"

RUN_FILES = (
    "last.pth.tar",
    "best.pth.tar",
    "recovery.pth.tar",
    "metrics.json",
    "metrics.csv",
    "curves.png",
    "data_check.json",
    "best_weights.safetensors",
    "best_weights.safetensors.json",
    "best_model",
)
"""What a run writes into its folder (atomically; their temporary files are cleared at start)."""

_SCHEDULE_ARGS = ("sched", "epochs", "lr", "min_lr", "warmup_lr", "warmup_epochs", "cooldown_epochs")


# ---------------------------------------------------------------------------------------- RNG state
def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU (and CUDA) generator states, in ``weights_only``-loadable types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss = random.getstate()
    state = {
        "python": [version, list(py_state), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what ``capture_rng_state`` captured."""
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------- reading
def read_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by the trainer; raise ``CheckpointError`` for anything else."""
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, Mapping) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a training checkpoint of this trainer (no format '{CHECKPOINT_FORMAT}'); "
            "--resume needs a last.pth.tar/best.pth.tar written by parcnetv2.classification.train"
        )
    return dict(checkpoint)


def peek_checkpoint(path: str | os.PathLike) -> dict[str, Any] | None:
    """A training checkpoint's contents, memory-mapped (cheap to inspect); None when absent or unreadable."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # missing, truncated, not a zip checkpoint, or not weights-only loadable
        return None
    if not isinstance(checkpoint, Mapping) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        return None
    return dict(checkpoint)


# ---------------------------------------------------------------------------------------- resuming
def open_run_folder(output_dir: Path, fresh: bool, primary: bool) -> logging.Logger:
    """Open the run folder and its log: clear temporary files of interrupted writes (saying so), and warn
    when a fresh run (no ``--resume``) is about to replace another run's checkpoints."""
    stale = remove_stale_temp_files(output_dir, RUN_FILES) if primary else []
    logger = setup_logging(output_dir, primary)
    if stale:
        names = ", ".join(p.name for p in stale)
        logger.warning(f"removed {len(stale)} temporary file(s) left by interrupted writes: {names}")
    previous = peek_checkpoint(output_dir / "last.pth.tar") if fresh and primary else None
    if previous is not None:
        logger.warning(
            f"{output_dir} holds a run (last.pth.tar of epoch {previous.get('epoch')}); without --resume "
            "this run starts from scratch and replaces its checkpoints"
        )
    return logger


def holds_epoch(path: Path, epoch: int, history: Sequence[dict[str, Any]]) -> bool:
    """Whether ``path`` is this run's checkpoint of the end of ``epoch`` (the same history up to it)."""
    peek = peek_checkpoint(path)
    return (
        peek is not None
        and "recovery" not in peek
        and peek.get("epoch") == epoch
        and to_plain(peek.get("history", [])) == to_plain(list(history[:epoch]))
    )


def describe_file(path: Path) -> str:
    """What ``path`` holds, for messages: the epoch, or that it is missing, unreadable or mid-epoch."""
    peek = peek_checkpoint(path)
    if peek is not None and "recovery" in peek:
        return f"{path} is mid-epoch {peek.get('epoch', 0) + 1} (recovery)"
    if peek is not None:
        return f"{path} holds epoch {peek.get('epoch')}"
    return f"{path} is {'unreadable' if path.exists() else 'missing'}"


def check_resume(ckpt: dict, args: argparse.Namespace, class_to_idx: dict[str, int], world_size: int) -> None:
    """Refuse a checkpoint of another model or other classes, and a mid-epoch one whose position means
    other samples here (another process count, batch size or accumulation)."""
    saved = ckpt.get("args", {})
    if saved.get("model") != args.model:
        raise CheckpointError(f"--resume checkpoint is for model {saved.get('model')!r}, not {args.model!r}")
    if ckpt.get("class_to_idx") != class_to_idx:
        raise CheckpointError("--resume checkpoint was trained on different classes than the data given")
    same = [saved.get(k) == getattr(args, k) for k in ("batch_size", "grad_accum_steps")]
    processes = len(ckpt.get("rng") or [])
    if "recovery" in ckpt and (processes != world_size or not all(same)):
        raise CheckpointError(
            f"{args.resume} stopped mid-epoch with {processes} process(es), -b {saved.get('batch_size')} and "
            f"--grad-accum-steps {saved.get('grad_accum_steps')}: resume it with the same, or resume "
            "last.pth.tar (the epoch's start)"
        )


def schedule_changed(ckpt: dict, args: argparse.Namespace, updates_per_epoch: int) -> list[str]:
    """The schedule settings that differ from the checkpoint's (then the lr schedule restarts from them)."""
    saved = ckpt.get("args", {})
    changed = [k for k in _SCHEDULE_ARGS if saved.get(k) != to_plain(getattr(args, k))]
    if ckpt.get("updates_per_epoch") != updates_per_epoch:
        changed.append("updates_per_epoch")
    return changed


def restore_rng_states(ckpt: Mapping[str, Any], dist_info: Any, logger: Any) -> None:
    """Restore this rank's RNG states; with another number of processes, warn and keep the seeded ones."""
    rng = ckpt.get("rng") or []
    if len(rng) == dist_info.world_size:
        restore_rng_state(rng[dist_info.rank])
    else:
        logger.warning(
            f"checkpoint has RNG states for {len(rng)} process(es), this run has "
            f"{dist_info.world_size}: random streams restart from the seed"
        )


def load_training_state(
    ckpt: Mapping[str, Any], model: torch.nn.Module, optimizer: Any, loss_scaler: Any, model_ema: Any
) -> bool:
    """Load model, optimizer, loss scaler and EMA weights; False when the EMA has none to load."""
    load_checkpoint_into(model, ckpt["state_dict"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if loss_scaler is not None and "amp_scaler" in ckpt:
        loss_scaler.load_state_dict(ckpt["amp_scaler"])
    if model_ema is None or "state_dict_ema" not in ckpt:
        return model_ema is None
    load_checkpoint_into(model_ema.module, ckpt["state_dict_ema"])
    return True


# ---------------------------------------------------------------------------------------- saving
def training_state(
    parts: Any, model: torch.nn.Module, epochs_done: int, records: dict[str, Any], dist_info: Any
) -> dict[str, Any]:
    """What a checkpoint holds after ``epochs_done`` epochs (and the updates since): ``records`` (args,
    classes, history, ...), the model, optimizer, scheduler, EMA and loss scaler states, and every rank's
    RNG states (so every rank calls this)."""
    state = dict(
        format=CHECKPOINT_FORMAT,
        epoch=epochs_done,
        num_updates=parts.num_updates,
        rng=all_gather_objects(capture_rng_state(), dist_info),
        **records,
        state_dict=model.state_dict(),
        optimizer=parts.optimizer.state_dict(),
        scheduler=parts.scheduler.state_dict(),
    )
    if parts.model_ema is not None:
        state["state_dict_ema"] = parts.model_ema.module.state_dict()
    if parts.loss_scaler is not None:
        state["amp_scaler"] = parts.loss_scaler.state_dict()
    return state


def save_epoch(
    state: dict[str, Any],
    is_best: bool,
    output_dir: Path,
    run_info: dict[str, Any],
    title: str,
) -> None:
    """Write ``last.pth.tar``, then ``best.pth.tar`` (a copy, when best), then the records; then drop the
    epoch's ``recovery.pth.tar``.

    A kill in between leaves a last.pth.tar whose best record --resume can restore (the copy is redone),
    and records that never claim more.
    """
    last_path, best_path = output_dir / "last.pth.tar", output_dir / "best.pth.tar"
    atomic_save(state, last_path)
    if is_best:
        atomic_write(best_path, lambda tmp: shutil.copyfile(last_path, tmp))
    write_history(state["history"], output_dir, {**run_info, "best": state["best"]})
    plot_history(state["history"], output_dir / "curves.png", title=title)
    (output_dir / "recovery.pth.tar").unlink(missing_ok=True)


def save_recovery(state: dict[str, Any], step: int, epoch_states: list[dict], output_dir: Path) -> Path:
    """Write ``recovery.pth.tar``: ``state`` (``epoch`` epochs done) ``step`` micro-batches into the next
    epoch, with each rank's :class:`~.engine.EpochState`."""
    recovery = {"step": step, "epoch_states": to_plain(epoch_states)}
    return atomic_save({**state, "recovery": recovery}, output_dir / "recovery.pth.tar")


# ---------------------------------------------------------------------------------------- repairing
def _restore_best(
    ckpt: dict[str, Any], resume_path: Path, best_path: Path, best_key: str, logger: Any
) -> dict[str, Any]:
    """Make ``best_path`` this run's checkpoint of the best epoch the resumed checkpoint records.

    Kept when it already is; otherwise copied from the resumed checkpoint (when the best epoch is the
    resumed one: an interrupted copy), or from ``last.pth.tar``/``best.pth.tar`` next to it (resuming into
    a new folder or from a recovery checkpoint); when none holds it, a warning says so and it is rebuilt
    from the resumed epoch (forgotten, from a recovery checkpoint). Returns the best record to continue with.
    """
    best = dict(ckpt.get("best") or {})
    epoch, done, history = best.get("epoch"), int(ckpt["epoch"]), list(ckpt.get("history", []))
    if epoch is None:
        return {"epoch": None, "top1": -math.inf}
    if holds_epoch(best_path, epoch, history):
        return best
    what = f"best.pth.tar of epoch {epoch} (top-1 {best['top1']:.2f})"
    sources = [resume_path, resume_path.parent / "last.pth.tar", resume_path.parent / "best.pth.tar"]
    sources = list(dict.fromkeys(p for p in sources if p.resolve() != best_path.resolve()))
    for source in sources:
        if not holds_epoch(source, epoch, history):
            continue
        found = describe_file(best_path)
        atomic_write(best_path, lambda tmp, source=source: shutil.copyfile(source, tmp))
        if source.parent.resolve() != best_path.parent.resolve():
            logger.info(f"carried the {what} over from {source}")
        else:
            logger.warning(f"{found}, not the {what} the checkpoint records: restored it from {source}")
        return best
    found = "; ".join(describe_file(p) for p in dict.fromkeys(p.resolve() for p in [best_path, *sources]))
    if "recovery" in ckpt:
        logger.warning(f"the {what} is lost ({found}): later epochs make a new best.pth.tar")
        return {"epoch": None, "top1": -math.inf}
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
    already is: resuming into a new folder carries it over, a rebuilt best record is written into it. A
    recovery checkpoint is not an epoch's end: ``last.pth.tar`` is left for its epoch to write."""
    done, history = int(ckpt["epoch"]), list(ckpt.get("history", []))
    unchanged = best == dict(ckpt.get("best") or {})
    if "recovery" in ckpt or (unchanged and holds_epoch(last_path, done, history)):
        return
    if unchanged:
        atomic_write(last_path, lambda tmp: shutil.copyfile(resume_path, tmp))
    else:
        atomic_save({**ckpt, "best": best}, last_path)
    logger.info(f"{last_path} is the resumed checkpoint (epoch {done}, best epoch {best.get('epoch')})")


def restore_run_files(
    ckpt: dict[str, Any],
    resume_path: Path,
    output_dir: Path,
    best_key: str,
    run_info: dict[str, Any],
    title: str,
    logger: Any,
) -> dict[str, Any]:
    """After a kill or a write error (or into a new ``--output``): make ``best.pth.tar``, ``last.pth.tar``
    and the records what the resumed checkpoint says; returns the best record to continue with."""
    best = _restore_best(ckpt, resume_path, output_dir / "best.pth.tar", best_key, logger)
    _restore_last(ckpt, resume_path, output_dir / "last.pth.tar", best, logger)
    history = list(ckpt.get("history", []))
    write_history(history, output_dir, {**run_info, "best": best})
    plot_history(history, output_dir / "curves.png", title=title)
    return best
