"""The OpenMMLab ParCNetV2 backbone: outputs, names, freezing, and pretrained loading that fails loudly."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("mmengine")

from parcnetv2.backbone import ParCNetV2  # noqa: E402
from parcnetv2.backbone.checkpoint import CheckpointError  # noqa: E402
from parcnetv2.openmmlab.backbone import ParCNetV2Backbone, load_pretrained_backbone  # noqa: E402

TINY = dict(depths=(1, 1, 2, 1), dims=(16, 32, 48, 64))


def backbone(**kwargs) -> ParCNetV2Backbone:
    torch.manual_seed(0)
    return ParCNetV2Backbone(**{**TINY, **kwargs})


def classifier(**kwargs) -> ParCNetV2:
    """A classification model of the same shape (different init), as our classification pipeline saves."""
    torch.manual_seed(1)
    return ParCNetV2(num_classes=10, **{**TINY, **kwargs})


def test_outputs_channels_strides_and_names():
    model = backbone().eval()
    feats = model(torch.randn(2, 3, 96, 64))
    assert [f.shape for f in feats] == [
        (2, 16, 24, 16),
        (2, 32, 12, 8),
        (2, 48, 6, 4),
        (2, 64, 3, 2),
    ]
    assert model.out_channels == [16, 32, 48, 64]
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert names == {"downsample_layers", "stages", "norm0", "norm1", "norm2", "norm3"}
    assert "stages.2.1.token_mixer.dwconv1.conv_h.weight" in dict(model.named_parameters())


@pytest.mark.parametrize("out_norms", [True, False])
def test_outputs_are_nchw_contiguous_for_roi_align(out_norms):
    """The blocks run channels-last; mmcv's CPU RoIAlign reads its input buffer as NCHW, so strided maps
    would give scrambled RoI features (heads that never learn) without any error."""
    from mmcv.ops import roi_align

    feats = backbone(out_norms=out_norms).eval()(torch.randn(2, 3, 96, 64))
    assert all(f.is_contiguous() for f in feats)
    rois = torch.tensor([[0, 4.0, 8.0, 40.0, 60.0], [1, 10.0, 2.0, 30.0, 90.0]])
    pooled = roi_align(feats[0], rois, (7, 7), 0.25, 0, "avg", True)
    nchw = feats[0].clone(memory_format=torch.contiguous_format)
    reference = roi_align(nchw, rois, (7, 7), 0.25, 0, "avg", True)
    torch.testing.assert_close(pooled, reference)


def test_arch_variants_and_out_indices():
    with torch.device("meta"):  # structure only, no memory or init time
        xt = ParCNetV2Backbone(arch="xt")
        assert xt.dims == (48, 96, 192, 320) and xt.depths == (3, 3, 9, 2)
        assert ParCNetV2Backbone(arch="t").depths == (3, 3, 12, 3)
        assert ParCNetV2Backbone(arch="base", depths=(1, 1, 1, 1)).dims == (96, 192, 384, 576)
    model = backbone(out_indices=(1, 2), out_norms=False).eval()
    feats = model(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [32, 48]
    assert len(model.stages) == 3  # the last stage is not built
    assert not any(n.startswith("norm") for n, _ in model.named_parameters())
    with pytest.raises(ValueError, match="arch"):
        ParCNetV2Backbone(arch="huge")


def test_matches_the_model_class_and_checkpointing():
    model = backbone(out_norms=False, drop_path_rate=0.0).eval()
    net = ParCNetV2(num_classes=0, **TINY).eval()
    net.load_state_dict({k: v for k, v in model.state_dict().items()}, strict=False)
    x = torch.randn(1, 3, 64, 96)
    expected = net.forward_intermediates(x, indices=[0, 1, 2, 3], intermediates_only=True)
    for got, want in zip(model(x), expected, strict=True):
        torch.testing.assert_close(got, want)
    cp = backbone(with_cp=True).train()
    cp.load_state_dict(backbone().state_dict())
    plain = backbone().train()
    y1, y2 = cp(x)[-1], plain(x)[-1]
    torch.testing.assert_close(y1, y2)
    y1.sum().backward()
    assert cp.stages[0][0].norm1.weight.grad is not None


def test_fixed_mode_and_adaptive_mode_differ_only_off_224():
    fixed = backbone(oc_mode="fixed").eval()
    adaptive = backbone(oc_mode="adaptive").eval()
    adaptive.load_state_dict(fixed.state_dict())
    x = torch.randn(1, 3, 224, 224)  # 56/28/14/7 maps: 111/55/27/13 = 2H-1, the modes agree
    for a, b in zip(fixed(x), adaptive(x), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    x = torch.randn(1, 3, 128, 160)
    assert not torch.allclose(fixed(x)[0], adaptive(x)[0])


def test_frozen_stages():
    model = backbone(frozen_stages=2)
    model.train()
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert all(
        n.startswith(
            ("downsample_layers.0.", "downsample_layers.1.", "stages.0.", "stages.1.", "norm0.", "norm1.")
        )
        for n in frozen
    )
    assert any(n.startswith("downsample_layers.1.") for n in frozen)
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith(("stages.2.", "norm2.")))
    assert not model.stages[0].training and model.stages[2].training
    stem_only = backbone(frozen_stages=0)
    assert {
        n.split(".")[0] + "." + n.split(".")[1]
        for n, p in stem_only.named_parameters()
        if not p.requires_grad
    } == {"downsample_layers.0"}


# --------------------------------------------------------------------------------- pretrained loading
@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,  # bare state dict, as exported
        lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3},  # DDP training ckpt
        lambda sd: {"model": sd},  # published format
        lambda sd: {
            "state_dict": {f"backbone.{k}": v for k, v in sd.items()} | {"neck.w": torch.zeros(1)}
        },  # mm
    ],
    ids=["bare", "module-prefix", "published", "mm-detector"],
)
def test_loads_every_backbone_tensor(tmp_path, wrap, monkeypatch):
    import parcnetv2.openmmlab.backbone as module

    messages = []
    monkeypatch.setattr(module, "print_log", lambda msg, logger=None: messages.append(msg))
    source = classifier()
    path = tmp_path / "cls.pth"
    torch.save(wrap(source.state_dict()), path)
    model = backbone(init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    model.init_weights()
    state = model.state_dict()
    body = [k for k in state if k.startswith(("downsample_layers.", "stages."))]
    for key in body:
        torch.testing.assert_close(state[key], source.state_dict()[key], msg=key)
    assert (
        len(messages) == 1 and f"loaded {len(body)}/{len(body)} backbone tensors from {path}" in messages[0]
    )


def test_classifier_dropped_and_kernels_resized(tmp_path):
    source = classifier(kernel_sizes=(31, 15, 7, 5))
    path = tmp_path / "small_kernels.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    model = backbone()  # stored kernels 111/55/27/13
    result = load_pretrained_backbone(model, str(path))
    assert any(k.startswith("head.") for k in result["ignored"])
    assert any(k.startswith("norm.") for k in result["ignored"])
    resized = result["resized"]
    assert len(resized) == 2 * sum(TINY["depths"])
    weight = model.state_dict()["stages.0.0.token_mixer.dwconv1.conv_h.weight"]
    original = source.state_dict()["stages.0.0.token_mixer.dwconv1.conv_h.weight"]
    assert weight.shape == (16, 1, 111, 1)
    torch.testing.assert_close(weight[:, :, 0], original[:, :, 0])  # end taps kept (align_corners)
    torch.testing.assert_close(weight[:, :, -1], original[:, :, -1])
    assert set(result["new"]) == {f"norm{i}.{p}" for i in range(4) for p in ("weight", "bias")}


def test_missing_file_is_an_error(tmp_path):
    model = backbone(init_cfg=dict(type="Pretrained", checkpoint=str(tmp_path / "nope.pth")))
    with pytest.raises(CheckpointError, match="not found"):
        model.init_weights()


def test_unloaded_backbone_tensors_are_named(tmp_path):
    state = classifier().state_dict()
    del state["stages.2.1.mlp.fc1.weight"]
    state = {k: v for k, v in state.items() if not k.startswith("downsample_layers.3.")}
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_pretrained_backbone(backbone(), str(path))
    message = str(err.value)
    assert "stages.2.1.mlp.fc1.weight" in message and "downsample_layers.3.conv.weight" in message
    assert "missing from checkpoint" in message


def test_wrong_model_is_an_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(ParCNetV2(num_classes=10, depths=(1, 1, 3, 1), dims=TINY["dims"]).state_dict(), path)
    with pytest.raises(CheckpointError, match="stages.2.2"):
        load_pretrained_backbone(backbone(), str(path))
    torch.save(ParCNetV2(num_classes=10, depths=TINY["depths"], dims=(16, 32, 48, 80)).state_dict(), path)
    with pytest.raises(CheckpointError, match="shapes do not fit"):
        load_pretrained_backbone(backbone(), str(path))
    with pytest.raises(CheckpointError, match="needs a checkpoint path"):
        backbone(init_cfg=dict(type="Pretrained", checkpoint=None)).init_weights()


def test_pretrained_inside_a_detector(tmp_path):
    """Through mmengine's init flow: the detector's init_weights reaches the backbone's loader."""
    pytest.importorskip("mmdet")
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import parcnetv2.openmmlab  # noqa: F401  (registers ParCNetV2)

    init_default_scope("mmdet")
    source = classifier()
    path = tmp_path / "cls.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    detector = MODELS.build(
        dict(
            type="RetinaNet",
            data_preprocessor=dict(type="DetDataPreprocessor"),
            backbone=dict(type="ParCNetV2", **TINY, init_cfg=dict(type="Pretrained", checkpoint=str(path))),
            neck=dict(type="FPN", in_channels=[16, 32, 48, 64], out_channels=32, num_outs=4),
            bbox_head=dict(
                type="RetinaHead",
                num_classes=3,
                in_channels=32,
                feat_channels=32,
                stacked_convs=1,
                anchor_generator=dict(
                    type="AnchorGenerator",
                    octave_base_scale=4,
                    scales_per_octave=1,
                    ratios=[1.0],
                    strides=[4, 8, 16, 32],
                ),
                bbox_coder=dict(type="DeltaXYWHBBoxCoder"),
                loss_cls=dict(type="FocalLoss", use_sigmoid=True),
                loss_bbox=dict(type="L1Loss"),
            ),
        )
    )
    detector.init_weights()
    key = "stages.1.0.mlp.fc2.weight"
    torch.testing.assert_close(detector.backbone.state_dict()[key], source.state_dict()[key])
