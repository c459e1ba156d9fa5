"""The disk cache: reuse, keys that never mix simulators, corrupt entries, resuming a killed run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import helpers_sims as hs
import numpy as np
import pytest

import simdiff as sd
from simdiff.cache import DiskCache
from simdiff.evaluate import Evaluator

X = np.random.default_rng(3).normal(size=(6, 3))
TESTS = Path(__file__).parent


def _evals(directory: Path) -> int:
    f = directory / "evals"
    return sum(1 for _ in open(f)) if f.exists() else 0


def test_second_run_is_answered_by_the_cache(tmp_path):
    sim = hs.Counting(str(tmp_path))
    first = Evaluator(cache=tmp_path / "c").evaluate(sim, X)
    ev = Evaluator(cache=tmp_path / "c", n_jobs=2)
    second = ev.evaluate(sim, X)
    assert second.values.tobytes() == first.values.tobytes()
    assert ev.nfev == 0 and ev.cache_hits == len(X) and second.nfev == 0
    assert _evals(tmp_path) == len(X)
    assert len(DiskCache(tmp_path / "c")) == len(X)


def test_entries_of_another_configuration_or_simulator_are_never_used(tmp_path):
    cache = tmp_path / "c"
    Evaluator(cache=cache).evaluate(hs.Counting(str(tmp_path), scale=1.0), X)
    ev = Evaluator(cache=cache)
    batch = ev.evaluate(hs.Counting(str(tmp_path), scale=2.0), X)
    assert ev.cache_hits == 0 and ev.nfev == len(X)
    np.testing.assert_array_equal(batch.values, 2.0 * np.array([hs.vec3(x) for x in X]))
    ev = Evaluator(cache=cache)
    ev.evaluate(hs.vec3, X)  # same numbers, another simulator
    assert ev.cache_hits == 0


def test_lambdas_with_different_captured_values_do_not_share_entries(tmp_path):
    def make(c):
        return lambda x: c * float(np.sum(x))

    Evaluator(cache=tmp_path).evaluate(make(1.0), X)
    ev = Evaluator(cache=tmp_path)
    batch = ev.evaluate(make(3.0), X)
    assert ev.cache_hits == 0
    np.testing.assert_array_equal(batch.values[:, 0], 3.0 * X.sum(axis=1))


def test_dtype_is_part_of_the_key(tmp_path):
    Evaluator(cache=tmp_path).evaluate(hs.quad_c, X)
    ev = Evaluator(cache=tmp_path)
    batch = ev.evaluate(hs.quad_c, X.astype(complex))
    assert ev.cache_hits == 0 and batch.values.dtype == complex
    ev = Evaluator(cache=tmp_path)
    again = ev.evaluate(hs.quad_c, X.astype(complex))
    assert ev.cache_hits == len(X) and again.values.dtype == complex
    assert again.values.tobytes() == batch.values.tobytes()


def test_corrupt_entries_are_ignored_and_recomputed(tmp_path):
    cache = tmp_path / "c"
    sim = hs.Counting(str(tmp_path))
    good = Evaluator(cache=cache).evaluate(sim, X)
    files = sorted(cache.glob("*/*.npz"))
    files[0].write_bytes(b"not an npz at all")
    files[1].write_bytes(files[1].read_bytes()[:40])  # truncated
    files[2].write_bytes(files[3].read_bytes())  # another point's entry under this name
    ev = Evaluator(cache=cache)
    batch = ev.evaluate(sim, X)
    assert batch.values.tobytes() == good.values.tobytes()
    assert ev.nfev == 3 and ev.cache_hits == 3
    ev = Evaluator(cache=cache)
    ev.evaluate(sim, X)  # the three were rewritten
    assert ev.cache_hits == len(X)


def test_failures_are_not_cached(tmp_path):
    ev = Evaluator(cache=tmp_path, on_failure="skip")
    ev.evaluate(hs.RaiseAt(0.0), X)
    n_ok = int((X[:, 0] <= 0.0).sum())
    assert len(DiskCache(tmp_path)) == n_ok


def test_no_temporary_files_are_left(tmp_path):
    Evaluator(cache=tmp_path, n_jobs=2, timeout=60).evaluate(hs.vec3, X)
    assert not list(tmp_path.glob("*/.tmp-*"))


SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    import simdiff as sd
    import helpers_sims as hs

    sim = hs.ExitAtK({work!r}, k={k}, how={how!r}, sleep={sleep})
    ev = sd.Evaluator(n_jobs={n_jobs}, cache={cache!r}, timeout={timeout})
    x = np.array([0.1, -0.4, 1.3, 2.0])
    J = sd.jacobian(sim, x, evaluator=ev)
    print("nfev", ev.nfev, "hits", ev.cache_hits)
    np.save({out!r}, J)
    """
)


def _run(tmp_path, k, how="self", n_jobs=1, sleep=0.0, timeout=None):
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    script = SCRIPT.format(tests=str(TESTS), work=str(work), k=k, how=how, n_jobs=n_jobs,
                           cache=str(tmp_path / "cache"), out=str(tmp_path / "J.npy"), sleep=sleep,
                           timeout=timeout)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=TESTS.parent, check=False)
    return done, work


@pytest.mark.parametrize("k", [1, 4, 8])
def test_killed_run_resumes_with_only_the_missing_points(tmp_path, k):
    total = 2 * 4 + 1  # central Jacobian, n = 4, and f(x)
    killed, work = _run(tmp_path, k)
    assert killed.returncode == 17, killed.stderr
    assert _evals(work) == k
    rerun, _ = _run(tmp_path, k)  # the same simulator; its k-th evaluation has passed
    assert rerun.returncode == 0, rerun.stderr
    assert f"nfev {total - (k - 1)} hits {k - 1}" in rerun.stdout
    assert _evals(work) == k + total - (k - 1)
    x = np.array([0.1, -0.4, 1.3, 2.0])
    np.testing.assert_array_equal(np.load(tmp_path / "J.npy"), sd.jacobian(hs.vec3, x))


def test_run_killed_while_workers_compute_resumes(tmp_path):
    # the k-th evaluation, in a worker (timeout= keeps every point in workers), kills the main
    # process; the points finished before it survive in the cache
    total = 2 * 4 + 1
    killed, _work = _run(tmp_path, k=5, how="parent", n_jobs=2, sleep=0.05, timeout=60)
    assert killed.returncode == -9
    done = len(DiskCache(tmp_path / "cache"))
    assert 3 <= done <= 4
    rerun, _ = _run(tmp_path, k=5, how="parent", n_jobs=2, sleep=0.05, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert f"nfev {total - done} hits {done}" in rerun.stdout


def test_a_cache_that_cannot_be_written_warns_and_keeps_the_result(tmp_path, monkeypatch):
    import os

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.warns(RuntimeWarning, match="could not store"):
        batch = Evaluator(cache=tmp_path).evaluate(hs.vec3, X[:2])
    np.testing.assert_array_equal(batch.values, np.array([hs.vec3(x) for x in X[:2]]))
    assert len(DiskCache(tmp_path)) == 0 and not list(tmp_path.glob("*/.tmp-*"))
