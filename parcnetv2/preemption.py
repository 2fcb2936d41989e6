"""Preemption signals, shared by the classification trainer and the OpenMMLab hook.

Clusters preempt jobs with a signal (SLURM: SIGTERM, then SIGKILL after a grace period;
``--signal=USR1@90`` sends SIGUSR1 some time before the limit). A training loop records the chosen
signals with :class:`SignalRecorder`, stops at its next step boundary with a recovery checkpoint and exits
with :data:`PREEMPTED_STATUS`. Data-loader workers ignore the signals (:func:`ignore_signals`): SLURM and
torchrun signal whole process groups, and a worker killed by them would end the run with a loader error
instead of a checkpoint. The agreement across ranks is the caller's (each pipeline has its collectives).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Sequence
from types import FrameType

__all__ = ["DEFAULT_SIGNALS", "PREEMPTED_STATUS", "SignalRecorder", "ignore_signals", "parse_signals"]

PREEMPTED_STATUS = 75
"""Exit status after a signal stop (``EX_TEMPFAIL`` of sysexits.h: try again): resume from the recovery
checkpoint. A batch script requeues the job on it (``scontrol requeue``)."""

DEFAULT_SIGNALS = ("SIGTERM", "SIGUSR1")
"""The signals that stop training with a recovery checkpoint unless the options say otherwise."""

_UNCATCHABLE = ("SIGKILL", "SIGSTOP")


def parse_signals(names: Sequence[str], option: str = "signals") -> tuple[signal.Signals, ...]:
    """The signals named in ``names`` (``'SIGTERM'``, ...); a ``ValueError`` naming ``option`` and the
    first name that is no signal a process can catch."""
    for name in names:
        if not isinstance(getattr(signal, str(name), None), signal.Signals) or name in _UNCATCHABLE:
            raise ValueError(f"{option}: {name!r} is no signal a process can catch (e.g. SIGTERM, SIGUSR1)")
    return tuple(signal.Signals[name] for name in names)


def ignore_signals(names: Sequence[str], _worker_id: int = 0) -> None:
    """Ignore the named signals in this process (a data-loader ``worker_init_fn`` via ``partial``).

    A SIGTERM from the parent process still ends it (:func:`_exit_on_parents_sigterm`).
    """
    for sig in parse_signals(names):
        if sig == signal.SIGTERM:
            _exit_on_parents_sigterm()
        else:
            signal.signal(sig, signal.SIG_IGN)


def _exit_on_parents_sigterm() -> None:
    """Exit at a SIGTERM from the parent process, ignore it from any other (PyTorch's worker handler,
    reversed for others): the parent's is how multiprocessing ends a daemonic worker at exit, and one
    that ignored it would hang the parent's exit. SIGTERM stays blocked in every thread but one that
    waits for it and reads its sender."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    parent = os.getppid()

    def wait() -> None:
        while True:
            if signal.sigwaitinfo({signal.SIGTERM}).si_pid == parent:
                os._exit(0)

    threading.Thread(target=wait, name="sigterm-from-parent", daemon=True).start()


class SignalRecorder:
    """Records the first of the named signals received while installed (``with``, or ``install`` and
    ``restore``) in :attr:`received`; restores the previous handlers afterwards.

    Python takes signals in the main thread only: elsewhere ``install`` does nothing and returns False.
    """

    def __init__(self, names: Sequence[str], option: str = "signals") -> None:
        self.signals = parse_signals(names, option)
        self.received: str | None = None
        self._previous: dict[signal.Signals, object] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received = self.received or signal.Signals(signum).name

    def install(self) -> bool:
        """Record the signals from now on; False (nothing installed) outside the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for sig in self.signals:
            if sig not in self._previous:
                self._previous[sig] = signal.signal(sig, self._handle)
        return True

    def restore(self) -> None:
        """Give the signals back their previous handlers."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __enter__(self) -> SignalRecorder:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()
