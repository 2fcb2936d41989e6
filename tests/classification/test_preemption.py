"""Nothing lost on a cluster: a preemption signal stops training after an optimizer update with a recovery
checkpoint and status 75, and resuming it mid-epoch ends bit-exactly where an uninterrupted run ends (in
one process, and under a 2-process torchrun sent SIGTERM); recovery checkpoints every N updates; a
truncated JPEG is skipped with its name in the log."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from parcnetv2 import builtin_data
from parcnetv2.backbone import CheckpointError
from parcnetv2.classification import checkpointing, train
from parcnetv2.classification.args import CONFIG_DIR
from parcnetv2.preemption import PREEMPTED_STATUS

SPEC = builtin_data.ClsSpec(
    seed=7, image_size=32, train_per_class=8, val_per_class=2, classes=("circle", "square", "star", "dots")
)
# the published recipe (RandAugment, mixup/cutmix, random erasing, drop path) on a tiny model, with EMA
ARGS = [
    "-c", str(CONFIG_DIR / "imagenet_parcnetv2_tiny.yaml"), "--model", "parcnetv2_xt",
    "--model-kwargs", "depths=(1,1,1,1)", "dims=(8,16,24,32)", "--img-size", "32", "--lr", "1e-3",
    "--warmup-epochs", "1", "--log-interval", "2", "--model-ema", "--no-export", "--workers", "0",
]  # fmt: skip

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return builtin_data.generate(tmp_path_factory.mktemp("cls") / "data", SPEC)


def _argv(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        str(root),
        *ARGS,
        "-b",
        "4",
        "--grad-accum-steps",
        "2",
        "--epochs",
        "2",
        "--output",
        str(out),
        *extra,
    ]


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same_run(a: Path, b: Path) -> None:
    """Bit-exact: weights, EMA, optimizer state, update count and the per-epoch records."""
    x, y = _load(a / "last.pth.tar"), _load(b / "last.pth.tar")
    assert x["epoch"] == y["epoch"] and x["num_updates"] == y["num_updates"]
    for key in ("state_dict", "state_dict_ema"):
        assert all(torch.equal(x[key][k], y[key][k]) for k in x[key]), key
    assert all(torch.equal(x["optimizer"]["state"][i]["exp_avg"], y["optimizer"]["state"][i]["exp_avg"])
               for i in x["optimizer"]["state"])  # fmt: skip
    keys = ("train_loss", "lr", "eval_loss", "eval_top1", "ema_eval_top1")
    assert [[r[k] for k in keys] for r in x["history"]] == [[r[k] for k in keys] for r in y["history"]]


def test_a_signal_stops_after_an_update_and_resume_continues_mid_epoch(
    root: Path, tmp_path: Path, monkeypatch
):
    """SIGTERM in the second epoch (a data-loader worker running): status 75's result, recovery.pth.tar at
    the update's batch; --resume finishes the epoch as the uninterrupted run does, to the bit. A recovery
    checkpoint that --recovery-interval wrote after the first epoch's last batch resumes to the same end,
    into a new folder."""
    saves = []
    real_save = checkpointing.save_recovery

    def keep_copy(state, step, epoch_states, output_dir):
        path = real_save(state, step, epoch_states, output_dir)
        saves.append(shutil.copyfile(path, tmp_path / f"interval_{state['num_updates']}.pth.tar"))
        return path

    with monkeypatch.context() as mp:
        mp.setattr(checkpointing, "save_recovery", keep_copy)
        straight = train.main(
            _argv(root, tmp_path / "straight", "--workers", "1", "--recovery-interval", "2")
        )
    assert [Path(p).name for p in saves] == [f"interval_{n}.pth.tar" for n in (2, 4, 6, 8)]
    assert not straight["stopped"] and not (tmp_path / "straight" / "recovery.pth.tar").exists()

    real_epoch = train.train_one_epoch

    def signal_in_epoch_two(parts, loader, num_batches, epoch, *args, **kwargs):
        after_update = args[-1]

        def send_then_check(state):
            if epoch == 1 and state.step == 4:
                os.kill(os.getpid(), signal.SIGTERM)
            return after_update(state)

        return real_epoch(parts, loader, num_batches, epoch, *args[:-1], send_then_check, **kwargs)

    out = tmp_path / "stopped"
    monkeypatch.setattr(train, "train_one_epoch", signal_in_epoch_two)
    stopped = train.main(_argv(root, out, "--workers", "1"))
    assert stopped["stopped"] and stopped["checkpoints"]["resume_from"] == str(out / "recovery.pth.tar")
    recovery = _load(out / "recovery.pth.tar")
    assert recovery["epoch"] == 1 and recovery["recovery"]["step"] == 4 and recovery["num_updates"] == 6
    assert _load(out / "last.pth.tar")["epoch"] == 1, "the epoch checkpoint stays the first epoch's"
    log = (out / "log.txt").read_text()
    assert "stopped by SIGTERM after update 6 (epoch 2, batch 4/8)" in log and "exit status 75" in log
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "the handler is gone after the run"

    monkeypatch.setattr(train, "train_one_epoch", real_epoch)
    resumed = train.main(_argv(root, out, "--workers", "0", "--resume", str(out / "recovery.pth.tar")))
    assert not resumed["stopped"] and not (out / "recovery.pth.tar").exists(), "the epoch's end supersedes it"
    assert "4 batches into epoch 2" in (out / "log.txt").read_text()
    _assert_same_run(tmp_path / "straight", out)
    train.main(_argv(root, tmp_path / "from_interval", "--resume", str(saves[1])))  # the epoch's last batch
    _assert_same_run(tmp_path / "straight", tmp_path / "from_interval")


def test_a_mid_epoch_checkpoint_refuses_another_batch_size(root: Path, tmp_path: Path) -> None:
    train.main(_argv(root, tmp_path / "run", "--epochs", "1", "--recovery-interval", "2", "--workers", "0"))
    interval = _load(tmp_path / "run" / "last.pth.tar")  # the epoch ended: recovery.pth.tar is gone
    assert "recovery" not in interval and not (tmp_path / "run" / "recovery.pth.tar").exists()
    state = {**interval, "epoch": 0, "recovery": {"step": 4, "epoch_states": [{}]}}
    torch.save(state, tmp_path / "recovery.pth.tar")
    with pytest.raises(CheckpointError, match="stopped mid-epoch with 1 process.*-b 4"):
        train.main([*_argv(root, tmp_path / "r", "--resume", str(tmp_path / "recovery.pth.tar")), "-b", "8"])


def test_a_truncated_jpeg_is_skipped_with_its_name_in_the_log(root: Path, tmp_path: Path) -> None:
    broken = Path(shutil.copytree(root, tmp_path / "broken"))
    bad = broken / "train" / "star" / "star_00005.jpg"
    bad.write_bytes(bad.read_bytes()[:300])  # a valid header: the start-up check passes it
    out = tmp_path / "run"
    result = train.main(_argv(broken, out, "--epochs", "1", "--workers", "1", "--max-unreadable", "0.05"))
    assert result["history"][0]["unreadable"] == 1
    log = (out / "log.txt").read_text()
    assert f"skipped: cannot read image {bad}" in log
    assert "| 1 unreadable image(s) skipped |" in log
    assert "Traceback" not in log


# ------------------------------------------------------------------------------------------ torchrun
PROBE = textwrap.dedent(
    """
    import os, runpy, sys, time
    from parcnetv2.classification import engine

    rank, calls = int(os.environ["RANK"]), [0]
    real_step = engine._optimizer_step

    def slow_in_epoch_two(*args, **kwargs):
        calls[0] += 1
        if calls[0] > 4:  # epoch 2: give the test time to send its signal mid-epoch
            if rank == 0:
                print(f"PROBE STEP {calls[0]}", flush=True)
            time.sleep(1.0)
        return real_step(*args, **kwargs)

    engine._optimizer_step = slow_in_epoch_two
    sys.argv = ["train", *sys.argv[2:]]
    try:
        runpy.run_module("parcnetv2.classification.train", run_name="__main__")
        status = 0
    except SystemExit as exit:
        status = exit.code
        raise
    finally:
        open(os.path.join(os.environ["STATUS_DIR"], f"status{rank}"), "w").write(str(status))
    """
)


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]


@pytest.mark.slow  # three 2-process torchrun runs: ~40 s
def test_sigterm_to_torchrun_mid_epoch_then_resume_equals_uninterrupted(root: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STATUS_DIR": str(tmp_path)}
    run = ["-b", "4", "--grad-accum-steps", "1", "--workers", "1", "--device", "cpu"]
    straight = tmp_path / "straight"
    argv = [*_argv(root, straight), *run]
    proc = subprocess.run(_torchrun("-m", "parcnetv2.classification.train", *argv), env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    out = tmp_path / "stopped"
    argv = [*_argv(root, out), *run]
    proc = subprocess.Popen(_torchrun(str(probe), "x", *argv), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines, sent = [], None
    try:
        for line in proc.stdout:
            lines.append(line)
            if "PROBE STEP 5" in line:  # the first update of epoch 2 (4 batches per rank and epoch)
                sent = time.monotonic()
                proc.send_signal(signal.SIGTERM)  # to torchrun, which passes it to its workers
                break
        assert sent is not None, "".join(lines)[-3000:]
        rest, _ = proc.communicate(timeout=60)
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(lines) + rest
    assert waited < 60, output[-3000:]
    statuses = [(tmp_path / f"status{r}").read_text() for r in range(2)]
    assert statuses == [str(PREEMPTED_STATUS)] * 2, output[-3000:]
    recovery = _load(out / "recovery.pth.tar")
    assert recovery["epoch"] == 1 and 0 < recovery["recovery"]["step"] < 4 and len(recovery["rng"]) == 2
    assert "stopped by SIGTERM after update" in (out / "log.txt").read_text()

    argv = [*_argv(root, out, "--resume", str(out / "recovery.pth.tar")), *run]
    proc = subprocess.run(_torchrun("-m", "parcnetv2.classification.train", *argv), env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _assert_same_run(straight, out)
    assert json.loads((out / "metrics.json").read_text())["run"]["world_size"] == 2
