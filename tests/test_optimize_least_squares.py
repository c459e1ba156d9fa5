"""simdiff.least_squares: calibration with a known answer, counting, bounds, bad input."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize as so

import simdiff as sd

sys.path.insert(0, str(Path(__file__).parent))
from helpers_sims import KillableRosen  # noqa: E402

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


# --- probes: the points evaluated with each trial point, and the multi-secant update ---------

def test_multisecant_update_satisfies_every_secant_and_learns_a_linear_map():
    from simdiff.optimize.least_squares import _multisecant

    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 4))
    J = np.zeros((5, 4))
    # a long step and two short probes: J+ reproduces all three differences exactly
    S = np.column_stack([[1.0, 2.0, -1.0, 0.5], 1e-7 * np.eye(4)[:, 1], 1e-7 * np.eye(4)[:, 3]])
    J1 = _multisecant(J, S, A @ S)
    np.testing.assert_allclose(J1 @ S, A @ S, rtol=1e-9, atol=1e-15)
    # it changes J only on the span of S: a direction orthogonal to S keeps J's action (0 here)
    v = np.linalg.svd(S.T)[2][-1]
    np.testing.assert_allclose(J1 @ v, 0.0, atol=1e-9)
    # a further round spanning the rest: J equals the linear map
    J2 = _multisecant(J1, 1e-7 * np.eye(4)[:, [0, 2]], A @ (1e-7 * np.eye(4)[:, [0, 2]]))
    np.testing.assert_allclose(J2, A, rtol=1e-7, atol=1e-12)
    # one column: Broyden's rank-one update
    s = S[:, 0]
    y = A @ s
    np.testing.assert_allclose(_multisecant(J, s[:, None], y[:, None]),
                               J + np.outer(y - J @ s, s) / (s @ s), rtol=1e-12)


class Rounds:
    """Residuals of an MGH problem that log the points of every call."""

    def __init__(self, p):
        self.p, self.points = p, []

    def __call__(self, x):
        self.points.append(np.array(x))
        return self.p.r(x)


@pytest.mark.parametrize("name", ["extended_rosenbrock_10", "watson_6", "osborne1",
                                  "helical_valley"])
def test_probes_reach_the_known_minimum_in_fewer_rounds_per_evaluation(name):
    p = mgh.problem(name)
    budget = 100 * (p.n + 1)
    res = sd.least_squares(Rounds(p), p.x0, maxfev=budget)
    one = sd.least_squares(Rounds(p), p.x0, maxfev=budget, probes=0)
    assert 2 * res.cost <= p.fstar + 1e-5 * (p.f(p.x0) - p.fstar), res.message
    assert res.nfev <= budget
    # each trial round carries its look-ahead or two probes: at least 2 points a round
    assert res.nrounds <= res.nfev / 2
    assert res.nrounds / res.nfev < one.nrounds / one.nfev


def test_lookahead_continues_a_boundary_step_and_vanishes_after_an_interior_one():
    from simdiff.optimize.least_squares import _lookahead

    J, D, free = np.eye(2), np.ones(2), np.ones(2, dtype=bool)
    lo, hi = np.full(2, -np.inf), np.full(2, np.inf)
    x, r = np.zeros(2), np.array([10.0, 0.0])
    # Δ = 1: the step s = (-1, 0) ends at the boundary; the model predicts r(x + s) = (9, 0)
    # and its next step, with the doubled radius a good step leaves, is (-2, 0)
    s = np.array([-1.0, 0.0])
    xa = _lookahead(J, r + J @ s, D, 1.0, s, x + s, free, lo, hi)
    np.testing.assert_allclose(xa, [-3.0, 0.0], atol=1e-6)
    # Δ = 100: the Gauss-Newton step (-10, 0) is interior and solves the model: nothing ahead
    s = np.array([-10.0, 0.0])
    assert _lookahead(J, r + J @ s, D, 100.0, s, x + s, free, lo, hi) is None
    # a look-ahead never leaves the box
    s = np.array([-1.0, 0.0])
    xa = _lookahead(J, r + J @ s, D, 1.0, s, x + s, free, np.array([-2.0, -1.0]), hi)
    np.testing.assert_allclose(xa, [-2.0, 0.0], atol=1e-6)


def test_stale_model_jacobian_round_carries_the_next_trial():
    # probes=0: a trial round holds one point, a forward FD Jacobian n = 3 (n + 1 at x0, whose
    # r is not known yet); a later round of n + 1 is an FD Jacobian with the trial of the
    # updated model riding along
    sizes = []

    def r(P):
        sizes.append(len(P))
        return np.array([model(p) - DATA for p in P])

    res = sd.least_squares(r, [1.0, 0.5, 0.0], probes=0, vectorized=True)
    np.testing.assert_allclose(res.x, TRUE, rtol=1e-7)
    assert sizes[0] == 4 and 4 in sizes[1:]
    assert sum(sizes) == res.nfev and len(sizes) == res.nrounds


def test_probes_stay_inside_the_box_at_an_active_bound():
    # the optimum of the free problem (c = 0.4) is outside: every probe in c must step down
    r = Calibration()
    lo, hi = [0.0, 0.0, 0.0], [10.0, 10.0, 0.3]
    res = sd.least_squares(r, [1.0, 0.5, 0.3], bounds=(lo, hi), probes=3)
    P = np.array(r.points)
    assert np.all(P >= lo) and np.all(P <= hi)
    assert res.x[2] == pytest.approx(0.3)
    ref = so.least_squares(lambda p: model(p) - DATA, [1.0, 0.5, 0.3], bounds=(lo, hi))
    assert res.cost <= ref.cost * (1 + 1e-6) + 1e-12


def test_failed_points_are_missing_information_not_errors():
    calls = {"n": 0}

    def r(p):  # every 5th run after the first Jacobian fails: trial points and probes alike
        calls["n"] += 1
        if calls["n"] > 4 and calls["n"] % 5 == 0:
            raise RuntimeError("solver diverged")
        return model(p) - DATA

    res = sd.least_squares(r, [1.0, 0.5, 0.0])
    assert res.nfailed >= 3
    np.testing.assert_allclose(res.x, TRUE, rtol=1e-6)


def test_probes_option_is_checked():
    for bad in (-1, "many", 1.5, True):
        with pytest.raises(sd.ArgumentError, match="probes"):
            sd.least_squares(Calibration(), [1.0, 0.5, 0.0], probes=bad)
    res = sd.least_squares(Calibration(), [1.0, 0.5, 0.0], probes=0)
    np.testing.assert_allclose(res.x, TRUE, rtol=1e-7)


def test_killed_run_resumes_from_its_cache(tmp_path):
    sim = KillableRosen(residuals=True)
    full = sd.least_squares(sim, [-1.2, 1.0])
    total = sim.calls
    assert total > 60
    with pytest.raises(KeyboardInterrupt):
        sd.least_squares(KillableRosen(kill_at=60, residuals=True), [-1.2, 1.0], cache=tmp_path / "c")
    sim = KillableRosen(residuals=True)
    again = sd.least_squares(sim, [-1.2, 1.0], cache=tmp_path / "c")
    assert sim.calls == total - 59  # the path is retraced from the cache; only the rest runs
    assert again.nfev == total - 59
    np.testing.assert_array_equal(again.x, full.x)
    np.testing.assert_allclose(full.x, [1.0, 1.0], rtol=1e-8)
