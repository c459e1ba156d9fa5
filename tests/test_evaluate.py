"""The Evaluator: where batches run, equality with serial, counting, the cheap guard, arguments."""

from __future__ import annotations

import os

import helpers_sims as hs
import joblib
import numpy as np
import pytest

import simdiff as sd
from simdiff.evaluate import Evaluator, SerialEvaluator, resolve_evaluator

RNG = np.random.default_rng(7)
X = RNG.normal(size=(12, 4))


def _workers(ev):
    return {entry["worker"] for entry in ev.log}


# -- equal to serial, bit for bit ----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_values_equal_serial_bit_for_bit(backend):
    serial = SerialEvaluator().evaluate(sd.as_simulator(hs.vec3), X)
    # timeout= forces every point into workers (nothing in-process can be stopped)
    ev = Evaluator(n_jobs=2, backend=backend, timeout=60)
    batch = ev.evaluate(hs.vec3, X)
    assert "main" not in _workers(ev)
    assert batch.values.tobytes() == serial.values.tobytes()
    assert batch.ok.all() and batch.nfev == len(X) and not batch.scalar


def test_gradient_and_jacobian_through_workers_equal_serial():
    x = np.array([0.3, -1.2, 2.0, 0.7])
    ev = Evaluator(n_jobs=2, timeout=60)
    assert sd.jacobian(hs.vec3, x, evaluator=ev).tobytes() == sd.jacobian(hs.vec3, x).tobytes()
    g = sd.gradient(hs.quad, x, evaluator=ev)
    assert g.tobytes() == sd.gradient(hs.quad, x).tobytes()
    np.testing.assert_allclose(g, hs.quad_grad(x), rtol=1e-8)
    assert ev.nfev == 2 * (2 * len(x) + 1)  # x ± h e_j and f(x), twice


def test_complex_points_travel_to_workers():
    Z = X[:4] + 1j * 1e-20 * np.eye(4)
    ev = Evaluator(n_jobs=2, timeout=60)
    batch = ev.evaluate(hs.quad_c, Z)
    assert batch.values.dtype == complex
    serial = SerialEvaluator().evaluate(sd.as_simulator(hs.quad_c), Z)
    assert batch.values.tobytes() == serial.values.tobytes()
    d = sd.derivative(np.sin, 0.5, method="complex", evaluator=Evaluator(n_jobs=2, timeout=60))
    assert d == pytest.approx(np.cos(0.5), rel=1e-15)


# -- where it runs -------------------------------------------------------------------------------


def test_workers_are_kept_between_calls():
    ev = Evaluator(n_jobs=2)
    first = ev.evaluate(hs.Pid(0.02), X)
    second = ev.evaluate(hs.Pid(0.02), X + 1.0)
    pids1, pids2 = set(first.values[:, 0]), set(second.values[:, 0])
    assert os.getpid() not in pids2 and len(pids2) == 2
    assert pids2 <= pids1 | {float(os.getpid())}
    # another Evaluator (the n_jobs shorthand builds one per call) reuses the same workers
    third = resolve_evaluator(None, 2, None).evaluate(hs.Pid(0.02), X + 2.0)
    assert set(third.values[:, 0]) == pids2


def test_cheap_function_stays_in_process():
    ev = Evaluator(n_jobs=2)
    batch = ev.evaluate(hs.quad, X)
    assert _workers(ev) == {"main"}
    assert batch.ok.all() and ev.nfev == len(X)


def test_slow_function_goes_to_workers():
    ev = Evaluator(n_jobs=2)
    ev.evaluate(hs.Pid(0.03), X)  # the first call times it and warms the pool
    ev.log.clear()
    batch = ev.evaluate(hs.Pid(0.03), X + 1)
    assert "main" not in _workers(ev)
    assert os.getpid() not in set(batch.values[:, 0])


def test_joblib_parallel_config_is_respected():
    with joblib.parallel_config(n_jobs=2):
        ev = resolve_evaluator(None, None, None)
        assert isinstance(ev, Evaluator)
        batch = Evaluator(timeout=60).evaluate(hs.Pid(0.01), X)
    assert len(set(batch.values[:, 0]) - {float(os.getpid())}) == 2
    with joblib.parallel_config(backend="threading", n_jobs=2):
        ev = Evaluator(timeout=60)
        batch = ev.evaluate(hs.Pid(0.01), X)
    assert set(batch.values[:, 0]) == {float(os.getpid())}
    assert all(w.startswith("thread-") for w in _workers(ev))
    assert isinstance(resolve_evaluator(None, None, None), SerialEvaluator)


def test_prefer_threads_hint_is_honoured():
    class Waits(hs.Pid):
        prefer = "threads"

    ev = Evaluator(n_jobs=2, timeout=60)
    batch = ev.evaluate(Waits(0.01), X)
    assert set(batch.values[:, 0]) == {float(os.getpid())}
    assert all(w.startswith("thread-") for w in _workers(ev))


def test_in_process_guard_survives_a_simulator_that_exits(tmp_path):
    # cheap, so the guard evaluates it here; its os._exit must not end the test process
    sim = hs.DieAt(threshold=1.0, directory=str(tmp_path), times=None, sleep=0.0)
    Xd = np.array([[0.0, 1.0], [2.0, 0.0], [0.5, 0.5]])
    ev = Evaluator(n_jobs=2, on_failure="skip")
    batch = ev.evaluate(sim, Xd)
    assert batch.ok.tolist() == [True, False, True]
    assert "died" in str(batch.failures[0].cause)
    statuses = [e["status"] for e in ev.log]
    assert "exit-intercepted" in statuses and "died" in statuses
    np.testing.assert_array_equal(batch.values[[0, 2], 0], [hs.quad(Xd[0]), hs.quad(Xd[2])])


def test_n_jobs_minus_one_uses_every_cpu_and_sequential_stays_here():
    ev = Evaluator(n_jobs=-1, timeout=60)
    batch = ev.evaluate(hs.Pid(0.05), X[: 2 * (os.cpu_count() or 1)])
    assert len(set(batch.values[:, 0])) == (os.cpu_count() or 1)
    ev = Evaluator(n_jobs=4, backend="sequential")
    assert set(ev.evaluate(hs.Pid(0.0), X).values[:, 0]) == {float(os.getpid())}


def test_one_job_runs_in_process_like_serial():
    ev = Evaluator()
    batch = ev.evaluate(hs.Pid(0.0), X)
    assert set(batch.values[:, 0]) == {float(os.getpid())} and _workers(ev) == {"main"}


def test_vectorized_simulator_is_called_once_per_batch():
    calls = []

    def f(Z):
        calls.append(Z.shape)
        return np.sum(Z**2, axis=1)

    ev = Evaluator(n_jobs=2)
    batch = ev.evaluate(sd.as_simulator(f, vectorized=True), X)
    assert calls == [X.shape]
    np.testing.assert_array_equal(batch.values[:, 0], np.sum(X**2, axis=1))


# -- counting and the log ------------------------------------------------------------------------


def test_counts_and_log():
    ev = Evaluator(n_jobs=2, timeout=60)
    Xr = np.vstack([X[:5], X[:2]])  # two repeated rows are evaluated once
    batch = ev.evaluate(hs.vec3, Xr)
    assert batch.nfev == ev.nfev == 5 and ev.cache_hits == 0 and ev.failures == []
    assert batch.values[5:].tobytes() == batch.values[:2].tobytes()
    assert len(ev.log) == 5
    for entry in ev.log:
        assert set(entry) >= {"point", "value", "seconds", "attempt", "worker"}
        assert entry["attempt"] == 1 and entry["seconds"] >= 0 and entry["status"] == "ok"
        np.testing.assert_array_equal(entry["value"], hs.vec3(entry["point"]))
    ev.evaluate(hs.vec3, X[:3])
    assert ev.nfev == 8


# -- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"n_jobs": 0}, "n_jobs"),
        ({"n_jobs": 1.5}, "n_jobs"),
        ({"n_jobs": True}, "n_jobs"),
        ({"backend": "nope"}, "backend"),
        ({"backend": 3}, "backend"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": "big"}, "batch_size"),
        ({"cache": 12}, "cache"),
        ({"retries": -1}, "retries"),
        ({"retries": 1.0}, "retries"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"timeout": "1s"}, "timeout"),
        ({"on_failure": "ignore"}, "on_failure"),
        ({"progress": "yes"}, "progress"),
    ],
)
def test_bad_arguments_name_argument_value_and_allowed(kwargs, word):
    with pytest.raises(sd.ArgumentError) as info:
        Evaluator(**kwargs)
    msg = str(info.value)
    (value,) = kwargs.values()
    assert word in msg and repr(value) in msg
    assert "allowed" in msg or "must be" in msg


def test_bad_batch_shape():
    with pytest.raises(sd.ArgumentError, match="2-D"):
        Evaluator().evaluate(hs.quad, X[0])


def test_dask_without_client_is_a_clear_error():
    pytest.importorskip("distributed")
    from distributed import get_client

    try:
        get_client()
        pytest.skip("a dask client is active")
    except ValueError:
        pass
    with pytest.raises(sd.ArgumentError, match="distributed.Client"):
        Evaluator(backend="dask").evaluate(hs.quad, X)


# -- progress ------------------------------------------------------------------------------------


def test_progress_bar_forced_and_suppressed(capsys):
    pytest.importorskip("tqdm")
    Evaluator(progress=True).evaluate(hs.quad, X)
    assert "eval" in capsys.readouterr().err
    Evaluator(progress=False).evaluate(hs.quad, X)
    Evaluator(progress=None).evaluate(hs.quad, X)  # stderr is not a terminal here
    assert capsys.readouterr().err == ""


def test_progress_opens_for_long_batches_on_a_terminal(monkeypatch):
    pytest.importorskip("tqdm")
    from simdiff import progress

    opened = []
    monkeypatch.setattr(progress.Progress, "_open", lambda self: opened.append(self.total))
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True, raising=False)
    bar = progress.Progress(10, None)
    bar.update(1, expected_seconds=0.5)
    assert opened == []
    bar.update(1, expected_seconds=5.0)
    assert opened == [10]


# -- any other joblib backend (ray's path) -------------------------------------------------------


def test_a_registered_joblib_backend_runs_the_points():
    from joblib.parallel import LokyBackend

    joblib.register_parallel_backend("simdiff_test_loky", LokyBackend)
    ev = Evaluator(n_jobs=2, backend="simdiff_test_loky", timeout=60)
    batch = ev.evaluate(hs.Pid(0.0), X)
    assert os.getpid() not in set(batch.values[:, 0])
    np.testing.assert_array_equal(batch.values[:, 1], X.sum(axis=1))


def test_a_registered_joblib_backend_blames_only_the_deadly_point(tmp_path):
    from joblib.parallel import LokyBackend

    joblib.register_parallel_backend("simdiff_test_loky", LokyBackend)
    Xd = np.array([[0.0, 1.0], [2.0, 0.5], [0.5, 0.5], [-1.0, 0.0]])
    ev = Evaluator(n_jobs=2, backend="simdiff_test_loky", timeout=60, on_failure="skip")
    batch = ev.evaluate(hs.DieAt(1.0, str(tmp_path), times=None), Xd)
    assert batch.ok.tolist() == [True, False, True, True]
    assert "died" in str(batch.failures[0].cause)
    assert {tuple(e["point"]) for e in ev.log if e["status"] == "died"} == {tuple(Xd[1])}


def test_ray_backend_where_installed():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        ev = Evaluator(n_jobs=2, backend="ray", timeout=120)
        batch = ev.evaluate(hs.vec3, X)
        serial = SerialEvaluator().evaluate(sd.as_simulator(hs.vec3), X)
        assert batch.values.tobytes() == serial.values.tobytes()
    finally:
        ray.shutdown()


def test_resolve_evaluator_builds_from_shorthands(tmp_path):
    ev = resolve_evaluator(None, None, None, cache=str(tmp_path), retries=2, timeout=None)
    assert isinstance(ev, Evaluator) and ev.retries == 2 and ev.cache is not None
    assert isinstance(resolve_evaluator(None, 1, None, cache=None), SerialEvaluator)
    with pytest.raises(sd.ArgumentError, match="retries=2"):
        resolve_evaluator(Evaluator(), None, None, retries=2)


def test_two_threads_evaluating_at_once_get_their_own_answers():
    import threading

    results = {}

    def work(shift):
        ev = Evaluator(n_jobs=2, timeout=60)
        results[shift] = ev.evaluate(hs.Pid(0.02), X + shift).values[:, 1]

    threads = [threading.Thread(target=work, args=(s,)) for s in (0.0, 10.0, 20.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for shift, sums in results.items():
        np.testing.assert_array_equal(sums, (X + shift).sum(axis=1))
    assert len(results) == 3


class _Unpicklable(sd.Simulator):
    """Holds a lock: cannot be sent to a worker process."""

    def __init__(self):
        import threading

        self.lock = threading.Lock()

    def evaluate(self, x):
        return float(np.sum(x))


def test_unpicklable_simulator_is_a_clear_error_for_processes_and_fine_for_threads():
    with pytest.raises(sd.ArgumentTypeError, match="does not pickle"):
        Evaluator(n_jobs=2, timeout=60).evaluate(_Unpicklable(), X)
    batch = Evaluator(n_jobs=2, backend="threading", timeout=60).evaluate(_Unpicklable(), X)
    np.testing.assert_array_equal(batch.values[:, 0], X.sum(axis=1))


@pytest.mark.parametrize("kw", [{}, {"n_jobs": 2, "backend": "threading"}, {"method": "forward"}])
def test_a_simulator_refilling_one_buffer_is_copied(kw):
    # f returns the same array object every call, refilled: the Evaluator must keep copies,
    # or every point would read the last values (a silent all-zero Jacobian)
    buf = np.zeros(2)

    def f(x):
        buf[0], buf[1] = np.sum(x**2), x[0] * x[1]
        return buf

    x = np.array([1.0, 2.0])
    J = sd.jacobian(f, x, **kw)
    np.testing.assert_allclose(J, [[2.0, 4.0], [2.0, 1.0]], rtol=1e-6)


def test_a_vectorized_simulator_refilling_one_buffer_is_copied():
    buf = np.zeros((0, 1))

    def f(X):
        nonlocal buf
        if buf.shape[0] != len(X):
            buf = np.zeros((len(X), 1))
        buf[:, 0] = np.sum(X**2, axis=1)
        return buf

    g = sd.gradient(f, np.array([1.0, -3.0]), vectorized=True)
    np.testing.assert_allclose(g, [2.0, -6.0], rtol=1e-6)
