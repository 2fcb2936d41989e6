"""The GPU check's CPU dry run: every part of tools/analysis_tools/gpu_check.py runs (small sizes)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mmdet")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_cpu_dry_run():
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/analysis_tools/gpu_check.py"), "--cpu"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "held-out agreement" in out and "cache: not written" in out  # (0), the dry run keeps no fit
    assert out.count("| 224x224 |") == 4 and out.count("| 800x1333 |") == 4  # a path per stage
    assert "| NO |" not in out  # every OC path within its dtype's tolerance
    for dtype in ("float32", "float16", "bfloat16"):
        assert f"| {dtype} | traced |" in out and f"| {dtype} | gemm |" in out
    assert out.count("| compiled |") == 2 and "Mask R-CNN XT, one training iteration on cpu: loss" in out
