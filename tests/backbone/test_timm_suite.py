"""timm's own model tests (``tests/test_models.py`` of the pinned timm release) on the ParCNetV2 models.

``make setup`` caches the file from timm's source distribution (timm's wheel does not ship its tests).
As timm's CI would, ``parcnetv2`` joins the list of model modules with ``forward_intermediates`` and
``import parcnetv2`` registers the models; then ``-k parcnetv2`` runs every test that names one of the
four variants: default cfgs (meta device, bfloat16), forward, backward, features_only,
forward_intermediates, TorchScript, FX and FX + TorchScript.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import timm


def cached_timm_tests() -> Path:
    cache = Path(os.environ.get("PARCNETV2_CACHE", Path.home() / ".cache" / "parcnetv2"))
    return cache / f"timm-{timm.__version__}-tests" / "test_models.py"


@pytest.mark.slow
def test_timm_model_suite_passes_for_every_variant(tmp_path):
    source = cached_timm_tests()
    assert source.is_file(), f"{source} is missing: `make setup` caches timm's tests"
    text = source.read_text()
    patched = text.replace("FEAT_INTER_FILTERS = [", "FEAT_INTER_FILTERS = ['parcnetv2', ", 1)
    assert patched != text, "timm's test_models.py no longer has FEAT_INTER_FILTERS"
    (tmp_path / "test_models.py").write_text(patched)
    (tmp_path / "conftest.py").write_text("import parcnetv2  # noqa: F401  (registers the models)\n")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-k",
        "parcnetv2",
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore",
    ]
    result = subprocess.run(
        [*command, "test_models.py"], cwd=tmp_path, capture_output=True, text=True, timeout=2400
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-2000:]
    assert result.returncode == 0, result.stdout[-6000:]
    assert not re.search(r"failed|error|skipped", summary), summary
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    # 11 tests name each variant in timm 1.0.31; fewer would mean a test was deselected or renamed
    assert passed >= 44, summary
