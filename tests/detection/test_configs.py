"""Every detection config under configs/ parses through mmdet's own bases and builds its model."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet")

from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from parcnetv2.backbone import VARIANTS  # noqa: E402
from parcnetv2.openmmlab.layer_decay import backbone_depths, get_layer_id_layer_wise  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def _parsed(path: Path) -> Config:
    return Config.fromfile(str(path))


def load(path: Path) -> Config:
    return copy.deepcopy(_parsed(path))


CONFIGS = sorted(
    p
    for p in (ROOT / "configs").rglob("*.py")
    if "_base_" not in p.parts and _parsed(p).get("default_scope") == "mmdet"
)
COCO = [p for p in CONFIGS if p.name.endswith("_coco.py")]
ARCH = {"xt": "xt", "t": "tiny", "s": "small", "b": "base"}
DROP_PATH = {"t": 0.4, "s": 0.6, "b": 0.7}


def _arch(path: Path) -> str:
    return path.name.split("parcnetv2-")[1].split("_")[0]


def test_config_set_is_complete():
    names = {p.name for p in CONFIGS}
    for v in ("xt", "t", "s", "b"):
        assert f"mask-rcnn_parcnetv2-{v}_fpn_amp-1x_coco.py" in names
    for v in ("t", "s", "b"):
        assert f"mask-rcnn_parcnetv2-{v}_fpn_amp-ms-crop-3x_coco.py" in names
        assert f"cascade-mask-rcnn_parcnetv2-{v}_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py" in names
    assert "mask-rcnn_parcnetv2-xt_fpn_4e_synthetic-coco.py" in names


@pytest.mark.parametrize("path", COCO, ids=lambda p: p.name)
def test_published_hyper_parameters(path):
    cfg = load(path)
    v = _arch(path)
    assert (
        cfg.custom_imports.imports == ["parcnetv2.openmmlab", "parcnetv2.detection"]
        and cfg.custom_imports.allow_failed_imports is False
    )
    backbone = cfg.model.backbone
    assert backbone.type == "ParCNetV2" and backbone.arch == ARCH[v] and backbone.oc_mode == "adaptive"
    assert backbone.init_cfg.type == "Pretrained" and ARCH[v] in backbone.init_cfg.checkpoint
    assert cfg.model.neck.in_channels == list(VARIANTS[ARCH[v]]["dims"])
    if v in DROP_PATH:
        assert backbone.drop_path_rate == DROP_PATH[v]
    wrapper = cfg.optim_wrapper
    assert wrapper.type == "AmpOptimWrapper"
    assert wrapper.constructor == "ParCNetV2LayerDecayOptimizerConstructor"
    assert wrapper.optimizer.type == "AdamW" and wrapper.optimizer.weight_decay == 0.05
    assert set(wrapper.optimizer) == {"type", "lr", "betas", "weight_decay"}  # no SGD leftovers
    cascade = path.name.startswith("cascade")
    assert wrapper.optimizer.lr == (2e-4 if cascade else 1e-4)
    expected_decay = {"t": 0.7, "s": 0.7, "b": 0.8}[v] if cascade else 0.95
    assert (
        wrapper.paramwise_cfg.decay_rate == expected_decay
        and wrapper.paramwise_cfg.decay_type == "layer_wise"
    )
    depths = VARIANTS[ARCH[v]]["depths"]
    deepest = get_layer_id_layer_wise("backbone.stages.3.0.x", depths, 0)
    assert wrapper.paramwise_cfg.num_layers == {"xt": 6, "t": 7, "s": 13, "b": 13}[v] == deepest
    assert cfg.auto_scale_lr.base_batch_size == 16 and cfg.train_dataloader.batch_size == 2
    epochs = 36 if "3x" in path.name else 12
    assert cfg.train_cfg.max_epochs == epochs
    if "ms-crop" in path.name:
        assert cfg.train_pipeline[3].type == "RandomChoice"
    else:
        assert cfg.train_pipeline[2].scale == (1333, 800)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_builds_and_runs_features(path):
    """Build each detector and run its backbone + neck (on the meta device: shapes only, no memory/init)."""
    from mmdet.registry import MODELS

    cfg = load(path)
    init_default_scope("mmdet")
    cfg.model.backbone.init_cfg = None
    with torch.device("meta"):
        model = MODELS.build(cfg.model).eval()
        assert type(model.backbone).__name__ == "ParCNetV2Backbone"
        depths = backbone_depths([f"backbone.{n}" for n, _ in model.backbone.named_parameters()])
        assert depths == VARIANTS[cfg.model.backbone.arch]["depths"]
        with torch.no_grad():
            feats = model.extract_feat(torch.randn(1, 3, 64, 96))
    assert len(feats) == cfg.model.neck.num_outs
    assert feats[0].shape == (1, cfg.model.neck.out_channels, 16, 24)


def test_one_config_loader_applies_every_override(tmp_path):
    from parcnetv2.openmmlab.config import load_config

    path = ROOT / "configs/mask_rcnn/mask-rcnn_parcnetv2-xt_fpn_4e_synthetic-coco.py"
    cfg = load_config(
        path,
        data_root=tmp_path / "coco",
        pretrained=tmp_path / "cls.pth",
        num_workers=0,
        seed=3,
        cfg_options={"train_cfg.max_epochs": 2},
    )
    assert cfg.work_dir == f"./work_dirs/{path.stem}"  # as mmdet's tools/train.py
    assert cfg.train_dataloader.dataset.data_root == f"{tmp_path / 'coco'}/"
    assert cfg.test_evaluator.ann_file == f"{tmp_path / 'coco'}/annotations/instances_val.json"
    assert cfg.model.backbone.init_cfg == dict(type="Pretrained", checkpoint=str(tmp_path / "cls.pth"))
    assert cfg.train_dataloader.num_workers == 0 and cfg.val_dataloader.persistent_workers is False
    assert cfg.randomness.seed == 3
    cosine = [s for s in cfg.param_scheduler if s.type == "CosineAnnealingLR"]
    assert cosine[0].end == 2  # the schedule follows the new training length
    assert load_config(path, work_dir=tmp_path, cfg_options={"work_dir": "other"}).work_dir == str(tmp_path)
    (tmp_path / "no_scope.py").write_text("model = dict(type='Nothing')\n")
    with pytest.raises(ValueError, match="sets no default_scope"):
        load_config(tmp_path / "no_scope.py")


def test_the_task_is_found_through_mmdet_registry(tmp_path):
    """The configs' custom_imports register detection's task in mmdet's TASK_UTILS; a scope without a
    registered task is refused in one line."""
    from mmdet.structures import DetDataSample

    from parcnetv2.detection import DetectionTask
    from parcnetv2.openmmlab.task import task_of

    cfg = load(ROOT / "configs/mask_rcnn/mask-rcnn_parcnetv2-t_fpn_amp-1x_coco.py")
    assert "parcnetv2.detection" in cfg.custom_imports.imports
    task = task_of(cfg)
    assert isinstance(task, DetectionTask)
    sample = task.data_sample(48, 64)
    assert isinstance(sample, DetDataSample) and sample.batch_input_shape == (48, 64)
    with pytest.raises(RuntimeError, match="no ParCNetV2Task is registered in mmengine's TASK_UTILS"):
        task_of(Config(dict(default_scope="mmengine")))


def test_test_outputs_of_detection(tmp_path):
    """tools/test.py --out: a pickle beside the config's metrics (mmdet's DumpDetResults); --show-dir: the
    visualization hook's test_out_dir."""
    from parcnetv2.openmmlab.task import task_of

    cfg = load(ROOT / "configs/mask_rcnn/mask-rcnn_parcnetv2-xt_fpn_4e_synthetic-coco.py")
    task_of(cfg).set_test_outputs(cfg, str(tmp_path / "preds.pkl"), "painted")
    assert [m["type"] for m in cfg.test_evaluator] == ["CocoMetric", "DumpDetResults"]
    assert cfg.test_evaluator[1]["out_file_path"] == str(tmp_path / "preds.pkl")
    assert cfg.default_hooks.visualization.test_out_dir == "painted"
    with pytest.raises(ValueError, match="--out must be a .pkl file"):
        task_of(cfg).set_test_outputs(cfg, str(tmp_path / "preds.json"), None)
