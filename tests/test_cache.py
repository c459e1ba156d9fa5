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


# -- keys that are equal in every process, and change with the code (issue 13) ------------------

MODULE = '''
import functools, os
import numpy as np
import simdiff as sd

C = 2.0

def f(x, a=1.0):
    return a * float(np.sum(x**2)) + C

lam = lambda x: float(np.sum(x)) * C

def make(c):
    def g(x):
        return c * float(np.sum(x))
    return g

closure = make(3.0)
part = functools.partial(f, a=2.5)

class Model:
    def __init__(self, k):
        self.k = k
    def run(self, x):
        return self.k * float(np.sum(x))
    def __call__(self, x):
        return self.run(x)

bound = Model(4.0).run
obj = Model(5.0)

class Renamed(sd.Simulator):
    """Stores its keyword under another name."""
    name = "renamed"
    def __init__(self, scale=1.0):
        self._scale = scale
    def evaluate(self, x):
        return self._scale * float(np.sum(x))

ren1, ren2 = Renamed(1.0), Renamed(2.0)

def counted(x, directory, k, p=1.0):
    with open(os.path.join(directory, "evals"), "a") as fh:
        fh.write("x\\n")
    n = sum(1 for _ in open(os.path.join(directory, "evals")))
    if n == k:
        os._exit(17)
    return p * float(np.sum(np.sin(x)))
'''

KEYS = '''
import json, sys
sys.path.insert(0, {where!r})
import mysims
from simdiff.cache import fingerprint
from simdiff.simulator import as_simulator
names = ["f", "lam", "closure", "part", "bound", "obj", "ren1", "ren2"]
print(json.dumps({{n: fingerprint(as_simulator(getattr(mysims, n))) for n in names}}))
'''


def _keys(where: Path, seed: str) -> dict:
    import json
    import os

    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run([sys.executable, "-c", KEYS.format(where=str(where))], capture_output=True,
                         text=True, timeout=120, env=env, cwd=TESTS.parent)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_keys_are_equal_in_separate_processes_and_follow_code_and_constants(tmp_path):
    mod = tmp_path / "mysims.py"
    mod.write_text(MODULE)
    first, second = _keys(tmp_path, "1"), _keys(tmp_path, "2")
    assert first == second, "every kind of simulator: the same key in another process"
    assert len(set(first.values())) == len(first), "different simulators never share a key"
    # the code of f changes: f and the partial of f change, the others do not
    mod.write_text(MODULE.replace("np.sum(x**2)", "np.sum(x**3)"))
    edited = _keys(tmp_path, "3")
    changed = {n for n in first if first[n] != edited[n]}
    assert changed == {"f", "part"}
    # a module constant both f and lam read
    mod.write_text(MODULE.replace("C = 2.0", "C = 3.0"))
    const = _keys(tmp_path, "4")
    assert {n for n in first if first[n] != const[n]} == {"f", "part", "lam"}
    # a captured value, a bound instance's state, a partial's keyword
    mod.write_text(MODULE.replace("make(3.0)", "make(3.5)").replace("Model(4.0)", "Model(4.5)")
                   .replace("a=2.5", "a=2.75"))
    cfg = _keys(tmp_path, "5")
    assert {n for n in first if first[n] != cfg[n]} == {"closure", "bound", "part"}


def test_a_simulator_storing_its_keyword_under_another_name_gets_its_own_entries(tmp_path):
    class Renamed(sd.Simulator):
        name = "renamed"

        def __init__(self, scale=1.0):
            self._scale = scale

        def evaluate(self, x):
            return self._scale * float(np.sum(x))

    Evaluator(cache=tmp_path).evaluate(Renamed(1.0), X)
    ev = Evaluator(cache=tmp_path)
    batch = ev.evaluate(Renamed(2.0), X)
    assert ev.cache_hits == 0
    np.testing.assert_array_equal(batch.values[:, 0], 2.0 * X.sum(axis=1))
    ev = Evaluator(cache=tmp_path)
    ev.evaluate(Renamed(2.0), X)
    assert ev.cache_hits == len(X), "an equal configuration is found again"


def scaled_sum(x, c=1.0):
    return c * float(np.sum(x))


def test_equal_partials_share_entries_in_one_process(tmp_path):
    import functools

    Evaluator(cache=tmp_path).evaluate(functools.partial(scaled_sum, c=2.0), X)
    ev = Evaluator(cache=tmp_path)
    ev.evaluate(functools.partial(scaled_sum, c=2.0), X)
    assert ev.cache_hits == len(X) and ev.nfev == 0
    ev = Evaluator(cache=tmp_path)
    ev.evaluate(functools.partial(scaled_sum, c=3.0), X)
    assert ev.cache_hits == 0


RESUME = '''
import functools, sys
sys.path.insert(0, {where!r})
import numpy as np
import simdiff as sd
import mysims
sim = functools.partial(mysims.counted, directory={work!r}, k={k}, p=2.0)
ev = sd.Evaluator(cache={cache!r})
g = sd.gradient(sim, np.array([0.1, -0.4, 1.3, 2.0]), evaluator=ev)
print("nfev", ev.nfev, "hits", ev.cache_hits)
np.save({out!r}, g)
'''


def test_a_killed_run_of_a_partial_resumes_with_only_the_missing_points(tmp_path):
    (tmp_path / "mysims.py").write_text(MODULE)
    work = tmp_path / "work"
    work.mkdir()
    k, total = 5, 9  # central gradient, n = 4: x ± h e_j and f(x)
    script = RESUME.format(where=str(tmp_path), work=str(work), k=k, cache=str(tmp_path / "cache"),
                           out=str(tmp_path / "g.npy"))
    run = lambda: subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,  # noqa: E731
                                 timeout=120, cwd=TESTS.parent)
    killed = run()
    assert killed.returncode == 17, killed.stderr
    rerun = run()  # a new process: a new partial object, the same key
    assert rerun.returncode == 0, rerun.stderr
    assert f"nfev {total - (k - 1)} hits {k - 1}" in rerun.stdout
    x = np.array([0.1, -0.4, 1.3, 2.0])
    np.testing.assert_allclose(np.load(tmp_path / "g.npy"), 2.0 * np.cos(x), rtol=1e-6)


def test_an_unreadable_part_warns():
    import threading

    class Holder:
        def __init__(self):
            self.lock = threading.Lock()

        def __call__(self, x):
            return float(np.sum(x))

    from simdiff.cache import fingerprint
    from simdiff.simulator import as_simulator

    with pytest.warns(RuntimeWarning, match="cannot be read for its cache key.*lock"):
        fingerprint(as_simulator(Holder()))


def test_an_executable_resumed_with_another_work_dir_and_timeout_finds_its_entries(tmp_path):
    prog = "print(float(open('d').read()) ** 2)"

    def make(run_dir, **cfg):
        return sd.load("subprocess", command=[sys.executable, "-c", prog], inputs=["a"],
                       files={"d": "{a}"}, workdir=str(tmp_path / run_dir), **cfg)

    xs = np.array([[1.0], [2.0]])
    Evaluator(cache=tmp_path / "c").evaluate(make("one"), xs)
    ev = Evaluator(cache=tmp_path / "c")
    batch = ev.evaluate(make("two", timeout=30, keep="never"), xs)
    assert ev.cache_hits == 2 and ev.nfev == 0
    np.testing.assert_array_equal(batch.values[:, 0], [1.0, 4.0])
    ev = Evaluator(cache=tmp_path / "c")
    ev.evaluate(sd.load("subprocess", command=[sys.executable, "-c", prog], inputs=["a"],
                        files={"d": "{a:.3e}"}, workdir=str(tmp_path / "one")), xs)
    assert ev.cache_hits == 0, "another deck is another simulator"
