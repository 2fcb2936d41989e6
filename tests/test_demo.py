"""The main job end to end with the tiny budget, its rerun behaviour, and ``tools/misc/image_demo.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(*args: str, cwd: Path = REPO) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1500
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo")
    return out, _run("-m", "parcnetv2.demo", "--budget", "tiny", "--out", str(out))


def _png_size(path: str | Path) -> tuple[int, int]:
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.slow
def test_every_stage_writes_checkpoint_metrics_and_pictures(demo: tuple[Path, str]) -> None:
    out, _ = demo
    summary = json.loads((out / "summary.json").read_text())
    stages = summary["stages"]
    assert list(stages) == ["data", "classification", "detection", "segmentation", "pictures"]
    for task in ("classification", "detection", "segmentation"):
        result = json.loads((out / task / "result.json").read_text())
        assert result == stages[task]
        assert Path(result["checkpoint"]).is_file(), task
    for task in ("detection", "segmentation"):
        assert Path(stages[task]["scratch_checkpoint"]).is_file(), task
        assert stages[task]["scratch_checkpoint"] != stages[task]["checkpoint"]
    assert 0 <= stages["classification"]["top1"] <= 100
    for key in ("bbox_mAP", "segm_mAP", "scratch_bbox_mAP", "scratch_segm_mAP"):
        assert 0 <= stages["detection"][key] <= 1, key
    assert 0 <= stages["segmentation"]["mIoU"] <= 100 and 0 <= stages["segmentation"]["scratch_mIoU"] <= 100
    assert summary["total_wall_s"] == pytest.approx(sum(s["wall_s"] for s in stages.values()), abs=0.2)
    files = stages["pictures"]["files"]
    for task in ("classification", "detection", "segmentation"):
        _png_size(files[f"{task}_curves"])
    width = summary["budget"]["picture_width"]
    for task in ("detection", "segmentation"):
        assert files[f"{task}_predictions"]
        for picture in files[f"{task}_predictions"]:
            assert _png_size(picture)[0] >= 2 * width, picture  # ground truth beside the prediction
    index = Path(files["index"]).read_text()
    for picture in [files["classification_curves"], *files["detection_predictions"]]:
        assert f"]({Path(picture).name})" in index
    # the pretrained runs started from the classification weights, the scratch runs did not
    checkpoint = stages["classification"]["checkpoint"]
    for task in ("detection", "segmentation"):
        assert checkpoint in (out / task / "pretrained" / "config.py").read_text(), task
        assert checkpoint not in (out / task / "scratch" / "config.py").read_text(), task


@pytest.mark.slow
def test_summary_reports_what_the_pipelines_printed(demo: tuple[Path, str]) -> None:
    out, stdout = demo
    stages = json.loads((out / "summary.json").read_text())["stages"]
    history = json.loads((out / "classification" / "metrics.json").read_text())["epochs"]
    assert stages["classification"]["top1"] == round(history[-1]["eval_top1"], 2)
    for run, prefix in (("pretrained", ""), ("scratch", "scratch_")):
        det_log = json.loads(next((out / "detection" / run / "test").glob("*/*.json")).read_text())
        assert stages["detection"][f"{prefix}bbox_mAP"] == round(det_log["coco/bbox_mAP"], 3)
        assert stages["detection"][f"{prefix}segm_mAP"] == round(det_log["coco/segm_mAP"], 3)
        seg_log = json.loads(next((out / "segmentation" / run / "test").glob("*/*.json")).read_text())
        assert stages["segmentation"][f"{prefix}mIoU"] == round(seg_log["mIoU"], 2)
    table = (out / "summary.md").read_text()
    for row in (
        f"top-1 {stages['classification']['top1']:.2f} %",
        f"bbox mAP {stages['detection']['bbox_mAP']:.3f}, segm mAP {stages['detection']['segm_mAP']:.3f}",
        f"bbox mAP {stages['detection']['scratch_bbox_mAP']:.3f}, segm mAP "
        f"{stages['detection']['scratch_segm_mAP']:.3f}",
        f"mIoU {stages['segmentation']['mIoU']:.2f} %",
        f"mIoU {stages['segmentation']['scratch_mIoU']:.2f} %",
    ):
        assert row in table and row in stdout


@pytest.mark.slow
def test_rerun_skips_finished_stages_and_redoes_only_what_is_missing(demo: tuple[Path, str]) -> None:
    out, _ = demo
    before = json.loads((out / "summary.json").read_text())["stages"]
    (out / "segmentation" / "result.json").unlink()  # as if interrupted after both runs, before the report
    (out / "segmentation" / "scratch" / "run.json").unlink()  # ... and the scratch run before its test
    stdout = _run("-m", "parcnetv2.demo", "--budget", "tiny", "--out", str(out))
    for stage in ("data", "classification", "detection"):
        assert f"{stage} already done" in stdout
    assert "segmentation already done" not in stdout
    assert "segmentation pretrained: already trained and tested" in stdout
    assert "segmentation scratch: already trained" not in stdout
    after = json.loads((out / "summary.json").read_text())["stages"]
    assert after["classification"] == before["classification"]
    # the scratch training resumed from its last checkpoint (nothing left to train): the same mIoU
    assert after["segmentation"]["iterations"] == before["segmentation"]["iterations"]
    assert after["segmentation"]["mIoU"] == before["segmentation"]["mIoU"]
    assert after["segmentation"]["scratch_mIoU"] == before["segmentation"]["scratch_mIoU"]
    # the pictures depend on the segmentation result, so they were redrawn
    assert "pictures already done" not in stdout


@pytest.mark.slow
@pytest.mark.parametrize("task", ["detection", "segmentation"])
def test_tools_demo_draws_on_any_image(demo: tuple[Path, str], task: str, tmp_path: Path) -> None:
    out, _ = demo
    result = json.loads((out / task / "result.json").read_text())
    data = json.loads((out / "data" / "result.json").read_text())
    image = sorted((Path(data["coco"]) / "val").glob("*.png"))[0]  # a detection image for both
    picture = tmp_path / f"{task}.png"
    _run(
        "tools/misc/image_demo.py", str(image), result["config"], result["checkpoint"], "--out", str(picture)
    )
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_pictures_refuse_a_checkpoint_of_another_task(demo: tuple[Path, str]) -> None:
    from parcnetv2.backbone import CheckpointError
    from parcnetv2.openmmlab.predictor import build_predictor

    out, _ = demo
    det = json.loads((out / "detection" / "result.json").read_text())
    seg = json.loads((out / "segmentation" / "result.json").read_text())
    with pytest.raises(CheckpointError, match=r"does not cover the model: missing neck .*heads"):
        build_predictor(det["config"], seg["checkpoint"])


def test_tools_demo_rejects_missing_files(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "tools/misc/image_demo.py", str(tmp_path / "nope.jpg"), "cfg.py", "ckpt.pth"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "image not found" in proc.stderr


def test_data_stage_replaces_a_built_in_set_of_another_version(tmp_path: Path) -> None:
    """An older demo's set (another format version) is generated again, not an error; a folder that is
    not a built-in set is never removed."""
    from parcnetv2 import builtin_data
    from parcnetv2.demo import BUDGETS
    from parcnetv2.demo.context import Context
    from parcnetv2.demo.stages import stage_data

    ctx = Context(tmp_path, tmp_path / "data", BUDGETS["tiny"])
    roots = stage_data(ctx)
    old = Path(roots["coco"]) / builtin_data.MANIFEST
    manifest = json.loads(old.read_text())
    old.write_text(json.dumps({**manifest, "version": manifest["version"] - 1}))
    (Path(roots["coco"]) / "stale.txt").write_text("from the old set")
    stage_data(ctx)
    assert builtin_data.read_manifest(roots["coco"]) == manifest
    assert not (Path(roots["coco"]) / "stale.txt").exists()
    foreign = Path(roots["ade"]) / builtin_data.MANIFEST
    foreign.unlink()
    with pytest.raises(FileExistsError):
        stage_data(ctx)
