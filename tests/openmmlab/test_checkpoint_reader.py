"""The checkpoint steps of ``parcnetv2.backbone.checkpoint`` (read, unwrap, remap, check, resize): every
supported format, through every caller (timm's filter, ``load_checkpoint_into``, the OpenMMLab backbone
loader, the converter), and errors that name the keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from parcnetv2.backbone import ParCNetV2
from parcnetv2.backbone import checkpoint as ckpt
from parcnetv2.backbone.checkpoint import (
    CheckpointError,
    backbone_part,
    drop_prefixes,
    fit_checkpoint,
    load_checkpoint_into,
    load_state,
    select_prefix,
)

pytest.importorskip("mmengine")

from parcnetv2.openmmlab.backbone import ParCNetV2Backbone, load_pretrained_backbone  # noqa: E402

TINY = dict(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))


def classifier(seed: int = 0, **kwargs) -> ParCNetV2:
    torch.manual_seed(seed)
    model = ParCNetV2(num_classes=5, **{**TINY, **kwargs})
    for param in model.parameters():  # not the init values: a load that did nothing would show
        param.data.normal_()
    return model


@pytest.fixture(scope="module")
def source() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in classifier().state_dict().items()}


def _mmengine_checkpoint(state: dict[str, torch.Tensor]) -> dict:
    from mmengine.logging import HistoryBuffer

    body = {f"backbone.{k}": v for k, v in state.items() if not k.startswith(("head.", "norm."))}
    hub = dict(log_scalars={"train/loss": HistoryBuffer([1.0, 2.0], [1, 1])}, runtime_info={})
    return dict(
        state_dict={**body, "neck.lateral.weight": torch.zeros(2, 2)},
        meta=dict(epoch=1),
        message_hub=hub,
    )


FORMATS = {
    "published.pth": lambda s: {"model": s},
    "ours.pth.tar": lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}, "epoch": 3},
    "bare.safetensors": lambda s: s,
    "mmdet.pth": _mmengine_checkpoint,
}


def _write(tmp_path: Path, name: str, state: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / name
    content = FORMATS[name](state)
    if name.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in content.items()}, str(path))
    else:
        import parcnetv2.openmmlab  # noqa: F401  (mmengine's HistoryBuffer loads weights-only)

        torch.save(content, path)
    return path


@pytest.mark.parametrize("name", FORMATS)
def test_every_format_gives_the_backbone_tensors(tmp_path, source, name):
    path = _write(tmp_path, name, source)
    state, dropped = drop_prefixes(backbone_part(load_state(path)), ("head.", "norm."))
    body = {k: v for k, v in source.items() if not k.startswith(("head.", "norm."))}
    assert sorted(state) == sorted(body)
    assert all(torch.equal(state[k], v) for k, v in body.items())
    backbone = ParCNetV2Backbone(**TINY)
    result = load_pretrained_backbone(backbone, str(path))
    assert len(result["loaded"]) == len(body)
    key = "stages.2.0.mlp.fc1.weight"
    assert torch.equal(backbone.state_dict()[key], source[key])


@pytest.mark.parametrize("name", [n for n in FORMATS if not n.startswith("mmdet")])
def test_every_classification_format_loads_whole(tmp_path, source, name):
    path = _write(tmp_path, name, source)
    model = ParCNetV2(num_classes=5, **TINY)
    load_checkpoint_into(model, path)
    assert all(torch.equal(v, source[k]) for k, v in model.state_dict().items())


def test_timm_reads_the_file_once(tmp_path, source, monkeypatch):
    path = _write(tmp_path, "ours.pth.tar", source)
    reads = []
    read = ckpt.read_checkpoint
    monkeypatch.setattr(ckpt, "read_checkpoint", lambda p: reads.append(p) or read(p))

    def timm_reader(*args, **kwargs):
        raise AssertionError("timm read the file again")

    monkeypatch.setattr("timm.models._builder.load_state_dict", timm_reader)
    model = timm.create_model(
        "parcnetv2_xt", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **TINY
    )
    assert len(reads) == 1
    assert model.num_classes == 5  # taken from the file's classifier
    assert all(torch.equal(v, source[k]) for k, v in model.state_dict().items())
    assert "state_dict" not in model.pretrained_cfg  # the tensors were for loading only
    assert model.pretrained_cfg["file"] == str(path)


def test_ema_first_when_asked(source):
    ema = {k: v + 1 for k, v in source.items()}
    raw = {"state_dict": source, "state_dict_ema": ema}
    assert torch.equal(load_state(raw)["head.weight"], source["head.weight"])
    assert torch.equal(load_state(raw, use_ema=True)["head.weight"], ema["head.weight"])


def test_oversized_kernels_resized(source):
    model = ParCNetV2(num_classes=5, kernel_sizes=(31, 15, 7, 5), **TINY)
    fitted = fit_checkpoint(source, model.state_dict())
    key = "stages.0.0.token_mixer.dwconv1.conv_h.weight"
    assert key in fitted.resized and fitted.state[key].shape == model.state_dict()[key].shape


def test_select_prefix(source):
    wrapped = {"state_dict": {f"encoder.{k}": v for k, v in source.items()}}
    assert sorted(select_prefix(load_state(wrapped), "encoder.")) == sorted(source)
    with pytest.raises(CheckpointError, match=r"no checkpoint key starts with prefix 'backbone\.'"):
        select_prefix(load_state(wrapped), "backbone.")
    assert backbone_part(load_state(wrapped)) == load_state(wrapped), "not a detector: kept as it is"


def test_errors_name_the_keys(tmp_path, source):
    model_state = ParCNetV2(num_classes=5, **TINY).state_dict()
    partial = {k: v for k, v in source.items() if k != "stages.1.0.mlp.fc2.weight"}
    partial["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        fit_checkpoint(partial, model_state, target="ParCNetV2-tiny")
    message = str(err.value)
    assert "does not fit ParCNetV2-tiny" in message
    assert "missing from checkpoint (1/" in message and "stages.1.0.mlp.fc2.weight" in message
    assert "not in the model (1): extra.weight" in message
    relaxed = fit_checkpoint(partial, model_state, strict=False)
    assert relaxed.missing == ["stages.1.0.mlp.fc2.weight"] and relaxed.unexpected == ["extra.weight"]
    wrong = dict(source, **{"stages.1.0.mlp.fc1.weight": torch.zeros(3, 3)})
    with pytest.raises(CheckpointError, match=r"shapes do not fit(.|\n)*stages\.1\.0\.mlp\.fc1\.weight"):
        fit_checkpoint(wrong, model_state)
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        load_state(tmp_path / "absent.pth")
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_state(tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="no tensors found"):
        load_state({"epoch": 1})


def test_backbone_loader_names_what_is_left_unloaded(source):
    state = {k: v for k, v in source.items() if not k.startswith("downsample_layers.3.")}
    with pytest.raises(CheckpointError) as err:
        load_pretrained_backbone(ParCNetV2Backbone(**TINY), state)
    message = str(err.value)
    assert "does not fit the ParCNetV2 backbone (depths=(1, 1, 1, 1)" in message
    assert "missing from checkpoint" in message and "downsample_layers.3.conv.weight" in message


def test_converter_output_is_what_the_backbone_loads(load_tool, tmp_path, source):
    src = _write(tmp_path, "mmdet.pth", source)
    dst = tmp_path / "backbone.pth"
    load_tool("model_converters/convert_checkpoint").main([str(src), str(dst)])
    state = torch.load(dst, weights_only=True)["state_dict"]
    assert sorted(state) == sorted(k for k in source if not k.startswith(("head.", "norm.")))
    assert load_pretrained_backbone(ParCNetV2Backbone(**TINY), str(dst))["new"]
