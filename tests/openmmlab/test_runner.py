"""End to end on a tiny generated set: train, evaluate, resume (weights_only), test.py, 2-process gloo.

Everything runs on CPU with a 1-block-per-stage XT backbone and 96-128 px images.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet")
pytest.importorskip("pycocotools")

from mmengine.runner import Runner  # noqa: E402

from parcnetv2 import REPO_ROOT, builtin_data  # noqa: E402
from parcnetv2.openmmlab.config import load_config  # noqa: E402

CONFIG = REPO_ROOT / "configs/mask_rcnn/mask-rcnn_parcnetv2-xt_fpn_4e_synthetic-coco.py"
SCALE = (128, 128)


def tiny_options(max_epochs: int = 1) -> dict:
    """Overrides that make the synthetic config run in seconds (same keys as --cfg-options)."""
    options = {
        "model.backbone.depths": (1, 1, 1, 1),
        # narrow neck and heads (same modules, a fraction of the compute and of the optimizer state)
        "model.neck.out_channels": 32,
        "model.rpn_head.in_channels": 32,
        "model.rpn_head.feat_channels": 32,
        "model.roi_head.bbox_roi_extractor.out_channels": 32,
        "model.roi_head.bbox_head.in_channels": 32,
        "model.roi_head.bbox_head.fc_out_channels": 64,
        "model.roi_head.mask_roi_extractor.out_channels": 32,
        "model.roi_head.mask_head.in_channels": 32,
        "model.roi_head.mask_head.conv_out_channels": 32,
        "model.train_cfg.rcnn.sampler.num": 64,
        "model.test_cfg.rcnn.max_per_img": 20,
        "train_dataloader.batch_size": 2,
        "train_dataloader.num_workers": 0,
        "train_dataloader.persistent_workers": False,
        "train_dataloader.dataset.pipeline.2.scale": SCALE,
        "train_cfg.max_epochs": max_epochs,
        "train_cfg.val_interval": 1,
        "param_scheduler.0.end": 2,
        "default_hooks.logger.interval": 1,
        "env_cfg.mp_cfg.mp_start_method": "fork",
    }
    for loader in ("val_dataloader", "test_dataloader"):
        options.update(
            {
                f"{loader}.batch_size": 2,
                f"{loader}.num_workers": 0,
                f"{loader}.persistent_workers": False,
                f"{loader}.dataset.pipeline.1.scale": SCALE,
            }
        )
    return options


def cli_options(options: dict) -> list[str]:
    def fmt(v):
        return "(" + ",".join(map(str, v)) + ")" if isinstance(v, tuple) else str(v)

    return [f"{k}={fmt(v)}" for k, v in options.items()]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic_coco")
    builtin_data.generate(root, builtin_data.CocoSpec(0, 4, 2, (128, 128), (128, 128)))
    return root


def test_generator_is_deterministic_and_valid(data_root, tmp_path):
    again = builtin_data.generate(tmp_path / "again", builtin_data.CocoSpec(0, 4, 2, (128, 128), (128, 128)))
    for rel in (
        "annotations/instances_train.json",
        "annotations/instances_val.json",
        "train/000003.png",
        "val/000001.png",
    ):
        assert (data_root / rel).read_bytes() == (again / rel).read_bytes(), rel
    coco = json.loads((data_root / "annotations/instances_train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(builtin_data.OBJECTS)
    assert len(coco["images"]) == 4 and len(coco["annotations"]) >= 4
    from pycocotools import mask as mask_utils

    for ann in coco["annotations"]:
        image = coco["images"][ann["image_id"] - 1]
        assert all(len(poly) >= 6 for poly in ann["segmentation"])
        rles = mask_utils.frPyObjects(ann["segmentation"], image["height"], image["width"])
        area = float(mask_utils.area(mask_utils.merge(rles)))
        assert area == pytest.approx(ann["area"], rel=0.35, abs=12)  # polygon raster vs 4x visible mask
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= image["width"] + 1e-6 and y + h <= image["height"] + 1e-6
    other = builtin_data.generate(tmp_path / "other", builtin_data.CocoSpec(1, 1, 0, (128, 128), (128, 128)))
    assert (other / "train/000000.png").read_bytes() != (data_root / "train/000000.png").read_bytes()


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory):
    """One epoch (2 iterations) + evaluation, written by mmengine's CheckpointHook."""
    work_dir = tmp_path_factory.mktemp("work")
    cfg = load_config(CONFIG, data_root=data_root, work_dir=work_dir, cfg_options=tiny_options(max_epochs=1))
    runner = Runner.from_cfg(cfg)
    runner.train()
    return work_dir, runner


@pytest.mark.slow
def test_train_and_evaluate(trained):
    work_dir, runner = trained
    assert runner.iter == 2 and runner.epoch == 1
    assert (work_dir / "epoch_1.pth").is_file()
    scalars = sorted(work_dir.glob("*/vis_data/scalars.json"))[-1].read_text()
    for key in ("coco/bbox_mAP", "coco/segm_mAP", "coco/bbox_mAP_50", "coco/segm_mAP_50"):
        assert f'"{key}"' in scalars


@pytest.mark.slow
def test_checkpoint_loads_with_weights_only(trained):
    """What mmengine saves loads under torch's weights_only default once allow-listed, and not before."""
    work_dir, _ = trained
    path = work_dir / "epoch_1.pth"
    code = (
        "import torch, pickle\n"
        f"try:\n    torch.load({str(path)!r}, map_location='cpu')\n"
        "except pickle.UnpicklingError as e:\n    print('REFUSED', e)\n"
        "import parcnetv2.openmmlab\n"
        f"ckpt = torch.load({str(path)!r}, map_location='cpu')\n"
        "print('LOADED', sorted(ckpt), type(ckpt['message_hub']['log_scalars']['train/loss']).__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert "REFUSED" in out and "HistoryBuffer" in out.split("REFUSED")[1]
    assert (
        "LOADED ['message_hub', 'meta', 'optimizer', 'param_schedulers', 'state_dict'] HistoryBuffer" in out
    )


class _Sneaky:
    """Pickles as getattr(numpy.ndarray, 'tofile'): an attribute fetch the allow-list must not permit."""

    def __reduce__(self):
        import numpy as np

        return getattr, (np.ndarray, "tofile")


def test_allow_list_is_narrow(tmp_path):
    import parcnetv2.openmmlab  # noqa: F401  (allow-lists mmengine's classes)

    path = tmp_path / "sneaky.pth"
    torch.save({"state_dict": {}, "x": _Sneaky()}, path)
    with pytest.raises(Exception, match="only HistoryBuffer statistics methods"):
        torch.load(path, map_location="cpu")


@pytest.mark.slow
def test_resume_from_training_checkpoint(trained, data_root, tmp_path):
    work_dir, first = trained
    cfg = load_config(CONFIG, data_root=data_root, work_dir=tmp_path, cfg_options=tiny_options(max_epochs=2))
    cfg.resume = True
    cfg.load_from = str(work_dir / "epoch_1.pth")
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 4 and runner.epoch == 2  # continued after iteration 2, not from scratch
    log = sorted(tmp_path.glob("*/*.log"))[-1].read_text()
    assert "resumed epoch: 1, iter: 2" in log
    assert (tmp_path / "epoch_2.pth").is_file()


@pytest.mark.slow
def test_our_test_tool_on_the_checkpoint(load_tool, trained, data_root, tmp_path):
    work_dir, _ = trained
    test_tool = load_tool("test")
    options = tiny_options()
    metrics = test_tool.main(
        [
            str(CONFIG),
            str(work_dir / "epoch_1.pth"),
            "--work-dir",
            str(tmp_path),
            "--out",
            str(tmp_path / "preds.pkl"),
            "--cfg-options",
            f"data_root={data_root}",
            *cli_options({k: v for k, v in options.items() if k.startswith(("test_", "model."))}),
        ]
    )
    assert {"coco/bbox_mAP", "coco/segm_mAP"} <= set(metrics)
    assert (tmp_path / "preds.pkl").is_file()


@pytest.mark.slow
def test_two_process_gloo_training(data_root, tmp_path):
    """tools/dist_train.sh's torchrun command with 2 CPU processes (gloo), a few iterations."""
    options = tiny_options(max_epochs=1)
    options.update({"train_cfg.val_interval": 5, "train_dataloader.batch_size": 1})
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHON=sys.executable, PORT=str(29600 + os.getpid() % 300))
    cmd = [
        "bash",
        str(REPO_ROOT / "tools" / "dist_train.sh"),
        str(CONFIG),
        "2",
        "--work-dir",
        str(tmp_path),
        "--cfg-options",
        f"data_root={data_root}",
        *cli_options(options),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = sorted(tmp_path.glob("*/*.log"))[-1].read_text()
    assert re.search(r"world_size: 2|Distributed launcher: pytorch", log)
    assert "Epoch(train) [1][2/2]" in log  # 4 images / (2 processes x 1) = 2 iterations
    assert (tmp_path / "epoch_1.pth").is_file()
    assert torch.load(tmp_path / "epoch_1.pth", map_location="cpu", weights_only=True)["meta"]["iter"] == 2


@pytest.mark.slow
def test_mmdet_own_tools(data_root, tmp_path):
    """mmdet's unmodified tools/train.py and tools/test.py (shipped in the package) run the built-in config;
    the data location comes from the SYNTHETIC_COCO_ROOT variable the config reads."""
    import mmdet

    tools = Path(mmdet.__file__).parent / ".mim" / "tools"
    env = dict(os.environ, OMP_NUM_THREADS="1", SYNTHETIC_COCO_ROOT=f"{data_root}/")
    options = cli_options(tiny_options(max_epochs=1))

    def run(*args: str) -> str:
        proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    run(str(tools / "train.py"), str(CONFIG), "--work-dir", str(tmp_path), "--cfg-options", *options)
    checkpoint = tmp_path / "epoch_1.pth"
    assert checkpoint.is_file()
    out = run(str(tools / "test.py"), str(CONFIG), str(checkpoint), "--work-dir", str(tmp_path / "test"),
              "--cfg-options", *options)  # fmt: skip
    assert "coco/bbox_mAP" in out and "coco/segm_mAP" in out


@pytest.mark.slow
def test_train_then_test_driver(data_root, tmp_path):
    """The one driver as the demo runs it: train without validation, resume, test into its own folder."""
    from parcnetv2.openmmlab.runner import train_then_test

    cfg = load_config(CONFIG, data_root=data_root, work_dir=tmp_path, cfg_options=tiny_options(max_epochs=1))
    first = train_then_test(cfg, validate=False, resume=True, test_work_dir=tmp_path / "test")
    assert first["epochs"] == 1 and first["iterations"] == 2 and first["metrics"] == {}
    assert first["checkpoint"] == str(tmp_path / "epoch_1.pth")
    assert {"coco/bbox_mAP", "coco/segm_mAP"} <= set(first["test_metrics"])
    assert any((tmp_path / "test").glob("*/*.log")), "the test run logs into its own folder"
    again = train_then_test(cfg, validate=False, resume=True, test_work_dir=tmp_path / "test")
    assert again["iterations"] == 2, "resumed from the finished run: nothing trained again"


@pytest.mark.parametrize("fails", [False, True])
def test_distributed_teardown_closes_the_group(tmp_path, fails):
    """The tools' teardown destroys the process group after a run (after a barrier when it succeeded)
    and lets a failure through."""
    import torch.distributed as dist

    from parcnetv2.openmmlab.launch import distributed_teardown

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        with pytest.raises(RuntimeError, match="boom") if fails else contextlib.nullcontext():
            with distributed_teardown():
                assert dist.is_initialized()
                if fails:
                    raise RuntimeError("boom")
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.parametrize(
    "config, task",
    [
        (CONFIG, "coco"),
        (REPO_ROOT / "configs/upernet/parcnetv2-xt_upernet_1xb4-2k_synthetic-ade-96x96.py", "ade"),
    ],
    ids=["detection", "segmentation"],
)
def test_train_tool_refuses_a_missing_data_root(load_tool, tmp_path, config, task):
    """One data policy: training never generates data; a missing root is an error naming it and the
    command that writes the set."""
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=rf"{missing}.*python -m parcnetv2.builtin_data {task} --out"):
        load_tool("train").main(
            [str(config), "--work-dir", str(tmp_path / "work"), "--cfg-options", f"data_root={missing}"]
        )
    assert not missing.exists(), "nothing was generated"


def test_train_tool_names_a_missing_data_root_in_one_line(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PARCNETV2_DEBUG", None)
    missing = tmp_path / "nope"
    args = [str(CONFIG), "--work-dir", str(tmp_path / "work"), "--cfg-options", f"data_root={missing}"]
    proc = subprocess.run(
        [sys.executable, "tools/train.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 1, proc.stderr
    assert f"data root {missing} is missing" in errors[0]
    assert f"python -m parcnetv2.builtin_data coco --out {missing}`" in errors[0]
