"""Failures in the Evaluator: exceptions, NaN, retries, dying workers, time-outs, and the
derivative assembled from what survived."""

from __future__ import annotations

import time

import helpers_sims as hs
import numpy as np
import pytest

import simdiff as sd
from simdiff.evaluate import Evaluator

X = np.array([[0.0, 1.0], [2.0, 0.5], [0.5, 0.5], [-1.0, 0.0], [3.0, -1.0], [0.25, 2.0]])
BAD = X[:, 0] > 1.0  # rows 1 and 4
EXPECTED = np.array([hs.quad(x) for x in X])


def _status(ev):
    return [e["status"] for e in ev.log]


# -- exceptions and non-finite output ------------------------------------------------------------


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_raising_point_raise_names_point_index_and_cause(n_jobs):
    ev = Evaluator(n_jobs=n_jobs, timeout=60 if n_jobs > 1 else None)
    with pytest.raises(sd.SimulationError) as info:
        ev.evaluate(hs.RaiseAt(1.0), X)
    err = info.value
    assert err.index == 1
    np.testing.assert_array_equal(err.point, X[1])
    assert isinstance(err.cause, ValueError) and "bad region" in str(err)
    assert "point 1" in str(err)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_raising_point_skip_marks_exactly_the_bad_rows(n_jobs):
    ev = Evaluator(n_jobs=n_jobs, on_failure="skip", timeout=60 if n_jobs > 1 else None)
    batch = ev.evaluate(hs.RaiseAt(1.0), X)
    assert batch.ok.tolist() == (~BAD).tolist()
    assert [f.index for f in batch.failures] == [1, 4]
    assert np.isnan(batch.values[BAD]).all()
    np.testing.assert_array_equal(batch.values[~BAD, 0], EXPECTED[~BAD])
    assert [f.index for f in ev.failures] == [1, 4] and ev.nfev == len(X)


def test_nan_output_is_a_failure():
    ev = Evaluator(n_jobs=2, on_failure="skip", timeout=60)
    batch = ev.evaluate(hs.NaNAt(1.0), X)
    assert batch.ok.tolist() == (~BAD).tolist()
    assert all("non-finite" in str(f.cause) for f in batch.failures)
    assert _status(ev).count("non-finite") == 2


def test_retries_rerun_a_flaky_point(tmp_path):
    ev = Evaluator(n_jobs=2, retries=1, timeout=60)
    batch = ev.evaluate(hs.Flaky(str(tmp_path), fails=1), X)
    np.testing.assert_array_equal(batch.values[:, 0], EXPECTED)
    assert batch.nfev == 2 * len(X) and ev.failures == []
    assert sorted(e["attempt"] for e in ev.log) == [1] * len(X) + [2] * len(X)


def test_retries_are_bounded(tmp_path):
    ev = Evaluator(retries=2, on_failure="skip")
    batch = ev.evaluate(hs.Flaky(str(tmp_path), fails=5), X[:2])
    assert not batch.ok.any() and batch.nfev == 6
    assert [f.attempts for f in batch.failures] == [3, 3]


# -- worker deaths -------------------------------------------------------------------------------


def test_worker_that_dies_once_loses_only_its_point(tmp_path):
    ev = Evaluator(n_jobs=2)
    sim = hs.DieAt(1.0, str(tmp_path), times=1)
    ev.evaluate(sim, X[~BAD] + 0.01)  # time it on harmless points (and warm the pool)
    ev.log.clear()
    batch = ev.evaluate(sim, X)
    np.testing.assert_array_equal(batch.values[:, 0], EXPECTED)
    died = [e for e in ev.log if e["status"] == "died"]
    assert len(died) == 2  # one per bad point; nobody else was lost
    assert sorted(e["attempt"] for e in ev.log if e["status"] == "ok") == [1] * 4 + [2] * 2


@pytest.mark.parametrize("how, word", [("exit", "exit code 3"), ("segv", "SIGSEGV")])
def test_point_that_always_kills_its_worker_becomes_a_failure(tmp_path, how, word):
    ev = Evaluator(n_jobs=2, on_failure="skip", timeout=60)
    batch = ev.evaluate(hs.DieAt(1.0, str(tmp_path), times=None, how=how), X)
    assert batch.ok.tolist() == (~BAD).tolist()
    assert all(word in str(f.cause) for f in batch.failures)
    assert _status(ev).count("died") == 4  # each bad point: first try + one resubmission
    # the pool recovers
    again = ev.evaluate(hs.vec3, X)
    assert again.ok.all()


def test_death_resubmissions_follow_retries(tmp_path):
    ev = Evaluator(n_jobs=2, retries=2, on_failure="skip", timeout=60)
    ev.evaluate(hs.DieAt(1.0, str(tmp_path), times=None), X[:2])
    assert _status(ev).count("died") == 4  # first try + retries + 1 resubmissions


def test_death_with_raise_is_a_simulation_error(tmp_path):
    ev = Evaluator(n_jobs=2, timeout=60)
    with pytest.raises(sd.SimulationError, match="worker process died") as info:
        ev.evaluate(hs.DieAt(1.0, str(tmp_path), times=None), X)
    assert info.value.index in (1, 4)


def test_worker_killed_while_idle_is_replaced_without_blame():
    import os
    import signal

    ev = Evaluator(n_jobs=2, timeout=60)
    pids = {int(p) for p in ev.evaluate(hs.Pid(0.0), X).values[:, 0]}
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    batch = ev.evaluate(hs.Pid(0.0), X)
    assert batch.ok.all() and ev.failures == []
    assert not pids & {int(p) for p in batch.values[:, 0]}
    assert "died" not in _status(ev)


# -- time-outs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_timeout_stops_the_hung_point_only(backend):
    ev = Evaluator(n_jobs=2, backend=backend, timeout=0.5, on_failure="skip")
    t0 = time.perf_counter()
    batch = ev.evaluate(hs.SleepAt(2.5, hang=20.0), X)
    assert time.perf_counter() - t0 < 10
    assert batch.ok.tolist() == [True, True, True, True, False, True]
    (failure,) = batch.failures
    assert isinstance(failure.cause, sd.EvaluationTimeout) and failure.index == 4
    assert _status(ev).count("timeout") == 1
    assert ev.evaluate(hs.vec3, X).ok.all()  # the killed worker was replaced


def test_timeout_with_raise_is_evaluation_timeout():
    ev = Evaluator(n_jobs=1, timeout=0.3)
    with pytest.raises(sd.EvaluationTimeout) as info:
        ev.evaluate(hs.SleepAt(2.5, hang=20.0), X)
    assert info.value.index == 4 and "timeout=0.3" in str(info.value)


def test_fast_points_under_the_timeout_are_not_stopped():
    ev = Evaluator(n_jobs=2, timeout=2.0)
    batch = ev.evaluate(hs.SleepAt(10.0, base=0.05), X)
    np.testing.assert_array_equal(batch.values[:, 0], EXPECTED)


# -- the derivative from what survived -----------------------------------------------------------


def test_gradient_skips_a_failed_point_and_falls_back_one_sided():
    x = np.array([0.999999, 0.3])  # x[0] + h > 1 raises; x[0] - h does not
    ev = Evaluator(n_jobs=2, on_failure="skip", timeout=60)
    g, info = sd.gradient(hs.RaiseAt(1.0), x, evaluator=ev, full_output=True)
    np.testing.assert_allclose(g, hs.quad_grad(x), rtol=1e-5)
    lost = [f for f in info.failures if f.kind == "evaluation"]
    assert len(lost) == 1 and isinstance(lost[0]["cause"], ValueError)
    assert lost[0]["point"][0] > 1.0


def test_gradient_at_the_edge_of_the_domain_goes_one_sided():
    # the edge is 1e-15 away: no shorter step (down to 4096x) fits; the backward stencil of the
    # same order does, and a warning names the entry (with on_failure="raise": a complete stencil)
    with pytest.warns(sd.SimdiffWarning, match="one side of x"):
        g, info = sd.gradient(hs.RaiseAt(1.0), np.array([1.0 - 1e-15, 0.3]),
                              evaluator=Evaluator(n_jobs=2), full_output=True)
    np.testing.assert_allclose(g, hs.quad_grad(np.array([1.0 - 1e-15, 0.3])), rtol=1e-7)
    assert info.schemes[0].startswith("backward")


def test_gradient_tries_closer_before_raising():
    # the edge is 1e-6 away, inside the central stencil (h = 6e-6): 16x closer fits, and the
    # entry is computed there, with a warning that names it
    with pytest.warns(sd.SimdiffWarning, match="shorter step"):
        g, info = sd.gradient(hs.RaiseAt(1.0), np.array([0.999999, 0.3]),
                              evaluator=Evaluator(n_jobs=2), full_output=True)
    assert info.step[0] < 1e-6 and np.all(np.isfinite(g))
    assert any(d.get("recovered") for d in info.failures)
