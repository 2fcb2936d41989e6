"""tools/analysis_tools/get_flops.py (OC counted at its runtime size) and benchmark.py,
tools/model_converters/convert_checkpoint.py."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn as nn

pytest.importorskip("mmdet")

from parcnetv2.backbone import ParCNetV2  # noqa: E402

from parcnetv2.openmmlab.backbone import ParCNetV2Backbone  # noqa: E402
from parcnetv2.openmmlab.complexity import oc_direct_flops  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY_T = "configs/mask_rcnn/mask-rcnn_parcnetv2-t_fpn_amp-1x_coco.py"
# one block per stage and few proposals/detections: the real T config's modules, in seconds
FAST = [
    "model.backbone.depths=(1,1,1,1)",
    "model.test_cfg.rpn.max_per_img=50",
    "model.test_cfg.rcnn.max_per_img=10",
]


def test_oc_counted_at_runtime_kernel_size():
    model = ParCNetV2Backbone(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32), out_norms=False).eval()
    x = torch.randn(1, 3, 128, 64)
    flops = oc_direct_flops(model, lambda: model(x))
    # stage i map: (32/2^i) x (16/2^i), channels = block dim; kernels 2H-1 and 2W-1 (adaptive)
    for i, (h, w, c) in enumerate([(32, 16, 8), (16, 8, 16), (8, 4, 24), (4, 2, 32)]):
        assert flops[f"stages.{i}.0.token_mixer.dwconv1"] == c * h * w * ((2 * h - 1) + (2 * w - 1))
    fixed = ParCNetV2Backbone(
        depths=(1, 1, 1, 1), dims=(8, 16, 24, 32), out_norms=False, oc_mode="fixed"
    ).eval()
    flops = oc_direct_flops(fixed, lambda: fixed(x))
    # stored 111/55/27/13 taps, only the 2n-1 that meet the input run
    assert flops["stages.0.0.token_mixer.dwconv1"] == 8 * 32 * 16 * (min(111, 63) + min(111, 31))
    assert flops["stages.3.0.token_mixer.dwconv1"] == 32 * 4 * 2 * (min(13, 7) + min(13, 3))


class _BackboneOnly(nn.Module):
    """A 'detector' that is just the backbone, with the ``mode='tensor'`` forward signature."""

    def __init__(self, **kwargs):
        super().__init__()
        self.backbone = ParCNetV2Backbone(out_norms=False, **kwargs)

    def forward(self, inputs, data_samples=None, mode="tensor"):
        return self.backbone(inputs)


def test_backbone_flops_match_the_published_count():
    """XT at 224: every matmul/conv counted (1x1 convs run as baddbmm), OC at its 2H-1 kernels = 1.55G."""
    from mmengine.registry import init_default_scope

    from parcnetv2.openmmlab.complexity import measure_complexity

    init_default_scope("mmdet")
    result = measure_complexity(_BackboneOnly(arch="xt"), "mmdet", 224, 224)
    assert result.flops == pytest.approx(1.55e9, rel=0.02)  # published analytic count (head excluded)
    uncounted = {
        op for op in result.unsupported_ops if any(k in op for k in ("mm", "conv", "linear", "matmul"))
    }
    assert not uncounted


def test_get_flops_on_tiny_t_config(load_tool, capsys):
    get_flops = load_tool("analysis_tools/get_flops")
    result = get_flops.main([str(ROOT / TINY_T), "--shape", "256", "192", "--cfg-options", *FAST])
    out = capsys.readouterr().out
    assert "Input shape: (3, 256, 192)" in out and "Flops:" in out and "Params:" in out
    assert result["oc_flops"] > 0 and result["flops"] > result["oc_flops"]


def test_flops_do_not_depend_on_the_oc_algorithm():
    """The corrected total is the same whichever path the OC runs (when the backbone can force one)."""
    oc_module = importlib.import_module("parcnetv2.backbone.oversized_conv")
    force = getattr(oc_module, "force_oc_path", None)
    if force is None:
        pytest.skip("backbone has no force_oc_path")
    from mmengine.registry import init_default_scope

    from parcnetv2.openmmlab.complexity import measure_complexity

    init_default_scope("mmdet")
    model = nn.Module()
    model.backbone = ParCNetV2Backbone(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = model.backbone

        def forward(self, inputs, data_samples=None, mode="tensor"):
            return self.backbone(inputs)

    results = {}
    for path in ("direct", "gemm"):
        with force(model.backbone, path):
            results[path] = measure_complexity(Wrapper(), "mmdet", 64, 96)
    assert results["direct"].flops == results["gemm"].flops
    assert results["direct"].oc_flops == results["gemm"].oc_flops > 0


def test_convert_classification_checkpoint(load_tool, tmp_path):
    convert = load_tool("model_converters/convert_checkpoint")
    net = ParCNetV2(num_classes=5, depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))
    src = tmp_path / "cls.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}, "epoch": 1}, src)
    dst = tmp_path / "backbone.pth"
    convert.main([str(src), str(dst)])
    state = torch.load(dst, weights_only=True)["state_dict"]
    assert not any(k.startswith(("head.", "norm.", "module.")) for k in state)
    from parcnetv2.openmmlab.backbone import load_pretrained_backbone

    result = load_pretrained_backbone(ParCNetV2Backbone(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32)), str(dst))
    assert len(result["loaded"]) == len([k for k in net.state_dict() if not k.startswith(("head.", "norm."))])


def test_benchmark_fixed_shape(load_tool, capsys):
    benchmark = load_tool("analysis_tools/benchmark")
    result = benchmark.main(
        [
            str(ROOT / TINY_T),
            "--shape",
            "96",
            "128",
            "--max-iter",
            "2",
            "--num-warmup",
            "1",
            "--log-interval",
            "1",
            "--cfg-options",
            *FAST,
        ]
    )
    assert result["fps"] > 0 and "img/s" in capsys.readouterr().out
