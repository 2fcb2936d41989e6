"""ParCNetV2 layer-/stage-wise lr decay: ids, scales, weight-decay exemptions, registry lookup."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

pytest.importorskip("mmengine")

from mmengine.optim import build_optim_wrapper  # noqa: E402

from parcnetv2.openmmlab.backbone import ParCNetV2Backbone  # noqa: E402
from parcnetv2.openmmlab.layer_decay import (  # noqa: E402
    ParCNetV2LayerDecayOptimizerConstructor,
    backbone_depths,
    get_layer_id_layer_wise,
    get_layer_id_stage_wise,
)


class Detector(nn.Module):
    """Stand-in detector: a ParCNetV2 backbone plus a 'neck' and a 'head'."""

    def __init__(self, depths=(3, 3, 12, 3), dims=(8, 8, 8, 8), frozen_stages=-1):
        super().__init__()
        self.backbone = ParCNetV2Backbone(
            depths=depths, dims=dims, kernel_sizes=(5, 5, 5, 5), frozen_stages=frozen_stages
        )
        self.neck = nn.Conv2d(8, 4, 1)
        self.head = nn.Linear(4, 2)


def build_groups(model, decay_type="layer_wise", decay_rate=0.9, num_layers=7, lr=1e-3, wd=0.05):
    wrapper = build_optim_wrapper(
        model,
        dict(
            type="OptimWrapper",
            constructor="ParCNetV2LayerDecayOptimizerConstructor",
            paramwise_cfg=dict(decay_rate=decay_rate, decay_type=decay_type, num_layers=num_layers),
            optimizer=dict(type="AdamW", lr=lr, weight_decay=wd),
        ),
    )
    by_name = {}
    for group in wrapper.optimizer.param_groups:
        for name in group["param_names"]:
            by_name[name] = group
    return wrapper, by_name


def test_published_layer_ids_tiny():
    depths = (3, 3, 12, 3)
    expect = {
        "backbone.downsample_layers.0.conv.weight": 0,
        "backbone.stages.0.2.mlp.fc1.weight": 1,
        "backbone.downsample_layers.1.conv.weight": 2,
        "backbone.stages.1.0.norm1.weight": 2,
        "backbone.downsample_layers.2.pre_norm.weight": 3,
        "backbone.stages.2.0.mlp.fc1.weight": 3,
        "backbone.stages.2.5.mlp.fc1.weight": 4,
        "backbone.stages.2.11.res_scale1.scale": 6,
        "backbone.downsample_layers.3.conv.bias": 7,
        "backbone.stages.3.2.mlp.fc2.weight": 7,
        "backbone.norm3.weight": 8,
        "neck.lateral_convs.0.conv.weight": 8,
        "roi_head.bbox_head.fc_cls.weight": 8,
    }
    for name, layer_id in expect.items():
        assert get_layer_id_layer_wise(name, depths, num_layers=7) == layer_id, name
    # S/B: 39 blocks -> 13 layers, the last stage starts at 36 // 3 + 1 = 13
    assert get_layer_id_layer_wise("backbone.stages.3.0.x", (3, 9, 24, 3), 13) == 13
    assert get_layer_id_layer_wise("backbone.stages.1.8.x", (3, 9, 24, 3), 13) == 4
    assert get_layer_id_layer_wise("backbone.downsample_layers.2.x", (3, 9, 24, 3), 13) == 5


def test_stage_wise_ids():
    assert get_layer_id_stage_wise("backbone.downsample_layers.2.conv.weight", 6) == 0
    assert get_layer_id_stage_wise("backbone.stages.3.1.mlp.fc1.weight", 6) == 4
    assert get_layer_id_stage_wise("decode_head.conv_seg.weight", 6) == 7
    assert get_layer_id_stage_wise("backbone.norm0.weight", 6) == 7


def test_depths_from_names():
    model = Detector(depths=(1, 2, 3, 1))
    assert backbone_depths([n for n, _ in model.named_parameters()]) == (1, 2, 3, 1)
    with pytest.raises(ValueError, match="ParCNetV2"):
        backbone_depths(["backbone.layer1.0.conv1.weight"])


def test_groups_lr_and_weight_decay():
    model = Detector()
    wrapper, by_name = build_groups(model, decay_rate=0.9, num_layers=7, lr=1e-3, wd=0.05)
    names = {n for n, _ in model.named_parameters()}
    assert set(by_name) == names  # every parameter in exactly one group
    assert sum(len(g["params"]) for g in wrapper.optimizer.param_groups) == len(names)

    def check(name, layer_id, decayed):
        group = by_name[name]
        assert group["lr"] == pytest.approx(1e-3 * 0.9 ** (8 - layer_id)), name
        assert group["weight_decay"] == (0.05 if decayed else 0.0), name
        assert group["group_name"] == f"layer_{layer_id}_{'decay' if decayed else 'no_decay'}"

    check("backbone.downsample_layers.0.conv.weight", 0, True)
    check("backbone.downsample_layers.0.conv.bias", 0, False)
    check("backbone.downsample_layers.0.post_norm.weight", 0, False)
    check("backbone.stages.2.4.token_mixer.dwconv1.conv_h.weight", 4, True)
    check("backbone.stages.2.4.res_scale2.scale", 4, False)
    check("backbone.stages.3.0.mlp.fc1.bias", 7, False)
    check("backbone.norm1.weight", 8, False)
    check("neck.weight", 8, True)
    check("head.bias", 8, False)
    assert by_name["head.weight"]["lr_scale"] == 1.0


def test_stage_wise_groups_and_frozen():
    model = Detector(frozen_stages=1)
    wrapper, by_name = build_groups(model, decay_type="stage_wise", decay_rate=0.9, num_layers=6)
    assert by_name["backbone.stages.3.2.mlp.fc1.weight"]["lr_scale"] == pytest.approx(0.9**3)  # id 4
    assert by_name["backbone.downsample_layers.2.conv.weight"]["lr_scale"] == pytest.approx(0.9**7)
    assert not any(n.startswith(("backbone.stages.0.", "backbone.downsample_layers.0.")) for n in by_name)


def test_errors():
    with pytest.raises(ValueError, match="num_layers=7"):
        build_groups(Detector(), num_layers=5)
    with pytest.raises(ValueError, match="decay_type"):
        build_groups(Detector(), decay_type="block_wise")
    with pytest.raises(ValueError, match="unsupported paramwise_cfg"):
        ParCNetV2LayerDecayOptimizerConstructor(
            dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=1.0, weight_decay=0.05)),
            dict(decay_rate=0.9, num_layers=7, norm_decay_mult=0.0),
        )


@pytest.mark.parametrize("scope", ["mmdet", "mmseg"])
def test_found_from_openmmlab_scopes(scope):
    pytest.importorskip(scope)
    from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, DefaultScope

    import parcnetv2.openmmlab  # noqa: F401

    with DefaultScope.overwrite_default_scope(scope):
        assert OPTIM_WRAPPER_CONSTRUCTORS.get("ParCNetV2LayerDecayOptimizerConstructor") is (
            ParCNetV2LayerDecayOptimizerConstructor
        )
        wrapper, _ = build_groups(Detector(depths=(1, 1, 1, 1)), num_layers=2)
    assert isinstance(wrapper.optimizer, torch.optim.AdamW)
