"""Preemption and disk-full safety of the OpenMMLab runs (:mod:`parcnetv2.openmmlab.preemption`).

The acceptance runs: ``tools/train.py`` on the built-in detection (epoch-based) and segmentation
(iteration-based) configs, shrunk, gets ``SIGTERM`` in the middle of its schedule, exits with status 75
and ``recovery.pth`` within 60 s, and ``--resume`` finishes the schedule.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet")
pytest.importorskip("mmseg")

from mmengine.config import DictAction  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402

from parcnetv2 import builtin_data  # noqa: E402
from parcnetv2.cli import run_cli  # noqa: E402
from parcnetv2.fileio import WriteError  # noqa: E402
from parcnetv2.openmmlab import preemption  # noqa: E402
from parcnetv2.openmmlab import runner as mm_runner  # noqa: E402
from parcnetv2.openmmlab.config import load_config  # noqa: E402
from parcnetv2.openmmlab.weights_only import allow_mmengine_checkpoints  # noqa: E402
from parcnetv2.preemption import PREEMPTED_STATUS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DET_CONFIG = REPO / "configs/mask_rcnn/mask-rcnn_parcnetv2-xt_fpn_4e_synthetic-coco.py"
SEG_CONFIG = REPO / "configs/upernet/parcnetv2-xt_upernet_1xb4-2k_synthetic-ade-96x96.py"
LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


def seg_options(data_root: Path, max_iters: int, workers: int = 0) -> list[str]:
    """``--cfg-options`` for a built-in UperNet run of seconds: 1-block stages, narrow heads, 64 px."""
    dims = [16, 24, 32, 40]
    model = {"backbone.depths": [1] * 4, "backbone.dims": dims, "decode_head.in_channels": dims}
    model |= {"decode_head.channels": 16, "auxiliary_head.in_channels": 32, "auxiliary_head.channels": 8}
    model |= {"data_preprocessor.size": [64, 64]}
    return [
        f"data_root={data_root}/",
        *(f"model.{k}={v}".replace(" ", "") for k, v in model.items()),
        *(f"{loader}.num_workers={workers}" for loader in LOADERS),
        *(f"{loader}.persistent_workers={workers > 0}" for loader in LOADERS),
        "train_dataloader.batch_size=2",
        "train_dataloader.dataset.pipeline.2.scale=(64,64)",
        f"train_cfg.max_iters={max_iters}",
        f"train_cfg.val_interval={max_iters}",
        f"default_hooks.checkpoint.interval={max_iters}",
        "default_hooks.logger.interval=1",
        "param_scheduler.0.end=1",
        "param_scheduler.1.begin=1",
    ]


def det_options(data_root: Path, max_epochs: int) -> list[str]:
    """``--cfg-options`` for a built-in Mask R-CNN run of seconds: 1-block stages, 32-channel heads."""
    width = {f"{k}={32}" for k in ("neck.out_channels", "rpn_head.in_channels", "rpn_head.feat_channels")}
    width |= {f"roi_head.{k}=32" for k in ("bbox_roi_extractor.out_channels", "bbox_head.in_channels")}
    width |= {f"roi_head.{k}=32" for k in ("mask_roi_extractor.out_channels", "mask_head.in_channels")}
    return [
        f"data_root={data_root}/",
        "model.backbone.depths=[1,1,1,1]",
        *(f"model.{w}" for w in sorted(width)),
        "model.roi_head.bbox_head.fc_out_channels=64",
        "model.roi_head.mask_head.conv_out_channels=32",
        *(f"{loader}.num_workers=0" for loader in LOADERS),
        *(f"{loader}.persistent_workers=False" for loader in LOADERS),
        f"train_cfg.max_epochs={max_epochs}",
        "param_scheduler.0.end=2",
        "default_hooks.logger.interval=1",
    ]


@pytest.fixture(scope="module")
def seg_data(tmp_path_factory) -> Path:
    spec = builtin_data.AdeSpec(seed=1, num_train=4, num_val=1, min_size=(64, 64), max_size=(80, 80))
    return builtin_data.generate(tmp_path_factory.mktemp("ade") / "data", spec)


@pytest.fixture(scope="module")
def det_data(tmp_path_factory) -> Path:
    spec = builtin_data.CocoSpec(seed=0, num_train=8, num_val=1, min_size=(128, 128), max_size=(128, 128))
    return builtin_data.generate(tmp_path_factory.mktemp("coco") / "data", spec)


def checkpoint_meta(path: Path) -> dict:
    allow_mmengine_checkpoints()
    return torch.load(path, map_location="cpu")["meta"]


def last_checkpoint(work_dir: Path) -> str:
    return (work_dir / "last_checkpoint").read_text().strip()


# ------------------------------------------------------------------------------------------ unit
def test_configs_get_the_hook_and_atomic_checkpoints(seg_data: Path):
    cfg = load_config(SEG_CONFIG, cfg_options={"data_root": str(seg_data)})
    assert [h for h in cfg.custom_hooks if h.type == "PreemptionHook"] == [dict(type="PreemptionHook")]
    assert cfg.default_hooks.checkpoint.backend_args == dict(backend="atomic_local")
    for loader in ("train_dataloader", "val_dataloader"):
        assert cfg[loader].worker_init_fn == dict(
            type=preemption.WORKER_INIT_FN,
            seed=0,
            diff_rank_seed=False,
            signals=["SIGTERM", "SIGUSR1"],
            disable_subprocess_warning=False,
        )
    assert "worker_init_fn" not in cfg.test_dataloader
    cfg = load_config(
        DET_CONFIG, cfg_options={"preemption.signals": ["SIGUSR1"], "preemption.recovery_interval": 5}
    )
    assert cfg.custom_hooks[-1] == dict(type="PreemptionHook", signals=["SIGUSR1"], recovery_interval=5)
    with pytest.raises(ValueError, match="SIGNOPE"):
        preemption.PreemptionHook(signals=["SIGNOPE"])


def test_atomic_backend_on_a_full_disk(tmp_path: Path, monkeypatch):
    """A failed write leaves the old files (and no temporary file); deletions wait for a complete write."""
    backend = preemption.AtomicLocalBackend()
    old, new = tmp_path / "iter_2.pth", tmp_path / "iter_4.pth"
    backend.put(b"old", old)

    def disk_full(path: str, data: bytes) -> None:
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(preemption, "_write_file", disk_full)
    backend.remove(old)
    with pytest.raises(WriteError, match=r"iter_4\.pth.*No space left on device.*--resume"):
        backend.put(b"new checkpoint", new)
    assert old.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["iter_2.pth"]
    monkeypatch.undo()
    backend.put(b"new checkpoint", new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter_4.pth"]


def test_hook_records_signals_only_while_training():
    """Training: the signal is a flag for the hook; before and after: the previous handler."""
    calls = []
    previous = signal.signal(signal.SIGUSR1, lambda *a: calls.append("previous"))
    try:
        hook = preemption.PreemptionHook(signals=["SIGUSR1"])
        os.kill(os.getpid(), signal.SIGUSR1)
        assert calls == ["previous"] and hook.received is None
        hook.recorder = preemption.SignalRecorder(hook.signals)  # what before_train installs
        hook.recorder.install()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert hook.received == "SIGUSR1" and calls == ["previous"]
        hook.after_train(runner=None)
        os.kill(os.getpid(), signal.SIGUSR1)
        assert calls == ["previous", "previous"] and hook.received is None
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_worker_init_seeds_as_mmengine_then_ignores_signals(monkeypatch):
    """The loaders' worker_init_fn: mmengine's seed formula (num_workers * rank + worker_id + seed),
    then SIG_IGN for the hook's signals."""
    info = argparse.Namespace(num_workers=3)
    monkeypatch.setattr(preemption, "get_worker_info", lambda: info)
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        preemption.worker_init_ignoring_signals(2, seed=10, signals=["SIGUSR1"])
        assert torch.initial_seed() == 3 * 0 + 2 + 10
        assert signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR1, previous)


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_disk_full_while_saving_then_resume(load_tool, seg_data: Path, tmp_path: Path, monkeypatch, capsys):
    """ENOSPC while the runner writes iter_4.pth: one line, iter_2.pth and last_checkpoint intact (even
    with max_keep_ckpts=1), and --resume finishes."""
    train = load_tool("train")
    argv = [str(SEG_CONFIG), "--work-dir", str(tmp_path), "--cfg-options", *seg_options(seg_data, 4)]
    argv += ["default_hooks.checkpoint.interval=2", "default_hooks.checkpoint.max_keep_ckpts=1"]
    write = preemption._write_file

    def full_at_iter_4(path: str, data: bytes) -> None:
        if ".iter_4.pth." not in path:
            return write(path, data)
        with open(path, "wb") as f:
            f.write(data[:1000])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(preemption, "_write_file", full_at_iter_4)
    with pytest.raises(SystemExit) as stop:
        run_cli(train.main, argv, prog="train.py")
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 1 and len(err) == 1
    assert re.search(r"train.py: error: cannot write .*iter_4\.pth.*No space left on device", err[0])
    assert sorted(p.name for p in tmp_path.glob("*.pth*")) == ["iter_2.pth"]
    assert last_checkpoint(tmp_path) == str(tmp_path / "iter_2.pth")
    assert checkpoint_meta(tmp_path / "iter_2.pth")["iter"] == 2

    monkeypatch.undo()
    result = train.main([*argv[:1], "--resume", *argv[1:]])
    assert result["iterations"] == 4 and last_checkpoint(tmp_path) == str(tmp_path / "iter_4.pth")
    assert sorted(p.name for p in tmp_path.glob("*.pth*")) == ["iter_4.pth"]


def seg_config(data_root: Path, work_dir: Path, max_iters: int, *options: str):
    """The shrunk built-in UperNet config, through the project's config loader."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--options", nargs="+", action=DictAction)
    parsed = parser.parse_args(["--options", *seg_options(data_root, max_iters), *options]).options
    return load_config(SEG_CONFIG, work_dir=work_dir, cfg_options=parsed)


@pytest.mark.slow
def test_recovery_interval(seg_data: Path, tmp_path: Path):
    """preemption.recovery_interval=2: recovery.pth at iteration 2 (and 4), besides the CheckpointHook's."""
    cfg = seg_config(seg_data, tmp_path, 5, "preemption.recovery_interval=2")
    assert mm_runner.build_runner(cfg).train() is not None
    assert checkpoint_meta(tmp_path / "recovery.pth")["iter"] == 4
    assert last_checkpoint(tmp_path) == str(tmp_path / "iter_5.pth")


class _SignalInValidation(Hook):
    def before_val_iter(self, runner, batch_idx, data_batch=None) -> None:
        os.kill(os.getpid(), signal.SIGUSR1)


@pytest.mark.slow
def test_signal_during_validation_stops_there(seg_data: Path, tmp_path: Path):
    """A signal in the validation after iteration 2 of 4: recovery.pth holds iteration 2, status 75;
    resumed, the run trains iterations 3 and 4."""
    cfg = seg_config(seg_data, tmp_path, 4, "train_cfg.val_interval=2")
    runner = mm_runner.build_runner(cfg)
    runner.register_hook(_SignalInValidation())
    with pytest.raises(SystemExit) as stop:
        runner.train()
    assert stop.value.code == PREEMPTED_STATUS
    assert checkpoint_meta(tmp_path / "recovery.pth")["iter"] == 2
    log = sorted(tmp_path.glob("*/*.log"))[-1].read_text()
    assert (
        f"Preempted by SIGUSR1: saved {tmp_path / 'recovery.pth'} in the validation after iteration 2;" in log
    )
    cfg.resume = True
    runner = mm_runner.build_runner(cfg)
    runner.train()
    assert runner.iter == 4 and checkpoint_meta(tmp_path / "iter_4.pth")["iter"] == 4


def _preempt(cmd: list[str], log: Path, progress: str, signum: int, group: bool) -> tuple[int, float]:
    """Run ``cmd``; at the first log line matching ``progress`` send ``signum`` (``group``: to its process
    group, data loader workers included, as SLURM's ``--signal`` does); return the exit status and the
    seconds from the signal to the exit."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 300
    while not re.search(progress, log.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)
    sent = time.monotonic()
    os.killpg(proc.pid, signum) if group else proc.send_signal(signum)
    try:
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    seconds = time.monotonic() - sent
    print(f"{Path(cmd[2]).name}: exit status {rc}, {seconds:.1f} s after {signal.Signals(signum).name}")
    return rc, seconds


def _train(*args: str) -> str:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout + run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("signame, group", [("SIGTERM", False), ("SIGUSR1", True), ("SIGTERM", True)])
def test_signal_to_segmentation_run_saves_and_resumes(
    seg_data: Path, tmp_path: Path, signame: str, group: bool
):
    """Iteration-based UperNet with a data loader worker, signalled at iteration 2 of 6 (``group``: every
    process of the group, the worker too, as SLURM's preemption and ``scancel`` do) -> status 75 and
    recovery.pth; --resume ends at iteration 6."""
    args = [str(REPO / "tools/train.py"), str(SEG_CONFIG), "--work-dir", str(tmp_path)]
    args += ["--cfg-options", *seg_options(seg_data, 6, workers=1)]
    signum = signal.Signals[signame]
    rc, seconds = _preempt(
        [sys.executable, *args], tmp_path / "run.log", r"Iter\(train\) \[2/6\]", signum, group
    )
    log = (tmp_path / "run.log").read_text()
    assert rc == PREEMPTED_STATUS and seconds < 60, log[-3000:]
    recovery = tmp_path / "recovery.pth"
    assert last_checkpoint(tmp_path) == str(recovery)
    stopped = checkpoint_meta(recovery)["iter"]
    assert 2 <= stopped < 6 and f"Preempted by {signame}: saved {recovery} after iteration {stopped}" in log
    assert "DataLoader worker" not in log
    _train(*args, "--resume")
    assert checkpoint_meta(tmp_path / "iter_6.pth")["iter"] == 6


@pytest.mark.slow
def test_sigterm_detection_run_resumes_mid_epoch(det_data: Path, tmp_path: Path):
    """Epoch-based Mask R-CNN, 2 epochs of 4 iterations: SIGTERM in epoch 1 -> status 75 and a mid-epoch
    recovery.pth; --resume trains the rest of that epoch only and ends after exactly 8 iterations."""
    args = [str(REPO / "tools/train.py"), str(DET_CONFIG), "--work-dir", str(tmp_path)]
    args += ["--cfg-options", *det_options(det_data, 2)]
    progress = r"Epoch\(train\) \[1\]\[1/4\]"
    rc, seconds = _preempt([sys.executable, *args], tmp_path / "run.log", progress, signal.SIGTERM, False)
    log = (tmp_path / "run.log").read_text()
    assert rc == PREEMPTED_STATUS and seconds < 60, log[-3000:]
    meta = checkpoint_meta(tmp_path / "recovery.pth")
    assert meta["epoch"] == 0 and 1 <= meta["iter"] < 4, meta
    assert f"(epoch 1, batch {meta['iter']}/4)" in log
    out = _train(*args, "--resume")
    assert f"Resuming epoch 1 at batch {meta['iter'] + 1}/4" in out
    final = checkpoint_meta(tmp_path / "epoch_2.pth")
    assert final["epoch"] == 2 and final["iter"] == 8


@pytest.mark.slow
def test_ranks_agree_on_the_stop_under_torchrun(det_data: Path, tmp_path: Path):
    """2 processes (gloo): SIGUSR1 to rank 1 only -> rank 0 stops too, after the same iteration (a rank that
    went on would hang in DDP's all-reduce), and saves recovery.pth; the ranks exit with status 75."""
    port = str(29300 + os.getpid() % 300)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port]
    cmd += [
        str(REPO / "tools/train.py"),
        str(DET_CONFIG),
        "--launcher",
        "pytorch",
        "--work-dir",
        str(tmp_path),
    ]
    cmd += ["--cfg-options", *det_options(det_data, 2), "train_dataloader.batch_size=1"]
    log = tmp_path / "run.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not re.search(r"Epoch\(train\) \[1\]\[1/4\]", log.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        ranks = {}
        for pid in subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split():
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            ranks.update({int(v[5:]): int(pid) for v in environ if v.startswith(b"RANK=")})
        os.kill(ranks[1], signal.SIGUSR1)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert "Preempted by a signal on another rank" in text, text[-3000:]
    # torchrun exits 1 when a worker exits non-zero, and stops the other worker (SIGTERM) once the
    # first has exited: a rank may be ended that way after the checkpoint and the barrier
    statuses = dict(re.findall(r"rank\s*: (\d) \(local_rank: \d\)\s*exitcode\s*: (-?\d+) ", text))
    assert "75" in statuses.values() and set(statuses.values()) <= {"75", "-15"}, text[-3000:]
    assert proc.returncode == 1
    meta = checkpoint_meta(tmp_path / "recovery.pth")
    assert meta["epoch"] == 0 and 1 <= meta["iter"] < 4
