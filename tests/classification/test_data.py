"""Classification helpers (no training): built-in data, folder checks, loaders, options, checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from parcnetv2.classification import args, checkpointing, data, synthetic
from parcnetv2.classification.engine import accumulation_groups
from PIL import Image

from parcnetv2 import fileio

TINY = synthetic.SyntheticSpec(
    seed=3, image_size=32, train_per_class=4, val_per_class=2, classes=("circle", "stripes", "star")
)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.generate_dataset(tmp_path_factory.mktemp("cls") / "tiny", TINY)


@pytest.fixture
def tiny_copy(tiny_root: Path, tmp_path: Path) -> Path:
    """A private copy to break."""
    return Path(shutil.copytree(tiny_root, tmp_path / "copy"))


# ------------------------------------------------------------------------------------------ built-in data
def test_render_is_deterministic_and_sized() -> None:
    for name in synthetic.CLASSES:
        a = synthetic.render(name, np.random.default_rng([1, 2, 3]), 64)
        b = synthetic.render(name, np.random.default_rng([1, 2, 3]), 64)
        assert a.size == (64, 64) and a.mode == "RGB"
        assert np.array_equal(np.asarray(a), np.asarray(b))
    c = synthetic.render("circle", np.random.default_rng([1, 2, 4]), 64)
    assert not np.array_equal(
        np.asarray(c), np.asarray(synthetic.render("circle", np.random.default_rng([1, 2, 3]), 64))
    )


def test_generated_set_layout_and_reproducibility(tiny_root: Path, tmp_path: Path) -> None:
    train = data.scan_split(tiny_root, "train")
    val = data.scan_split(tiny_root, "val")
    assert train.classes == ("circle", "star", "stripes") == val.classes
    assert train.counts == (4, 4, 4) and val.counts == (2, 2, 2)
    again = synthetic.generate_dataset(tmp_path / "again", TINY)
    for path in sorted(tiny_root.rglob("*.jpg")):
        assert path.read_bytes() == (again / path.relative_to(tiny_root)).read_bytes()
    assert not list(tmp_path.glob(".again.tmp-*")), "the temporary folder is cleaned up"


def test_ensure_reuses_and_refuses_other_sets(tiny_root: Path, tmp_path: Path) -> None:
    assert synthetic.ensure_synthetic_dataset(tiny_root, TINY, log=lambda _: None) == tiny_root
    with pytest.raises(FileExistsError, match="not the requested built-in data set"):
        synthetic.ensure_synthetic_dataset(tiny_root, synthetic.SyntheticSpec(seed=4), log=lambda _: None)
    (tmp_path / "other").mkdir()
    with pytest.raises(FileExistsError):
        synthetic.ensure_synthetic_dataset(tmp_path / "other", TINY, log=lambda _: None)
    with pytest.raises(ValueError, match="image_size"):
        synthetic.SyntheticSpec(image_size=16)


# ------------------------------------------------------------------------------------------ folder checks
def test_data_path_is_the_root_or_the_split_folder(tiny_root: Path, tmp_path: Path) -> None:
    by_root = data.scan_split_or_folder(tiny_root, "val")
    assert data.scan_split_or_folder(tiny_root / "val", "val") == by_root
    assert data.scan_split_or_folder(tiny_root / "train", "val").root == tiny_root / "train"
    only_train = tmp_path / "only_train"
    shutil.copytree(tiny_root / "train", only_train / "train")
    with pytest.raises(data.DataError, match=r"expected a 'val' folder .*found: \['train'\]"):
        data.scan_split_or_folder(only_train, "val")
    with pytest.raises(data.DataError, match="expected a 'val' folder"):
        data.scan_split_or_folder(tmp_path / "nowhere", "val")


def test_missing_and_empty_folders_are_named(tiny_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(data.DataError, match="expected a 'val' folder"):
        data.scan_split(tmp_path, "val")
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    with pytest.raises(data.DataError, match="no class folders"):
        data.scan_split(empty, "train")
    (tiny_copy / "train" / "hollow").mkdir()
    with pytest.raises(data.DataError, match=r"hold no images: \['hollow'\]"):
        data.scan_split(tiny_copy, "train")


def test_stray_and_nested_images_are_errors(tiny_copy: Path) -> None:
    one = next((tiny_copy / "val" / "star").glob("*.jpg"))
    shutil.copy(one, tiny_copy / "val" / "loose.jpg")
    with pytest.raises(data.DataError, match="outside class folders"):
        data.scan_split(tiny_copy, "val")
    (tiny_copy / "val" / "loose.jpg").unlink()
    (tiny_copy / "val" / "star" / "sub").mkdir()
    shutil.copy(one, tiny_copy / "val" / "star" / "sub" / "x.jpg")
    with pytest.raises(data.DataError, match="not sub-folders"):
        data.scan_split(tiny_copy, "val")


def test_class_lists_must_match(tiny_copy: Path) -> None:
    shutil.rmtree(tiny_copy / "val" / "star")
    train, val = data.scan_split(tiny_copy, "train"), data.scan_split(tiny_copy, "val")
    with pytest.raises(data.DataError, match=r"only in train \['star'\]"):
        data.check_same_classes(train, val)


@pytest.mark.parametrize(
    "content, reason",
    [(b"", r"empty \(0 bytes\)"), (b"<html>not found</html>", r"not an image \(starts with b'<html>no'\)")],
)
def test_scan_finds_empty_and_non_image_files(tiny_copy: Path, content: bytes, reason: str) -> None:
    bad = tiny_copy / "train" / "star" / "star_00002.jpg"
    bad.write_bytes(content)
    with pytest.raises(
        data.DataError, match=rf"1 file\(s\) in .*train are no readable images: .*star_00002\.jpg is {reason}"
    ):
        data.scan_split(tiny_copy, "train")
    data.scan_split(tiny_copy, "val")  # the other split is fine


def test_scan_accepts_other_formats_under_image_names(tiny_copy: Path) -> None:
    png = tiny_copy / "train" / "star" / "star_00002.jpg"
    Image.open(png).save(png.with_suffix(".png"))
    png.unlink()
    Image.new("RGB", (32, 32)).save(
        tiny_copy / "train" / "star" / "odd.jpg", format="PPM"
    )  # Pillow-identified
    assert data.scan_split(tiny_copy, "train").counts == (4, 5, 4)


def test_unreadable_image_names_its_path(tiny_copy: Path) -> None:
    bad = tiny_copy / "train" / "circle" / "circle_00001.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    dataset = data.CheckedImageDataset(data.scan_split(tiny_copy, "train"))
    index = [i for i, (p, _) in enumerate(dataset.reader.samples) if p == str(bad)][0]
    with pytest.raises(data.UnreadableImageError, match="circle_00001.jpg"):
        dataset[index]
    image, target = dataset[0]
    assert isinstance(image, Image.Image) and target == 0


# ------------------------------------------------------------------------------------------ loaders
def _train_args(**overrides) -> object:
    parsed = args.parse_train_args(["DATA", "--img-size", "32", "-b", "4", "--workers", "0"])
    for key, value in overrides.items():
        setattr(parsed, key, value)
    return parsed


def test_train_loader_shards_are_disjoint_and_epoch_seeded(tiny_root: Path) -> None:
    split = data.scan_split(tiny_root, "train")
    cfg = {"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3}
    shards = []
    for rank in range(2):
        dataset = data.CheckedImageDataset(split)
        loader = data.build_train_loader(dataset, _train_args(), cfg, torch.device("cpu"), rank, 2)
        data.set_epoch(loader, 0, seed=42, rank=rank)
        shards.append(list(loader.sampler))
        x, y = next(iter(loader))
        assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (4,)
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) == len(shards[1]) == 6
    loader.sampler.set_epoch(1)
    assert list(loader.sampler) != shards[1]


def test_randaugment_posterize_survives_zero_bits(tiny_root: Path) -> None:
    from timm.data import auto_augment

    dataset = data.CheckedImageDataset(data.scan_split(tiny_root, "train"))
    cfg = {"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3}
    data.build_train_loader(dataset, _train_args(), cfg, torch.device("cpu"))
    stack, ops = [dataset.transform], []
    while stack:
        item = stack.pop()
        ops += [item] if isinstance(item, auto_augment.AugmentOp) else []
        stack += list(getattr(item, "transforms", None) or getattr(item, "ops", None) or [])
    posterize = [op for op in ops if "Posterize" in op.name]
    assert posterize and all(op.aug_fn is data._posterize_any_bits for op in posterize)
    img = Image.new("RGB", (8, 8), (200, 100, 50))
    assert np.asarray(data._posterize_any_bits(img, 0)).max() == 0
    assert np.asarray(data._posterize_any_bits(img, 1)).tolist()[0][0] == [128, 0, 0]


def test_eval_shards_cover_everything_once() -> None:
    shards = [list(data.ShardSampler(11, r, 3)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(11))


def test_input_size_forms_and_minimum() -> None:
    from parcnetv2.classification.modeling import create_classifier, data_config_for

    assert data.input_size_3d([64]) == (3, 64, 64) and data.input_size_3d([3, 48, 64]) == (3, 48, 64)
    model = create_classifier("parcnetv2_xt", 3, model_kwargs=dict(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32)))
    cfg = data_config_for(model, [64])
    assert cfg["crop_pct"] == 1.0 and cfg["interpolation"] == "bicubic", "ParCNetV2 evaluates at crop 1.0"
    with pytest.raises(ValueError, match="minimum 32x32"):
        data_config_for(model, [16])
    assert data_config_for(model, None)["input_size"] == (3, 224, 224), "None: the model's own size"
    assert data_config_for(model, [3, 48, 64])["input_size"] == (3, 48, 64)
    with pytest.raises(ValueError, match="unknown model"):
        create_classifier("parcnetv2_huge", 3)


def test_accumulation_groups() -> None:
    assert accumulation_groups(7, 3) == [3, 3, 3, 3, 3, 3, 1]
    assert accumulation_groups(6, 3) == [3] * 6 and accumulation_groups(4, 1) == [1] * 4
    with pytest.raises(ValueError):
        accumulation_groups(4, 0)


# ----------------------------------------------------------------------------------------- checkpoint helpers
def test_atomic_save_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "ck.pth"
    fileio.atomic_save({"a": torch.ones(2)}, target)

    def explode(tmp: str) -> None:
        Path(tmp).write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(fileio.WriteError, match=r"cannot write .*ck\.pth: RuntimeError: disk full"):
        fileio.atomic_write(target, explode)
    assert torch.load(target, weights_only=True)["a"].tolist() == [1.0, 1.0]
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pth"]
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C stays itself, and cleans up too
        fileio.atomic_write(target, lambda tmp: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pth"]


def test_rng_state_round_trip_is_weights_only_safe(tmp_path: Path) -> None:
    import random

    state = checkpointing.capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    fileio.atomic_save({"rng": state}, tmp_path / "rng.pth")
    checkpointing.restore_rng_state(torch.load(tmp_path / "rng.pth", weights_only=True)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_export_refuses_missing_ema_and_bad_suffix(tmp_path: Path) -> None:
    ckpt = {"state_dict": {"head.weight": torch.zeros(3, 4), "norm.weight": torch.ones(4)}, "args": {}}
    with pytest.raises(checkpointing.CheckpointError, match="no EMA"):
        checkpointing.export_weights(ckpt, tmp_path / "w.safetensors", use_ema=True)
    with pytest.raises(ValueError, match="must end in"):
        checkpointing.export_weights(ckpt, tmp_path / "w.bin")
    out = checkpointing.export_weights(ckpt, tmp_path / "w.pth", drop_head=True)
    assert list(torch.load(out, weights_only=True)) == ["norm.weight"]
    assert json.loads(Path(f"{out}.json").read_text())["num_classes"] == 0
    with pytest.raises(checkpointing.CheckpointError, match="not a training checkpoint"):
        checkpointing.read_training_checkpoint(out)


def test_progress_lines_and_terminal_bar(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from parcnetv2.classification import run_log

    logger = run_log.setup_logging(tmp_path, primary=True)
    progress = run_log.Progress(logger, total=4, interval=2, prefix="[train]")
    for step in range(1, 5):
        progress.update(step, {"loss": "1.0", "eta": "0:00:01"})
    progress.close()
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    bar = run_log.Progress(logger, total=3, interval=3, prefix="[bar]")
    assert bar.bar is not None
    for step in range(1, 4):
        bar.update(step, {"loss": "2.0"})
    bar.close()
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "[train] step 2/4 loss 1.0 eta 0:00:01",
        "[train] step 4/4 loss 1.0 eta 0:00:01",
        "[bar] step 3/3 loss 2.0",
    ]
    run_log.setup_logging(None, primary=True)  # close the file handler


def test_no_weight_decay_on_norms_biases_and_scales() -> None:
    from parcnetv2.classification.modeling import create_classifier
    from timm.optim import create_optimizer_v2

    model = create_classifier("parcnetv2_xt", 3, model_kwargs=dict(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32)))
    optimizer = create_optimizer_v2(model, opt="adamw", lr=4e-3, weight_decay=0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {g["weight_decay"]: {names[id(p)] for p in g["params"]} for g in optimizer.param_groups}
    assert all(
        n.endswith(("bias", "norm.weight", "norm1.weight", "norm2.weight", "scale")) or "norm" in n
        for n in decay[0.0]
    )
    assert "stages.2.0.res_scale1.scale" in decay[0.0] and "head.bias" in decay[0.0]
    assert all(model.get_parameter(n).ndim > 1 for n in decay[0.05])
