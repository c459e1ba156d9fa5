"""Tests of the template plugin; run them after `pip install -e .` in this directory."""

import pickle

import numpy as np
import pytest
from simdiff_template.plugin import Rosenbrock

import simdiff as sd


def exact_gradient(x, a=1.0, b=100.0):
    return np.array([-2 * (a - x[0]) - 4 * b * x[0] * (x[1] - x[0] ** 2), 2 * b * (x[1] - x[0] ** 2)])


def test_found_through_its_entry_point():
    assert "rosenbrock" in sd.available()
    assert isinstance(sd.load("rosenbrock", b=10.0), Rosenbrock)


def test_gradient_matches_the_analytic_one():
    x = np.array([-1.2, 1.0])
    sim = sd.load("rosenbrock", a=1.0, b=100.0)
    np.testing.assert_allclose(sd.gradient(sim, x), exact_gradient(x), rtol=1e-7)
    np.testing.assert_allclose(sd.gradient(sim, x, method="complex"), exact_gradient(x), rtol=1e-12)


def test_configuration_is_checked():
    with pytest.raises(sd.ConfigError, match="'c'.*allowed: a, b, limit"):
        sd.load("rosenbrock", c=1.0)
    with pytest.raises(sd.ConfigError, match="b must be >= 0"):
        sd.load("rosenbrock", b=-1.0)


def test_a_point_outside_the_model_is_a_simulation_error():
    sim = sd.load("rosenbrock", limit=10.0)
    with pytest.raises(sd.SimulationError, match=r"\|x\| > limit 10"):
        sd.gradient(sim, [11.0, 1.0])


def test_survives_pickling():
    original = sd.load("rosenbrock", b=5.0)
    original(np.array([0.0, 0.0]))  # builds the lazy state, which __getstate__ leaves out
    sim = pickle.loads(pickle.dumps(original))
    assert sim._engine is None
    assert sim(np.array([2.0, 1.0])) == pytest.approx(1.0 + 5.0 * 9.0)
