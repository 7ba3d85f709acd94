"""The error-curve calibration (aigc_edge_env.calibrate): fits, the Frechet distance, the quick mode on the
shipped digits model, and clear errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from scipy import linalg

import aigc_edge_env
from aigc_edge_env import make_config
from aigc_edge_env.calibrate import curve_spec, fit_convex_table, fit_power_law, frechet_distance
from aigc_edge_env.calibrate.metrics import bootstrap_interval

STEPS = (2, 3, 5, 10, 20, 50, 100, 200)


@pytest.mark.parametrize("eps_inf, a, b", [(4.04, 550.0, 1.77), (0.3, 12.0, 2.1), (0.0, 5.0, 0.5)])
def test_power_law_fit_recovers_known_parameters(eps_inf, a, b):
    s = np.array(STEPS, dtype=float)
    fit = fit_power_law(s, eps_inf + a * s**-b)
    assert fit.curve.eps_inf == pytest.approx(eps_inf, abs=1e-6 * (eps_inf + a))
    assert fit.curve.a == pytest.approx(a, rel=1e-5)
    assert fit.curve.b == pytest.approx(b, rel=1e-5)
    assert fit.max_relative_residual < 1e-6


def test_power_law_fit_with_noise_stays_close():
    s = np.array(STEPS, dtype=float)
    noise = np.random.default_rng(3).normal(0.0, 0.01, s.size)
    fit = fit_power_law(s, (2.0 + 300.0 * s**-1.8) * (1.0 + noise))
    assert fit.curve.b == pytest.approx(1.8, abs=0.1)
    assert fit.curve.eps_inf == pytest.approx(2.0, abs=0.2)
    assert fit.rms_relative_residual < 0.02


def test_fit_refuses_bad_points():
    with pytest.raises(ValueError, match="length >= 3"):
        fit_power_law([5, 10], [3.0, 2.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        fit_power_law([5, 5, 10], [3.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([5, 10, 20], [3.0, 0.0, 1.0])


def test_convex_table_is_the_points_when_they_are_convex_and_is_accepted_by_the_config():
    s = np.array(STEPS, dtype=float)
    convex = 1.0 + 50.0 * s**-1.5
    assert fit_convex_table(s, convex).errors == pytest.approx(tuple(convex), rel=1e-9)
    noisy = convex * (1.0 + np.array([0, 0.05, -0.05, 0.04, -0.03, 0.02, 0.03, -0.02]))  # not convex
    table = fit_convex_table(s, noisy)
    slopes = np.diff(table.errors) / np.diff(table.steps)
    assert np.all(slopes <= 0) and np.all(np.diff(slopes) >= -1e-12)
    config = make_config(overrides={"edge_error_curve": curve_spec(table)})
    assert config.edge_error_curve == table


def test_frechet_distance_matches_the_closed_form():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    r = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 0.5
    cov_x, cov_r = np.cov(x, rowvar=False), np.cov(r, rowvar=False)
    expected = (np.sum((x.mean(0) - r.mean(0)) ** 2) + np.trace(cov_x) + np.trace(cov_r)
                - 2.0 * np.trace(linalg.sqrtm(cov_x @ cov_r)).real)
    assert frechet_distance(x, r) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    shift = np.array([1.0, -2.0, 0.0, 0.5, 0.0, 3.0])
    assert frechet_distance(x + shift, x) == pytest.approx(shift @ shift, rel=1e-9)


def test_frechet_distance_refuses_fewer_samples_than_dimensions():
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match=r"features has 8 samples of dimension 8.*d \+ 1 = 9"):
        frechet_distance(rng.normal(size=(8, 8)), rng.normal(size=(50, 8)))


def test_bootstrap_interval_covers_the_population_distance_despite_the_estimates_bias():
    """N(0.2, I) against N(0, I) in 32 dimensions: the population distance is 32 * 0.04 = 1.28; the plug-in
    estimate from 600 and 900 samples is biased well above it, the basic bootstrap interval is not."""
    rng = np.random.default_rng(2)
    x, r = rng.normal(size=(600, 32)) + 0.2, rng.normal(size=(900, 32))
    low, high = bootstrap_interval(x, r, 100, 0.95, np.random.default_rng(5))
    assert frechet_distance(x, r) > high
    assert low <= 1.28 <= high
    assert (low, high) == bootstrap_interval(x, r, 100, 0.95, np.random.default_rng(5))


def test_named_curves_are_accepted_by_name_and_unknown_names_are_refused():
    named = aigc_edge_env.error_curves.NAMED_ERROR_CURVES
    config = {"edge_error_curve": "digits-ddim", "device_error_curve": "digits-ddim-device"}
    env = gym.make("AIGCEdge-v0", config=config)
    assert env.unwrapped.config.edge_error_curve == named["digits-ddim"]
    assert env.unwrapped.config.device_error_curve == named["digits-ddim-device"]
    assert make_config().edge_error_curve == named["ddim-cifar10"]
    with pytest.raises(aigc_edge_env.ConfigError, match="edge_error_curve.*digits-ddim"):
        make_config(overrides={"edge_error_curve": "cifar"})


# --- the sampler (needs the calibrate extra) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    pytest.importorskip("diffusers")
    out = tmp_path_factory.mktemp("calibrate")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # anything that tried to download would fail
    subprocess.run([sys.executable, "-m", "aigc_edge_env", "calibrate", "--quick", "--threads", "1", "--out", str(out)],
                   check=True, capture_output=True, text=True, env=env)
    return out


def test_quick_mode_on_the_shipped_model_gives_a_decreasing_curve_the_env_accepts(quick_run):
    report = json.loads((quick_run / "report.json").read_text())
    assert [p["steps"] for p in report["points"]] == [2, 5, 10, 20, 50]
    errors = np.array([p["error"] for p in report["points"]])
    assert np.all(np.diff(errors) < 0), errors
    for p in report["points"]:
        assert 0 <= p["low"] <= p["high"]
    assert report["sampler"]["clip_sample"] is False and report["sampler"]["spacing"] == "trailing"
    assert report["sampler"]["scheduler_class"] == "DDIMScheduler" and report["sampler"]["eta"] == 0.0
    spec = json.loads((quick_run / "spec.json").read_text())
    env = gym.make("AIGCEdge-v0", config={"edge_error_curve": spec})
    curve = env.unwrapped.config.edge_error_curve
    assert curve.b > 0 and curve.a > 0
    assert report["timings"][0]["seconds_per_step"] > 0
    for name in ("report.md", "curve.png", "samples.png"):
        assert (quick_run / name).stat().st_size > 0


def _cli_error(capsys, *args: str) -> str:
    from aigc_edge_env.cli import main as cli_main

    with pytest.raises(SystemExit) as exit_info:
        cli_main(["calibrate", *args])
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_bad_pipeline_path_is_named(capsys, tmp_path):
    pytest.importorskip("diffusers")
    err = _cli_error(capsys, "--pipeline", str(tmp_path / "missing"), "--out", str(tmp_path))
    assert "pipeline" in err and "model_index.json" in err


def test_empty_step_list_is_named(capsys, tmp_path):
    pytest.importorskip("diffusers")
    err = _cli_error(capsys, "--steps", "--out", str(tmp_path))
    assert "steps = [] is invalid" in err


@pytest.mark.parametrize(("steps", "message"), [
    (["0", "5", "10"], "argument --steps: expected an integer >= 1, got 0"),  # refused while parsing
    (["5", "10", "1001"], "steps = [5, 10, 1001] is invalid: [1001] outside the scheduler's range; accepted "
                          "integers in [1, 1000]"),
])
def test_step_counts_outside_the_schedulers_range_are_named(capsys, tmp_path, steps, message):
    pytest.importorskip("diffusers")
    err = _cli_error(capsys, "--steps", *steps, "--out", str(tmp_path))
    assert message in " ".join(err.split())
    assert not (tmp_path / "spec.json").exists()


def test_refit_changes_the_fit_without_sampling(quick_run, tmp_path):
    """``--refit`` with ``--fit-min-steps 5 --form table`` rewrites the spec from the same points."""
    import shutil

    from aigc_edge_env.cli import main as cli_main

    run = tmp_path / "run"
    shutil.copytree(quick_run, run)
    points = json.loads((run / "report.json").read_text())["points"]
    assert cli_main(["calibrate", "--refit", str(run), "--fit-min-steps", "5", "--form", "table"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["points"] == points
    spec = json.loads((run / "spec.json").read_text())
    assert spec["steps"] == [5, 10, 20, 50] and report["power_law"]["fitted_steps"] == [5, 10, 20, 50]
    assert make_config(overrides={"edge_error_curve": spec}).edge_error_curve.steps == (5.0, 10.0, 20.0, 50.0)


def test_a_failure_during_the_work_keeps_its_traceback(tmp_path, monkeypatch) -> None:
    """Only the request's checks become one usage line (status 2); a ValueError while training is not one."""
    pytest.importorskip("torch")
    from aigc_edge_env.calibrate import digits
    from aigc_edge_env.cli import main as cli_main

    def fail(*args, **kwargs):
        raise ValueError("diverged")

    monkeypatch.setattr(digits, "train", fail)
    with pytest.raises(ValueError, match="diverged"):
        cli_main(["calibrate", "--train", str(tmp_path / "model")])
