"""Every command-line tool fails with one line on stderr and a non-zero exit; --debug shows the traceback."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from parcnetv2.cli import DEBUG_ENV, one_line, run_cli

ROOT = Path(__file__).resolve().parents[2]
CLIS = [
    "classification/train.py",
    "classification/validate.py",
    "classification/export.py",
    "tools/train.py",
    "tools/test.py",
    "tools/misc/image_demo.py",
    "tools/model_converters/convert_checkpoint.py",
    "tools/analysis_tools/get_flops.py",
    "tools/analysis_tools/benchmark.py",
]


def _fail(message: str, kind: type[BaseException] = ValueError):
    def main(argv):
        raise kind(message)

    return main


def test_error_is_one_line_on_stderr_with_exit_1(capsys, monkeypatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(_fail("checkpoint x.pth does not fit:\n  a: (1,) vs (2,)\n  b: ..."), [], prog="tool")
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "tool: error: checkpoint x.pth does not fit: a: (1,) vs (2,) b: ... "
        f"(--debug or {DEBUG_ENV}=1 for the traceback)"
    ]


def test_debug_switch_and_variable_show_the_real_exception(monkeypatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(ValueError, match="boom"):
        run_cli(_fail("boom"), ["--debug"], prog="tool")
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(ValueError, match="boom"):
        run_cli(_fail("boom"), [], prog="tool")
    monkeypatch.setenv(DEBUG_ENV, "0")
    with pytest.raises(SystemExit):
        run_cli(_fail("boom"), ["--", "--debug"], prog="tool")  # after --: a value, not the switch


def test_interrupt_and_argparse_exits(capsys, monkeypatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(_fail("", KeyboardInterrupt), [], prog="tool")
    assert exit_info.value.code == 130 and capsys.readouterr().err == "tool: interrupted\n"

    def usage_error(argv):
        raise SystemExit(2)

    with pytest.raises(SystemExit) as exit_info:
        run_cli(usage_error, [], prog="tool")
    assert exit_info.value.code == 2
    assert run_cli(lambda argv: argv, ["a"], prog="tool") == ["a"]


def test_messages() -> None:
    assert one_line(FileNotFoundError("image not found: a.jpg")) == "image not found: a.jpg"
    assert one_line(KeyError("model.backbone")) == "KeyError: model.backbone"
    assert one_line(TypeError("bad\n type")) == "TypeError: bad type"
    assert one_line(RuntimeError()) == "RuntimeError"
    assert len(one_line(ValueError("x" * 5000))) == 2000


@pytest.mark.parametrize("path", CLIS)
def test_every_cli_runs_through_run_cli(path: str) -> None:
    """The ``__main__`` block of each tool calls ``run_cli`` (and so never prints a raw traceback)."""
    tree = ast.parse((ROOT / path).read_text())
    mains = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and "__main__" in ast.unparse(node.test)
        and "__name__" in ast.unparse(node.test)
    ]
    assert len(mains) == 1, path
    calls = [
        n.func.id for n in ast.walk(mains[0]) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    ]
    assert calls and calls[0] == "run_cli", f"{path}: {ast.unparse(mains[0])}"


def _python(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != DEBUG_ENV}
    full_env.update(env, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=300
    )


def test_classification_train_cli_missing_resume(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["-m", "parcnetv2.classification.train", str(tmp_path), "--resume", str(tmp_path / "no.pth.tar")]
    proc = _python(*argv, "--output", str(out))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("parcnetv2.classification.train: error: checkpoint file not found: ")
    assert not out.exists(), "a missing --resume creates no output folder or log"
    proc = _python(*argv, "--output", str(out), "--debug")
    assert proc.returncode == 1 and "Traceback (most recent call last)" in proc.stderr
