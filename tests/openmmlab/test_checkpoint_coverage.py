"""check_checkpoint_covers: which checkpoints may evaluate/draw a detector or segmentor."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from parcnetv2.backbone.checkpoint import CheckpointError
from parcnetv2.openmmlab.checkpoint_coverage import (
    PartialCheckpointWarning,
    check_checkpoint_covers,
    key_group,
)


class TinyDetector(nn.Module):
    def __init__(self, classes: int = 3):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.neck = nn.Conv2d(4, 4, 1)
        self.rpn_head = nn.Conv2d(4, 2, 1)
        self.roi_head = nn.Linear(4, classes)


def test_key_groups():
    assert key_group("backbone.stages.0.weight") == "backbone"
    assert key_group("neck.lateral_convs.0.conv.weight") == "neck"
    for key in ("rpn_head.rpn_cls.weight", "roi_head.bbox_head.fc_cls.weight", "decode_head.conv_seg.bias"):
        assert key_group(key) == "heads"
    assert key_group("data_preprocessor.mean") == "data_preprocessor"


def test_full_checkpoint_passes_also_wrapped_and_prefixed(tmp_path):
    model = TinyDetector()
    assert check_checkpoint_covers(model, model.state_dict()) == {}
    wrapped = {"meta": {}, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    assert check_checkpoint_covers(model, wrapped) == {}
    torch.save(wrapped, tmp_path / "full.pth")
    assert check_checkpoint_covers(model, tmp_path / "full.pth") == {}
    extra = dict(model.state_dict(), **{"auxiliary_head.w": torch.zeros(1)})
    assert check_checkpoint_covers(model, extra) == {}  # unused keys do not matter


def test_segmentation_like_checkpoint_names_missing_groups_in_one_line(tmp_path):
    model = TinyDetector()
    seg = {k: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    seg["decode_head.conv_seg.weight"] = torch.zeros(2, 4, 1, 1)
    path = tmp_path / "iter_600.pth"
    torch.save({"state_dict": seg}, path)
    with pytest.raises(CheckpointError) as err:
        check_checkpoint_covers(model, path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"checkpoint {path} does not cover the model: missing neck (all 2 keys)")
    assert "heads (roi_head, rpn_head: all 4 keys)" in message
    assert "backbone" not in message.split("missing", 1)[1]
    assert "--allow-partial" in message


def test_classification_checkpoint_misses_everything():
    model = TinyDetector()
    cls = {"stem.0.weight": torch.zeros(4, 3, 3, 3), "head.fc.weight": torch.zeros(10, 4)}
    with pytest.raises(CheckpointError, match=r"missing backbone \(all 7 keys\), neck .*, heads "):
        check_checkpoint_covers(model, {"state_dict": cls, "format": "x"}, name="cls.pth.tar")


def test_shape_mismatch_counts_as_missing():
    state = TinyDetector(classes=3).state_dict()
    with pytest.raises(
        CheckpointError, match=r"heads \(roi_head: 2 of 4 keys\) \(2 of them with another shape\)"
    ):
        check_checkpoint_covers(TinyDetector(classes=5), state)


def test_allow_partial_warns_and_returns_missing_keys():
    model = TinyDetector()
    partial = {k: v for k, v in model.state_dict().items() if not k.startswith("neck.")}
    with pytest.warns(PartialCheckpointWarning, match="missing neck"):
        missing = check_checkpoint_covers(model, partial, allow_partial=True)
    assert missing == {"neck": ["neck.weight", "neck.bias"]}


def test_unreadable_checkpoint_is_a_checkpoint_error(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        check_checkpoint_covers(TinyDetector(), bad)
    with pytest.raises(CheckpointError, match="not found"):
        check_checkpoint_covers(TinyDetector(), tmp_path / "nope.pth")
