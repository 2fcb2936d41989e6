"""Preemption-safe OpenMMLab training: a checkpoint at the signal, atomic checkpoint files.

Clusters preempt jobs with a signal (SLURM: ``SIGTERM``, then ``SIGKILL`` after a grace period;
``sbatch --signal=USR1@90`` sends ``SIGUSR1`` 90 s before the time limit). :class:`PreemptionHook`
(registered in mmengine's root ``HOOKS``, so the mmdet and mmseg scopes find it) turns such a signal into
a clean stop: the iteration in progress finishes, every rank agrees on that iteration (an ``all_reduce``
of the flag after each iteration), ``recovery.pth`` is saved with mmengine's own
``Runner.save_checkpoint`` and named in ``last_checkpoint``, one line is logged, and the process exits
with :data:`~parcnetv2.preemption.PREEMPTED_STATUS` (75, ``EX_TEMPFAIL``: "try again", what requeueing
job scripts test for). The signal recording and the exit status are the shared ones
(:mod:`parcnetv2.preemption`).
``tools/train.py --resume`` then continues from that iteration. mmengine alone would restart an
interrupted epoch of an epoch-based loop from its first batch while counting on from the saved iteration;
the hook leaves out the batches of that epoch already trained (same sampler seed, same order), so the
resumed run ends after exactly as many iterations as an uninterrupted one. A signal during the
validation inside training stops there too (that validation is not repeated). ``recovery_interval=N``
also saves ``recovery.pth`` every N iterations (timm's ``--recovery-interval``, for clusters that kill
without a signal). The data loaders' workers ignore the signals (:func:`worker_init_ignoring_signals`,
mmengine's worker seeding first): SLURM signals every process of a job step, and PyTorch's workers would
end at a SIGTERM from anyone but their parent, failing the run instead of stopping it.

:class:`AtomicLocalBackend` (mmengine file backend ``'atomic_local'``) writes every checkpoint through a
temporary file renamed into place and defers the ``CheckpointHook``'s deletion of old checkpoints until
the next checkpoint is complete, so a full disk (or a kill) during a save leaves the previous checkpoints
and ``last_checkpoint`` as they were; the save fails with one line naming the file and the cause.

:func:`enable_preemption` adds both to a config; the project's config loader
(:func:`parcnetv2.openmmlab.config.load_config`) applies it, so every config run by the project's tools
has them. Options through the config or ``--cfg-options``: ``preemption.signals=[SIGUSR1]``,
``preemption.recovery_interval=1000``, ``preemption.signals=[]`` (off).
"""

from __future__ import annotations

import errno
import itertools
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from mmengine.config import Config
from mmengine.dataset import worker_init_fn as mmengine_worker_init_fn
from mmengine.dist import all_reduce, barrier, get_rank, is_distributed, is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import FUNCTIONS, HOOKS
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import get_worker_info

from parcnetv2.fileio import WriteError, atomic_write
from parcnetv2.preemption import DEFAULT_SIGNALS, PREEMPTED_STATUS, SignalRecorder, ignore_signals

__all__ = [
    "ATOMIC_BACKEND",
    "RECOVERY_CHECKPOINT",
    "WORKER_INIT_FN",
    "AtomicLocalBackend",
    "Preempted",
    "PreemptionHook",
    "enable_preemption",
    "worker_init_ignoring_signals",
]

RECOVERY_CHECKPOINT = "recovery.pth"
"""The file the hook saves (at a signal, every ``recovery_interval`` iterations), in the work dir."""
ATOMIC_BACKEND = "atomic_local"
WORKER_INIT_FN = "parcnetv2_worker_init_ignoring_signals"
"""Name of :func:`worker_init_ignoring_signals` in mmengine's ``FUNCTIONS`` (no dot: that means a scope)."""


class Preempted(SystemExit):
    """Training stopped at a signal after saving a checkpoint; exits with ``PREEMPTED_STATUS``."""

    def __init__(self) -> None:
        super().__init__(PREEMPTED_STATUS)


# --------------------------------------------------------------------------------- atomic checkpoints
_deferred_removals: set[str] = set()


def _write_file(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, with writes that never leave a partial file behind.

    ``put``/``put_text`` write a temporary sibling and rename it over the target; ``remove`` is deferred
    until the next ``put`` has succeeded (mmengine's ``CheckpointHook`` deletes the oldest checkpoint
    *before* it writes the new one: with ``max_keep_ckpts=1`` a failed save would leave none).
    """

    def put(self, obj: bytes, filepath: str | os.PathLike) -> None:
        try:
            atomic_write(filepath, lambda tmp: _write_file(tmp, obj))
        except WriteError as err:
            if err.errno == errno.ENOSPC:
                raise WriteError(
                    f"{err} (disk full: the earlier checkpoints and last_checkpoint are unchanged; "
                    "free space, then train again with --resume)"
                ) from err
            raise
        _deferred_removals.discard(os.path.abspath(filepath))  # written again: nothing to delete
        for path in sorted(_deferred_removals):
            if os.path.isfile(path):
                os.remove(path)
        _deferred_removals.clear()

    def put_text(self, obj: str, filepath: str | os.PathLike, encoding: str = "utf-8") -> None:
        self.put(obj.encode(encoding), filepath)

    def remove(self, filepath: str | os.PathLike) -> None:
        _deferred_removals.add(os.path.abspath(filepath))


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


# --------------------------------------------------------------------------------- signals
@FUNCTIONS.register_module(name=WORKER_INIT_FN)
def worker_init_ignoring_signals(
    worker_id: int,
    seed: int | None = None,
    diff_rank_seed: bool = False,
    signals: Sequence[str] = DEFAULT_SIGNALS,
    disable_subprocess_warning: bool = False,
) -> None:
    """A data-loader ``worker_init_fn``: mmengine's worker seeding, then ignore ``signals``.

    ``seed`` is the config's ``randomness.seed``; with it, the worker is seeded as ``Runner.build_dataloader``
    seeds it (``num_workers * rank + worker_id + seed``, the rank added to ``seed`` with
    ``diff_rank_seed``). Without it (mmengine then draws a seed per run) the worker keeps PyTorch's own
    seeding, drawn from the main process's generator that the runner seeded.
    """
    if seed is not None:
        rank = get_rank()
        num_workers = get_worker_info().num_workers
        seed = seed + rank if diff_rank_seed else seed
        mmengine_worker_init_fn(worker_id, num_workers, rank, seed, disable_subprocess_warning)
    ignore_signals(signals)


def _any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on any rank (every rank gets the same answer)."""
    if not is_distributed():
        return flag
    value = torch.tensor([int(flag)], dtype=torch.int32)
    all_reduce(value, op="max")
    return bool(value.item())


class _SkipFirstBatches:
    """A batch sampler that leaves out its first ``skip`` batches while ``loop`` is in epoch ``epoch``
    (a data loader may call ``iter`` more than once per pass); in other epochs it passes everything."""

    def __init__(self, batch_sampler: Any, skip: int, loop: EpochBasedTrainLoop) -> None:
        self.batch_sampler = batch_sampler
        self.skip = skip
        self.loop = loop
        self.epoch = loop.epoch

    def __iter__(self) -> Iterator[Any]:
        skip = self.skip if self.loop.epoch == self.epoch else 0
        return itertools.islice(iter(self.batch_sampler), skip, None)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __getattr__(self, name: str) -> Any:  # sampler, batch_size, ... (DistSamplerSeedHook's set_epoch)
        return getattr(self.batch_sampler, name)


# --------------------------------------------------------------------------------- the hook
@HOOKS.register_module()
class PreemptionHook(Hook):
    """Stop training cleanly at a preemption signal: finish the iteration, save, exit 75.

    Args:
        signals: signal names that stop training (``()``: none).
        recovery_interval: also save :data:`RECOVERY_CHECKPOINT` every this many iterations (0: never).
        backend_args: mmengine file backend of the checkpoint (default: :class:`AtomicLocalBackend`).
    """

    priority = "LOWEST"  # after the logger and CheckpointHook of the same iteration

    def __init__(
        self,
        signals: Sequence[str] = DEFAULT_SIGNALS,
        recovery_interval: int = 0,
        backend_args: dict | None = None,
    ) -> None:
        SignalRecorder(signals, "PreemptionHook signals")  # a one-line error on a bad name
        if recovery_interval < 0:
            raise ValueError(f"PreemptionHook: recovery_interval must be >= 0, got {recovery_interval}")
        self.signals = tuple(signals)
        self.recovery_interval = int(recovery_interval)
        self.backend_args = dict(backend_args) if backend_args is not None else {"backend": ATOMIC_BACKEND}
        self.recorder: SignalRecorder | None = None  # while training

    @property
    def received(self) -> str | None:
        """The signal received in this training (None: none, or not training)."""
        return self.recorder.received if self.recorder is not None else None

    # ------------------------------------------------------------------ training
    def before_train(self, runner: Any) -> None:
        self.recorder = SignalRecorder(self.signals)
        if self.signals and not self.recorder.install():
            print_log("PreemptionHook: not in the main thread, signals are not handled", logger="current")
        loop = runner.train_loop
        if isinstance(loop, EpochBasedTrainLoop):
            self._resume_mid_epoch(runner, loop)

    def after_train(self, runner: Any) -> None:
        self._disarm()

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        position = dict(epoch=runner.epoch, iter=runner.iter + 1)  # this iteration is done
        if _any_rank(self.received is not None):
            self._stop(runner, position)
        if self.recovery_interval and position["iter"] % self.recovery_interval == 0:
            self._save(runner, position)

    def after_val_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if self.recorder is not None and _any_rank(self.received is not None):
            # validation inside training runs after the loop counted the finished iterations / epoch
            self._stop(runner, dict(epoch=runner.epoch, iter=runner.iter), "in the validation after ")

    # ------------------------------------------------------------------ helpers
    def _disarm(self) -> None:
        """The signals' previous handlers again (after training)."""
        if self.recorder is not None:
            self.recorder.restore()
            self.recorder = None

    def _resume_mid_epoch(self, runner: Any, loop: EpochBasedTrainLoop) -> None:
        """After a resume from a mid-epoch checkpoint: leave out the epoch's batches already trained."""
        per_epoch = len(loop.dataloader)
        done = runner.iter - runner.epoch * per_epoch
        if done <= 0:
            return
        if done > per_epoch:
            print_log(
                f"PreemptionHook: the checkpoint is {done} iterations into epoch {runner.epoch + 1} of "
                f"{per_epoch}: the data loader changed length; the epoch restarts from its first batch",
                logger="current",
            )
            return
        # Before the loop's first pass creates an iterator (which keeps its batch sampler); the loader
        # refuses a new batch_sampler attribute only to protect iterators that already exist.
        object.__setattr__(
            loop.dataloader, "batch_sampler", _SkipFirstBatches(loop.dataloader.batch_sampler, done, loop)
        )
        print_log(
            f"Resuming epoch {runner.epoch + 1} at batch {done + 1}/{per_epoch}: its first {done} batches "
            "(trained before the interruption) are left out",
            logger="current",
        )

    def _save(self, runner: Any, position: dict[str, int]) -> str:
        """``recovery.pth`` through ``Runner.save_checkpoint`` (rank 0 writes), then ``last_checkpoint``;
        every rank raises if rank 0 could not write."""
        path = os.path.join(runner.work_dir, RECOVERY_CHECKPOINT)
        failure: BaseException | None = None
        try:
            runner.save_checkpoint(
                runner.work_dir,
                RECOVERY_CHECKPOINT,
                meta=dict(position),
                by_epoch=False,
                backend_args=self.backend_args,
            )
            if is_main_process():
                AtomicLocalBackend().put_text(path, os.path.join(runner.work_dir, "last_checkpoint"))
        except Exception as err:
            failure = err
        if _any_rank(failure is not None):
            if failure is not None:
                raise failure
            raise RuntimeError(f"rank 0 could not save {path}; stopping")
        return path

    def _stop(self, runner: Any, position: dict[str, int], during: str = "") -> None:
        path = self._save(runner, position)
        cause = self.received or "a signal on another rank"
        where = f"{during or 'after '}iteration {position['iter']}"
        loop = runner.train_loop
        if isinstance(loop, EpochBasedTrainLoop) and not during:
            per_epoch = len(loop.dataloader)
            batch = position["iter"] - position["epoch"] * per_epoch
            where += f" (epoch {position['epoch'] + 1}, batch {batch}/{per_epoch})"
        print_log(
            f"Preempted by {cause}: saved {path} {where}; exiting with status {PREEMPTED_STATUS} "
            "(train again with --resume to continue)",
            logger="current",
        )
        barrier()
        self._disarm()
        raise Preempted()


# --------------------------------------------------------------------------------- configs
def enable_preemption(cfg: Config) -> Config:
    """Add :class:`PreemptionHook` (options from the config's ``preemption`` dict), atomic checkpoint
    writes and signal-ignoring data-loader workers (train and val loaders) to ``cfg`` (in place), unless
    the config lists its own ``PreemptionHook`` / backend / ``worker_init_fn``."""
    hooks = cfg.get("custom_hooks") or []
    own = [h for h in hooks if h.get("type") in ("PreemptionHook", PreemptionHook)]
    if not own:
        options = dict(cfg.get("preemption") or {})
        cfg.custom_hooks = [*hooks, dict(type="PreemptionHook", **options)]
    signals = list((own or cfg.custom_hooks)[-1].get("signals", DEFAULT_SIGNALS))
    randomness = cfg.get("randomness") or {}
    for name in ("train_dataloader", "val_dataloader"):
        loader = cfg.get(name)
        if signals and loader and "worker_init_fn" not in loader:
            loader.worker_init_fn = dict(
                type=WORKER_INIT_FN,
                seed=randomness.get("seed"),
                diff_rank_seed=bool(randomness.get("diff_rank_seed", False)),
                signals=signals,
                disable_subprocess_warning=bool(loader.pop("disable_subprocess_warning", False)),
            )
    checkpoint = (cfg.get("default_hooks") or {}).get("checkpoint")
    if (
        checkpoint is not None
        and not checkpoint.get("backend_args")
        and not checkpoint.get("file_client_args")
    ):
        if "://" not in str(checkpoint.get("out_dir") or ""):
            checkpoint.backend_args = dict(backend=ATOMIC_BACKEND)
    return cfg
