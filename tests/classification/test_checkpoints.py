"""Classification runs lose nothing: kills and a full disk at each write step, resume into a new folder,
a lost best checkpoint, leaked temporary files, and a missing --resume.

Training is real (a tiny model on a tiny generated set); the validation accuracy is scripted, so which
epoch is best is known, and kills are injected by wrapping the trainer's write functions (and once as a
real SIGKILL of a training process, on a marker it prints).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from parcnetv2 import builtin_data, fileio
from parcnetv2.backbone import CheckpointError
from parcnetv2.classification import checkpointing, engine, export, train

SPEC = builtin_data.ClsSpec(
    seed=11, image_size=32, train_per_class=4, val_per_class=2, classes=("circle", "square", "stripes")
)
TINY = ["--model", "parcnetv2_xt", "--model-kwargs", "depths=(1,1,1,1)", "dims=(8,16,24,32)"]
FAST = ["--img-size", "32", "-b", "8", "--workers", "0", "--warmup-epochs", "0", "--lr", "1e-3"]
TOP1 = {1: 30.0, 2: 40.0, 3: 35.0}  # scripted val top-1 per epoch: epoch 2 is the best


class Killed(BaseException):
    """Stands in for SIGKILL: no cleanup handler of ours runs (only BaseException handlers would)."""


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return builtin_data.generate(tmp_path_factory.mktemp("cls") / "data", SPEC)


def _script_accuracy(mp: pytest.MonkeyPatch) -> None:
    """``evaluate`` returns TOP1[epoch] (the epoch is counted from the trainer's train_one_epoch calls)."""
    epoch = {"n": 0}
    real_train = train.train_one_epoch

    def counting_train(parts, loader, num_batches, index, *args, **kwargs):
        epoch["n"] = index + 1
        return real_train(parts, loader, num_batches, index, *args, **kwargs)

    mp.setattr(train, "train_one_epoch", counting_train)
    mp.setattr(engine, "evaluate", lambda *a, **k: {"loss": 1.0, "top1": TOP1[epoch["n"]], "top5": 100.0})


@pytest.fixture(autouse=True)
def scripted_accuracy(monkeypatch: pytest.MonkeyPatch) -> None:
    _script_accuracy(monkeypatch)


def _argv(root: Path, out: Path, epochs: int = 3, *extra: str) -> list[str]:
    return [str(root), *TINY, *FAST, "--epochs", str(epochs), "--output", str(out), *extra]


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _leak(path: Path) -> None:
    """What a process killed inside ``atomic_write(path)`` leaves: a partial temporary file."""
    (path.parent / f".{path.name}.killed00.tmp").write_bytes(b"partial")


def _check_consistent(out: Path, best_epoch: int) -> None:
    """best.pth.tar is the recorded best epoch; records, export and the log agree; no temp files."""
    best = _load(out / "best.pth.tar")
    last = _load(out / "last.pth.tar")
    assert best["epoch"] == best_epoch == last["best"]["epoch"]
    assert best["history"] == last["history"][:best_epoch]
    assert json.loads((out / "metrics.json").read_text())["run"]["best"]["epoch"] == best_epoch
    side = json.loads((out / "best_weights.safetensors.json").read_text())
    assert side["epoch"] == best_epoch
    from safetensors.torch import load_file

    weights = load_file(out / "best_weights.safetensors")
    assert all(torch.equal(weights[k], best["state_dict"][k]) for k in weights)
    folder = load_file(out / "best_model" / "model.safetensors")  # the timm model folder: the same weights
    assert folder.keys() == weights.keys() and all(torch.equal(folder[k], weights[k]) for k in weights)
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def straight(root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict]:
    """An uninterrupted 3-epoch run's weights after each epoch (the reference for resumed runs)."""
    with pytest.MonkeyPatch.context() as mp:
        weights = {}
        real_save = checkpointing.atomic_save

        def recording_save(state, path):
            weights[state["epoch"]] = {k: v.clone() for k, v in state["state_dict"].items()}
            return real_save(state, path)

        mp.setattr(checkpointing, "atomic_save", recording_save)
        _script_accuracy(mp)
        out = tmp_path_factory.mktemp("straight") / "run"
        train.main(_argv(root, out))
    _check_consistent(out, 2)
    return weights


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------ kills
def _kill_last_write(monkeypatch, out):
    real = checkpointing.atomic_save

    def save(state, path):
        if state["epoch"] == 2:
            _leak(Path(path))
            raise Killed
        return real(state, path)

    monkeypatch.setattr(checkpointing, "atomic_save", save)


def _kill_best_copy(monkeypatch, out):
    real = checkpointing.atomic_write

    def write(path, fn, *args):
        if Path(path).name == "best.pth.tar" and _load(out / "last.pth.tar")["epoch"] == 2:
            _leak(Path(path))
            raise Killed
        return real(path, fn, *args)

    monkeypatch.setattr(checkpointing, "atomic_write", write)


def _kill_records(monkeypatch, out):
    real = checkpointing.write_history

    def write(history, *args):
        if len(history) == 2:
            _leak(out / "metrics.json")
            raise Killed
        return real(history, *args)

    monkeypatch.setattr(checkpointing, "write_history", write)


def _kill_export(monkeypatch, out):
    def export_fails(*args, **kwargs):
        _leak(out / "best_weights.safetensors")
        raise Killed

    monkeypatch.setattr(export, "export_weights", export_fails)


def _kill_model_folder(monkeypatch, out):
    def export_fails(*args, **kwargs):
        leftover = out / ".best_model.killed00.tmp"  # what a kill inside atomic_write_folder leaves
        leftover.mkdir()
        (leftover / "config.json").write_text("{")
        raise Killed

    monkeypatch.setattr(export, "export_model_folder", export_fails)


@pytest.mark.parametrize(
    "kill",
    [_kill_last_write, _kill_best_copy, _kill_records, _kill_export, _kill_model_folder],
    ids=lambda f: f.__name__[6:],
)
def test_kill_at_each_write_step_then_resume(kill, root, straight, tmp_path, monkeypatch) -> None:
    out = tmp_path / "run"
    with monkeypatch.context() as mp:
        kill(mp, out)
        with pytest.raises(Killed):
            train.main(_argv(root, out))
    assert _load(out / "last.pth.tar")["epoch"] in (1, 2, 3), "last.pth.tar stays loadable"
    assert list(out.glob(".*.killed00.tmp")), "the kill left its temporary file"
    result = train.main(_argv(root, out, 3, "--resume", str(out / "last.pth.tar")))
    assert result["best"]["epoch"] == 2
    _check_consistent(out, 2)
    assert _same_weights(_load(out / "best.pth.tar")["state_dict"], straight[2]), "the real epoch-2 weights"
    log = (out / "log.txt").read_text()
    assert "removed 1 temporary file(s) left by interrupted writes" in log
    if kill is _kill_best_copy:
        assert "holds epoch 1, not the best.pth.tar of epoch 2" in log and "restored it from" in log


def test_disk_full_in_the_best_copy_fails_loudly_and_resume_restores(root, tmp_path, monkeypatch) -> None:
    out = tmp_path / "run"
    with monkeypatch.context() as mp:
        real_copy = shutil.copyfile

        def full_disk(src, dst, *args, **kwargs):
            if Path(dst).name.startswith(".best.pth.tar.") and _load(Path(src))["epoch"] == 2:
                Path(dst).write_bytes(b"part")
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_copy(src, dst, *args, **kwargs)

        mp.setattr(checkpointing.shutil, "copyfile", full_disk)
        with pytest.raises(fileio.WriteError, match=r"cannot write .*best\.pth\.tar: .*No space") as err:
            train.main(_argv(root, out))
    assert err.value.errno == errno.ENOSPC
    assert not list(out.glob(".*.tmp")), "a failed write removes its temporary file"
    assert _load(out / "best.pth.tar")["epoch"] == 1 and _load(out / "last.pth.tar")["best"]["epoch"] == 2
    train.main(_argv(root, out, 3, "--resume", str(out / "last.pth.tar")))
    _check_consistent(out, 2)


def test_disk_full_in_the_last_write_keeps_the_previous_epoch(root, tmp_path, monkeypatch) -> None:
    out = tmp_path / "run"
    with monkeypatch.context() as mp:
        real_save = torch.save

        def full_disk(obj, f, *args, **kwargs):
            if isinstance(obj, dict) and obj.get("epoch") == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_save(obj, f, *args, **kwargs)

        mp.setattr(torch, "save", full_disk)
        with pytest.raises(fileio.WriteError, match=r"cannot write .*last\.pth\.tar"):
            train.main(_argv(root, out))
    assert _load(out / "last.pth.tar")["epoch"] == 1 == _load(out / "best.pth.tar")["epoch"]
    assert json.loads((out / "metrics.json").read_text())["run"]["best"]["epoch"] == 1
    train.main(_argv(root, out, 3, "--resume", str(out / "last.pth.tar")))
    _check_consistent(out, 2)


# ------------------------------------------------------------------------------------------ resume
def test_resume_into_a_new_output_carries_the_best_over(root, tmp_path) -> None:
    first = tmp_path / "first"
    train.main(_argv(root, first, 2, "--no-export"))  # best: epoch 2 of 2
    second = tmp_path / "second"
    result = train.main(_argv(root, second, 3, "--resume", str(first / "last.pth.tar")))
    assert result["best"]["epoch"] == 2
    _check_consistent(second, 2)
    assert _same_weights(
        _load(second / "best.pth.tar")["state_dict"], _load(first / "best.pth.tar")["state_dict"]
    )
    assert "carried the best.pth.tar of epoch 2 (top-1 40.00) over from" in (second / "log.txt").read_text()


def test_resume_into_a_new_output_from_a_later_epoch(root, straight, tmp_path) -> None:
    """The best (epoch 2) is not the resumed epoch (3): it comes from best.pth.tar next to last.pth.tar."""
    first = tmp_path / "first"
    train.main(_argv(root, first, 3, "--no-export"))
    second = tmp_path / "second"
    train.main(_argv(root, second, 3, "--resume", str(first / "last.pth.tar")))  # nothing left to train
    _check_consistent(second, 2)
    assert _same_weights(_load(second / "best.pth.tar")["state_dict"], straight[2])


def test_a_lost_best_is_rebuilt_loudly(root, tmp_path) -> None:
    out = tmp_path / "run"
    train.main(_argv(root, out, 3, "--no-export"))
    (out / "best.pth.tar").unlink()
    result = train.main(_argv(root, out, 3, "--resume", str(out / "last.pth.tar")))
    log = (out / "log.txt").read_text()
    assert "the best.pth.tar of epoch 2 (top-1 40.00) is lost" in log
    assert "rebuilding best.pth.tar from the resumed epoch 3 (top-1 35.00)" in log
    assert result["best"]["epoch"] == 3
    _check_consistent(out, 3)


def test_export_refuses_a_best_file_of_another_epoch(root, tmp_path, monkeypatch) -> None:
    """The end of a run never exports whatever best.pth.tar happens to be there."""
    out = tmp_path / "run"
    with monkeypatch.context() as mp:
        mp.setattr(
            checkpointing, "_restore_best", lambda ckpt, *args: dict(ckpt["best"])
        )  # as before the fix
        train.main(_argv(root, out, 2, "--no-export"))
        shutil.copyfile(out / "last.pth.tar", out / "keep.pth.tar")
        (out / "best.pth.tar").unlink()
        with pytest.raises(CheckpointError, match=r"best\.pth\.tar is missing, not the best epoch 2"):
            train.main(_argv(root, out, 2, "--resume", str(out / "keep.pth.tar")))
    assert not (out / "best_weights.safetensors").exists()


def test_missing_resume_creates_nothing(root, tmp_path) -> None:
    out = tmp_path / "never"
    with pytest.raises(CheckpointError, match="not found"):
        train.main(_argv(root, out, 1, "--resume", str(tmp_path / "missing.pth.tar")))
    assert not out.exists()


def test_only_our_temporary_files_are_removed(tmp_path: Path) -> None:
    ours = [".last.pth.tar.ab_cd123.tmp", ".best.pth.tar.zzzzzzzz.tmp", ".metrics.json.0a1b2c3d.tmp"]
    theirs = [
        ".last.pth.tar.tmp",
        ".other.pth.abcdefgh.tmp",
        "last.pth.tar",
        ".last.pth.tar.abcdefgh.tmp.keep",
    ]
    for name in ours + theirs:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".best_model.k1ll3d00.tmp").mkdir()  # a killed model-folder export
    (tmp_path / ".best_model.k1ll3d00.tmp" / "config.json").write_text("{")
    ours.append(".best_model.k1ll3d00.tmp")
    removed = fileio.remove_stale_temp_files(tmp_path, checkpointing.RUN_FILES)
    assert sorted(p.name for p in removed) == sorted(ours)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(theirs)


# ------------------------------------------------------------------------------------------ a real SIGKILL
KILL_PROBE = """
import os, sys, time
from parcnetv2.classification import train

real_replace = os.replace

def replace(src, dst):
    if os.path.basename(dst) == "best.pth.tar":  # the copy is written, not yet renamed
        print("ABOUT TO RENAME BEST", flush=True)
        time.sleep(120)
    return real_replace(src, dst)

os.replace = replace
train.main(sys.argv[1:])
"""


def test_sigkill_in_the_first_best_copy(root, tmp_path) -> None:
    """SIGKILL between writing best.pth.tar's temporary copy and renaming it (epoch 1, so no best file
    exists yet): resume removes the real mkstemp leftover and restores best.pth.tar from last.pth.tar."""
    probe = tmp_path / "probe.py"
    probe.write_text(KILL_PROBE)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, str(probe), *_argv(root, out, 1, "--no-export")]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if "ABOUT TO RENAME BEST" in line:
                os.kill(proc.pid, signal.SIGKILL)
                break
        assert proc.wait(timeout=120) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".best.pth.tar.")]
    assert len(leftovers) == 1 and not (out / "best.pth.tar").exists()
    assert _load(out / "last.pth.tar")["best"]["epoch"] == 1
    train.main(_argv(root, out, 1, "--resume", str(out / "last.pth.tar")))
    log = (out / "log.txt").read_text()
    assert f"removed 1 temporary file(s) left by interrupted writes: {leftovers[0]}" in log
    assert "best.pth.tar is missing, not the best.pth.tar of epoch 1" in log
    _check_consistent(out, 1)
