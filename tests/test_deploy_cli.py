"""tools/deployment/export_onnx.py's arguments: the fixed-size option and the sizes it is checked at."""

import importlib.util
from pathlib import Path

import pytest

from parcnetv2.deploy import CHECK_SIZES

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "deployment" / "export_onnx.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("export_onnx_tool", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_size_sets_the_check_size():
    tool = load_tool()
    assert tool.parse_args(["out.onnx", "--model", "parcnetv2_xt"]).check == list(CHECK_SIZES)
    args = tool.parse_args(["out.onnx", "--model", "parcnetv2_xt", "--size", "800x1333"])
    assert args.size == (800, 1333) and args.check == [(800, 1333)]


def test_size_export_checked_elsewhere_is_an_error(capsys):
    tool = load_tool()
    with pytest.raises(SystemExit):
        tool.parse_args(["out.onnx", "--model", "parcnetv2_xt", "--size", "224x224", "--check", "256x320"])
    assert "checked at that size only" in capsys.readouterr().err
