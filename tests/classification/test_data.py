"""Classification helpers (no training): folder checks and their record, datasets, loaders, checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from parcnetv2 import builtin_data, fileio
from parcnetv2.classification import args, checkpointing, data, export, folder_scan
from parcnetv2.classification.distributed import DistInfo
from parcnetv2.classification.engine import accumulation_groups

CPU = DistInfo(torch.device("cpu"))
TINY = builtin_data.ClsSpec(
    seed=3, image_size=32, train_per_class=4, val_per_class=2, classes=("circle", "stripes", "star")
)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return builtin_data.generate(tmp_path_factory.mktemp("cls") / "tiny", TINY)


@pytest.fixture
def tiny_copy(tiny_root: Path, tmp_path: Path) -> Path:
    """A private copy to break."""
    return Path(shutil.copytree(tiny_root, tmp_path / "copy"))


# ------------------------------------------------------------------------------------------ folder checks
def test_data_path_is_the_root_or_the_split_folder(tiny_root: Path, tmp_path: Path) -> None:
    by_root = folder_scan.scan_split_or_folder(tiny_root, "val")
    assert folder_scan.scan_split_or_folder(tiny_root / "val", "val") == by_root
    assert folder_scan.scan_split_or_folder(tiny_root / "train", "val").root == tiny_root / "train"
    only_train = tmp_path / "only_train"
    shutil.copytree(tiny_root / "train", only_train / "train")
    with pytest.raises(folder_scan.DataError, match=r"expected a 'val' folder .*found: \['train'\]"):
        folder_scan.scan_split_or_folder(only_train, "val")
    with pytest.raises(folder_scan.DataError, match="expected a 'val' folder"):
        folder_scan.scan_split_or_folder(tmp_path / "nowhere", "val")


def test_missing_and_empty_folders_are_named(tiny_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(folder_scan.DataError, match="expected a 'val' folder"):
        folder_scan.scan_split(tmp_path, "val")
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    with pytest.raises(folder_scan.DataError, match="no class folders"):
        folder_scan.scan_split(empty, "train")
    (tiny_copy / "train" / "hollow").mkdir()
    with pytest.raises(folder_scan.DataError, match=r"hold no images: \['hollow'\]"):
        folder_scan.scan_split(tiny_copy, "train")


def test_stray_and_nested_images_are_errors(tiny_copy: Path) -> None:
    one = next((tiny_copy / "val" / "star").glob("*.jpg"))
    shutil.copy(one, tiny_copy / "val" / "loose.jpg")
    with pytest.raises(folder_scan.DataError, match="outside class folders"):
        folder_scan.scan_split(tiny_copy, "val")
    (tiny_copy / "val" / "loose.jpg").unlink()
    (tiny_copy / "val" / "star" / "sub").mkdir()
    shutil.copy(one, tiny_copy / "val" / "star" / "sub" / "x.jpg")
    with pytest.raises(folder_scan.DataError, match="not sub-folders"):
        folder_scan.scan_split(tiny_copy, "val")


def test_class_lists_must_match(tiny_copy: Path) -> None:
    shutil.rmtree(tiny_copy / "val" / "star")
    train, val = folder_scan.scan_split(tiny_copy, "train"), folder_scan.scan_split(tiny_copy, "val")
    with pytest.raises(folder_scan.DataError, match=r"only in train \['star'\]"):
        folder_scan.check_same_classes(train, val)


@pytest.mark.parametrize(
    "content, reason",
    [(b"", r"empty \(0 bytes\)"), (b"<html>not found</html>", r"not an image \(starts with b'<html>no'\)")],
)
def test_scan_finds_empty_and_non_image_files(tiny_copy: Path, content: bytes, reason: str) -> None:
    bad = tiny_copy / "train" / "star" / "star_00002.jpg"
    bad.write_bytes(content)
    with pytest.raises(
        folder_scan.DataError,
        match=rf"1 file\(s\) in .*train are no readable images: .*star_00002\.jpg is {reason}",
    ):
        folder_scan.scan_split(tiny_copy, "train")
    folder_scan.scan_split(tiny_copy, "val")  # the other split is fine


def test_scan_accepts_other_formats_under_image_names(tiny_copy: Path) -> None:
    png = tiny_copy / "train" / "star" / "star_00002.jpg"
    Image.open(png).save(png.with_suffix(".png"))
    png.unlink()
    Image.new("RGB", (32, 32)).save(
        tiny_copy / "train" / "star" / "odd.jpg", format="PPM"
    )  # Pillow-identified
    assert folder_scan.scan_split(tiny_copy, "train").counts == (4, 5, 4)


def test_unreadable_image_names_its_path_or_is_skipped(tiny_copy: Path, caplog) -> None:
    bad = tiny_copy / "train" / "circle" / "circle_00001.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated behind a valid header: the scan passes it
    split = folder_scan.scan_split(tiny_copy, "train")
    dataset = data.CheckedImageDataset(split)
    index = [i for i, (p, _) in enumerate(dataset.samples) if p == str(bad)][0]
    with pytest.raises(data.UnreadableImageError, match="circle_00001.jpg"):
        dataset[index]
    image, target = dataset[0]
    assert isinstance(image, Image.Image) and target == 0
    skipping = data.CheckedImageDataset(split, skip_unreadable=True)
    caplog.set_level("WARNING", logger="parcnetv2.classification")
    data.LOGGER.propagate = True  # into caplog
    try:
        image, target = skipping[index]
    finally:
        data.LOGGER.propagate = False
    assert skipping.unreadable.value == 1 and target == 0, "the next readable image of the class stands in"
    assert np.array_equal(np.asarray(image), np.asarray(skipping[index + 1][0]))
    assert "skipped: cannot read image" in caplog.text and "circle_00001.jpg" in caplog.text


def test_the_check_runs_once_per_listing(tiny_copy: Path, tmp_path: Path, monkeypatch) -> None:
    """A run folder records the checked listings: a resume lists the folder but opens no file; a changed
    listing is checked again."""
    opened = []
    real = folder_scan._not_an_image
    monkeypatch.setattr(folder_scan, "_not_an_image", lambda path: opened.append(path) or real(path))
    single = CPU
    first = folder_scan.scan_splits(tiny_copy, ["train", "val"], single, tmp_path)
    assert len(opened) == 18 and (tmp_path / "data_check.json").is_file()
    again = folder_scan.scan_splits(tiny_copy, ["train", "val"], single, tmp_path)
    assert again == first and len(opened) == 18, "the same listing: no file opened"
    assert set(json.loads((tmp_path / "data_check.json").read_text())) == {s.listing_key for s in first}
    (tiny_copy / "val" / "star" / "star_00001.jpg").write_bytes(b"<html>")
    (tiny_copy / "val" / "star" / "star_00001.jpg").rename(tiny_copy / "val" / "star" / "new.jpg")
    with pytest.raises(folder_scan.DataError, match=r"new\.jpg is not an image"):
        folder_scan.scan_splits(tiny_copy, ["train", "val"], single, tmp_path)
    assert len(opened) == 18 + 6, "train's listing is recorded, val's changed: only val is opened"


def test_a_missing_root_is_refused_with_the_command(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"nowhere is missing: .*python -m parcnetv2.builtin_data cls --out"
    ):
        folder_scan.resolve_data_root(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists(), "nothing is generated"


def test_samples_are_in_timms_order(tiny_root: Path) -> None:
    from timm.data.readers.reader_image_folder import find_images_and_targets

    split = folder_scan.scan_split(tiny_root, "train")
    samples, _ = find_images_and_targets(str(tiny_root / "train"), class_to_idx=split.class_to_idx)
    assert list(split.samples) == [(p, t) for p, t in samples]


def test_augmentation_is_a_function_of_seed_epoch_and_index(tiny_root: Path) -> None:
    """The same sample gets the same augmentation in any order or process; other epochs get other draws;
    the caller's random streams are untouched."""
    dataset = data.CheckedImageDataset(folder_scan.scan_split(tiny_root, "train"))
    cfg = {"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3}
    data.build_train_loader(dataset, _train_args(aa="rand-m9-mstd0.5-inc1"), cfg, CPU)
    before = torch.get_rng_state()
    forward = [np.asarray(dataset[i][0]) for i in range(6)]
    backward = [np.asarray(dataset[i][0]) for i in reversed(range(6))][::-1]
    assert all(np.array_equal(a, b) for a, b in zip(forward, backward, strict=True))
    assert torch.equal(torch.get_rng_state(), before)
    dataset.epoch = 1
    assert not all(np.array_equal(a, np.asarray(dataset[i][0])) for i, a in enumerate(forward))


def test_a_resumed_epoch_continues_the_same_order(tiny_root: Path) -> None:
    dataset = data.CheckedImageDataset(folder_scan.scan_split(tiny_root, "train"))
    cfg = {"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3}
    loader = data.build_train_loader(dataset, _train_args(), cfg, CPU)
    data.set_epoch(loader, 3)
    full = [(x.clone(), y.clone()) for x, y in loader]
    data.set_epoch(loader, 3, start_batch=1)
    rest = list(loader)
    assert len(full) == 3 and len(rest) == len(loader) == 2
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full[1:], rest, strict=True)
    )


# ------------------------------------------------------------------------------------------ loaders
def _train_args(**overrides) -> object:
    parsed = args.parse_train_args(
        ["DATA", "--model", "parcnetv2_xt", "--img-size", "32", "-b", "4", "--workers", "0"]
    )
    for key, value in overrides.items():
        setattr(parsed, key, value)
    return parsed


def test_train_loader_shards_are_disjoint_and_epoch_seeded(tiny_root: Path) -> None:
    split = folder_scan.scan_split(tiny_root, "train")
    cfg = {"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3}
    shards = []
    for rank in range(2):
        dataset = data.CheckedImageDataset(split)
        loader = data.build_train_loader(
            dataset, _train_args(), cfg, DistInfo(torch.device("cpu"), rank, rank, 2)
        )
        data.set_epoch(loader, 0)
        shards.append(list(loader.sampler))
        x, y = next(iter(loader))
        assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (4,)
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) == len(shards[1]) == 6
    loader.sampler.set_epoch(1)
    assert list(loader.sampler) != shards[1]


def test_randaugment_posterize_survives_zero_bits(tiny_root: Path) -> None:
    from timm.data import auto_augment

    dataset = data.CheckedImageDataset(folder_scan.scan_split(tiny_root, "train"))
    cfg = {"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3}
    data.build_train_loader(dataset, _train_args(aa="rand-m9-mstd0.5-inc1"), cfg, CPU)
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
    with pytest.raises(export.CheckpointError, match="no EMA"):
        export.export_weights(ckpt, tmp_path / "w.safetensors", use_ema=True)
    with pytest.raises(ValueError, match="must end in"):
        export.export_weights(ckpt, tmp_path / "w.bin")
    out = export.export_weights(ckpt, tmp_path / "w.pth", drop_head=True)
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
    from timm.optim import create_optimizer_v2

    from parcnetv2.classification.modeling import create_classifier

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


def test_a_worker_error_is_one_line(tiny_copy: Path) -> None:
    """When no image near a broken one decodes, the worker's error reaches the trainer as its own line,
    without the worker's traceback that torch's loader wraps into it."""
    for path in (tiny_copy / "train").rglob("*.jpg"):
        path.write_bytes(path.read_bytes()[:200])
    dataset = data.CheckedImageDataset(folder_scan.scan_split(tiny_copy, "train"), skip_unreadable=True)
    cfg = {"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3}
    loader = data.build_train_loader(dataset, _train_args(workers=1), cfg, CPU)
    with pytest.raises(folder_scan.DataError) as err, data.worker_errors_in_one_line():
        next(iter(loader))
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    assert "fail to decode: is the data intact?" in message and ".jpg and the 11 images after it" in message
