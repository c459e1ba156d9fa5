"""simdiff.least_squares: calibration with a known answer, counting, bounds, bad input."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize as so

import simdiff as sd

_spec = importlib.util.spec_from_file_location(
    "mgh", Path(__file__).resolve().parents[1] / "benchmarks" / "mgh.py")
mgh = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("mgh", mgh)
_spec.loader.exec_module(mgh)

T = np.linspace(0, 4, 25)
TRUE = np.array([2.5, 1.3, 0.4])


def model(p, t=T):
    return p[0] * np.exp(-p[1] * t) + p[2]


DATA = model(TRUE)


class Calibration:
    """Residuals of a decay model against data made with known parameters; logs its points."""

    def __init__(self):
        self.points = []

    def __call__(self, p):
        self.points.append(np.array(p))
        return model(p) - DATA


def test_calibration_recovers_the_known_parameters():
    r = Calibration()
    res = sd.least_squares(r, [1.0, 0.5, 0.0])
    assert res.success, res.message
    np.testing.assert_allclose(res.x, TRUE, rtol=1e-7)
    assert res.cost < 1e-16
    assert res.fun.shape == (25,) and res.jac.shape == (25, 3)
    assert res.nfev == len(r.points)
    assert res.nrounds < res.nfev
    ref = so.least_squares(lambda p: model(p) - DATA, [1.0, 0.5, 0.0])
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-6)


def test_bounds_keep_every_point_inside():
    r = Calibration()
    lo, hi = [0.0, 0.0, 0.5], [10.0, 10.0, 1.0]  # the true offset 0.4 is outside: c = 0.5
    res = sd.least_squares(r, [1.0, 0.5, 0.7], bounds=(lo, hi))
    P = np.array(r.points)
    assert np.all(P >= lo) and np.all(P <= hi)
    assert res.x[2] == pytest.approx(0.5)
    ref = so.least_squares(lambda p: model(p) - DATA, [1.0, 0.5, 0.7], bounds=(lo, hi))
    assert res.cost <= ref.cost * (1 + 1e-6) + 1e-12


@pytest.mark.parametrize("name", ["rosenbrock", "beale", "bard", "box3d", "kowalik_osborne"])
def test_mgh_known_minima(name):
    p = mgh.problem(name)
    res = sd.least_squares(p.r, p.x0, maxfev=100 * (p.n + 1))
    assert 2 * res.cost <= p.fstar + 1e-5 * (p.f(p.x0) - p.fstar)


def test_failed_trial_point_is_rejected_not_fatal():
    calls = {"fail": 0}

    def r(p):
        if p[1] > 2.0:
            calls["fail"] += 1
            raise RuntimeError("stiff solver failed")
        return model(p) - DATA

    res = sd.least_squares(r, [6.0, 0.1, 0.0])
    np.testing.assert_allclose(res.x, TRUE, rtol=1e-6)


def test_bad_input():
    with pytest.raises(sd.ArgumentError, match="x0"):
        sd.least_squares(lambda p: p, [np.inf, 1.0])
    with pytest.raises(sd.ArgumentError, match="maxfev"):
        sd.least_squares(lambda p: p, [1.0, 1.0], maxfev=-3)
    with pytest.raises(sd.ArgumentError, match="unknown option"):
        sd.least_squares(lambda p: p, [1.0, 1.0], method="lm")
    with pytest.raises(sd.BoundsError):
        sd.least_squares(lambda p: p, [1.0, 1.0], bounds=([2, 2], [3, 3]))

    def growing(p):  # the residual's length changes with x
        return np.ones(3 if p[0] > 0.5 else 4) * (p[0] - 0.2)
    with pytest.raises(sd.OutputError, match="length|shape"):
        sd.least_squares(growing, [1.0, 1.0])


def test_speculation_trades_evaluations_for_rounds():
    frugal = sd.least_squares(Calibration(), [1.0, 0.5, 0.0], speculate=False)
    spec = sd.least_squares(Calibration(), [1.0, 0.5, 0.0], speculate=True)
    np.testing.assert_allclose(spec.x, TRUE, rtol=1e-7)
    np.testing.assert_allclose(frugal.x, TRUE, rtol=1e-7)
    assert spec.nrounds / spec.nfev < frugal.nrounds / frugal.nfev
    with pytest.raises(sd.ArgumentError, match="speculate"):
        sd.least_squares(Calibration(), [1.0, 0.5, 0.0], speculate="always")
