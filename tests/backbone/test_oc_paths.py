"""The oversized convolution's exact paths (direct, GEMM, FFT, automatic) agree, forward and backward."""

from __future__ import annotations

import importlib
import itertools
import random

import pytest
import torch
import torch.nn.functional as F

from parcnetv2.backbone import OversizedConv2d, ParCNetV2, oversized_conv
from parcnetv2.backbone.layers import (
    gated_linear,
    l2_layer_norm,
    l2_layer_norm_reference,
    linear_add,
    pointwise_to_channels_first,
    pointwise_to_channels_last,
)
from parcnetv2.backbone.oc_cost import COEFFICIENTS, PassShape, choose_path, path_costs
from parcnetv2.backbone.oc_passes import toeplitz, toeplitz_windows
from parcnetv2.backbone.oc_plan import oc_pass_shapes
from parcnetv2.backbone.oversized_conv import OC_PATHS, force_oc_path

oc_module = importlib.import_module("parcnetv2.backbone.oversized_conv")  # the package exports the function

PATHS = ("gemm", "fft", "auto")
TOLERANCE = 1e-5  # max abs error / max abs value, fp32


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return ((value - reference).abs().max() / reference.abs().max().clamp_min(1e-30)).item()


def run(x, weight_h, weight_w, path, grad, kernel_grad=True):
    """Output and gradients (input, and the kernels' unless ``kernel_grad`` is False) of one path."""
    x = x.detach().requires_grad_()
    weight_h, weight_w = (w.detach().requires_grad_(kernel_grad) for w in (weight_h, weight_w))
    out = oversized_conv(x, weight_h, weight_w, path=path)
    grads = torch.autograd.grad(out, (x, weight_h, weight_w) if kernel_grad else (x,), grad)
    return (out, *grads)


def random_case(seed: int) -> dict:
    """A random OC problem: H != W in 1..300, batch 1-3, kernels adaptive or fixed (shorter/longer)."""
    rng = random.Random(seed)
    height, width = rng.randint(1, 300), rng.randint(1, 300)
    if height == width:
        width = width % 300 + 1

    def taps(n: int) -> int:
        kind = rng.choice(("adaptive", "shorter", "longer"))
        if kind == "adaptive" or n == 1:
            return 2 * n - 1 if kind != "longer" else 2 * n + 1 + 2 * rng.randint(0, 20)
        if kind == "shorter":
            return 2 * rng.randint(0, n - 1) + 1
        return 2 * n + 1 + 2 * rng.randint(0, n)

    return dict(
        batch=rng.randint(1, 3),
        channels=rng.randint(1, 4),
        height=height,
        width=width,
        taps_h=taps(height),
        taps_w=taps(width),
        layout=rng.choice(("contiguous", "channels_last", "strided")),
    )


def make_inputs(case: dict, dtype: torch.dtype = torch.float32):
    b, c, h, w = case["batch"], case["channels"], case["height"], case["width"]
    if case["layout"] == "strided":  # every other column of a wider tensor, then a transposed view
        x = torch.randn(b, c, w, 2 * h, dtype=dtype)[..., ::2].transpose(2, 3)
    else:
        x = torch.randn(b, c, h, w, dtype=dtype)
        if case["layout"] == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
    weight_h = torch.randn(c, 1, case["taps_h"], 1, dtype=dtype)
    weight_w = torch.randn(c, 1, 1, case["taps_w"], dtype=dtype)
    return x, weight_h, weight_w


CASES = [random_case(seed) for seed in range(14)]
CASES += [  # the extremes by hand: 1-pixel sides, the largest side, very long and very short fixed kernels
    dict(batch=2, channels=3, height=1, width=300, taps_h=1, taps_w=599, layout="contiguous"),
    dict(batch=3, channels=2, height=300, width=1, taps_h=599, taps_w=9, layout="channels_last"),
    dict(batch=2, channels=2, height=17, width=5, taps_h=111, taps_w=3, layout="strided"),
    dict(batch=2, channels=4, height=40, width=64, taps_h=7, taps_w=201, layout="contiguous"),
]


def reference_oc(x: torch.Tensor, weight_h: torch.Tensor, weight_w: torch.Tensor) -> torch.Tensor:
    """The OC in float64 by explicit banded Toeplitz products (independent of the paths under test)."""
    channels = x.shape[1]

    def band(
        kernel: torch.Tensor, n: int
    ) -> torch.Tensor:  # (C, K) -> (C, n, n), T[i, j] = k[j - i + K // 2]
        taps = kernel.shape[-1]
        index = torch.arange(n)[None, :] - torch.arange(n)[:, None] + taps // 2
        valid = (index >= 0) & (index < taps)
        return kernel[:, index.clamp(0, taps - 1)] * valid

    x = x.double()
    vertical = band(weight_h.double().reshape(channels, -1), x.shape[2])
    horizontal = band(weight_w.double().reshape(channels, -1), x.shape[3])
    out = torch.einsum("cij,bcjw->bciw", vertical, x)
    return torch.einsum("cwv,bchv->bchw", horizontal, out)


def test_reference_is_the_direct_convolution():
    torch.manual_seed(0)
    for h, w, kh, kw in ((5, 8, 9, 15), (6, 3, 3, 9), (4, 4, 13, 1)):  # adaptive, shorter, longer kernels
        x = torch.randn(2, 3, h, w, dtype=torch.float64)
        weight_h, weight_w = (
            torch.randn(3, 1, kh, 1, dtype=torch.float64),
            torch.randn(3, 1, 1, kw, dtype=torch.float64),
        )
        direct = F.conv2d(x, weight_h, padding=(kh // 2, 0), groups=3)
        direct = F.conv2d(direct, weight_w, padding=(0, kw // 2), groups=3)
        torch.testing.assert_close(reference_oc(x, weight_h, weight_w), direct)


@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: "{batch}x{channels}x{height}x{width}-k{taps_h}x{taps_w}-{layout}".format(**c)
)
def test_paths_match_direct(case):
    """fp32 outputs and gradients of every path against the direct convolution computed in float64.

    The fp32 direct path (``F.conv2d``, oneDNN on CPU) is checked for its output and input gradient
    only: oneDNN's kernel gradient is off by several percent for some shapes (1x4x121x156 with a
    39-tap vertical kernel) and crashes for others (2x1x166x78, 331 taps), which is also why the
    automatic choice avoids it when kernels train on CPU.
    """
    torch.manual_seed(0)
    x, weight_h, weight_w = make_inputs(case)
    grad = torch.randn(case["batch"], case["channels"], case["height"], case["width"])
    leaves = [t.double().requires_grad_() for t in (x, weight_h, weight_w)]
    out = reference_oc(*leaves)
    reference = (out, *torch.autograd.grad(out, leaves, grad.double()))
    names = ("output", "grad x", "grad weight_h", "grad weight_w")
    for path in ("direct", *PATHS):
        result = run(x, weight_h, weight_w, path, grad, kernel_grad=path != "direct")
        for name, value, ref in zip(names, result, reference[: len(result)], strict=False):
            error = relative_error(value.double(), ref)
            assert value.shape == ref.shape and value.dtype == torch.float32
            assert error < TOLERANCE, (path, name, error)


@pytest.mark.parametrize("path", ("direct", "gemm", "fft"))
@pytest.mark.parametrize("shape", [(2, 2, 5, 7, 9, 13), (1, 3, 6, 4, 3, 15), (2, 1, 1, 6, 5, 11)])
def test_gradcheck_float64(path, shape):
    b, c, h, w, kh, kw = shape
    torch.manual_seed(0)
    x = torch.randn(b, c, h, w, dtype=torch.float64, requires_grad=True)
    weight_h = torch.randn(c, 1, kh, 1, dtype=torch.float64, requires_grad=True)
    weight_w = torch.randn(c, 1, 1, kw, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: oversized_conv(*t, path=path), (x, weight_h, weight_w))


@pytest.mark.parametrize("build", [toeplitz, toeplitz_windows])
def test_toeplitz_matrix_definition(build):
    weight = torch.randn(3, 7)
    for n in (1, 3, 4, 6):  # K > 2n - 1 (cropped), K = 2n - 1, K < 2n - 1 (banded)
        matrix = build(weight, n)
        assert matrix.is_contiguous()
        for i in range(n):
            for j in range(n):
                tap = j - i + 3
                expected = weight[:, tap] if 0 <= tap < 7 else torch.zeros(3)
                torch.testing.assert_close(matrix[:, i, j], expected, rtol=0, atol=0)
    for n, grad in itertools.product((1, 2, 5, 8), (False, True)):
        # K = 2n - 1 exactly: a gather of channel rows without autograd, else copies
        full = torch.randn(3, 2 * n - 1, requires_grad=True)
        expected = toeplitz(full, n).detach()
        with torch.set_grad_enabled(grad):
            torch.testing.assert_close(toeplitz(full, n, full=True).detach(), expected, rtol=0, atol=0)
            transposed = toeplitz(full, n, full=True, transposed=True)
        torch.testing.assert_close(transposed.detach(), expected.mT, rtol=0, atol=0)
        if grad:  # the copies' backward: each tap's gradient sums its diagonal
            transposed.sum().backward()
            taps = torch.arange(2 * n - 1)
            torch.testing.assert_close(full.grad, (n - (taps - n + 1).abs()).float().expand(3, -1))


@pytest.mark.parametrize("mode", ("adaptive", "fixed"))
def test_module_paths_agree(mode):
    """Module level in float64 (F.conv2d then avoids oneDNN): every path, kernel resizing included."""
    torch.manual_seed(0)
    module = OversizedConv2d(6, 21, mode=mode).double()
    torch.nn.init.normal_(module.conv_h.weight)
    torch.nn.init.normal_(module.conv_w.weight)
    x = torch.randn(2, 6, 9, 14, dtype=torch.float64)
    results = {}
    for path in ("direct", "gemm", "fft", "auto"):
        module.zero_grad()
        with force_oc_path(module, path):
            out = module(x)
        out.square().sum().backward()
        results[path] = (out, module.conv_h.weight.grad.clone(), module.conv_w.weight.grad.clone())
    for path in ("gemm", "fft", "auto"):
        for value, ref in zip(results[path], results["direct"], strict=True):
            assert relative_error(value, ref) < 1e-10


def test_path_attribute_forces_and_validates():
    x, weight_h, weight_w = torch.randn(1, 2, 4, 5), torch.randn(2, 1, 7, 1), torch.randn(2, 1, 1, 9)
    module = OversizedConv2d(2, 7, mode="fixed")
    with force_oc_path(module, "fft"):
        assert module.path == "fft"
        forced = module(x)
        assert [p.paths for p in module._plans.values()] == [("fft", "fft")]
    assert module.path == "auto"  # restored
    module.path = "gemm"  # the attribute alone forces a path too (a new plan)
    module(x)
    assert ("gemm", "gemm") in [p.paths for p in module._plans.values()]
    torch.testing.assert_close(
        forced, oversized_conv(x, module.conv_h.weight, module.conv_w.weight, "direct")
    )
    with pytest.raises(ValueError, match="OC path"):
        oversized_conv(x, weight_h, weight_w, path="winograd")
    with pytest.raises(ValueError, match="OC path"), force_oc_path(module, "winograd"):
        pass
    with pytest.raises(ValueError, match="OC path"):
        OversizedConv2d(2, 7, path="winograd")
    module.path = "winograd"
    with pytest.raises(ValueError, match="OC path"):
        module(x)
    with pytest.raises(ValueError, match="odd"):
        oversized_conv(x, torch.randn(2, 1, 6, 1), weight_w)
    assert OC_PATHS == ("auto", "direct", "gemm", "fft")


def test_cost_model_choices():
    """The shipped coefficients (a fit in the user's cache would replace them: given explicitly here)."""
    tiny = PassShape(lines=64, n=2, taps=3, channels=64, dim=3)
    for training in (False, True):
        cpu, cuda = COEFFICIENTS["cpu", training], COEFFICIENTS["cuda", training]
        costs = path_costs(tiny, cpu)
        assert set(costs) == {"direct", "gemm", "fft"} and all(c > 0 for c in costs.values())
        assert choose_path(tiny, "cpu", training, coefficients=cpu) == min(costs, key=costs.__getitem__)
        # the 800x1333 stage-1 OC is never worth a direct convolution
        for shape in oc_pass_shapes((1, 64, 200, 333), 399, 665):
            assert choose_path(shape, "cpu", training, coefficients=cpu) != "direct"
        for shape in oc_pass_shapes((1, 512, 7, 7), 13, 13):
            assert choose_path(shape, "cuda", training, coefficients=cuda) in {"direct", "gemm", "fft"}
            # when kernels train on CPU, the direct path (oneDNN's kernel gradient) is never chosen
            assert choose_path(shape, "cpu", training, kernel_grad=True, coefficients=cpu) != "direct"
    assert choose_path(tiny, "cpu", coefficients=COEFFICIENTS["cpu", False]) == "direct"  # overhead decides


@pytest.mark.parametrize("path", ("direct", "gemm", "fft", "auto"))
def test_autocast_bfloat16_cpu(path):
    torch.manual_seed(0)
    module = OversizedConv2d(4, 15, mode="adaptive", path=path)
    torch.nn.init.normal_(module.conv_h.weight, std=0.1)
    torch.nn.init.normal_(module.conv_w.weight, std=0.1)
    x = torch.randn(2, 4, 12, 20, requires_grad=True)
    reference = module(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(x)
    assert out.dtype == torch.bfloat16
    assert relative_error(out.float(), reference) < 5e-2
    if path == "direct":  # oneDNN's kernel gradient is not trustworthy (see test_paths_match_direct)
        module.requires_grad_(False)
        out = module(x)
    out.float().sum().backward()
    assert x.grad.dtype == torch.float32
    if path != "direct":
        assert module.conv_h.weight.grad.dtype == torch.float32
        assert torch.isfinite(module.conv_w.weight.grad).all()


@pytest.mark.parametrize("path", ("gemm", "fft"))
def test_half_inputs_without_autocast(path):
    x, weight_h, weight_w = torch.randn(1, 3, 8, 10), torch.randn(3, 1, 15, 1), torch.randn(3, 1, 1, 19)
    reference = oversized_conv(x, weight_h, weight_w, path="direct")
    for dtype in (torch.bfloat16, torch.float16):
        out = oversized_conv(x.to(dtype), weight_h.to(dtype), weight_w.to(dtype), path=path)
        assert out.dtype == dtype
        assert relative_error(out.float(), reference) < 5e-2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_paths_match_direct_cuda():
    torch.manual_seed(0)
    x, weight_h, weight_w = (t.cuda() for t in make_inputs(CASES[-1]))
    grad = torch.randn(x.shape, device="cuda")
    reference = run(x, weight_h, weight_w, "direct", grad)
    for path in PATHS:
        for value, ref in zip(run(x, weight_h, weight_w, path, grad), reference, strict=True):
            assert relative_error(value, ref) < 1e-4  # cuDNN may pick TF32-free but reordered sums
    with torch.autocast("cuda", dtype=torch.float16):
        assert oversized_conv(x, weight_h, weight_w).dtype == torch.float16


# ------------------------------------------------------------------------ the layers around the OC
@pytest.mark.parametrize("norm", [l2_layer_norm, l2_layer_norm_reference], ids=["eager", "traced"])
def test_l2_layer_norm_is_the_published_formula(norm):
    torch.manual_seed(0)
    x = torch.randn(3, 5, 32, dtype=torch.float64, requires_grad=True)
    x.data[0, 0] = 0.0  # a zero row: the clamp gives 0
    x.data[0, 1] *= 1e-9  # a row far below the clamp
    weight = torch.randn(32, dtype=torch.float64, requires_grad=True)
    centred = x - x.mean(-1, keepdim=True)
    reference = centred / centred.norm(2, -1, keepdim=True).clamp_min(1e-6) * weight
    out = norm(x, weight)
    torch.testing.assert_close(out, reference)
    grad = torch.randn_like(out)
    ours = torch.autograd.grad(out, (x, weight), grad)
    theirs = torch.autograd.grad(reference, (x, weight), grad)
    torch.testing.assert_close(ours[0][1:], theirs[0][1:])  # gradient equal wherever the norm >= eps
    torch.testing.assert_close(ours[0][0, 0], theirs[0][0, 0])  # and at exactly zero rows
    torch.testing.assert_close(ours[1], theirs[1])


def test_l2_layer_norm_reference_scripts():
    x, weight = torch.randn(2, 4, 16), torch.randn(16)
    scripted = torch.jit.script(l2_layer_norm_reference)
    torch.testing.assert_close(scripted(x, weight), l2_layer_norm_reference(x, weight))


def test_pointwise_layout_changes_are_1x1_convs():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, 6)  # channels-last
    weight, bias = torch.randn(8, 6, 1, 1), torch.randn(8)
    reference = F.conv2d(x.permute(0, 3, 1, 2), weight, bias)
    first = pointwise_to_channels_first(x, weight, bias)
    assert first.is_contiguous(memory_format=torch.channels_last)  # an NCHW view of channels-last memory
    torch.testing.assert_close(first, reference)
    back_weight = torch.randn(6, 8, 1, 1)
    back = pointwise_to_channels_last(first, back_weight)
    assert back.shape == (2, 5, 7, 6) and back.is_contiguous()
    torch.testing.assert_close(back, F.conv2d(first, back_weight).permute(0, 2, 3, 1))


def test_shortcut_sums_inside_the_matmul():
    """``linear_add`` and the branches' ``shortcut`` (the traced residual sums) equal the plain sums."""
    torch.manual_seed(0)
    x, shortcut = torch.randn(2, 5, 7, 6), torch.randn(2, 5, 7, 8)
    weight, bias = torch.randn(8, 6), torch.randn(8)
    torch.testing.assert_close(linear_add(shortcut, x, weight, bias), shortcut + F.linear(x, weight, bias))
    block = ParCNetV2(depths=(1,), dims=(8,), kernel_sizes=(13,), res_scale_init_values=(0.5,)).stages[0][0]
    h, shortcut = torch.randn(2, 7, 9, 8), torch.randn(2, 7, 9, 8)
    for mode in ("eager", "traced"):  # the fast eager path, and the traced formulation (as compilers see it)
        with torch.no_grad():
            mixer, mlp, eager = block.token_mixer, block.mlp, mode == "eager"
            torch.testing.assert_close(mixer(h, shortcut=shortcut, mode=mode), shortcut + mixer(h, mode=mode))
            torch.testing.assert_close(mlp(h, shortcut=shortcut, eager=eager), shortcut + mlp(h, eager=eager))


@pytest.mark.parametrize("mode", ("adaptive", "fixed"))
def test_backbone_paths_agree(mode):
    """The whole model, forward and every parameter gradient, in float64 (no oneDNN) for each path."""
    torch.manual_seed(0)
    model = ParCNetV2(depths=(1, 1, 1, 1), dims=(16, 24, 32, 40), num_classes=5, oc_mode=mode).double()
    for name, param in model.named_parameters():
        if "dwconv1" in name:
            torch.nn.init.normal_(param, std=0.05)
    x = torch.randn(2, 3, 96, 160, dtype=torch.float64)
    results = {}
    for path in ("direct", "gemm", "fft", "auto"):
        model.zero_grad()
        with force_oc_path(model, path):
            out = model(x)
        out.square().sum().backward()
        results[path] = [out] + [p.grad.clone() for p in model.parameters()]
    for path in ("gemm", "fft", "auto"):
        for value, ref in zip(results[path], results["direct"], strict=True):
            assert relative_error(value, ref) < 1e-9


@pytest.mark.parametrize("mode", ["adaptive", "fixed"])
@pytest.mark.parametrize("path", ["direct", "gemm", "fft"])
def test_inference_plan_reused_until_weights_change(mode, path):
    """Without autograd the plan keeps its sized kernels and the path's state (Toeplitz matrices,
    spectra) until the weights change in place or the input does; with autograd, gradients flow."""
    torch.manual_seed(0)
    module = OversizedConv2d(4, 21, mode=mode, path=path)
    x = torch.randn(2, 4, 9, 13)

    def reference() -> torch.Tensor:
        weight_h, weight_w = module.conv_h.weight.detach(), module.conv_w.weight.detach()
        if mode == "adaptive":
            weight_h, weight_w = (
                oc_module.resize_oc_kernel(weight_h, 17, 2),
                oc_module.resize_oc_kernel(weight_w, 25, 3),
            )
        return oversized_conv(x, weight_h, weight_w, path="direct")

    with torch.no_grad():
        out = module(x)
        (plan,) = module._plans.values()
        bound = plan.run_h, plan.run_w
        assert relative_error(out, reference()) < 1e-5
        assert relative_error(module(x), out) == 0.0
        assert (plan.run_h, plan.run_w) == bound and len(module._plans) == 1  # reused, not rebuilt
        module.conv_w.weight.mul_(-0.5)  # an in-place update (optimizer step, load_state_dict)
        changed = module(x)
        assert plan.run_w is not bound[1]
        assert relative_error(changed, reference()) < 1e-5
        module(torch.randn(2, 4, 10, 13))  # a new size: a new inference plan replaces the old one
        assert len(module._plans) == 1 and plan not in module._plans.values()
    # with autograd the kernels are sized per call and gradients reach the weights
    weight_grad = torch.autograd.grad(module(x).sum(), module.conv_h.weight)[0]
    assert weight_grad.abs().sum() > 0
    assert len(module._plans) == 2  # the training plan sits beside the inference one


def test_l2_layer_norm_branch_free_variant(monkeypatch):
    """The variant used on CUDA, meta tensors and under tracing gives the same values."""
    torch.manual_seed(0)
    x = torch.randn(2, 4, 16)
    x[0, 0] = 0.0
    x[0, 1] *= 1e-9
    weight = torch.randn(16)
    expected = l2_layer_norm(x, weight)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    torch.testing.assert_close(l2_layer_norm(x, weight), expected)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gated_linear_recomputes_exactly(approximate):
    """The BGU's training gate + fc2 (the gate recomputed in backward): fp64 gradcheck; equals the formula."""
    torch.manual_seed(0)
    x1, x2 = (torch.randn(2, 3, 4, 10, dtype=torch.float64, requires_grad=True) for _ in range(2))
    weight = torch.randn(6, 10, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, w: gated_linear(a, b, w, approximate), (x1, x2, weight))
    a, b, w = (t.detach().float().requires_grad_() for t in (x1, x2, weight))
    out = gated_linear(a, b, w, approximate)
    out.square().sum().backward()
    reference = [t.detach().requires_grad_() for t in (a, b, w)]
    expected = F.linear(reference[0] * F.gelu(reference[1], approximate=approximate), reference[2])
    expected.square().sum().backward()
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    for ours, theirs in zip((a, b, w), reference, strict=True):
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-5, atol=1e-5)
    # under bf16 autocast: the linear's dtype, the weight's gradient in the weight's dtype
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = gated_linear(a.bfloat16(), b.bfloat16(), w, approximate)
    low.float().sum().backward()
    assert low.dtype == torch.bfloat16 and w.grad.dtype == torch.float32
