"""Stopping on a cluster's signal: finish the optimizer step, save, exit with ``PREEMPTED_STATUS``.

:class:`PreemptionGuard` is the shared :class:`~parcnetv2.preemption.SignalRecorder` with the agreement
of the ranks: the training loop asks :meth:`~PreemptionGuard.should_stop` after each optimizer update;
under torchrun the ranks agree on it in that step (one all-reduce of one number), so all of them stop
after the same update and the recovery checkpoint is consistent. The exit status and the data-loader
workers' :func:`~parcnetv2.preemption.ignore_signals` are the shared ones (:mod:`parcnetv2.preemption`).
"""

from __future__ import annotations

from collections.abc import Sequence

from parcnetv2.preemption import SignalRecorder

from .distributed import DistInfo, any_rank

__all__ = ["PreemptionGuard"]


class PreemptionGuard(SignalRecorder):
    """Records the named signals while active (``with``); :meth:`should_stop` agrees across ranks."""

    def __init__(self, names: Sequence[str], dist_info: DistInfo) -> None:
        super().__init__(names, "--preempt-signals")
        self.dist_info = dist_info

    def should_stop(self) -> bool:
        """Whether any rank has received a signal (all ranks call this at the same step)."""
        stop = any_rank(self.received is not None, self.dist_info)
        if stop and self.received is None:
            self.received = "a signal on another rank"
        return stop
