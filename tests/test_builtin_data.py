"""The built-in data module: determinism, disjoint splits, the manifest (reuse, refuse, regenerate a
half-written set), the shared categories, the annotations, and its one command line."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from parcnetv2 import builtin_data as bd

TINY = {
    "cls": bd.ClsSpec(seed=2, image_size=32, train_per_class=2, val_per_class=1),
    "coco": bd.CocoSpec(seed=2, num_train=3, num_val=2, min_size=(64, 64), max_size=(80, 96)),
    "ade": bd.AdeSpec(seed=2, num_train=3, num_val=2, min_size=(64, 64), max_size=(80, 96)),
}


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.*"))
    }


@pytest.mark.parametrize("task", sorted(TINY))
def test_same_seed_same_bytes_other_seed_other_images(task: str, tmp_path: Path) -> None:
    spec = TINY[task]
    a, b = bd.generate(tmp_path / "a", spec), bd.generate(tmp_path / "b", spec)
    assert _digest(a) == _digest(b) and len(_digest(a)) > 3
    other = bd.generate(tmp_path / "c", type(spec)(**{**spec.__dict__, "seed": 9}))
    images = [k for k in _digest(a) if k.endswith((".jpg", ".png")) and "annotations" not in k]
    assert any(_digest(a)[k] != _digest(other).get(k) for k in images)
    assert bd.read_manifest(a) == spec.to_json() and bd.read_manifest(a)["task"] == task
    assert not list(tmp_path.glob(".*.tmp-*")), "no temporary folder is left behind"


def test_validation_images_are_not_training_images(tmp_path: Path) -> None:
    root = bd.generate(
        tmp_path / "coco", bd.CocoSpec(seed=0, num_train=6, num_val=6, min_size=(64, 64), max_size=(64, 64))
    )
    train = {
        hashlib.sha256(np.asarray(Image.open(p)).tobytes()).hexdigest()
        for p in (root / "train").glob("*.png")
    }
    val = {
        hashlib.sha256(np.asarray(Image.open(p)).tobytes()).hexdigest() for p in (root / "val").glob("*.png")
    }
    assert len(train) == 6 and len(val) == 6 and not train & val


def test_ensure_reuses_a_finished_set_and_refuses_another(tmp_path: Path) -> None:
    root = tmp_path / "cls"
    messages: list[str] = []
    bd.ensure(root, TINY["cls"], log=messages.append)
    assert len(messages) == 1 and "generating" in messages[0]
    stamp = (root / bd.MANIFEST).stat().st_mtime_ns
    assert bd.ensure(root, TINY["cls"], log=messages.append) == root
    assert len(messages) == 1 and (root / bd.MANIFEST).stat().st_mtime_ns == stamp  # reused, not rewritten
    with pytest.raises(FileExistsError, match="not the requested built-in data set"):
        bd.ensure(root, bd.ClsSpec(seed=3, image_size=32, train_per_class=2, val_per_class=1), log=print)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not a data set")
    with pytest.raises(FileExistsError):
        bd.ensure(tmp_path / "mine", TINY["cls"], log=print)
    with pytest.raises(FileExistsError, match="not an empty folder"):
        bd.generate(tmp_path / "mine", TINY["cls"])


def test_a_half_written_set_is_regenerated(tmp_path: Path) -> None:
    """A generation killed half-way leaves only its temporary folder; the next run removes it and
    writes the set; a live writer's temporary folder is left alone."""
    script = (
        "import os, sys; from parcnetv2 import builtin_data as bd\n"
        "spec = bd.CocoSpec(seed=2, num_train=3, num_val=2, min_size=(64, 64), max_size=(80, 96))\n"
        "write = bd.CocoSpec.write\n"
        "def killed(self, root):\n"
        "    (root / 'train').mkdir(parents=True); (root / 'train' / '000000.png').write_bytes(b'half')\n"
        "    os._exit(9)\n"
        "bd.CocoSpec.write = killed\n"
        "bd.ensure(sys.argv[1], spec, log=lambda _: None)\n"
    )
    root = tmp_path / "coco"
    proc = subprocess.run([sys.executable, "-c", script, str(root)], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    leftovers = list(tmp_path.glob(".coco.tmp-*"))
    assert len(leftovers) == 1 and not root.exists()
    live = tmp_path / f".coco.tmp-{os.getpid()}-live"
    live.mkdir()
    messages: list[str] = []
    bd.ensure(root, TINY["coco"], log=messages.append)
    assert not leftovers[0].exists() and any("interrupted" in m for m in messages)
    assert live.is_dir(), "a temporary folder of a running writer is not ours to remove"
    assert bd.read_manifest(root) == TINY["coco"].to_json()
    assert Image.open(root / "train" / "000000.png").size[0] >= 64


def test_one_categories_list_for_all_three_sets(tmp_path: Path) -> None:
    coco = bd.generate(tmp_path / "coco", TINY["coco"])
    cls = bd.generate(tmp_path / "cls", TINY["cls"])
    ade = bd.generate(tmp_path / "ade", TINY["ade"])
    ann = json.loads((coco / "annotations" / "instances_train.json").read_text())
    assert [c["name"] for c in ann["categories"]] == list(bd.OBJECTS)
    assert sorted(p.name for p in (cls / "train").iterdir()) == sorted(bd.OBJECTS)
    labels = np.concatenate([np.asarray(Image.open(p)).ravel() for p in (ade / "annotations").rglob("*.png")])
    assert set(np.unique(labels)) <= set(range(len(bd.OBJECTS) + 2)) and labels.max() >= 2


def test_coco_annotations_match_the_pixels(tmp_path: Path) -> None:
    """Each annotated polygon covers pixels that differ from the background around it; boxes are inside
    the image and enclose the polygon."""
    from pycocotools import mask as mask_utils

    root = bd.generate(
        tmp_path / "coco", bd.CocoSpec(seed=4, num_train=4, num_val=1, min_size=(96, 96), max_size=(96, 96))
    )
    coco = json.loads((root / "annotations" / "instances_train.json").read_text())
    assert len(coco["annotations"]) >= 4
    for ann in coco["annotations"]:
        image = coco["images"][ann["image_id"] - 1]
        rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], image["height"], image["width"]))
        assert float(mask_utils.area(rle)) == pytest.approx(ann["area"], rel=0.2, abs=10)
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= image["width"] and y + h <= image["height"]
        assert 1 <= ann["category_id"] <= len(bd.OBJECTS)


def test_ade_labels_follow_the_scene(tmp_path: Path) -> None:
    root = bd.generate(tmp_path / "ade", TINY["ade"])
    for label_file in (root / "annotations" / "training").glob("*.png"):
        label = np.asarray(Image.open(label_file))
        image = np.asarray(Image.open(root / "images" / "training" / f"{label_file.stem}.jpg"), np.float64)
        assert label.shape == image.shape[:2] and label.dtype == np.uint8
        objects, background = image[label >= 2], image[label == 1]
        assert len(objects) and len(background)
        # objects are painted in colours that contrast with what lies under them
        assert np.abs(objects.mean(0) - background.mean(0)).sum() > 10 or objects.std() > 20


def test_bad_specs_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="image_size"):
        bd.ClsSpec(image_size=16)
    with pytest.raises(ValueError, match="classes"):
        bd.ClsSpec(classes=("circle", "hexagon"))
    with pytest.raises(ValueError, match="min_size/max_size"):
        bd.AdeSpec(min_size=(100, 100), max_size=(90, 120))


def test_require_names_the_path_and_the_command(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"nope is missing.*python -m parcnetv2.builtin_data coco --out"
    ):
        bd.require(tmp_path / "nope", "coco")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no files"):
        bd.require(tmp_path / "empty", "ade")
    assert not any((tmp_path / "empty").iterdir())


def test_command_line(tmp_path: Path) -> None:
    out = tmp_path / "ade"
    args = [
        "--out",
        str(out),
        "--num-train",
        "2",
        "--num-val",
        "1",
        "--min-size",
        "64",
        "64",
        "--max-size",
        "64",
        "80",
    ]
    run = subprocess.run(
        [sys.executable, "-m", "parcnetv2.builtin_data", "ade", *args], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert bd.read_manifest(out)["num_train"] == 2 and len(list((out / "images" / "training").iterdir())) == 2
    bad = subprocess.run(
        [sys.executable, "-m", "parcnetv2.builtin_data", "ade", "--out", str(out), "--num-train", "3"],
        capture_output=True,
        text=True,
    )
    assert (
        bad.returncode != 0
        and len(bad.stderr.strip().splitlines()) == 1
        and "not the requested" in bad.stderr
    )


def test_objects_are_lighter_than_the_ground_around_them() -> None:
    """The one contrast polarity all classes share (their colours are otherwise random)."""
    from PIL import ImageDraw

    luma = np.array([0.299, 0.587, 0.114])
    checked = 0
    for i in range(8):
        scene = bd.render_scene(np.random.default_rng([7, i]), 96, 96)
        image = np.asarray(scene.image, np.float64) @ luma
        labels = np.asarray(scene.label_map())
        for _, polygon in scene.objects:
            canvas = Image.new("L", scene.image.size, 0)
            ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in polygon], fill=1)
            inside = np.asarray(canvas, bool)
            x0, y0 = np.floor(polygon.min(0) - 4).astype(int)
            x1, y1 = np.ceil(polygon.max(0) + 4).astype(int)
            near = np.zeros_like(inside)
            near[max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1] = True
            ground = near & (labels == 1)
            if ground.sum() < 10:
                continue
            assert image[inside].mean() > image[ground].mean() + 20
            checked += 1
    assert checked >= 8
