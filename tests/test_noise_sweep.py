"""step_sweep: the noise floor (fitted, estimated, given), array x, and its printed table."""

from __future__ import annotations

import numpy as np
import pytest

import simdiff as sd
from simdiff.sweep import SweepSet


def noisy(sigma, seed=0):
    rng = np.random.default_rng(seed)
    return lambda x: 8.0 + np.sum(np.sin(x)) + sigma * rng.standard_normal()


@pytest.mark.parametrize("sigma", [1e-9, 1e-5])
def test_noise_floor_fitted_and_estimated_match_the_truth(sigma):
    x = np.array([0.3, 1.2])
    fitted = sd.step_sweep(noisy(sigma), x, direction=[1.0, 0.0], true=np.cos(0.3))
    est = sd.step_sweep(noisy(sigma, 1), x, direction=[1.0, 0.0], true=np.cos(0.3), noise="estimate")
    assert fitted.noise_kind == "fitted" and est.noise_kind == "estimated"
    for r in (fitted, est):
        assert 1 / 3 < r.noise / sigma < 3, (r.noise, sigma)
        # the floor is σ·‖w‖/h with ‖w‖ = 1/√2 for central differences
        np.testing.assert_allclose(r.noise_floor, r.noise / np.sqrt(2) / r.steps)
    assert est.nfev == fitted.nfev + 12
    # the noise-optimal step lies near the measured best step
    assert abs(np.log10(est.noise_step / est.best_step)) < 1.0


def test_given_noise_and_no_noise():
    r = sd.step_sweep(np.exp, 1.0, true=np.e, noise=1e-8)
    assert r.noise == 1e-8 and r.noise_kind == "given"
    r = sd.step_sweep(np.exp, 1.0, true=np.e, noise=False)
    assert np.isnan(r.noise) and r.noise_floor is None
    with pytest.raises(sd.ArgumentError, match="noise"):
        sd.step_sweep(np.exp, 1.0, noise=-1.0)


def test_array_x_sweeps_every_coordinate():
    f = lambda v: np.sum(v**3)  # noqa: E731
    x = np.array([1.0, 2.0, -0.5])
    ss = sd.step_sweep(f, x, true=3 * x**2)
    assert isinstance(ss, SweepSet) and len(ss) == 3
    for j, r in enumerate(ss):
        assert r.label == f"x[{j}]"
        assert np.nanmin(r.errors) <= 1e-8 * max(1.0, 3 * x[j] ** 2)
    assert ss.best_step.shape == (3,) and ss.nfev == sum(r.nfev for r in ss)
    with pytest.raises(sd.ArgumentError, match="true"):
        sd.step_sweep(f, x, true=[1.0, 2.0])


def test_print_is_a_readable_table(tmp_path):
    r = sd.step_sweep(np.exp, 1.0, true=np.e, steps=np.logspace(-12, -1, 12))
    text = str(r)
    lines = text.splitlines()
    assert "step" in lines[2] and "noise floor" in lines[2]
    assert len(lines) == 3 + 12
    assert "<- best" in text and "rule" in text
    ss = sd.step_sweep(noisy(1e-6), np.array([0.3, 1.2]), steps=np.logspace(-8, -1, 8),
                       true=np.cos([0.3, 1.2]))
    assert "x[0]" in str(ss) and "noise σ" in str(ss)
    pytest.importorskip("matplotlib")
    assert ss.plot(tmp_path / "set.png").endswith("set.png")
    assert r.plot(tmp_path / "one.png").endswith("one.png")
