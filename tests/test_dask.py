"""The Evaluator on a dask LocalCluster(processes=True, n_workers=2): equal to serial, and every
failure mode (exception, dying worker, hung evaluation) handled per point, quickly."""

from __future__ import annotations

import time

import helpers_sims as hs
import joblib
import numpy as np
import pytest

import simdiff as sd
from simdiff.evaluate import Evaluator, SerialEvaluator

distributed = pytest.importorskip("distributed")

X = np.array([[0.0, 1.0], [2.0, 0.5], [0.5, 0.5], [-1.0, 0.0], [3.0, -1.0], [0.25, 2.0]])
BAD = X[:, 0] > 1.0
EXPECTED = np.array([hs.quad(x) for x in X])


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0"
    )
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _on_dask(ev):
    return all(e["worker"].startswith("tcp://") for e in ev.log)


def test_values_equal_serial_and_run_on_the_workers(client):
    ev = Evaluator(backend="dask", timeout=60)  # the current client; timeout keeps all remote
    batch = ev.evaluate(hs.vec3, X)
    serial = SerialEvaluator().evaluate(sd.as_simulator(hs.vec3), X)
    assert batch.values.tobytes() == serial.values.tobytes()
    assert _on_dask(ev) and len({e["worker"] for e in ev.log}) == 2
    x = np.array([0.3, -1.2, 2.0])
    J = sd.jacobian(hs.vec3, x, evaluator=Evaluator(backend=client, timeout=60))
    assert J.tobytes() == sd.jacobian(hs.vec3, x).tobytes()


def test_joblib_dask_context_routes_to_the_cluster(client):
    with joblib.parallel_config(backend="dask"):
        ev = Evaluator(timeout=60)
        batch = ev.evaluate(hs.vec3, X)
    assert batch.ok.all() and _on_dask(ev)


def test_raising_point(client):
    ev = Evaluator(backend=client, timeout=60)
    with pytest.raises(sd.SimulationError) as info:
        ev.evaluate(hs.RaiseAt(1.0), X)
    assert info.value.index in (1, 4) and isinstance(info.value.cause, ValueError)
    ev = Evaluator(backend=client, timeout=60, on_failure="skip")
    assert ev.evaluate(hs.RaiseAt(1.0), X).ok.tolist() == (~BAD).tolist()


def test_worker_death_loses_only_its_point(client, tmp_path):
    X4 = X[:4]  # one deadly point, row 1
    ev = Evaluator(backend=client, timeout=60)
    t0 = time.perf_counter()
    batch = ev.evaluate(hs.DieAt(1.0, str(tmp_path / "once"), times=1, sleep=0.0), X4)
    np.testing.assert_array_equal(batch.values[:, 0], EXPECTED[:4])
    assert [e["status"] for e in ev.log].count("died") == 1
    ev = Evaluator(backend=client, timeout=60, on_failure="skip")
    batch = ev.evaluate(hs.DieAt(1.0, str(tmp_path / "always"), times=None, sleep=0.0), X4)
    assert batch.ok.tolist() == [True, False, True, True]
    assert "died" in str(batch.failures[0].cause)
    assert [e["status"] for e in ev.log].count("died") == 2  # tried, resubmitted once, given up
    assert time.perf_counter() - t0 < 30


def test_timeout_stops_only_the_hung_point(client):
    ev = Evaluator(backend=client, timeout=0.5, on_failure="skip")
    t0 = time.perf_counter()
    batch = ev.evaluate(hs.SleepAt(2.5, hang=30.0), X)
    assert time.perf_counter() - t0 < 15
    assert batch.ok.tolist() == [True, True, True, True, False, True]
    assert isinstance(batch.failures[0].cause, sd.EvaluationTimeout)
    again = Evaluator(backend=client, timeout=60).evaluate(hs.vec3, X)  # the cluster recovered
    assert again.ok.all()


@pytest.fixture(scope="module")
def two_thread_client():
    cluster = distributed.LocalCluster(
        processes=True, n_workers=1, threads_per_worker=2, dashboard_address=":0"
    )
    c = distributed.Client(cluster, set_as_default=False)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def test_a_worker_holding_two_points_blames_neither_when_it_dies(two_thread_client, tmp_path):
    X4 = X[:4]  # one deadly point, row 1, next to others on the same two-thread worker
    ev = Evaluator(backend=two_thread_client, timeout=60, on_failure="skip")
    batch = ev.evaluate(hs.DieAt(1.0, str(tmp_path), times=None, sleep=0.2), X4)
    assert batch.ok.tolist() == [True, False, True, True]
    np.testing.assert_array_equal(batch.values[[0, 2, 3], 0], EXPECTED[[0, 2, 3]])
    assert [f.index for f in batch.failures] == [1]


def test_timeout_on_a_two_thread_worker_spares_its_other_point(two_thread_client):
    ev = Evaluator(backend=two_thread_client, timeout=0.5, on_failure="skip")
    batch = ev.evaluate(hs.SleepAt(2.5, hang=30.0, base=0.3), X)
    assert batch.ok.tolist() == [True, True, True, True, False, True]
    assert [f.index for f in batch.failures] == [4]
