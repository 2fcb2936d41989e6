"""The timm components of a training run, from its options: optimizer, lr schedule, EMA, mixup, loss."""

from __future__ import annotations

import argparse
import logging
from typing import Any

import torch
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3

from parcnetv2.backbone.checkpoint import CheckpointError

from .checkpointing import schedule_changed

__all__ = ["build_optimizer", "build_ema", "build_scheduler", "build_mixup", "build_loss"]


def build_optimizer(args: argparse.Namespace, model: torch.nn.Module, world_size: int, log: Any) -> Any:
    """timm's optimizer; without ``--lr``, timm's rule: ``--lr-base`` scaled by the global batch."""
    if args.lr is None:
        ratio = args.batch_size * args.grad_accum_steps * world_size / args.lr_base_size
        args.lr = args.lr_base * (
            ratio**0.5 if any(o in args.opt.lower() for o in ("ada", "lamb")) else ratio
        )
        images = ratio * args.lr_base_size
        log(f"lr {args.lr:.3e} from --lr-base {args.lr_base} for {images:.0f} images per update")
    opt_kwargs = {k: v for k, v in dict(eps=args.opt_eps, betas=args.opt_betas).items() if v is not None}
    return create_optimizer_v2(
        model, opt=args.opt, lr=args.lr, weight_decay=args.weight_decay, momentum=args.momentum, **opt_kwargs
    )


def build_ema(args: argparse.Namespace, model: torch.nn.Module) -> ModelEmaV3 | None:
    if not args.model_ema:
        return None
    return ModelEmaV3(model, decay=args.model_ema_decay, use_warmup=args.model_ema_warmup)


def build_scheduler(
    args: argparse.Namespace,
    optimizer: Any,
    updates_per_epoch: int,
    ckpt: dict | None,
    num_updates: int,
    logger: logging.Logger,
) -> Any:
    """timm's scheduler, stepped per update, and the update count to continue from; a resumed run's
    follows the checkpoint unless its settings changed (a mid-epoch checkpoint refuses that)."""
    options = {
        k: getattr(args, k) for k in ("sched", "min_lr", "warmup_lr", "warmup_epochs", "cooldown_epochs")
    }
    scheduler, _ = create_scheduler_v2(
        optimizer,
        num_epochs=args.epochs,
        step_on_epochs=False,
        updates_per_epoch=updates_per_epoch,
        **options,
    )
    if ckpt is not None:
        changed = schedule_changed(ckpt, args, updates_per_epoch)
        if changed and "recovery" in ckpt:
            raise CheckpointError(
                f"{args.resume} stopped mid-epoch: resume it with the same {', '.join(changed)}"
            )
        if changed:
            num_updates = int(ckpt["epoch"]) * updates_per_epoch
            logger.warning(
                f"schedule settings changed since the checkpoint ({', '.join(changed)}): the lr "
                f"schedule follows the command line from update {num_updates}"
            )
        else:
            scheduler.load_state_dict(ckpt["scheduler"])
    scheduler.step_update(num_updates=num_updates)
    return scheduler, num_updates


def build_mixup(args: argparse.Namespace, num_classes: int) -> Mixup | None:
    if not ((args.mixup > 0 or args.cutmix > 0) and args.mixup_prob > 0):
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


def build_loss(args: argparse.Namespace, mixup_active: bool) -> torch.nn.Module:
    if mixup_active:
        return SoftTargetCrossEntropy()  # Mixup already applies the label smoothing
    if args.smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=args.smoothing)
    return torch.nn.CrossEntropyLoss()
