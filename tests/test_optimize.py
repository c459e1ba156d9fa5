"""simdiff.minimize and simdiff.as_scipy against known minima, counts and failures."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize as so

import simdiff as sd

sys.path.insert(0, os.path.dirname(__file__))
from helpers_sims import KillableRosen  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "mgh", Path(__file__).resolve().parents[1] / "benchmarks" / "mgh.py")
mgh = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("mgh", mgh)
_spec.loader.exec_module(mgh)


def rosen(x):
    return float(100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2)


class Recording:
    """f with a log of every point it was called at."""

    def __init__(self, f):
        self.f, self.points = f, []

    def __call__(self, x):
        self.points.append(np.array(x, dtype=float))
        return self.f(x)


def test_rosenbrock_minimum_and_counts():
    rec = Recording(rosen)
    res = sd.minimize(rec, [-1.2, 1.0])
    assert res.success, res.message
    # the default stop is scipy L-BFGS-B's (ftol = 2.2e-9), which leaves x ~1e-5 from the
    # minimum of this valley (L-BFGS-B's own answer: 4e-6 to 9e-6)
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=3e-5)
    assert res.fun < 1e-9
    # every simulator run is counted, each through a batch; rounds batch several points
    assert res.nfev == len(rec.points)
    assert res.nrounds < 0.6 * res.nfev
    assert res.history[-1]["nfev"] <= res.nfev
    assert [h["nrounds"] for h in res.history] == sorted(h["nrounds"] for h in res.history)
    assert {"x", "fun", "nfev", "nrounds", "step", "grad_norm", "grad_error"} <= set(res.history[0])
    # f(x) of an accepted point is never evaluated twice
    keys = [p.tobytes() for p in rec.points]
    assert len(keys) == len(set(keys))


def test_rosenbrock_ftol_zero_stops_on_the_gradient_alone():
    # without the decrease test the run ends where the gradient is zero within its error
    res = sd.minimize(rosen, [-1.2, 1.0], ftol=0.0)
    assert res.success and res.status == 0, res.message
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-6)
    assert res.fun < 1e-12
    assert np.all(np.abs(res.jac) <= np.maximum(2 * res.grad_error, 1e-10))


def test_zero_valued_minimum_costs_plain_gradients():
    # at a minimum where f ~ 0 (a residual sum of squares) the central gradients' midpoints
    # spread by h²f''/2 against f: no noise hand-over, no 2n extra runs per gradient; and a
    # minimum at x_j = 0 needs no second estimate on the scale of x_j
    x0 = np.tile([-1.2, 1.0], 5)

    def ext_rosen(x):
        r = np.empty(10)
        r[0::2] = 10 * (x[1::2] - x[0::2] ** 2)
        r[1::2] = 1 - x[0::2]
        return float(r @ r)
    res = sd.minimize(ext_rosen, x0)
    assert res.success and res.fun < 1e-8, res.message
    central = [b["nfev"] - a["nfev"] for a, b in zip(res.history, res.history[1:])
               if b["scheme"] == "central"]
    assert central and min(central) == 21  # 2n points, f(x) known
    assert res.nfev < 800  # 1073 when the noise look sent them the general way
    res = sd.minimize(lambda x: float(np.sum(x ** 2) + np.sin(x[0])), np.linspace(0.1, 1, 10))
    np.testing.assert_allclose(res.x[1:], 0.0, atol=1e-6)
    assert res.nfev < 110


def test_reported_gradient_error_holds_on_a_noisy_f_without_noise_option():
    # the iterations leave noise to noise=; the gradient the result reports has the noise
    # looks of simdiff.gradient on, so its error bar covers the noise all the same
    rng = np.random.default_rng(0)
    d = np.linspace(1, 3, 10)
    f = lambda x: float(np.sum(d * (x - 0.5) ** 2)) + 1e-6 * rng.standard_normal()  # noqa: E731
    res = sd.minimize(f, np.full(10, 3.0), maxfev=2000)
    true = 2 * d * (res.x - 0.5)
    assert np.all(np.abs(res.jac - true) <= res.grad_error)


def _tally(f):
    from simdiff.optimize.tally import Tally

    return Tally(sd.simulator.as_simulator(f), sd.Evaluator())


def _no_general_path(monkeypatch):
    import simdiff.optimize.fdgrad as fg

    calls = []
    orig = fg._quiet
    monkeypatch.setattr(fg, "_quiet", lambda *a, **k: calls.append(a[3]) or orig(*a, **k))
    return calls


def test_root_at_x0_measures_its_curvature(monkeypatch):
    # f(x0) = 0 with f changing sign in every forward stencil: the two values say nothing of
    # the truncation h·f''/2, and there is no quasi-Newton curvature yet; the optimizer's
    # gradient measures f'' with one more node per entry (one round) instead of taking the
    # general path, and its error bound covers the forward difference's true error
    from simdiff.optimize.fdgrad import fd_gradient

    calls = _no_general_path(monkeypatch)
    c = np.array([1.0, 1e3, 1e6])
    b = np.array([1.0, 2.0, 3.0])
    f = lambda x: float(0.5 * np.sum(c * x * x) - b @ x)  # noqa: E731
    tally = _tally(f)
    g, err, f0 = fd_gradient(tally, np.zeros(3), "forward", None)
    assert calls == [] and f0 == 0.0
    assert tally.nfev == 4 + 3 and tally.nrounds == 2
    assert np.all(np.abs(g - (-b)) <= err)
    assert err[2] >= 0.5 * np.finfo(float).eps ** 0.5 * c[2] * 0.9  # h·f''/2, f'' = 1e6


def test_turning_pair_past_large_x_is_checked_against_the_curvature(monkeypatch):
    # at a minimum beyond |x_j| = LARGE_X every central pair turns over inside its long step:
    # with the quasi-Newton curvature agreeing with the pair's second difference the optimizer
    # keeps the lane's estimate; an aliased f (values unrelated to the curvature) still gets
    # the general path's unit-step look
    from simdiff.optimize.fdgrad import fd_gradient

    calls = _no_general_path(monkeypatch)
    c = np.array([1.0, 2.0, 3.0])
    f = lambda x: float(np.sum(c * (x - 40.0) ** 2))  # noqa: E731
    x = np.full(3, 40.0) + 1e-9
    g, err, _ = fd_gradient(_tally(f), x, "central", None, curvature=2 * c)
    assert calls == [] and np.all(np.abs(g - 2 * c * 1e-9) <= err)
    fd_gradient(_tally(f), x, "central", None, curvature=2 * c * 1e3)  # B far off: not explained
    assert calls == ["central"]


def test_trid_minimum_beyond_large_x_takes_no_general_path(monkeypatch):
    # Trid (x* up to 30): every central gradient near the minimum has turning pairs
    calls = _no_general_path(monkeypatch)
    f = lambda x: float(np.sum((x - 1) ** 2) - np.sum(x[1:] * x[:-1]))  # noqa: E731
    res = sd.minimize(f, np.zeros(10))
    i = np.arange(1, 11)
    np.testing.assert_allclose(res.x, i * (11 - i), rtol=1e-5)
    assert calls == []


def test_forward_run_at_a_minimum_stops_on_the_predicted_decrease():
    # a sphere: BFGS lands on the minimum in two steps; the model, having foretold that
    # decrease, predicts nothing more even with |g| + its error, and the run stops there
    # (L-BFGS-B: 33 runs) instead of confirming with two central iterations (76 runs)
    res = sd.minimize(lambda x: float(x @ x), np.ones(10))
    assert res.status == 3 and res.fun < 1e-12
    assert res.nfev <= 40
    np.testing.assert_allclose(res.x, 0.0, atol=1e-6)


def test_predicted_stop_needs_a_model_that_foretold_the_last_step():
    # MGH gulf from its standard start: after a steepest-descent step the gradient is tiny
    # (2e-6) on a plateau with f = 0.04; a model that predicted nothing yet must not stop
    # the run there
    p = mgh.problem("gulf")
    res = sd.minimize(p.f, p.x0, maxfev=100 * (p.n + 1))
    assert res.fun < 1e-6


def test_first_step_tries_the_vertex_of_the_bracket():
    # log-cosh from 2: the unit steepest-descent step pays, its tenfold expansion overshoots;
    # the parabola through the three values puts the first step near the line's minimum
    # (L-BFGS-B's Wolfe search needs three gradients, 33 runs, for its first step)
    f = lambda x: float(np.sum(np.log(np.cosh(x - 0.5))))  # noqa: E731
    res = sd.minimize(f, np.full(10, 2.0))
    assert res.success and res.fun < 1e-12
    assert res.nfev < 60  # 109 without the vertex
    np.testing.assert_allclose(res.x, 0.5, atol=1e-6)


def test_exact_short_values_at_zero_are_probed_not_handed_on(monkeypatch):
    # f(h·e_j) = h² = 2^-52 at x = 0: every value a float32 by exact arithmetic; the probe
    # point shows f is neither printed nor single precision, and the run keeps the lean lane
    calls = _no_general_path(monkeypatch)
    res = sd.minimize(lambda x: float(x @ x), np.ones(10))
    assert calls == [] and res.nfev <= 40


def test_printed_output_still_gets_the_general_noise_look():
    # the same look on an f printed with 6 digits: the probe prints short too, so the
    # derivative functions' noise look decides, and the error bar covers the printing
    from simdiff.optimize.fdgrad import fd_gradient

    f = lambda x: float(f"{1.0 + np.sum(np.arange(1, 4) * x):.6g}")  # noqa: E731
    g, err, _ = fd_gradient(_tally(f), np.zeros(3), "forward", None)
    assert np.all(np.abs(g - np.arange(1, 4)) <= err)
    assert np.all(err >= 1e-6 / 2 / 1e-3)  # half a quantum 1e-6 over a step of at most 1e-3


def test_damping_only_for_a_pair_the_update_would_drop():
    from simdiff.optimize.quasi_newton import _update

    rng = np.random.default_rng(3)
    s0, y0 = rng.standard_normal(4), rng.standard_normal(4)
    H = _update(None, s0, s0 + 0.1 * y0)
    s = rng.standard_normal(4)
    y = 0.01 * s  # small positive curvature: kept as measured
    H1 = _update(H, s, y)
    np.testing.assert_array_equal(H1.pairs[-1][1], y)
    y = -s  # negative curvature: damped to sᵀy = 0.2·sᵀBs instead of dropped
    H2 = _update(H, s, y)
    s2, y2 = H2.pairs[-1][:2]
    assert len(H2.pairs) == 2
    np.testing.assert_allclose(s2 @ y2, 0.2 * s @ H.B @ s, rtol=1e-12)


@pytest.mark.parametrize("n", [3, 8])
def test_quadratic_known_minimum(n):
    rng = np.random.default_rng(n)
    Q = rng.standard_normal((n, n))
    A = Q @ Q.T + n * np.eye(n)
    b = rng.standard_normal(n)
    f = lambda x: float(0.5 * x @ A @ x - b @ x)  # noqa: E731
    res = sd.minimize(f, np.zeros(n))
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(res.jac, 0.0, atol=1e-5)


def test_bounds_minimum_on_a_bound_and_no_point_outside():
    c = np.array([2.0, -3.0, 0.5])
    rec = Recording(lambda x: float(np.sum((x - c) ** 2) + x[0] * x[1] * 0.1))
    lo, hi = np.array([-1.0, -1.0, -1.0]), np.array([1.0, 1.0, 1.0])
    res = sd.minimize(rec, [0.0, 0.0, 0.0], bounds=(lo, hi))
    P = np.array(rec.points)
    assert np.all(P >= lo) and np.all(P <= hi)
    # KKT: x0 = 1 and x1 = -1 on their bounds, x2 interior with zero derivative
    assert res.x[0] == 1.0 and res.x[1] == -1.0
    assert abs(res.x[2] - 0.5) < 1e-6
    ref = so.minimize(rec.f, [0, 0, 0], bounds=list(zip(lo, hi)), method="L-BFGS-B")
    assert res.fun <= ref.fun + 1e-9


def test_scipy_bounds_object_and_bounds_on_rosenbrock():
    rec = Recording(rosen)
    res = sd.minimize(rec, [-1.2, 1.0], bounds=so.Bounds([-2, -2], [0.5, 2]))
    assert np.all(np.array(rec.points)[:, 0] <= 0.5)
    assert res.x[0] == pytest.approx(0.5, abs=1e-7)
    assert res.x[1] == pytest.approx(0.25, abs=1e-5)


def test_failures_in_the_line_search_are_rejected_steps():
    def f(x):  # fails above the valley, where the first trial steps land
        if x[1] > x[0] ** 2 + 0.3:
            raise RuntimeError("solver diverged")
        return rosen(x)

    res = sd.minimize(f, [-1.2, 1.0])
    assert res.nfailed > 0
    assert "failed" in res.message
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-5)


def test_failure_at_x0_is_an_error():
    def f(x):
        raise RuntimeError("boom")
    with pytest.raises(sd.SimulationError):
        sd.minimize(f, [1.0, 2.0])


def test_maxfev_is_respected_and_reported():
    rec = Recording(rosen)
    res = sd.minimize(rec, [-1.2, 1.0], maxfev=25)
    assert len(rec.points) <= 25
    assert res.status == 1 and not res.success
    assert res.fun < rosen([-1.2, 1.0])


def test_callback_stops():
    seen = []

    def cb(intermediate_result):
        seen.append(intermediate_result.fun)
        return len(seen) >= 3

    res = sd.minimize(rosen, [-1.2, 1.0], callback=cb)
    assert res.status == 4 and len(seen) == 3 and res.nit == 3


@pytest.mark.parametrize("method", ["nelder-mead", "powell", "cobyqa"])
def test_scipy_methods_through_the_evaluator(method):
    rec = Recording(lambda x: float(np.sum((x - np.array([1.0, -2.0])) ** 2)))
    res = sd.minimize(rec, [0.0, 0.0], method=method, maxfev=400)
    np.testing.assert_allclose(res.x, [1.0, -2.0], atol=1e-3)
    assert res.nfev == len(rec.points) <= 400
    assert res.nrounds == res.nfev  # one point at a time


def test_nelder_mead_failure_region_and_bounds():
    def f(x):
        if x[0] < -0.5:
            raise RuntimeError("no")
        return float((x[0] - 0.3) ** 2 + (x[1] + 0.2) ** 2)
    res = sd.minimize(f, [0.0, 0.0], method="nelder-mead", bounds=([-1, -1], [1, 1]))
    np.testing.assert_allclose(res.x, [0.3, -0.2], atol=1e-3)


def test_spsa_seeded_reproducible_and_descends():
    rng_noise = np.random.default_rng(0)
    f = lambda x: float(np.sum((x - 1) ** 2))  # noqa: E731
    r1 = sd.minimize(f, np.zeros(4), method="spsa", seed=3, maxfev=400)
    r2 = sd.minimize(f, np.zeros(4), method="spsa", seed=3, maxfev=400)
    r3 = sd.minimize(f, np.zeros(4), method="spsa", seed=4, maxfev=400)
    np.testing.assert_array_equal(r1.x, r2.x)
    assert not np.array_equal(r1.x, r3.x)
    assert f(r1.x) < 0.05 * f(np.zeros(4))
    assert r1.nfev <= 400 and r1.nrounds == r1.nit + 1  # one round an iteration, then f(x)
    del rng_noise


def test_gradient_descent_fixed_backtracking_adam():
    f = lambda x: float(np.sum(np.array([1.0, 4.0]) * (x - 2) ** 2))  # noqa: E731
    fixed = sd.minimize(f, [0.0, 0.0], method="gradient-descent", lr=0.1, maxfev=400)
    np.testing.assert_allclose(fixed.x, [2, 2], atol=1e-4)
    bt = sd.minimize(f, [0.0, 0.0], method="gradient-descent", lr=1.0, line_search=True)
    np.testing.assert_allclose(bt.x, [2, 2], atol=1e-4)
    adam = sd.minimize(f, [0.0, 0.0], method="gradient-descent", lr=0.05, adam=True, maxiter=600,
                       maxfev=5000)
    np.testing.assert_allclose(adam.x, [2, 2], atol=1e-2)


def test_bad_arguments():
    with pytest.raises(sd.ArgumentError, match="x0"):
        sd.minimize(rosen, [np.nan, 1.0])
    with pytest.raises(sd.BoundsError, match="x0"):
        sd.minimize(rosen, [3.0, 1.0], bounds=([-1, -1], [1, 1]))
    with pytest.raises(sd.ArgumentError, match="maxfev"):
        sd.minimize(rosen, [0.0, 1.0], maxfev=0)
    with pytest.raises(sd.ArgumentError) as e:
        sd.minimize(rosen, [0.0, 1.0], method="newton-cg")
    for m in ("'bfgs'", "'spsa'", "'nelder-mead'", "'cobyqa'", "'powell'", "'gradient-descent'"):
        assert m in str(e.value)
    with pytest.raises(sd.ArgumentError, match="unknown option tol"):
        sd.minimize(rosen, [0.0, 1.0], tol=1e-3)
    with pytest.raises(sd.ArgumentTypeError, match="callback"):
        sd.minimize(rosen, [0.0, 1.0], callback=3)
    with pytest.raises(sd.ArgumentError, match="noise"):
        sd.minimize(rosen, [0.0, 1.0], noise="loud")
    with pytest.raises(sd.ArgumentError, match="pairs"):
        sd.minimize(rosen, [0.0, 1.0], method="spsa", pairs=0)


def test_as_scipy_shares_f_and_counts():
    rec = Recording(rosen)
    fun, jac = sd.as_scipy(rec)
    res = so.minimize(fun, [-1.2, 1.0], jac=jac, method="BFGS")
    np.testing.assert_allclose(res.x, [1, 1], atol=1e-4)
    assert fun.nfev == jac.nfev == len(rec.points)
    keys = [p.tobytes() for p in rec.points]
    assert len(keys) == len(set(keys))  # f(x) of fun never re-run by jac
    # residual form for least_squares
    fun, jac = sd.as_scipy(lambda x: np.array([10 * (x[1] - x[0] ** 2), 1 - x[0]]))
    assert jac(np.array([0.5, 0.5])).shape == (2, 2)
    r = so.least_squares(fun, [-1.2, 1.0], jac=jac)
    np.testing.assert_allclose(r.x, [1, 1], atol=1e-6)


def test_killed_run_resumes_from_its_cache(tmp_path):
    sim = KillableRosen()
    full = sd.minimize(sim, [-1.2, 1.0])
    total = sim.calls
    assert total > 60
    with pytest.raises(KeyboardInterrupt):
        sd.minimize(KillableRosen(kill_at=60), [-1.2, 1.0], cache=tmp_path / "c")
    sim = KillableRosen()
    again = sd.minimize(sim, [-1.2, 1.0], cache=tmp_path / "c")
    assert sim.calls == total - 59  # only the rest is evaluated
    assert again.nfev == total - 59
    np.testing.assert_array_equal(again.x, full.x)


def test_noisy_10d_with_estimated_noise():
    rng = np.random.default_rng(1)
    d = np.linspace(1, 3, 10)

    def true(x):
        return float(np.sum(d * (x - 0.5) ** 2))

    def noisy(x):
        return true(x) + 1e-6 * rng.standard_normal()

    res = sd.minimize(noisy, np.full(10, 3.0), noise="estimate", maxfev=2000)
    assert true(res.x) <= 1e-4


def test_parallel_run_follows_the_serial_path():
    f = lambda x: float(np.sum((x - np.arange(4)) ** 2) + 0.1 * np.sum(x) ** 4)  # noqa: E731
    serial = sd.minimize(f, np.zeros(4))
    par = sd.minimize(f, np.zeros(4), n_jobs=2, backend="threading")
    np.testing.assert_array_equal(serial.x, par.x)
    assert serial.nrounds == par.nrounds
