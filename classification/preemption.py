"""Stopping on a cluster's signal: finish the optimizer step, save, exit with ``PREEMPTED_STATUS``.

SLURM and other schedulers end a job with SIGTERM (or, with ``--signal=USR1@90``, SIGUSR1 some time
before the limit), then SIGKILL after a grace period. :class:`PreemptionGuard` turns the chosen signals
into a flag that the training loop reads after each optimizer update; under torchrun the ranks agree on
it in that step (one all-reduce of one number), so all of them stop after the same update and the
recovery checkpoint is consistent. Data-loader workers ignore these signals (:func:`ignore_signals`):
torchrun and SLURM signal whole process groups, and a worker killed by them would end the epoch with a
loader error instead of a checkpoint.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from types import FrameType

from .distributed import DistInfo, any_rank

__all__ = ["PREEMPTED_STATUS", "PreemptionGuard", "ignore_signals"]

PREEMPTED_STATUS = 75
"""Exit status after a signal stop (``EX_TEMPFAIL`` of sysexits.h: try again): resume from the recovery
checkpoint. A batch script requeues the job on it (``scontrol requeue``)."""


def _signals(names: Sequence[str]) -> list[signal.Signals]:
    return [signal.Signals[name] for name in names]


def ignore_signals(names: Sequence[str], _worker_id: int = 0) -> None:
    """Ignore the named signals in this process (a data-loader ``worker_init_fn`` via ``partial``)."""
    for sig in _signals(names):
        signal.signal(sig, signal.SIG_IGN)


class PreemptionGuard:
    """Records the named signals while active (``with``); restores the previous handlers on exit."""

    def __init__(self, names: Sequence[str], dist_info: DistInfo) -> None:
        self.signals, self.dist_info = _signals(names), dist_info
        self.received: str | None = None
        self._previous: dict[signal.Signals, object] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received = self.received or signal.Signals(signum).name

    def __enter__(self) -> PreemptionGuard:
        if threading.current_thread() is not threading.main_thread():
            return self  # Python takes signals in the main thread only: nothing to record
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def should_stop(self) -> bool:
        """Whether any rank has received a signal (all ranks call this at the same step)."""
        stop = any_rank(self.received is not None, self.dist_info)
        if stop and self.received is None:
            self.received = "a signal on another rank"
        return stop
