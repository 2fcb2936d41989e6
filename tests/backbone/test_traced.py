"""ParCNetV2 outside eager PyTorch: torch.compile (fullgraph, recompiles), torch.export and ONNX at
dynamic sizes, and the values of the traced formulation against eager."""

import pytest
import timm
import torch
from torch._dynamo.testing import CompileCounterWithBackend

import parcnetv2  # noqa: F401  (registers the timm models)
from parcnetv2.backbone import ParCNetV2
from parcnetv2.deploy import check_onnx, check_program, export_onnx, export_program

SMALL = dict(depths=(1, 1, 1, 1), dims=(16, 32, 48, 64))


def small_classifier(oc_mode: str = "adaptive") -> ParCNetV2:
    torch.manual_seed(0)
    return ParCNetV2(num_classes=10, oc_mode=oc_mode, **SMALL).eval()


def small_features() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("parcnetv2_xt", features_only=True, **SMALL).eval()


def relative(actual, expected) -> float:
    actual = actual if isinstance(actual, (list, tuple)) else [actual]
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    return max(float((a - e).abs().max() / e.abs().max()) for a, e in zip(actual, expected, strict=True))


pytestmark = pytest.mark.slow  # compiling and exporting take tens of seconds per test


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compile_inference_recompiles_once_per_new_size():
    model = small_classifier()
    counter = CompileCounterWithBackend("eager")
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    with torch.no_grad():
        for _ in range(2):
            compiled(torch.randn(2, 3, 64, 64))
        assert counter.frame_count == 1  # no recompilation on a second call at the same size
        compiled(torch.randn(2, 3, 96, 80))
        assert counter.frame_count == 2  # a new size: one recompile, now with dynamic sizes
        for size in ((128, 96), (161, 193)):
            compiled(torch.randn(2, 3, *size))
        assert counter.frame_count == 2


@pytest.mark.parametrize("oc_mode", ["adaptive", "fixed"])
def test_compile_dynamic_true_never_recompiles(oc_mode):
    """What the tracers record (index-arithmetic resize, gathered Toeplitz, matmuls) equals eager, at
    sizes where fixed kernels are longer and shorter than 2n - 1; one graph for all sizes."""
    model = small_classifier(oc_mode)
    counter = CompileCounterWithBackend("eager")
    compiled = torch.compile(model, backend=counter, fullgraph=True, dynamic=True)
    with torch.no_grad():
        # a non-square first input: dynamo's duck sizing would tie H to W after a square one
        for size in ((64, 96), (97, 45), (193, 161)):
            x = torch.randn(2, 3, *size)
            assert relative(compiled(x), model(x)) < 1e-5
    assert counter.frame_count == 1


def test_compile_training_fullgraph_gradients():
    """Forward and backward through AOTAutograd (fullgraph) give eager's loss and gradients."""
    model = small_classifier().train()
    x = torch.randn(2, 3, 64, 96)
    model(x).square().mean().backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    counter = CompileCounterWithBackend("aot_eager")
    torch.compile(model, backend=counter, fullgraph=True)(x).square().mean().backward()
    assert counter.frame_count == 1
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_compile_features_only_and_openmmlab_backbone():
    pytest.importorskip("mmengine")
    from parcnetv2.openmmlab.backbone import ParCNetV2Backbone

    torch.manual_seed(0)
    for model in (small_features(), ParCNetV2Backbone(**SMALL).eval()):
        torch._dynamo.reset()
        compiled = torch.compile(model, backend="eager", fullgraph=True)
        x = torch.randn(1, 3, 96, 64)
        with torch.no_grad():
            assert relative(compiled(x), model(x)) < 1e-5
        # training mode too (no data-dependent Python in the backward either)
        model.train()
        out = torch.compile(model, backend="aot_eager", fullgraph=True)(torch.randn(2, 3, 64, 64))
        sum(o.mean() for o in out).backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("builder", [small_classifier, small_features], ids=["classifier", "features_only"])
def test_export_dynamic_batch_height_width(builder):
    model = builder()
    program = export_program(model)
    errors = check_program(program, model, sizes=((64, 64), (97, 45), (193, 161)))
    assert max(errors.values()) < 1e-5, errors
    with torch.no_grad():  # batch is dynamic too
        x = torch.randn(3, 3, 80, 112)
        assert relative(program.module()(x), model(x)) < 1e-5


def test_onnx_dynamic_sizes_match_pytorch(tmp_path):
    pytest.importorskip("onnxruntime")
    model = small_classifier()
    report = export_onnx(model, tmp_path / "small.onnx")
    assert report.path.is_file() and report.size_bytes > 0 and report.opset >= 18
    errors = check_onnx(report.path, model, sizes=((64, 64), (97, 45), (161, 193)), batch=2)
    assert max(errors.values()) < 1e-4, errors
    import onnx

    ops = {node.op_type for node in onnx.load(report.path).graph.node}
    assert "MatMul" in ops and not any(op.startswith(("ATen", "Py")) for op in ops)  # standard ops only
    # Toeplitz matrices gathered by channel rows (no gather of single values), the norms as fused
    # LayerNormalization
    assert "GatherND" in ops and not ops & {"Gather", "GatherElements"} and "LayerNormalization" in ops
    assert "ReduceL2" not in ops


def test_onnx_fixed_size_matches_pytorch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    import onnx

    model = small_classifier()
    report = export_onnx(model, tmp_path / "fixed.onnx", size=(97, 45))
    errors = check_onnx(report.path, model, sizes=((97, 45),), batch=3)  # batch stays dynamic
    assert max(errors.values()) < 1e-4, errors
    # onnxruntime folds the kernel resizing and the Toeplitz build into constants when it loads the model
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(tmp_path / "folded.onnx")
    ort.InferenceSession(str(report.path), options, providers=["CPUExecutionProvider"])
    ops = {node.op_type for node in onnx.load(tmp_path / "folded.onnx").graph.node}
    assert "MatMul" in ops and not ops & {"Range", "GatherND", "Expand", "Slice", "Concat"}, ops
    with pytest.raises(ValueError, match="at least 35x35"):
        export_onnx(model, tmp_path / "small.onnx", size=(32, 64))
