"""Segmentation (mmseg 1.x): registration, configs, built-in data, training, slide/TTA evaluation,
odd input shapes, pretrained loading and resume -- on tiny generated sets and reduced-depth backbones."""

from __future__ import annotations

import copy
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("mmseg")
pytest.importorskip("mmcv.ops")

from mmengine.config import Config, ConfigDict  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.registry import DATASETS, MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

import parcnetv2.segmentation as seg  # noqa: E402
from parcnetv2 import REPO_ROOT as REPO  # noqa: E402
from parcnetv2.backbone import CheckpointError, ParCNetV2  # noqa: E402
from parcnetv2.builtin_data import AdeSpec, ensure, generate  # noqa: E402
from parcnetv2.openmmlab import runner as mm_runner  # noqa: E402
from parcnetv2.openmmlab.config import load_config, set_max_iters  # noqa: E402
from parcnetv2.segmentation.datasets import CLASSES  # noqa: E402

BUILTIN_CONFIG = REPO / "configs/upernet/parcnetv2-xt_upernet_1xb4-2k_synthetic-ade-96x96.py"
SEG_CONFIGS = sorted((REPO / "configs" / "upernet").glob("*.py")) + sorted(
    (REPO / "configs" / "sem_fpn").glob("*.py")
)
ADE_CONFIGS = [p for p in SEG_CONFIGS if "ade20k" in p.name]
MMSEG_TOOLS = Path(__import__("mmseg").__file__).parent / ".mim" / "tools"

TINY_DEPTHS, TINY_DIMS = (1, 1, 1, 1), (16, 24, 32, 40)
TINY_SPEC = AdeSpec(seed=1, num_train=4, num_val=2, min_size=(64, 72), max_size=(84, 100))
"""Images 64-84 x 72-100 px: not multiples of 32, not square."""


# ------------------------------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("seg") / "synthetic_ade", TINY_SPEC)


def tiny_builtin_cfg(data_root: Path, work_dir: Path, max_iters: int = 1) -> Config:
    """The built-in config, shrunk: 1-block stages, narrow heads, 64 px crops, batch 2, no workers."""
    cfg = load_config(
        BUILTIN_CONFIG,
        data_root=data_root,
        work_dir=work_dir,
        max_iters=max_iters,
        num_workers=0,
        seed=0,
    )
    cfg.model.backbone.update(depths=TINY_DEPTHS, dims=TINY_DIMS, drop_path_rate=0.0)
    cfg.model.data_preprocessor.size = (64, 64)
    cfg.model.decode_head.update(in_channels=list(TINY_DIMS), channels=16)
    cfg.model.auxiliary_head.update(in_channels=TINY_DIMS[2], channels=8)
    cfg.model.test_cfg = dict(mode="slide", crop_size=(64, 64), stride=(43, 43))
    for t in cfg.train_dataloader.dataset.pipeline:
        if t.type == "RandomResize":
            t.scale = (256, 64)
        if t.type == "RandomCrop":
            t.crop_size = (64, 64)
    for t in cfg.val_dataloader.dataset.pipeline + cfg.test_dataloader.dataset.pipeline + cfg.tta_pipeline:
        if t.type == "Resize":
            t.scale = (256, 72)  # short side 72: slide windows of 64 overlap and do not tile exactly
    cfg.train_dataloader.batch_size = 2
    cfg.default_hooks.logger.interval = 1
    cfg.log_level = "WARNING"
    return cfg


def tiny_segmentor(**backbone):
    init_default_scope("mmseg")
    cfg = tiny_builtin_cfg(Path("unused"), Path("unused"))
    cfg.model.backbone.update(backbone)
    return MODELS.build(cfg.model)


def save_classifier(path: Path, dims=TINY_DIMS) -> dict[str, torch.Tensor]:
    """A timm-keyed classification state dict (with head), as parcnetv2.classification exports it."""
    torch.manual_seed(1)
    state = ParCNetV2(num_classes=10, depths=TINY_DEPTHS, dims=dims, kernel_sizes=(23, 11, 7, 5)).state_dict()
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return state


# ------------------------------------------------------------------------------------------ registration
def test_registered_in_mmseg_scope():
    from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

    from parcnetv2.openmmlab.backbone import ParCNetV2Backbone

    init_default_scope("mmseg")
    assert MODELS.get("ParCNetV2") is ParCNetV2Backbone  # one class, registered once
    assert DATASETS.get("SyntheticADEDataset") is seg.SyntheticADEDataset
    assert OPTIM_WRAPPER_CONSTRUCTORS.get("ParCNetV2LayerDecayOptimizerConstructor") is not None
    assert tiny_segmentor().backbone._net.oc_mode == "adaptive"  # adaptive OC by default


def test_the_task_is_found_through_mmseg_registry(tmp_path: Path):
    """The configs' custom_imports register segmentation's task in mmseg's TASK_UTILS: its data sample,
    the counted model (no auxiliary head), the exported logits and tools/test.py's --out/--show-dir."""
    from parcnetv2.openmmlab.task import task_of

    cfg = Config.fromfile(str(BUILTIN_CONFIG))
    task = task_of(cfg)
    assert isinstance(task, seg.SegmentationTask)
    sample = task.data_sample(75, 101)
    assert isinstance(sample, SegDataSample) and sample.img_shape == (75, 101)
    model = tiny_segmentor().eval()
    assert task.counted_model(model).auxiliary_head is None
    logits, what = task.export_part(model)
    with torch.no_grad():
        assert logits(torch.randn(1, 3, 75, 101)).shape == (1, len(CLASSES), 75, 101)
    assert "encode_decode" in what
    task.set_test_outputs(cfg, str(tmp_path / "masks"), "painted")
    assert cfg.test_evaluator.output_dir == str(tmp_path / "masks") and cfg.test_evaluator.keep_results
    assert cfg.visualizer.save_dir == "painted"


# ------------------------------------------------------------------------------------------ configs
def test_config_set_is_complete():
    names = {p.name for p in SEG_CONFIGS}
    for arch in "tsb":
        assert f"parcnetv2-{arch}_upernet_8xb2-amp-160k_ade20k-512x512.py" in names
    assert "parcnetv2-t_fpn_8xb4-40k_ade20k-512x512.py" in names
    assert any("synthetic-ade" in n for n in names)


@pytest.mark.parametrize("path", SEG_CONFIGS, ids=lambda p: p.stem)
def test_config_builds(path: Path):
    """Every config parses (mmseg:: bases, custom_imports) and builds its segmentor, on the meta device."""
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports.allow_failed_imports is False
    assert cfg.custom_imports.imports[0] == "parcnetv2.openmmlab"
    assert cfg.default_scope == "mmseg" and cfg.model.pretrained is None
    assert cfg.model.backbone.type == "ParCNetV2" and cfg.model.backbone.oc_mode == "adaptive"
    init_default_scope("mmseg")
    with torch.device("meta"):
        model = MODELS.build(cfg.model)
    assert type(model).__name__ == "EncoderDecoder"
    consumer = cfg.model.neck if cfg.model.get("neck") else cfg.model.decode_head
    assert list(model.backbone.out_channels) == list(consumer.in_channels)
    if cfg.model.get("auxiliary_head"):
        assert (
            cfg.model.auxiliary_head.in_channels
            == model.backbone.out_channels[cfg.model.auxiliary_head.in_index]
        )
    tta = [t for t in cfg.tta_pipeline if t.type == "TestTimeAug"]
    assert cfg.tta_model.type == "SegTTAModel" and len(tta) == 1
    assert [t.scale_factor for t in tta[0].transforms[0]] == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    assert [t.prob for t in tta[0].transforms[1]] == [0.0, 1.0]


RECIPES = {  # arch: (num_layers, drop_path, weight_decay) of the published UperNet configs
    "t": (6, 0.3, 0.05),
    "s": (12, 0.3, 0.05),
    "b": (12, 0.5, 0.02),
}


@pytest.mark.parametrize("arch", sorted(RECIPES))
def test_upernet_recipe(arch: str):
    cfg = Config.fromfile(
        str(REPO / "configs" / "upernet" / f"parcnetv2-{arch}_upernet_8xb2-amp-160k_ade20k-512x512.py")
    )
    num_layers, drop_path, wd = RECIPES[arch]
    ow = cfg.optim_wrapper
    assert ow.type == "AmpOptimWrapper" and ow.constructor == "ParCNetV2LayerDecayOptimizerConstructor"
    assert ow.optimizer == dict(type="AdamW", lr=1e-4, betas=(0.9, 0.999), weight_decay=wd)
    assert ow.paramwise_cfg == dict(decay_rate=0.9, decay_type="stage_wise", num_layers=num_layers)
    assert cfg.model.backbone.drop_path_rate == drop_path
    assert cfg.model.backbone.init_cfg.type == "Pretrained"
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.end, poly.type, poly.power, poly.begin, poly.end) == (
        "LinearLR",
        1500,
        "PolyLR",
        1.0,
        1500,
        160000,
    )
    assert cfg.train_cfg.max_iters == 160000 and cfg.train_dataloader.batch_size * 8 == 16
    assert cfg.model.test_cfg == dict(mode="slide", crop_size=(512, 512), stride=(341, 341))
    assert cfg.crop_size == (512, 512) and cfg.model.data_preprocessor.size == (512, 512)


@pytest.mark.parametrize("path", ADE_CONFIGS, ids=lambda p: p.stem)
def test_ade20k_data_settings(path: Path):
    cfg = Config.fromfile(str(path))
    assert cfg.train_dataloader.dataset.type == "ADE20KDataset"
    assert cfg.train_dataloader.dataset.data_root == "data/ade/ADEChallengeData2016"
    assert cfg.model.decode_head.num_classes == 150 and cfg.val_evaluator.type == "IoUMetric"
    assert cfg.model.backbone.init_cfg.type == "Pretrained"


def test_semantic_fpn_recipe():
    cfg = Config.fromfile(str(REPO / "configs" / "sem_fpn" / "parcnetv2-t_fpn_8xb4-40k_ade20k-512x512.py"))
    assert cfg.optim_wrapper.optimizer == dict(type="AdamW", lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4)
    (poly,) = cfg.param_scheduler
    assert (poly.type, poly.power, poly.eta_min, poly.end) == ("PolyLR", 0.9, 0.0, 40000)
    assert cfg.train_cfg.max_iters == 40000 and cfg.train_dataloader.batch_size == 4
    assert cfg.model.backbone.drop_path_rate == 0.2 and cfg.model.neck.out_channels == 512


def test_stage_wise_lr_scales_on_tiny_model():
    """The T recipe's optimizer on a real segmentor: stage i gets 0.9**(6 - i), heads and out norms 1."""
    from mmengine.optim import build_optim_wrapper

    cfg = Config.fromfile(
        str(REPO / "configs" / "upernet" / "parcnetv2-t_upernet_8xb2-amp-160k_ade20k-512x512.py")
    )
    model = tiny_segmentor()
    ow_cfg = dict(cfg.optim_wrapper, type="OptimWrapper")
    ow_cfg.pop("loss_scale")
    wrapper = build_optim_wrapper(model, ow_cfg)
    scale = {}
    for group in wrapper.optimizer.param_groups:
        for name in group["param_names"]:
            scale[name] = group["lr"] / 1e-4
    assert scale["backbone.downsample_layers.0.conv.weight"] == pytest.approx(0.9**7)
    for i in range(4):
        assert scale[f"backbone.stages.{i}.0.mlp.fc1.weight"] == pytest.approx(0.9 ** (6 - i))
    assert scale["backbone.norm0.weight"] == pytest.approx(1.0)
    assert scale["decode_head.conv_seg.weight"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------ data
def test_synthetic_set_is_deterministic_and_ade_like(tmp_path: Path):
    spec = AdeSpec(seed=3, num_train=2, num_val=1, min_size=(64, 70), max_size=(70, 90))
    a, b = generate(tmp_path / "a", spec), generate(tmp_path / "b", spec)

    def digest(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.*"))
        }

    assert digest(a) == digest(b)
    images = sorted((a / "images" / "training").glob("*.jpg"))
    labels = sorted((a / "annotations" / "training").glob("*.png"))
    assert [p.stem for p in images] == [p.stem for p in labels] and len(images) == 2
    assert len(list((a / "images" / "validation").glob("*.jpg"))) == 1
    for img, lab in zip(images, labels, strict=True):
        label = np.asarray(Image.open(lab))
        assert Image.open(img).size == Image.open(lab).size and label.dtype == np.uint8
        assert label.max() <= len(CLASSES) and 1 in label and label.max() >= 2  # background + objects
    assert ensure(a, spec, log=lambda _: None) == a  # present: kept
    with pytest.raises(FileExistsError):
        ensure(a, AdeSpec(seed=4, num_train=2, num_val=1), log=lambda _: None)


def test_dataset_reduces_zero_label(tiny_data: Path):
    init_default_scope("mmseg")
    ds = DATASETS.build(
        dict(
            type="SyntheticADEDataset",
            data_root=str(tiny_data),
            data_prefix=dict(img_path="images/training", seg_map_path="annotations/training"),
            pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations")],
        )
    )
    assert len(ds) == TINY_SPEC.num_train and ds.metainfo["classes"] == CLASSES
    item = ds[0]
    raw = np.asarray(Image.open(item["seg_map_path"]))
    assert np.array_equal(item["gt_seg_map"] == 255, raw == 0)
    assert np.array_equal(item["gt_seg_map"][raw > 0], raw[raw > 0] - 1)


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_dataset_refuses_a_missing_root_and_generates_nothing(tmp_path: Path, state: str):
    init_default_scope("mmseg")
    root = tmp_path / "typo"
    if state == "empty":
        root.mkdir()
    with pytest.raises(FileNotFoundError, match=r"typo .*python -m parcnetv2.builtin_data ade --out"):
        DATASETS.build(
            dict(
                type="SyntheticADEDataset",
                data_root=str(root),
                data_prefix=dict(img_path="images/validation", seg_map_path="annotations/validation"),
            )
        )
    assert not root.exists() or not any(root.iterdir()), "nothing was generated"


def test_builtin_config_takes_its_root_from_the_environment(tiny_data: Path, monkeypatch):
    monkeypatch.setenv("SYNTHETIC_ADE_ROOT", str(tiny_data) + "/")
    cfg = Config.fromfile(str(BUILTIN_CONFIG))
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        assert cfg[loader].dataset.data_root == str(tiny_data) + "/"
    init_default_scope("mmseg")
    assert len(DATASETS.build(cfg.val_dataloader.dataset)) == TINY_SPEC.num_val


# ------------------------------------------------------------------------------------------ model
@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_odd_input_shapes(mode: str):
    """Non-square inputs that are not multiples of 32: logits at input resolution, train and test."""
    model = tiny_segmentor()
    model.test_cfg = (
        ConfigDict(mode=mode, crop_size=(64, 64), stride=(43, 43))
        if mode == "slide"
        else ConfigDict(mode=mode)
    )
    model.eval()
    h, w = 75, 101
    x = torch.randn(1, 3, h, w)
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), padding_size=[0, 0, 0, 0])
    with torch.no_grad():
        out = model.predict(x, [SegDataSample(metainfo=meta)])
    assert out[0].seg_logits.data.shape == (len(CLASSES), h, w)
    assert out[0].pred_sem_seg.data.shape == (1, h, w)

    model.train()
    sample = SegDataSample(metainfo=meta)
    sample.gt_sem_seg = PixelData(data=torch.randint(0, len(CLASSES), (1, h, w)))
    losses = model.loss(torch.randn(2, 3, h, w), [sample, sample])
    total = sum(v for k, v in losses.items() if "loss" in k)
    total.backward()
    assert torch.isfinite(total)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_pretrained_loading(tmp_path: Path, suffix: str):
    """A timm-keyed classification checkpoint fills every backbone tensor (classifier dropped)."""
    path = tmp_path / f"cls{suffix}"
    state = save_classifier(path)
    model = tiny_segmentor(
        init_cfg=dict(type="Pretrained", checkpoint=str(path)), kernel_sizes=(23, 11, 7, 5)
    )
    model.init_weights()
    loaded = model.backbone.state_dict()
    for key, value in state.items():
        if key.startswith(("head.", "norm.")):
            continue
        assert torch.equal(loaded[key], value), key


def test_pretrained_loading_fails_loudly(tmp_path: Path):
    wrong = tmp_path / "wrong.pth"
    save_classifier(wrong, dims=(16, 24, 32, 48))  # last stage too wide
    model = tiny_segmentor(init_cfg=dict(type="Pretrained", checkpoint=str(wrong)))
    with pytest.raises(CheckpointError, match="stages.3"):
        model.init_weights()
    model = tiny_segmentor(init_cfg=dict(type="Pretrained", checkpoint=str(tmp_path / "absent.pth")))
    with pytest.raises(CheckpointError, match="not found"):
        model.init_weights()


# ------------------------------------------------------------------------------------------ runner
@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory) -> dict:
    """One training iteration, then validation by sliding window, through mmseg's Runner."""
    work_dir = tmp_path_factory.mktemp("run")
    cfg = tiny_builtin_cfg(tiny_data, work_dir, max_iters=1)
    return dict(cfg=cfg, work_dir=work_dir, **mm_runner.train(cfg))


def test_train_one_iteration_and_slide_eval(trained: dict):
    assert trained["iterations"] == 1
    assert Path(trained["checkpoint"]).name == "iter_1.pth"
    assert set(trained["metrics"]) == {"mIoU", "mAcc", "aAcc"}
    assert 0.0 <= trained["metrics"]["mIoU"] <= 100.0


def test_tta_inference(trained: dict):
    result = mm_runner.test(trained["cfg"], trained["checkpoint"], tta=True)
    assert set(result["metrics"]) == {"mIoU", "mAcc", "aAcc"}


def test_resume(trained: dict):
    """Resume from the mmengine checkpoint (HistoryBuffer etc. under torch's weights_only load)."""
    from mmengine.runner import Runner

    cfg = copy.deepcopy(trained["cfg"])
    set_max_iters(cfg, 2)
    cfg.resume = True
    cfg.load_from = trained["checkpoint"]
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    assert (Path(trained["work_dir"]) / "iter_2.pth").is_file()


def tiny_cli_options(data_root: Path, max_iters: int = 2) -> list[str]:
    """``--cfg-options`` that shrink the built-in config like :func:`tiny_builtin_cfg` (for the CLIs);
    ``max_iters`` >= 2 (warmup and poly phases both need an iteration)."""
    loaders = ("train_dataloader", "val_dataloader", "test_dataloader")
    return [
        *(f"{loader}.dataset.data_root={data_root}" for loader in loaders),
        *(f"{loader}.num_workers=0" for loader in loaders),
        *(f"{loader}.persistent_workers=False" for loader in loaders),
        "train_dataloader.batch_size=2",
        f"model.backbone.depths={list(TINY_DEPTHS)}".replace(" ", ""),
        f"model.backbone.dims={list(TINY_DIMS)}".replace(" ", ""),
        f"model.decode_head.in_channels={list(TINY_DIMS)}".replace(" ", ""),
        "model.decode_head.channels=16",
        f"model.auxiliary_head.in_channels={TINY_DIMS[2]}",
        "model.auxiliary_head.channels=8",
        f"train_cfg.max_iters={max_iters}",
        f"train_cfg.val_interval={max_iters}",
        f"default_hooks.checkpoint.interval={max_iters}",
        f"param_scheduler.0.end={max_iters // 2}",
        f"param_scheduler.1.begin={max_iters // 2}",
        f"param_scheduler.1.end={max_iters}",
    ]


def _run(args: list[str]) -> str:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    run = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout + run.stderr


@pytest.mark.slow
def test_mmseg_own_tools(tiny_data: Path, tmp_path: Path):
    """mmseg's unmodified tools/train.py and tools/test.py --tta run the built-in config."""
    options = tiny_cli_options(tiny_data)
    config, work_dir = str(BUILTIN_CONFIG), tmp_path / "work"
    _run([str(MMSEG_TOOLS / "train.py"), config, "--work-dir", str(work_dir), "--cfg-options", *options])
    checkpoint = work_dir / "iter_2.pth"
    assert checkpoint.is_file()
    out = _run(
        [str(MMSEG_TOOLS / "test.py"), config, str(checkpoint), "--tta", "--work-dir", str(work_dir)]
        + ["--cfg-options", *options]
    )
    assert "mIoU" in out


@pytest.mark.slow
def test_shared_tools_serve_segmentation(load_tool, trained: dict, tmp_path: Path):
    """The repository's tools/train.py, test.py, analysis_tools/get_flops.py and benchmark.py on a
    segmentation config."""
    data_root = Path(trained["cfg"].train_dataloader.dataset.data_root)
    options = tiny_cli_options(data_root)
    config = str(BUILTIN_CONFIG)
    result = load_tool("train").main([config, "--work-dir", str(tmp_path), "--cfg-options", *options])
    assert result["iterations"] == 2 and result["checkpoint"] == str(tmp_path / "iter_2.pth")
    metrics = load_tool("test").main(
        [config, str(tmp_path / "iter_2.pth"), "--tta", "--cfg-options", *options]
    )
    assert "mIoU" in metrics
    get_flops = load_tool("analysis_tools/get_flops")
    flops = get_flops.main([config, "--shape", "75", "101", "--cfg-options", *options])
    assert flops["flops"] > 0 and flops["params"] > 0
    load_tool("analysis_tools/benchmark").main(
        [config, "--shape", "75", "101", "--max-iter", "2", "--num-warmup", "1", "--cfg-options", *options]
    )
