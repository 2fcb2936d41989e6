"""The shared preemption signals (:mod:`parcnetv2.preemption`): names, recording, ignoring."""

from __future__ import annotations

import os
import signal

import pytest

from parcnetv2.preemption import SignalRecorder, ignore_signals, parse_signals


@pytest.mark.parametrize("name", ["SIGNOPE", "SIGKILL", "SIGSTOP"])
def test_a_signal_no_process_can_catch_is_one_line(name: str):
    with pytest.raises(ValueError, match=rf"^--opt: '{name}' is no signal a process can catch"):
        parse_signals(["SIGTERM", name], "--opt")


def test_recorder_keeps_the_first_signal_and_restores_the_handlers():
    calls = []
    previous = signal.signal(signal.SIGUSR1, lambda *a: calls.append("previous"))
    try:
        with SignalRecorder(["SIGUSR1", "SIGUSR2"]) as recorder:
            os.kill(os.getpid(), signal.SIGUSR2)
            os.kill(os.getpid(), signal.SIGUSR1)
            assert recorder.received == "SIGUSR2" and calls == []
        assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL
        os.kill(os.getpid(), signal.SIGUSR1)
        assert calls == ["previous"]
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_ignore_signals():
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        ignore_signals(["SIGUSR1"], 0)
        os.kill(os.getpid(), signal.SIGUSR1)  # would end the process by default
        assert signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR1, previous)
