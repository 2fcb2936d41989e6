"""tools/test.py and tools/misc/image_demo.py refuse checkpoints that do not cover the model; tools/train.py's
--resume and max_epochs/max_iters options; one-line errors of the mm tools."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

pytest.importorskip("mmdet")
pytest.importorskip("mmseg")

from mmengine.config import Config  # noqa: E402

from parcnetv2.backbone.checkpoint import CheckpointError  # noqa: E402
from parcnetv2.openmmlab import launch  # noqa: E402
from parcnetv2.openmmlab.checkpoint_coverage import PartialCheckpointWarning  # noqa: E402
from parcnetv2.openmmlab.config import (  # noqa: E402
    local_checkpoint,
    merge_cfg_options,
    resume_from_scratch_warning,
    to_tta,
)
from parcnetv2.openmmlab.runner import build_model, check_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DET = ROOT / "configs/mask_rcnn/mask-rcnn_parcnetv2-xt_fpn_4e_synthetic-coco.py"
SEG = ROOT / "configs/upernet/parcnetv2-xt_upernet_1xb4-2k_synthetic-ade-96x96.py"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A segmentation checkpoint (UperNet + XT, mmengine layout), a classification one and a detection one."""
    folder = tmp_path_factory.mktemp("ckpts")
    paths = {}
    for name, config in (("seg", SEG), ("det", DET)):
        cfg = Config.fromfile(str(config))
        cfg.model.backbone.init_cfg = None
        paths[name] = folder / f"{name}.pth"
        torch.save({"meta": {"epoch": 1}, "state_dict": build_model(cfg).state_dict()}, paths[name])
    paths["cls"] = folder / "cls.pth.tar"
    classifier = timm.create_model("parcnetv2_xt", num_classes=10)
    torch.save({"state_dict": classifier.state_dict(), "epoch": 4}, paths["cls"])
    return paths


def test_test_tool_refuses_a_segmentation_checkpoint_in_one_line(checkpoints) -> None:
    """The acceptance line: tools/test.py DET_CONFIG SEG_CHECKPOINT exits non-zero, one line naming groups."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PARCNETV2_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "tools/test.py", str(DET), str(checkpoints["seg"])],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "Config:" not in proc.stdout, "no traceback, no config dump"
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 1, proc.stderr  # nothing else on stderr either
    assert errors[0].startswith(
        f"tools/test.py: error: checkpoint {checkpoints['seg']} does not cover the model"
    )
    assert "missing neck (all " in errors[0] and "heads (roi_head, rpn_head: all " in errors[0]
    assert "backbone (" not in errors[0], "the backbone is covered"
    assert "--allow-partial" in errors[0]


def test_test_tool_checks_classification_and_own_checkpoints(checkpoints) -> None:
    cfg = launch.test_config(launch.parse_args("test", [str(DET), str(checkpoints["cls"])]))
    with pytest.raises(CheckpointError, match=r"missing backbone \(all \d+ keys\), neck .*, heads "):
        check_checkpoint(cfg, str(checkpoints["cls"]))
    with pytest.warns(PartialCheckpointWarning, match="missing neck"):
        missing = check_checkpoint(cfg, str(checkpoints["seg"]), allow_partial=True)
    assert set(missing) == {"neck", "heads"}
    assert check_checkpoint(cfg, str(checkpoints["det"])) == {}
    args = launch.parse_args("test", [str(SEG), str(checkpoints["seg"]), "--tta", "--allow-partial"])
    assert args.allow_partial and args.tta
    tta = to_tta(launch.test_config(args))
    assert check_checkpoint(tta, str(checkpoints["seg"])) == {}  # TTA wraps the model
    with pytest.raises(CheckpointError, match="not found"):
        check_checkpoint(cfg, "missing.pth")


def test_test_tool_reads_a_url_checkpoint_as_a_local_file(checkpoints, tmp_path, monkeypatch) -> None:
    """An http(s) checkpoint is downloaded into torch's hub cache, then read weights-only like a path."""
    import shutil

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    downloads = []

    def download(url, dst, *args, **kwargs):
        downloads.append(url)
        shutil.copyfile(checkpoints["det"], dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    url = "https://example.org/models/mask-rcnn_xt-0123abcd.pth"
    local = local_checkpoint(url)
    assert local == str(tmp_path / "hub" / "checkpoints" / "mask-rcnn_xt-0123abcd.pth")
    assert local_checkpoint(url) == local and downloads == [url], "downloaded once"
    args = launch.parse_args("test", [str(DET), url])
    cfg = launch.test_config(args)
    assert args.checkpoint == local and check_checkpoint(cfg, local) == {}
    with pytest.raises(ValueError, match="give a local file or an http"):
        local_checkpoint("open-mmlab://something")
    assert local_checkpoint("plain.pth") == "plain.pth"


def test_demo_tool_refuses_mismatched_checkpoints_and_bad_images(
    load_tool, checkpoints, tmp_path: Path
) -> None:
    demo = load_tool("misc/image_demo")
    image = tmp_path / "shapes.png"
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(image)
    with pytest.raises(CheckpointError, match=r"seg\.pth does not cover the model: missing neck"):
        demo.main([str(image), str(DET), str(checkpoints["seg"]), "--out", str(tmp_path / "o.png")])
    with pytest.raises(CheckpointError, match="missing backbone"):
        demo.main([str(image), str(SEG), str(checkpoints["cls"]), "--out", str(tmp_path / "o.png")])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=rf"image {empty} is empty \(0 bytes\)"):
        demo.main([str(empty), str(DET), str(checkpoints["det"])])
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    with pytest.raises(ValueError, match=rf"cannot decode image {text}"):
        demo.main([str(text), str(DET), str(checkpoints["det"])])
    with pytest.warns(PartialCheckpointWarning, match="missing neck"):
        drawn = demo.main(
            [
                str(image),
                str(DET),
                str(checkpoints["seg"]),
                "--out",
                str(tmp_path / "p.png"),
                "--allow-partial",
            ]
        )
    assert drawn.read_bytes()[:4] == b"\x89PNG", "--allow-partial draws anyway"


def test_max_epochs_option_ends_the_schedule_with_training() -> None:
    cfg = launch.train_config(
        launch.parse_args("train", [str(DET), "--cfg-options", "train_cfg.max_epochs=2"])
    )
    warmup, cosine = cfg.param_scheduler
    assert cfg.train_cfg.max_epochs == 2 and cosine.type == "CosineAnnealingLR" and cosine.end == 2
    assert warmup.end == 100, "the iteration-based warmup stays"
    own = launch.train_config(
        launch.parse_args(
            "train", [str(DET), "--cfg-options", "train_cfg.max_epochs=2", "param_scheduler.1.end=3"]
        )
    )
    assert own.param_scheduler[1].end == 3, "a schedule given on the command line wins"
    seg = merge_cfg_options(Config.fromfile(str(SEG)), {"train_cfg.max_iters": 300})
    assert [s.end for s in seg.param_scheduler] == [50, 300]


def test_resume_into_an_empty_work_dir_warns_and_a_missing_file_fails(tmp_path: Path) -> None:
    cfg = launch.train_config(launch.parse_args("train", [str(DET), "--resume", "--work-dir", str(tmp_path)]))
    assert resume_from_scratch_warning(cfg) == (
        f"--resume: no checkpoint to resume from in {tmp_path} (no last_checkpoint): "
        "training starts from scratch"
    )
    (tmp_path / "epoch_1.pth").write_bytes(b"x")
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "epoch_1.pth"))
    assert resume_from_scratch_warning(cfg) is None
    with pytest.raises(FileNotFoundError, match="--resume: checkpoint not found: nope.pth"):
        launch.train_config(launch.parse_args("train", [str(DET), "--resume", "nope.pth"]))
