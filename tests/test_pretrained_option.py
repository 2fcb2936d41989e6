"""The README's ``--cfg-options model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint=P``
works on every detection and segmentation config, and really loads the weights on the built-in ones."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet")
pytest.importorskip("mmseg")

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.py") if "_base_" not in p.parts)
BUILTIN = [p for p in CONFIGS if "synthetic" in p.name]
OPTION = ["model.backbone.init_cfg.type=Pretrained", "model.backbone.init_cfg.checkpoint={}"]


def _with_option(path: Path, checkpoint: str) -> Config:
    """The config as ``--cfg-options`` leaves it (mmengine's own parser and merge)."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--cfg-options", nargs="+", action=DictAction)
    args = parser.parse_args(["--cfg-options", *(o.format(checkpoint) for o in OPTION)])
    cfg = Config.fromfile(str(path))
    cfg.merge_from_dict(args.cfg_options)
    return cfg


def _models(cfg: Config):
    init_default_scope(cfg.default_scope)
    return importlib.import_module(f"{cfg.default_scope}.registry").MODELS


def test_every_config_is_covered():
    assert len(CONFIGS) >= 16 and len(BUILTIN) == 2


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_option_builds_every_config(path: Path):
    cfg = _with_option(path, "/weights/xt.pth")
    assert cfg.model.backbone.init_cfg.type == "Pretrained"
    assert cfg.model.backbone.init_cfg.checkpoint == "/weights/xt.pth"
    with torch.device("meta"):
        model = _models(cfg).build(cfg.model)
    assert model.backbone.init_cfg["type"] == "Pretrained"
    assert model.backbone.init_cfg["checkpoint"] == "/weights/xt.pth"


@pytest.mark.parametrize("path", BUILTIN, ids=lambda p: p.name)
def test_option_loads_a_classification_checkpoint(path: Path, tmp_path: Path):
    """A timm-keyed classifier of the built-in set (another head size) initialises the backbone."""
    import timm
    from safetensors.torch import save_file

    import parcnetv2  # noqa: F401  (registers the timm models)

    torch.manual_seed(3)
    state = timm.create_model("parcnetv2_xt", num_classes=5).state_dict()
    checkpoint = tmp_path / "best_weights.safetensors"
    save_file(state, str(checkpoint))
    cfg = _with_option(path, str(checkpoint))
    model = _models(cfg).build(cfg.model)
    key = "stages.2.4.mlp.fc1.weight"
    assert not torch.equal(model.backbone.state_dict()[key], state[key])
    model.init_weights()
    loaded = model.backbone.state_dict()
    assert torch.equal(loaded[key], state[key])
    assert torch.equal(loaded["downsample_layers.0.conv.weight"], state["downsample_layers.0.conv.weight"])
