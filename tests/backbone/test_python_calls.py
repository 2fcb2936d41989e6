"""An oversized convolution at an input it has seen runs its plan and little else (issue 25).

Counted as the issue states it: a plain ``sys.setprofile`` around one ``OversizedConv2d(64, 111)``
forward on a (2, 64, 56, 56) input, every Python 'call' event (a plain ``nn.Conv2d`` takes 4 to 6:
``_wrapped_call_impl``, ``_call_impl``, ``forward``, two ``Module.__getattr__``, ``_conv_forward``).
"""

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from parcnetv2.backbone import OversizedConv2d

PROJECT = Path(__file__).resolve().parents[2]


def is_project_file(path: str) -> bool:
    resolved = Path(path).resolve()
    return resolved.is_relative_to(PROJECT) and not resolved.is_relative_to(PROJECT / ".venv")


def python_calls(fn: Callable[[], object]) -> list[tuple[str, str]]:
    """(file, function) of every Python function called while ``fn()`` runs, ``fn`` itself excluded."""
    calls = []

    def profile(frame, event, _arg) -> None:
        if event == "call":
            calls.append((frame.f_code.co_filename, frame.f_code.co_name))

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls[1:]  # the lambda


@pytest.mark.parametrize("grad", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("path", ["auto", "direct", "gemm", "fft"])
def test_seen_input_runs_at_most_12_python_calls_in_2_project_files(grad, path):
    torch.manual_seed(0)
    module = OversizedConv2d(64, 111, path=path)
    x = torch.randn(2, 64, 56, 56)
    with torch.set_grad_enabled(grad):
        module(x)  # plans (and in inference binds the kernels)
        calls = python_calls(lambda: module(x))
    project_files = {f for f, _ in calls if is_project_file(f)}
    names = [name for _, name in calls]
    assert len(calls) <= 12, names
    assert len(project_files) <= 2, project_files
    assert names[:3] == ["_wrapped_call_impl", "_call_impl", "forward"]


def test_a_plain_conv_for_scale():
    """The reference the issue compares with: ``nn.Conv2d`` counted the same way."""
    conv, x = torch.nn.Conv2d(64, 64, 3, padding=1, groups=64), torch.randn(2, 64, 56, 56)
    names = [name for _, name in python_calls(lambda: conv(x))]
    assert names[:3] == ["_wrapped_call_impl", "_call_impl", "forward"] and "_conv_forward" in names
