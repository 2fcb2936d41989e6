"""The ParCNetV2 backbone: published numerics and names, adaptive OC, timm contract, errors."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

import parcnetv2  # noqa: F401  (registers the timm models)
from parcnetv2.backbone import CheckpointError, OversizedConv2d, ParCNetV2, load_checkpoint_into

VARIANT_PARAMS_M = {
    "parcnetv2_xt": 7.43,
    "parcnetv2_tiny": 24.94,
    "parcnetv2_small": 39.44,
    "parcnetv2_base": 56.37,
}
XT = dict(depths=(3, 3, 9, 2), dims=(48, 96, 192, 320))


def small_model(**kwargs) -> ParCNetV2:
    """An XT-width model with one block per stage: fast, but every module kind is present."""
    torch.manual_seed(0)
    return ParCNetV2(depths=(1, 1, 2, 1), dims=XT["dims"], **kwargs)


# ------------------------------------------------------------------------- independent reference
def _l2_norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    centred = x - x.mean(-1, keepdim=True)
    return centred / centred.norm(2, -1, keepdim=True).clamp_min(1e-6) * weight


def _resize_linear(kernel: np.ndarray, length: int) -> np.ndarray:
    """Linear interpolation of each row over [0, K-1] sampled at ``length`` evenly spaced points."""
    k = kernel.shape[-1]
    pos = np.linspace(0.0, k - 1.0, length)
    return np.stack([np.interp(pos, np.arange(k), row) for row in kernel])


def _oc_reference(x: torch.Tensor, kh: np.ndarray, kw: np.ndarray) -> torch.Tensor:
    """OC by explicit Toeplitz sums in float64: out[c,i,j] = sum_m kh[c, m-i+Kh//2] x[c,m,j], then along W."""
    xb = x.double().numpy()
    _, c, h, w = xb.shape

    def toeplitz(kernel: np.ndarray, n: int) -> np.ndarray:
        half = kernel.shape[-1] // 2
        idx = np.arange(n)[None, :] - np.arange(n)[:, None] + half  # [i, m] -> tap index
        valid = (idx >= 0) & (idx < kernel.shape[-1])
        return np.where(valid[None], kernel[:, np.clip(idx, 0, kernel.shape[-1] - 1)], 0.0)  # (C, n, n)

    th, tw = toeplitz(kh, h), toeplitz(kw, w)
    out = np.einsum("cim,bcmj->bcij", th, xb)
    out = np.einsum("cjn,bcin->bcij", tw, out)
    return torch.from_numpy(out).to(x.dtype)


def published_forward(sd: dict, x: torch.Tensor, depths, adaptive: bool) -> torch.Tensor:
    """The published ParCNetV2 forward, written functionally from a state dict (channels-last blocks)."""
    for i, depth in enumerate(depths):
        p = f"downsample_layers.{i}."
        if i == 0:
            x = F.conv2d(x, sd[p + "conv.weight"], sd[p + "conv.bias"], stride=4, padding=2).permute(
                0, 2, 3, 1
            )
            x = _l2_norm(x, sd[p + "post_norm.weight"])
        else:
            x = _l2_norm(x, sd[p + "pre_norm.weight"]).permute(0, 3, 1, 2)
            x = F.conv2d(x, sd[p + "conv.weight"], sd[p + "conv.bias"], stride=2, padding=1).permute(
                0, 2, 3, 1
            )
        for j in range(depth):
            q = f"stages.{i}.{j}."
            y = _l2_norm(x, sd[q + "norm1.weight"]).permute(0, 3, 1, 2)
            y = F.conv2d(y, sd[q + "token_mixer.pwconv1.weight"], sd[q + "token_mixer.pwconv1.bias"])
            gate, branch = y.chunk(2, 1)
            branch = F.gelu(branch)
            c, h, w = branch.shape[1:]
            kh = sd[q + "token_mixer.dwconv1.conv_h.weight"].reshape(c, -1).double().numpy()
            kw = sd[q + "token_mixer.dwconv1.conv_w.weight"].reshape(c, -1).double().numpy()
            if adaptive:
                kh, kw = _resize_linear(kh, 2 * h - 1), _resize_linear(kw, 2 * w - 1)
            local = F.conv2d(branch, sd[q + "token_mixer.dwconv2.weight"], padding=3, groups=c)
            y = gate * (_oc_reference(branch, kh, kw) + local)
            y = F.conv2d(y, sd[q + "token_mixer.pwconv2.weight"]).permute(0, 2, 3, 1)
            shortcut = x * sd[q + "res_scale1.scale"] if q + "res_scale1.scale" in sd else x
            x = shortcut + y
            y = F.linear(
                _l2_norm(x, sd[q + "norm2.weight"]), sd[q + "mlp.fc1.weight"], sd[q + "mlp.fc1.bias"]
            )
            a, b = y.chunk(2, -1)
            y = F.linear(a * F.gelu(b), sd[q + "mlp.fc2.weight"])
            shortcut = x * sd[q + "res_scale2.scale"] if q + "res_scale2.scale" in sd else x
            x = shortcut + y
    x = F.layer_norm(x.mean((1, 2)), (x.shape[-1],), sd["norm.weight"], sd["norm.bias"], 1e-6)
    return F.linear(x, sd["head.weight"], sd["head.bias"])


def published_keys(depths, with_head: bool = True) -> set[str]:
    """The parameter names of a published ParCNetV2 checkpoint, enumerated from the architecture."""
    keys = {
        "downsample_layers.0.conv.weight",
        "downsample_layers.0.conv.bias",
        "downsample_layers.0.post_norm.weight",
    }
    for i in range(1, len(depths)):
        keys |= {
            f"downsample_layers.{i}.pre_norm.weight",
            f"downsample_layers.{i}.conv.weight",
            f"downsample_layers.{i}.conv.bias",
        }
    block = [
        "norm1.weight",
        "token_mixer.pwconv1.weight",
        "token_mixer.pwconv1.bias",
        "token_mixer.dwconv1.conv_h.weight",
        "token_mixer.dwconv1.conv_w.weight",
        "token_mixer.dwconv2.weight",
        "token_mixer.pwconv2.weight",
        "norm2.weight",
        "mlp.fc1.weight",
        "mlp.fc1.bias",
        "mlp.fc2.weight",
    ]
    for i, depth in enumerate(depths):
        extra = ["res_scale1.scale", "res_scale2.scale"] if i >= 2 else []
        keys |= {f"stages.{i}.{j}.{name}" for j in range(depth) for name in block + extra}
    keys |= {"norm.weight", "norm.bias"} | ({"head.weight", "head.bias"} if with_head else set())
    return keys


def randomize(model: torch.nn.Module) -> None:
    """Give every parameter non-trivial values (norm weights and scales start at exactly 1)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)


# ------------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", list(VARIANT_PARAMS_M))
def test_variant_params_and_output_shapes(name):
    with torch.device("meta"):  # counts and shapes without allocating or computing
        model = timm.create_model(name)
        x = torch.empty(1, 3, 64, 96)
        feats = model.eval().forward_intermediates(x, intermediates_only=True)
        logits = model(x)
    assert abs(sum(p.numel() for p in model.parameters()) / 1e6 - VARIANT_PARAMS_M[name]) <= 0.01
    assert set(model.state_dict()) == published_keys(model.depths)
    assert [tuple(f.shape) for f in feats] == [
        (1, d, 64 // s, 96 // s) for d, s in zip(model.dims, (4, 8, 16, 32), strict=True)
    ]
    assert logits.shape == (1, 1000)


def test_tiny_forward_on_cpu():
    model = timm.create_model("parcnetv2_tiny").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 1000) and torch.isfinite(out).all()


def test_kernel_lengths_are_2h_minus_1_at_224():
    model = timm.create_model("parcnetv2_tiny")
    for i, k in enumerate((111, 55, 27, 13)):
        oc = model.stages[i][0].token_mixer.dwconv1
        assert oc.conv_h.weight.shape[2:] == (k, 1) and oc.conv_w.weight.shape[2:] == (1, k)
        assert k == 2 * (224 // (4 * 2**i)) - 1


def test_matches_published_forward_fixed_mode():
    model = small_model(oc_mode="fixed").eval()
    randomize(model)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ours, ref = model(x), published_forward(model.state_dict(), x, model.depths, adaptive=False)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


def test_fixed_equals_adaptive_at_224():
    fixed = small_model(oc_mode="fixed").eval()
    randomize(fixed)
    adaptive = small_model(oc_mode="adaptive").eval()
    adaptive.load_state_dict(fixed.state_dict())
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(fixed(x), adaptive(x))


def test_adaptive_non_square_matches_formula():
    model = small_model().eval()
    randomize(model)
    x = torch.randn(1, 3, 256, 320)
    with torch.no_grad():
        ours, ref = model(x), published_forward(model.state_dict(), x, model.depths, adaptive=True)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size", [(5, 9), (1, 7), (8, 1), (14, 14)])
def test_oversized_conv_module_formula(size):
    torch.manual_seed(0)
    oc = OversizedConv2d(6, 13, mode="adaptive")
    x = torch.randn(2, 6, *size)
    with torch.no_grad():
        out = oc(x)
    kh = _resize_linear(oc.conv_h.weight.detach().reshape(6, -1).double().numpy(), 2 * size[0] - 1)
    kw = _resize_linear(oc.conv_w.weight.detach().reshape(6, -1).double().numpy(), 2 * size[1] - 1)
    torch.testing.assert_close(out, _oc_reference(x, kh, kw), rtol=1e-5, atol=1e-5)
    # every output position sees the whole map: a single impulse reaches all outputs
    impulse = torch.zeros(1, 6, *size)
    impulse[0, :, 0, 0] = 1.0
    with torch.no_grad():
        oc.conv_h.weight.fill_(1.0)
        oc.conv_w.weight.fill_(1.0)
        assert (oc(impulse) != 0).all()


def test_fixed_mode_keeps_stored_kernel_at_other_sizes():
    torch.manual_seed(0)
    oc = OversizedConv2d(4, 7, mode="fixed")
    x = torch.randn(1, 4, 10, 12)
    with torch.no_grad():
        out = oc(x)
    kh = oc.conv_h.weight.detach().reshape(4, -1).double().numpy()
    kw = oc.conv_w.weight.detach().reshape(4, -1).double().numpy()
    torch.testing.assert_close(out, _oc_reference(x, kh, kw), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (65, 32)])
def test_small_and_odd_inputs(size):
    model = small_model().eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 1000)


def test_gradients_reach_every_parameter():
    model = small_model(drop_path_rate=0.1)
    model(torch.randn(2, 3, 64, 80)).logsumexp(-1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_grad_checkpointing_same_result():
    model = small_model()
    randomize(model)
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    out.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    out_ckpt = model(x)
    out_ckpt.sum().backward()
    torch.testing.assert_close(out_ckpt, out)
    for g, p in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, g)


@pytest.mark.parametrize("autocast", [False, True])
def test_inference_in_place_paths_equal_autograd_paths(autocast):
    """Without autograd the blocks gate, activate and add in place; values and dtypes stay the same."""
    model = small_model().eval()
    randomize(model)
    x = torch.randn(2, 3, 64, 96)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        tracked = model.forward_features(x)
        with torch.no_grad():
            untracked = model.forward_features(x)
    assert tracked.requires_grad and not untracked.requires_grad
    assert untracked.dtype == tracked.dtype
    # not bitwise: with autograd the OC may take another path and the convs another oneDNN kernel
    torch.testing.assert_close(untracked, tracked.detach(), rtol=1e-5, atol=1e-6)


def test_downsample_weight_copy_follows_weight_updates():
    model = small_model().eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        assert torch.equal(model(x), before)  # the cached channels-last weights are reused
        model.downsample_layers[2].conv.weight.mul_(-1.5)  # in place, as an optimizer step
        flipped = model(x)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        state["downsample_layers.1.conv.weight"].mul_(0.5)
        model.load_state_dict(state)
        reloaded = model(x)
    model.zero_grad()
    reference = model(x)  # with autograd: no cache involved
    assert not torch.allclose(flipped, before)
    torch.testing.assert_close(reloaded, reference.detach(), rtol=1e-5, atol=1e-6)


def test_features_only_channels_and_strides():
    model = timm.create_model("parcnetv2_xt", features_only=True, out_indices=(1, 2, 3))
    assert model.feature_info.channels() == [96, 192, 320]
    assert model.feature_info.reduction() == [8, 16, 32]
    feats = model(torch.randn(2, 3, 96, 128))
    assert [tuple(f.shape) for f in feats] == [(2, 96, 12, 16), (2, 192, 6, 8), (2, 320, 3, 4)]
    full = timm.create_model("parcnetv2_xt", features_only=True)
    assert full.feature_info.reduction() == [4, 8, 16, 32]


def test_timm_contract():
    model = timm.create_model("parcnetv2_xt", num_classes=7, drop_path_rate=0.1).eval()
    cfg = model.pretrained_cfg
    assert cfg["input_size"] == (3, 224, 224) and cfg["interpolation"] == "bicubic" and cfg["crop_pct"] == 1.0
    assert cfg["mean"] == timm.data.IMAGENET_DEFAULT_MEAN and cfg["std"] == timm.data.IMAGENET_DEFAULT_STD
    x = torch.randn(2, 3, 64, 64)
    feats = model.forward_features(x)
    assert feats.shape == (2, model.num_features, 2, 2)
    assert model.forward_head(feats, pre_logits=True).shape == (2, 320)
    assert model(x).shape == (2, 7)
    model.reset_classifier(0)
    assert model(x).shape == (2, 320)
    model.reset_classifier(0, "")
    assert model(x).shape == (2, 320, 2, 2)
    model.reset_classifier(5, "avg")
    assert model(x).shape == (2, 5) and model.get_classifier().out_features == 5
    final, inter = model.forward_intermediates(x, indices=2)
    assert len(inter) == 2 and torch.equal(final, feats)
    groups = timm.models.group_parameters(model, model.group_matcher())
    assert sum(len(v) for v in groups.values()) == len(list(model.parameters()))
    kept = model.prune_intermediate_layers(indices=(0, 1))
    assert kept == [0, 1] and len(model.stages) == 2


def test_head_dropout_applies():
    model = timm.create_model("parcnetv2_xt", head_dropout=0.5).train()
    x = torch.randn(4, 3, 32, 32)
    pooled = model.forward_head(model.forward_features(x), pre_logits=True)
    assert (pooled == 0).float().mean() > 0.2  # dropout zeroes about half of the pre-logits
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


# ------------------------------------------------------------------------- checkpoints
@pytest.fixture
def published_state():
    model = small_model()
    randomize(model)
    return model.state_dict()


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd},
        lambda sd: {"state_dict_ema": sd},
        lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}},
        lambda sd: {"module": sd, "epoch": 3},
    ],
    ids=["bare", "state_dict", "state_dict_ema", "model+module-prefix", "module"],
)
@pytest.mark.parametrize("suffix", [".pth", ".pth.tar"])
def test_load_wrapped_checkpoints(tmp_path, published_state, wrap, suffix):
    path = tmp_path / f"ckpt{suffix}"
    torch.save(wrap(published_state), path)
    model = small_model()
    result = load_checkpoint_into(model, path)
    assert set(result["loaded"]) == set(published_state) and not result["missing"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, published_state[k]), k


def test_load_published_state_dict_strict(published_state):
    model = small_model()
    model.load_state_dict(published_state, strict=True)


def test_load_safetensors_and_timm_pretrained(tmp_path, published_state):
    from safetensors.torch import save_file

    model = timm.create_model("parcnetv2_xt")
    randomize(model)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, tmp_path / "w.safetensors")
    loaded = timm.create_model(
        "parcnetv2_xt", pretrained=True, pretrained_cfg_overlay=dict(file=str(tmp_path / "w.safetensors"))
    )
    assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 1}, tmp_path / "w.pth")
    other = timm.create_model(
        "parcnetv2_xt",
        pretrained=True,
        num_classes=10,
        drop_path_rate=0.1,
        pretrained_cfg_overlay=dict(file=str(tmp_path / "w.pth")),
    )
    assert torch.equal(other.stages[2][3].mlp.fc1.weight, state["stages.2.3.mlp.fc1.weight"])
    assert other.head.out_features == 10


def test_pretrained_without_weights_is_an_error():
    with pytest.raises(ValueError, match="pretrained_cfg_overlay"):
        timm.create_model("parcnetv2_xt", pretrained=True)


def test_oc_kernels_resized_on_load(published_state):
    model = ParCNetV2(depths=(1, 1, 2, 1), dims=XT["dims"], kernel_sizes=(63, 31, 15, 7), oc_mode="fixed")
    load_checkpoint_into(model, published_state)
    key = "stages.0.0.token_mixer.dwconv1.conv_h.weight"
    assert model.state_dict()[key].shape == (48, 1, 63, 1)
    src = published_state[key].reshape(48, -1).double().numpy()
    np.testing.assert_allclose(
        model.state_dict()[key].reshape(48, -1).numpy(), _resize_linear(src, 63), rtol=1e-5, atol=1e-5
    )


def test_checkpoint_errors(tmp_path, published_state):
    model = small_model()
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint_into(model, tmp_path / "nope.pth")
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint_into(model, tmp_path / "bad.pth")
    wrong = dict(published_state)
    wrong["stages.1.0.mlp.fc1.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError, match=r"stages\.1\.0\.mlp\.fc1\.weight"):
        load_checkpoint_into(model, wrong)
    partial = {k: v for k, v in published_state.items() if not k.startswith("stages.3.")}
    with pytest.raises(CheckpointError, match=r"missing from checkpoint .*stages\.3\.0\.norm1\.weight"):
        load_checkpoint_into(model, partial)
    with pytest.raises(CheckpointError, match=r"shapes do not fit(.|\n)*downsample_layers\.0\.conv\.weight"):
        timm.create_model(
            "parcnetv2_tiny",
            pretrained=True,
            pretrained_cfg_overlay=dict(file=_save(tmp_path, published_state)),
        )


def _save(tmp_path, state) -> str:
    path = tmp_path / "xt.pth"
    torch.save(state, path)
    return str(path)


def test_bad_inputs_have_clear_errors():
    model = small_model().eval()
    with pytest.raises(ValueError, match="4-D"):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match="3 input channels, got 1"):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="at least 32x32"):
        model(torch.randn(1, 3, 31, 64))
    with pytest.raises(ValueError, match="oc_mode"):
        ParCNetV2(oc_mode="global")


def test_empty_batch():
    """A batch of 0 gives empty outputs of the right shape, in inference and training."""
    model = small_model().eval()
    with torch.no_grad():
        assert model(torch.randn(0, 3, 64, 64)).shape == (0, model.num_classes)
    model.train()
    out = model(torch.randn(0, 3, 64, 96))
    assert out.shape == (0, model.num_classes)
    out.sum().backward()
