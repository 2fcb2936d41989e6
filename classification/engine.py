"""One training epoch (gradient accumulation done right; resumable part-way), one evaluation pass, and
the record of an epoch."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from timm.utils import AverageMeter, NativeScaler, accuracy, dispatch_clip_grad

from .distributed import DistInfo, all_reduce_sum
from .run_log import Progress, format_duration

__all__ = [
    "autocast_for",
    "TrainComponents",
    "EpochState",
    "train_one_epoch",
    "evaluate",
    "accumulation_groups",
]


def autocast_for(
    amp: bool, amp_dtype: str, device: torch.device
) -> tuple[Callable[[], contextlib.AbstractContextManager], NativeScaler | None]:
    """(autocast context factory, loss scaler or None) for ``--amp``/``--amp-dtype`` on ``device``.

    float16 gets timm's ``NativeScaler``; bfloat16 and fp32 need no loss scaling.
    """
    if not amp:
        return contextlib.nullcontext, None
    dtype = getattr(torch, amp_dtype)
    autocast = functools.partial(torch.autocast, device_type=device.type, dtype=dtype)
    return autocast, NativeScaler(device=device.type) if dtype == torch.float16 else None


@dataclass
class TrainComponents:
    """What a training epoch needs besides the data: model, optimizer and their helpers."""

    model: nn.Module  # possibly DDP-wrapped
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    scheduler: Any  # timm scheduler, stepped per optimizer update
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    loss_scaler: Any = None  # timm NativeScaler for float16 AMP, else None
    mixup_fn: Callable | None = None
    model_ema: Any = None  # timm ModelEmaV3
    random_erasing: Callable | None = None  # timm RandomErasing on the normalized batch
    grad_accum_steps: int = 1
    clip_grad: float | None = None
    clip_mode: str = "norm"
    num_updates: int = 0


def accumulation_groups(num_batches: int, accum_steps: int) -> list[int]:
    """Size of the accumulation group each micro-batch belongs to (the last group may be shorter)."""
    if accum_steps < 1:
        raise ValueError(f"grad accumulation steps must be >= 1, got {accum_steps}")
    last = num_batches % accum_steps or accum_steps
    return [accum_steps if i < num_batches - last else last for i in range(num_batches)]


def _optimizer_step(parts: TrainComponents, loss: torch.Tensor, need_update: bool) -> None:
    params = [p for p in parts.model.parameters() if p.requires_grad]
    if parts.loss_scaler is not None:
        parts.loss_scaler(
            loss,
            parts.optimizer,
            clip_grad=parts.clip_grad,
            clip_mode=parts.clip_mode,
            parameters=params,
            need_update=need_update,
        )
        return
    loss.backward()
    if need_update:
        if parts.clip_grad is not None:
            dispatch_clip_grad(params, parts.clip_grad, mode=parts.clip_mode)
        parts.optimizer.step()


@dataclass
class EpochState:
    """How far this process is into an epoch: micro-batches done, their loss sum and image count, and the
    images skipped as unreadable before a resume. A recovery checkpoint stores it, so a resumed epoch
    ends as an uninterrupted one would."""

    step: int = 0
    loss_sum: float = 0.0
    loss_count: int = 0
    unreadable: int = 0


def train_one_epoch(
    parts: TrainComponents,
    loader: Iterable,
    num_batches: int,
    epoch: int,
    num_epochs: int,
    dist_info: DistInfo,
    logger: logging.Logger,
    log_interval: int = 50,
    state: EpochState | None = None,
    after_update: Callable[[EpochState], bool] | None = None,
) -> dict[str, Any]:
    """Train over ``loader`` (the rest of the epoch when ``state`` says micro-batches are done); returns
    mean loss, last lr, images/s, epoch time and ``stopped`` (the epoch was left early).

    With ``grad_accum_steps`` k, each micro-batch loss is divided by its group size, DDP synchronises
    gradients only on a group's last micro-batch, and the optimizer, lr schedule (counted in optimizer
    updates) and EMA advance once per group. After each update ``after_update(state)`` may write a
    recovery checkpoint; when it returns True the epoch stops there.
    """
    model = parts.model
    model.train()
    state = state or EpochState()
    groups = accumulation_groups(num_batches, parts.grad_accum_steps)
    updates_per_epoch = math.ceil(num_batches / parts.grad_accum_steps)
    time_meter = AverageMeter()
    progress = Progress(
        logger,
        num_batches,
        log_interval,
        f"[train] epoch {epoch + 1}/{num_epochs}",
        enabled=dist_info.primary,
    )
    parts.optimizer.zero_grad(set_to_none=True)
    start = last = time.perf_counter()
    seen, stopped = 0, False
    for step, (inputs, targets) in enumerate(loader, start=state.step):
        if step >= num_batches:
            break
        need_update = (step + 1) % parts.grad_accum_steps == 0 or step + 1 == num_batches
        if parts.random_erasing is not None:
            inputs = parts.random_erasing(inputs)
        if parts.mixup_fn is not None:
            inputs, targets = parts.mixup_fn(inputs, targets)
        sync = need_update or not dist_info.distributed
        with contextlib.nullcontext() if sync else model.no_sync():
            with parts.autocast():
                loss = parts.loss_fn(model(inputs), targets)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss is {loss.item()} at epoch {epoch + 1} step {step + 1}; "
                    "lower --lr or use --clip-grad"
                )
            _optimizer_step(parts, loss / groups[step], need_update)
        batch = inputs.shape[0]
        seen += batch
        state.step = step + 1
        state.loss_sum += loss.item() * batch
        state.loss_count += batch
        if need_update:
            parts.optimizer.zero_grad(set_to_none=True)
            parts.num_updates += 1
            parts.scheduler.step_update(num_updates=parts.num_updates)
            if parts.model_ema is not None:
                parts.model_ema.update(getattr(model, "module", model), step=parts.num_updates)
            stopped = after_update is not None and after_update(state)

        now = time.perf_counter()
        time_meter.update(now - last)
        last = now
        if dist_info.primary:  # rank 0's loss; the epoch mean below is over all ranks
            lr = parts.optimizer.param_groups[0]["lr"]
            remaining_steps = (num_batches - step - 1) + num_batches * (num_epochs - epoch - 1)
            progress.update(
                step + 1,
                {
                    "loss": f"{loss.item():.4f} ({state.loss_sum / state.loss_count:.4f})",
                    "lr": f"{lr:.3e}",
                    "img/s": f"{batch * dist_info.world_size / max(time_meter.avg, 1e-9):.1f}",
                    "eta": f"{format_duration(time_meter.avg * (num_batches - step - 1))} "
                    f"(run {format_duration(time_meter.avg * remaining_steps)})",
                },
            )
        if stopped:
            break
    progress.close()
    if not stopped and state.step < num_batches:
        raise RuntimeError(f"the training loader gave {state.step} batches, expected {num_batches}")
    elapsed = time.perf_counter() - start
    loss_sum, count = all_reduce_sum([state.loss_sum, state.loss_count], dist_info)
    return {
        "loss": loss_sum / max(count, 1),
        "lr": parts.optimizer.param_groups[0]["lr"],
        "updates": updates_per_epoch,
        "images_per_s": seen * dist_info.world_size / elapsed,
        "time_s": elapsed,
        "stopped": stopped,
    }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    dist_info: DistInfo,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    logger: logging.Logger | None = None,
    log_interval: int = 0,
    prefix: str = "[eval]",
) -> dict[str, float]:
    """Exact top-1/top-5 (%) and mean cross-entropy over all ranks' disjoint shards."""
    model.eval()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    loss_sum = top1 = top5 = count = 0.0
    total = len(loader) if hasattr(loader, "__len__") else 0
    progress = Progress(
        logger, total, log_interval, prefix, enabled=bool(logger and log_interval and dist_info.primary)
    )
    start = time.perf_counter()
    for step, (inputs, targets) in enumerate(loader):
        with autocast():
            output = model(inputs)
        output = output.float()
        n = targets.shape[0]
        acc1, acc5 = accuracy(output, targets, topk=(1, 5))
        loss_sum += loss_fn(output, targets).item()
        top1 += acc1.item() * n / 100.0
        top5 += acc5.item() * n / 100.0
        count += n
        progress.update(
            step + 1,
            {"top1": f"{100 * top1 / count:.2f}", "img/s": f"{count / (time.perf_counter() - start):.1f}"},
        )
    progress.close()
    loss_sum, top1, top5, count = all_reduce_sum([loss_sum, top1, top5, count], dist_info)
    if count == 0:
        raise RuntimeError("evaluation saw no images")
    return {
        "loss": loss_sum / count,
        "top1": 100.0 * top1 / count,
        "top5": 100.0 * top5 / count,
        "images": int(round(count)),
        "time_s": time.perf_counter() - start,
    }


def epoch_record(
    epoch: int,
    metrics: dict[str, Any],
    model: nn.Module,
    parts: TrainComponents,
    loader: Iterable,
    dist_info: DistInfo,
) -> dict[str, Any]:
    """Evaluate the model (and its EMA) after an epoch; the epoch's record with its training ``metrics``."""
    row = {"epoch": epoch + 1, "train_loss": metrics["loss"], "lr": metrics["lr"]}
    named = [("", model)] + ([("ema_", parts.model_ema.module)] if parts.model_ema is not None else [])
    for prefix, module in named:
        result = evaluate(module, loader, dist_info, parts.autocast)
        row.update({f"{prefix}eval_{k}": result[k] for k in ("loss", "top1", "top5")})
    row.update(
        train_images_per_s=metrics["images_per_s"],
        train_time_s=metrics["time_s"],
        unreadable=metrics["unreadable"],
        updates=parts.num_updates,
    )
    return row
