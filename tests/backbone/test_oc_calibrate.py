"""Measured OC planning: a fit on this machine's CPU picks the timed fastest path on passes it never saw,
and the per-device cache is written, found and used (issue 25)."""

import json

import pytest
import torch

from parcnetv2.backbone import oc_calibrate, oc_cost
from parcnetv2.backbone.oc_calibrate import (
    agreement,
    calibrate_oc,
    calibration_shapes,
    fit_coefficients,
    held_out_shapes,
)
from parcnetv2.backbone.oc_cost import (
    COEFFICIENTS,
    PATHS,
    PassShape,
    cache_file,
    coefficients_for,
    path_costs,
)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache folder, and no fit read so far."""
    monkeypatch.setenv("PARCNETV2_CACHE", str(tmp_path))
    monkeypatch.setattr(oc_cost, "_measured", {})
    return tmp_path


def test_cache_location_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("PARCNETV2_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_file("cpu").parent == tmp_path / "xdg" / "parcnetv2" / "oc_cost"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_file("cpu").parent == tmp_path / "home" / ".cache" / "parcnetv2" / "oc_cost"
    monkeypatch.setenv("PARCNETV2_CACHE", str(tmp_path / "mine"))
    assert cache_file("cpu").parent == tmp_path / "mine" / "oc_cost"
    assert cache_file("cpu").name.startswith("cpu-") and cache_file("cpu").suffix == ".json"


def test_fit_recovers_known_coefficients():
    """Times generated from known coefficients are fitted back (the fitter, without a clock)."""
    truth = COEFFICIENTS["cpu", True]
    shapes = calibration_shapes()
    synthetic = [
        oc_calibrate.Measurement(shape, path, training, path_costs(shape, truth)[path])
        for training in (False, True)
        for shape in shapes
        for path in PATHS
    ]
    fit = fit_coefficients(synthetic)
    for name in ("direct_h", "direct_w", "gemm", "fft_h", "fft_w"):
        torch.testing.assert_close(torch.tensor(getattr(fit[True], name)), torch.tensor(getattr(truth, name)))
    assert agreement(fit, synthetic)["exact"] == 1.0


def test_planning_uses_the_cached_fit_and_opt_in_calibration(cache, monkeypatch):
    shape = PassShape(lines=64 * 56, n=56, taps=111, channels=64, dim=2)
    assert coefficients_for("cpu", False) == COEFFICIENTS["cpu", False]  # no fit: the shipped ones
    # a fit in which only the FFT path is cheap: plans follow it once it is written
    cheap, dear = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    fft_only = oc_cost.PathCoefficients(dear, dear, dear, cheap, cheap)
    assert oc_cost.save_fit("cpu", {False: fft_only, True: fft_only}) == cache_file("cpu")
    assert oc_cost.choose_path(shape, "cpu") == "fft"
    monkeypatch.setattr(oc_cost, "_measured", {})  # a new process: read from the file
    assert coefficients_for("cpu", True) == fft_only
    saved = json.loads(cache_file("cpu").read_text())
    assert set(saved["coefficients"]) == {"inference", "training"}
    # PARCNETV2_OC_CALIBRATE=1: a device without a fit is calibrated the first time it is planned for
    calls = []
    monkeypatch.setattr(oc_cost, "_measured", {})
    cache_file("cpu").unlink()
    monkeypatch.setattr(oc_calibrate, "calibrate_oc", lambda device: calls.append(device))
    coefficients_for("cpu", False)
    assert calls == []  # opt-in only
    monkeypatch.setattr(oc_cost, "_measured", {})
    monkeypatch.setenv("PARCNETV2_OC_CALIBRATE", "1")
    coefficients_for("cpu", False)
    assert calls == [torch.device("cpu")]


def test_fit_on_this_cpu_agrees_with_the_timed_fastest_path_on_held_out_passes(cache, capsys):
    """Fit on passes of the stages at 160 and 224 px, check on passes at 192 (batch 1) and 288 px (batch 2).

    On a shared machine two paths within a few percent swap places from run to run, so the check
    counts a choice as right when its time is within 25 % of the fastest one's; a fit that ranked
    the paths wrongly (e.g. the direct convolution at the large maps, FFT at the small) fails it.
    """
    torch.set_num_threads(1)
    shapes, held_out = calibration_shapes(224), held_out_shapes(288)
    result = calibrate_oc("cpu", seconds=9.0, shapes=shapes, held_out=held_out, margin=0.25)
    assert result.path == str(cache_file("cpu")) and cache_file("cpu").is_file()
    assert coefficients_for("cpu", True) == result.coefficients[True]  # planning uses it from now on
    check = result.held_out
    with capsys.disabled():
        print(f"\nheld-out agreement on this CPU: {check}")
    assert check["cases"] == 64
    assert check["within_margin"] >= 0.75, check
    assert check["slowdown"] < 1.3, check


@pytest.mark.parametrize("max_side", [96, 160])
def test_calibrate_command_names_a_too_small_max_side_in_one_line(load_tool, capsys, max_side: int) -> None:
    """--max-side below every fit (160) or held-out (192) input: one line naming it, nothing timed."""
    from parcnetv2.cli import run_cli

    calibrate = load_tool("analysis_tools/calibrate_oc")
    with pytest.raises(SystemExit) as stop:
        run_cli(calibrate.main, ["--max-side", str(max_side), "--no-save"], prog="calibrate_oc")
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 1 and len(err) == 1
    assert f"max_side {max_side} leaves no" in err[0]
