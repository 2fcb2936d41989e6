"""Classification training end to end on a tiny generated set: one epoch, validate/export, resume,
gradient accumulation, 2-process torchrun (gloo) runs, preemption signals, and errors on bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import timm
import torch

from parcnetv2 import builtin_data
from parcnetv2.backbone import CheckpointError, load_checkpoint_into
from parcnetv2.classification import export, train, validate
from parcnetv2.classification.args import CONFIG_DIR
from parcnetv2.classification.folder_scan import DataError
from parcnetv2.fileio import WriteError

RECIPE = ["-c", str(CONFIG_DIR / "imagenet_parcnetv2_tiny.yaml")]  # the published recipe, scaled down below
SPEC = builtin_data.ClsSpec(
    seed=5,
    image_size=40,
    train_per_class=8,
    val_per_class=3,
    classes=("circle", "square", "stripes", "checker"),
)
MODEL_KWARGS = ["depths=(1,1,1,1)", "dims=(16,24,32,48)"]
TINY_MODEL = ["--model", "parcnetv2_xt", "--model-kwargs", *MODEL_KWARGS, "--img-size", "32"]
FAST = ["--workers", "0", "--log-interval", "2", "--warmup-epochs", "1", "--lr", "1e-3"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return builtin_data.generate(tmp_path_factory.mktemp("cls") / "data", SPEC)


def _argv(root: Path, out: Path, *extra: str) -> list[str]:
    return [str(root), *RECIPE, *TINY_MODEL, *FAST, "-b", "8", "--epochs", "1", "--output", str(out), *extra]


def _weights(path: Path, key: str = "state_dict") -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)[key]


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


# ------------------------------------------------------------------------------------------ one epoch
@pytest.fixture(scope="module")
def one_epoch(root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("run") / "one"
    return train.main(_argv(root, out, "--model-ema", "--model-ema-decay", "0.5"))


def test_one_epoch_writes_records_and_checkpoints(one_epoch: dict) -> None:
    out = Path(one_epoch["output_dir"])
    for name in (
        "last.pth.tar",
        "best.pth.tar",
        "metrics.json",
        "metrics.csv",
        "curves.png",
        "log.txt",
        "best_weights.safetensors",
        "best_weights.safetensors.json",
    ):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*tmp*")), "no temporary files are left behind"
    records = json.loads((out / "metrics.json").read_text())
    assert len(records["epochs"]) == 1 and records["epochs"][0] == pytest.approx(one_epoch["metrics"])
    assert {"epoch", "train_loss", "lr", "eval_loss", "eval_top1", "eval_top5", "ema_eval_top1"} <= records[
        "epochs"
    ][0].keys()
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    log = (out / "log.txt").read_text()
    assert "step 2/4" in log and "img/s" in log and "eta" in log and "lr" in log
    assert one_epoch["num_classes"] == 4 and 0 <= one_epoch["metrics"]["eval_top1"] <= 100
    ckpt = torch.load(out / "last.pth.tar", weights_only=True)
    assert {"optimizer", "scheduler", "rng", "state_dict_ema", "epoch"} <= ckpt.keys() and ckpt["epoch"] == 1


def test_checkpoints_load_through_timm_and_the_backbone_loader(one_epoch: dict, tmp_path: Path) -> None:
    out = Path(one_epoch["output_dir"])
    kwargs = dict(depths=(1, 1, 1, 1), dims=(16, 24, 32, 48))
    raw = _weights(out / "last.pth.tar")
    ema = _weights(out / "last.pth.tar", "state_dict_ema")
    for path in (out / "last.pth.tar", out / "best_weights.safetensors"):
        model = timm.create_model(
            "parcnetv2_xt",
            pretrained=True,
            **kwargs,
            pretrained_cfg_overlay=dict(file=str(path), num_classes=4),
        )
        # timm prefers EMA weights; the exported file holds the EMA weights of a --model-ema run
        assert _max_diff(model.state_dict(), ema) == 0
    for suffix, use_ema in ((".pth", False), (".safetensors", True)):
        path = export.main(
            [str(out / "last.pth.tar"), str(tmp_path / f"w{suffix}"), *(["--ema"] if use_ema else [])]
        )
        model = timm.create_model("parcnetv2_xt", num_classes=4, **kwargs)
        load_checkpoint_into(model, path)
        assert _max_diff(model.state_dict(), ema if use_ema else raw) == 0
    backbone = timm.create_model("parcnetv2_xt", num_classes=0, **kwargs)
    load_checkpoint_into(
        backbone, export.main([str(out / "best.pth.tar"), str(tmp_path / "b.pth"), "--no-head"])
    )


def test_validate_matches_training_eval_and_tabulates_sizes(
    one_epoch: dict, root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = Path(one_epoch["output_dir"])
    result = validate.main(
        [
            str(root),
            "--checkpoint",
            str(out / "last.pth.tar"),
            "-b",
            "5",
            "-j",
            "0",
            "--eval-sizes",
            "32",
            "40",
            "--results-file",
            str(tmp_path / "r.json"),
        ]
    )
    assert [r["input_size"] for r in result["results"]] == [[3, 32, 32], [3, 40, 40]]
    assert result["results"][0]["crop_pct"] == 1.0 and result["results"][0]["images"] == 12
    assert result["top1"] == pytest.approx(one_epoch["metrics"]["eval_top1"])
    assert result["loss"] == pytest.approx(one_epoch["metrics"]["eval_loss"], rel=1e-5)
    assert "| input | crop_pct | top-1 (%)" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["results"][1]["input_size"] == [3, 40, 40]
    ema = validate.main([str(root), "--checkpoint", str(out / "best_weights.safetensors"), "-j", "0"])
    assert ema["model"] == "parcnetv2_xt" and ema["results"][0]["input_size"] == [3, 32, 32]
    assert ema["top1"] == pytest.approx(one_epoch["metrics"]["ema_eval_top1"])
    # timm's size options, and the split folder itself as DATA_PATH: the same numbers
    for argv in (["--img-size", "32"], ["--input-size", "3", "32", "32"], ["--num-classes", "4"]):
        same = validate.main([str(root / "val"), "--checkpoint", str(out / "last.pth.tar"), "-j", "0", *argv])
        assert same["results"][0]["input_size"] == [3, 32, 32]
        assert same["top1"] == pytest.approx(result["top1"])
        assert same["loss"] == pytest.approx(result["loss"], rel=1e-6)


# ------------------------------------------------------------------------------------- timm model folders
def test_the_run_folder_holds_a_timm_model_folder_of_the_best_weights(one_epoch: dict, root: Path) -> None:
    out = Path(one_epoch["output_dir"])
    folder = out / "best_model"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "parcnetv2_xt" and config["num_classes"] == 4
    assert config["label_names"] == sorted(SPEC.classes)
    assert (
        config["pretrained_cfg"]["input_size"] == [3, 32, 32] and config["pretrained_cfg"]["crop_pct"] == 1.0
    )
    model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    reference = timm.create_model("parcnetv2_xt", num_classes=4, depths=(1, 1, 1, 1), dims=(16, 24, 32, 48))
    load_checkpoint_into(reference, out / "best_weights.safetensors")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), reference.eval()(x)), "the best (EMA) weights, the same outputs"
    assert timm.data.resolve_data_config(model=model)["input_size"] == (3, 32, 32)
    by_folder = validate.main([str(root), "--checkpoint", str(folder), "-j", "0"])
    assert by_folder["model"] == "parcnetv2_xt" and by_folder["results"][0]["input_size"] == [3, 32, 32]
    assert by_folder["top1"] == pytest.approx(one_epoch["metrics"]["ema_eval_top1"])


def test_export_writes_a_timm_model_folder_for_any_checkpoint(one_epoch: dict, tmp_path: Path) -> None:
    last = Path(one_epoch["output_dir"]) / "last.pth.tar"
    x = torch.randn(1, 3, 40, 48)
    for use_ema, key in ((False, "state_dict"), (True, "state_dict_ema")):
        folder = export.main([str(last), str(tmp_path / f"model_{key}"), *(["--ema"] if use_ema else [])])
        model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
        assert _max_diff(model.state_dict(), _weights(last, key)) == 0
        reference = timm.create_model(
            "parcnetv2_xt", num_classes=4, depths=(1, 1, 1, 1), dims=(16, 24, 32, 48)
        )
        reference.load_state_dict(_weights(last, key))
        with torch.no_grad():
            assert torch.equal(model(x), reference.eval()(x))
    again = export.main([str(last), str(tmp_path / "model_state_dict")])  # a previous export: replaced
    assert sorted(p.name for p in again.iterdir()) == ["config.json", "model.safetensors"]
    backbone = export.main([str(last), str(tmp_path / "backbone"), "--no-head"])
    assert timm.create_model(f"local-dir:{backbone}", pretrained=True).num_classes == 0
    plain = export.main([str(last), str(tmp_path / "plain.pth")])
    Path(f"{plain}.json").unlink()
    with pytest.raises(CheckpointError, match="pass --model"):
        export.main([str(plain), str(tmp_path / "unnamed")])
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(WriteError, match="holds other things"):
        export.main([str(last), str(tmp_path / "notes")])
    with pytest.raises(ValueError, match=r"ends in \.bin"):
        export.main([str(last), str(tmp_path / "w.bin")])


# ----------------------------------------------------------------------------------- acceptance: validate
def test_validate_a_split_folder_with_timm_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``validate DATA/val --model parcnetv2_xt --num-classes 2 --checkpoint CKPT --input-size 3 64 64``
    evaluates at 64x64."""
    spec = builtin_data.ClsSpec(
        seed=2, image_size=64, train_per_class=1, val_per_class=2, classes=("circle", "star")
    )
    root = builtin_data.generate(tmp_path / "data", spec)
    checkpoint = tmp_path / "xt.pth"
    torch.save(timm.create_model("parcnetv2_xt", num_classes=2).state_dict(), checkpoint)
    shapes = []
    real_create = validate.create_classifier

    def recording_create(*args, **kwargs):
        model = real_create(*args, **kwargs)
        model.register_forward_pre_hook(lambda module, inputs: shapes.append(tuple(inputs[0].shape)))
        return model

    monkeypatch.setattr(validate, "create_classifier", recording_create)
    argv = ["--model", "parcnetv2_xt", "--num-classes", "2", "--checkpoint", str(checkpoint), "-j", "0"]
    result = validate.main([str(root / "val"), *argv, "--input-size", "3", "64", "64"])
    assert result["results"][0]["input_size"] == [3, 64, 64] and result["results"][0]["images"] == 4
    assert shapes == [(4, 3, 64, 64)] and result["data"] == str(root / "val")
    with pytest.raises(DataError, match="--num-classes 2 but .* has 3 class folders"):
        three = builtin_data.ClsSpec(
            seed=2, image_size=64, train_per_class=1, val_per_class=1, classes=("circle", "star", "cross")
        )
        validate.main([str(builtin_data.generate(tmp_path / "three", three)), *argv])


# ------------------------------------------------------------------------------------------ resume
def test_resume_equals_uninterrupted(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """2 epochs straight == 1 epoch, crash, --resume, 1 epoch (augmentation, mixup, drop path, EMA on)."""
    extra = ["--epochs", "2", "--drop-path", "0.1", "--model-ema", "--workers", "1", "--no-export"]
    straight = train.main(_argv(root, tmp_path / "straight", *extra))

    real_epoch = train.train_one_epoch

    def crash_in_second_epoch(*args, **kwargs):
        if args[3] == 1:  # epoch index
            raise RuntimeError("simulated crash")
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train, "train_one_epoch", crash_in_second_epoch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train.main(_argv(root, tmp_path / "resumed", *extra))
    monkeypatch.setattr(train, "train_one_epoch", real_epoch)
    resumed = train.main(
        _argv(root, tmp_path / "resumed", *extra, "--resume", str(tmp_path / "resumed" / "last.pth.tar"))
    )

    a, b = (
        torch.load(p / "last.pth.tar", weights_only=True)
        for p in (tmp_path / "straight", tmp_path / "resumed")
    )
    assert a["epoch"] == b["epoch"] == 2 and a["num_updates"] == b["num_updates"]
    assert _max_diff(a["state_dict"], b["state_dict"]) <= 1e-6
    assert _max_diff(a["state_dict_ema"], b["state_dict_ema"]) <= 1e-6
    assert [h["eval_top1"] for h in straight["history"]] == [h["eval_top1"] for h in resumed["history"]]
    assert a["optimizer"]["state"][0]["step"] == b["optimizer"]["state"][0]["step"]


def test_amp_float16_saves_and_restores_the_loss_scaler(root: Path, tmp_path: Path) -> None:
    argv = _argv(root, tmp_path / "amp", "--amp", "--amp-dtype", "float16", "--no-export")
    train.main(argv)
    assert "scale" in torch.load(tmp_path / "amp" / "last.pth.tar", weights_only=True)["amp_scaler"]
    resumed = train.main([*argv, "--epochs", "2", "--resume", str(tmp_path / "amp" / "last.pth.tar")])
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]


# ------------------------------------------------------------------------------------------ accumulation
def test_accumulation_matches_larger_batch(root: Path, tmp_path: Path) -> None:
    """Batch 4 x 2 accumulation steps == batch 8 (no augmentation, mixup or stochastic depth).

    SGD, not AdamW: Adam's update ignores the gradient's scale, so it would hide a missing 1/steps.
    """
    plain = [
        "--no-aug",
        "--reprob",
        "0",
        "--mixup",
        "0",
        "--cutmix",
        "0",
        "--drop-path",
        "0",
        "--no-export",
        "--opt",
        "sgd",
        "--lr",
        "0.5",
    ]
    big = train.main(_argv(root, tmp_path / "big", *plain))
    accum = train.main([*_argv(root, tmp_path / "accum", *plain, "--grad-accum-steps", "2"), "-b", "4"])
    a, b = _weights(tmp_path / "big" / "last.pth.tar"), _weights(tmp_path / "accum" / "last.pth.tar")
    start = train.create_classifier(
        "parcnetv2_xt", 4, model_kwargs=dict(depths=(1, 1, 1, 1), dims=(16, 24, 32, 48))
    )
    assert big["history"][-1]["updates"] == accum["history"][-1]["updates"] == 4
    assert _max_diff(a, b) < 1e-6 < _max_diff(a, start.state_dict()) / 1e3, "same update, and a real one"
    assert big["metrics"]["lr"] == accum["metrics"]["lr"]


# ------------------------------------------------------------------------------------------ torchrun
PROBE = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from parcnetv2.classification import data, train

    seen, epoch = {"train": {}, "val": {}}, [0]
    rank = int(os.environ["RANK"])
    original = data.CheckedImageDataset.__getitem__

    def recording_getitem(self, index):
        split = "train" if "train" in str(self.root) else "val"
        seen[split].setdefault(str(epoch[0]), []).append(self.samples[index][0])
        return original(self, index)

    data.CheckedImageDataset.__getitem__ = recording_getitem
    real_epoch = train.train_one_epoch

    def epoch_and_weights(parts, *args, **kwargs):
        epoch[0] = args[2]
        out = real_epoch(parts, *args, **kwargs)
        torch.save(parts.model.module.state_dict(), os.path.join(sys.argv[1], f"w{rank}_e{epoch[0]}.pt"))
        return out

    train.train_one_epoch = epoch_and_weights
    result = train.main(sys.argv[2:])
    with open(os.path.join(sys.argv[1], f"seen{rank}.json"), "w") as f:
        json.dump({"seen": seen, "top1": result["metrics"]["eval_top1"]}, f)
    """
)


@pytest.mark.slow  # two torchrun processes: ~20 s
def test_torchrun_two_processes_gloo(root: Path, tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    argv = _argv(
        root, tmp_path / "ddp", "--epochs", "2", "-b", "4", "--grad-accum-steps", "2", "--device", "cpu"
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(probe),
        str(tmp_path),
        *argv,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    seen = [json.loads((tmp_path / f"seen{r}.json").read_text()) for r in range(2)]
    for epoch in ("0", "1"):
        shards = [set(s["seen"]["train"][epoch]) for s in seen]
        assert len(shards[0]) == len(shards[1]) == 16 and not shards[0] & shards[1], "disjoint train shards"
        val = [s["seen"]["val"][epoch] for s in seen]
        assert not set(val[0]) & set(val[1]) and len(val[0]) + len(val[1]) == 12, "val split once, no padding"
        w0, w1 = (torch.load(tmp_path / f"w{r}_e{epoch}.pt", weights_only=True) for r in range(2))
        assert _max_diff(w0, w1) == 0, "ranks hold identical weights"
    assert seen[0]["seen"]["train"]["0"] != seen[0]["seen"]["train"]["1"], "reshuffled per epoch"
    assert seen[0]["top1"] == seen[1]["top1"], "metrics are reduced over ranks"
    ckpt = torch.load(tmp_path / "ddp" / "last.pth.tar", weights_only=True)
    assert len(ckpt["rng"]) == 2 and ckpt["num_updates"] == 4
    assert _max_diff(ckpt["state_dict"], torch.load(tmp_path / "w0_e1.pt", weights_only=True)) == 0


# ------------------------------------------------------------------------------------------ bad input
def test_bad_data_gives_clear_errors(root: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere is missing: .*python -m parcnetv2.builtin_data cls"):
        train.main(_argv(tmp_path / "nowhere", tmp_path / "o1"))
    assert not (tmp_path / "o1").exists(), "a missing data root creates no run folder"
    no_val = tmp_path / "no_val"
    (no_val / "train").parent.mkdir()
    (no_val / "train").symlink_to(root / "train")
    with pytest.raises(DataError, match="expected a 'val' folder"):
        train.main(_argv(no_val, tmp_path / "o2"))
    broken = Path(shutil.copytree(root, tmp_path / "broken"))
    bad = broken / "train" / "square" / "square_00003.jpg"
    bad.write_bytes(bad.read_bytes()[:300])  # a JPEG header, truncated: only decoding finds it
    with pytest.raises(
        DataError, match=r"1 training images failed to decode, more than --max-unreadable 0\.01"
    ):
        train.main(_argv(broken, tmp_path / "o3"))  # 1 of 32 images is over 1 %
    bad.write_bytes(b"not a jpeg")  # the scan finds this one before any training
    with pytest.raises(DataError, match=r"square_00003\.jpg is not an image"):
        train.main(_argv(broken, tmp_path / "o3b"))
    assert not (tmp_path / "o3b" / "last.pth.tar").exists()
    with pytest.raises(ValueError, match="no --model: give one"):
        train.main([str(root), "--output", str(tmp_path / "o5")])
    with pytest.raises(DataError, match="--num-classes 5"):
        train.main(_argv(root, tmp_path / "o4", "--num-classes", "5"))


def test_bad_checkpoints_give_clear_errors(one_epoch: dict, root: Path, tmp_path: Path) -> None:
    out = Path(one_epoch["output_dir"])
    last = out / "last.pth.tar"
    with pytest.raises(CheckpointError, match="for model 'parcnetv2_xt', not 'parcnetv2_tiny'"):
        train.main([*_argv(root, tmp_path / "r", "--resume", str(last)), "--model", "parcnetv2_tiny"])
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        train.main(_argv(root, tmp_path / "r", "--resume", str(out / "best_weights.safetensors")))
    plain = export.main([str(last), str(tmp_path / "plain.pth")])  # raw weights, no EMA
    with pytest.raises(CheckpointError, match="no EMA"):
        validate.main([str(root), "--checkpoint", str(plain), "--use-ema", "-j", "0"])
    Path(f"{plain}.json").unlink()
    with pytest.raises(CheckpointError, match="does not record its model"):
        validate.main([str(root), "--checkpoint", str(plain), "-j", "0"])
    renamed = Path(shutil.copytree(root, tmp_path / "renamed"))
    for split in ("train", "val"):
        (renamed / split / "circle").rename(renamed / split / "oval")
    with pytest.raises(DataError, match="differ from the classes"):
        validate.main([str(renamed), "--checkpoint", str(last), "-j", "0"])


# ------------------------------------------------------------------------------------------ acceptance
PUBLISHED = [
    "--model", "parcnetv2_tiny", "--opt", "adamw", "--lr", "4e-3", "--warmup-epochs", "20",
    "-b", "128", "--grad-accum-steps", "4", "--drop-path", "0.2", "--head-dropout", "0.0",
]  # fmt: skip


@pytest.mark.slow  # two torchrun processes: ~20 s
def test_published_command_under_torchrun_feeds_timm(root: Path, tmp_path: Path) -> None:
    """The README's command line (the recipe file and its flags; then a tiny batch, 1 epoch, small images)
    under torchrun; its checkpoint loads through timm's ``pretrained_cfg_overlay``."""
    out = tmp_path / "published"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    tiny = ["-b", "2", "--epochs", "1", "--img-size", "32", "--workers", "0", "--output", str(out)]
    cmd = [*torchrun, "-m", "parcnetv2.classification.train", str(root), *RECIPE, *PUBLISHED, *tiny]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpt = torch.load(out / "last.pth.tar", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["args"]["grad_accum_steps"] == 4
    model = timm.create_model(
        "parcnetv2_tiny", pretrained=True, pretrained_cfg_overlay=dict(file=str(out / "last.pth.tar"))
    )
    assert model.num_classes == len(SPEC.classes)
    assert _max_diff(model.state_dict(), ckpt["state_dict"]) == 0
