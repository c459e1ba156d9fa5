"""The ``python`` adapter: a callable named by an import string, re-imported by name."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import simdiff as sd

SIMFUNCS = '''
import numpy as np

CALLS = []
CONSTANT = 3.0


def rosen(x, a=1.0, b=100.0):
    return (a - x[0]) ** 2 + b * (x[1] - x[0] ** 2) ** 2


def rosen_rows(X):
    CALLS.append(len(X))
    return (1 - X[:, 0]) ** 2 + 100 * (X[:, 1] - X[:, 0] ** 2) ** 2


class Models:
    @staticmethod
    def twice(x):
        return 2 * x
'''


def rosen_grad(x, a=1.0, b=100.0):
    return np.array([-2 * (a - x[0]) - 4 * b * x[0] * (x[1] - x[0] ** 2), 2 * b * (x[1] - x[0] ** 2)])


@pytest.fixture
def simfuncs(tmp_path, monkeypatch):
    (tmp_path / "simfuncs.py").write_text(SIMFUNCS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("simfuncs", None)


X = np.array([-1.2, 1.0])


def test_gradient_of_a_named_function_and_its_kwargs(simfuncs):
    np.testing.assert_allclose(sd.gradient(sd.load("python", function="simfuncs:rosen"), X),
                               rosen_grad(X), rtol=1e-8)
    sim = sd.load("python", function="simfuncs:rosen", kwargs={"b": 10.0}, complex_safe=True)
    np.testing.assert_allclose(sd.gradient(sim, X, method="complex"), rosen_grad(X, b=10.0), rtol=1e-14)


def test_vectorized_function_gets_the_whole_batch_in_one_call(simfuncs):
    sim = sd.load("python", function="simfuncs:rosen_rows", vectorized=True)
    import simfuncs as mod

    mod.CALLS.clear()
    np.testing.assert_allclose(sd.gradient(sim, X), rosen_grad(X), rtol=1e-8)
    assert mod.CALLS == [5], "central differences in n = 2: one call with 4 points and f(x)"


def test_dotted_attribute_paths(simfuncs):
    J = sd.jacobian(sd.load("python", function="simfuncs:Models.twice"), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(J, 2 * np.eye(3), atol=1e-9)


def test_a_worker_process_reimports_the_function_by_name(simfuncs):
    sim = sd.load("python", function="simfuncs:rosen", kwargs={"a": 2.0})
    blob = pickle.dumps(sim)
    assert b"simfuncs:rosen" in blob
    assert pickle.loads(blob)._fun is None  # not carried along: resolved again on first use
    code = textwrap.dedent("""
        import pickle, sys
        import numpy as np
        sim = pickle.loads(sys.stdin.buffer.read())
        print(repr(float(sim(np.array([-1.2, 1.0])))))
    """)
    env = {**os.environ, "PYTHONPATH": str(simfuncs)}
    run = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, env=env, timeout=60, check=False)
    assert run.returncode == 0, run.stderr.decode()
    assert float(run.stdout) == sim(X)


@pytest.mark.parametrize("function, match", [
    ("simfuncs.rosen", "must be an import string 'package.module:function'"),
    ("nowhere_at_all:f", "cannot import module 'nowhere_at_all'"),
    ("simfuncs:nope", "has no attribute 'nope'"),
    ("simfuncs:CONSTANT", "not a callable"),
])
def test_a_bad_import_string_is_refused_at_configuration(simfuncs, function, match):
    with pytest.raises(sd.ConfigError, match=match):
        sd.load("python", function=function)


@pytest.mark.parametrize("cfg, message", [
    ({"kwargs": "b=1"}, "kwargs must be {name: value} passed to the function; got 'b=1'"),
    ({"vectorized": "no"}, "vectorized must be true or false; got 'no'"),
    ({"complex_safe": 1.0}, "complex_safe must be true or false; got 1.0"),
    ({"inputs": 3}, "inputs must be a list of names such as ['x', 'y']; got 3"),
])
def test_configuration_values_of_the_wrong_kind_are_refused(simfuncs, cfg, message):
    with pytest.raises(sd.ConfigError) as err:
        sd.load("python", function="simfuncs:rosen", **cfg)
    assert str(err.value) == message


def test_one_name_given_as_a_string_is_one_name(simfuncs):
    sim = sd.load("python", function="simfuncs:rosen", inputs=["x", "y"], outputs="energy")
    assert sim.outputs == ["energy"], "not ['e', 'n', 'e', ...]"
