"""Bounds: no planned point leaves the box; stencils turn one-sided or shrink, never worse."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import simdiff as sd
from zoo import vec_f, vec_jac


class Recorder:
    def __init__(self, f):
        self.f, self.points = f, []

    def __call__(self, x):
        self.points.append(np.array(x, copy=True))
        return self.f(x)


def inside(points, lo, hi):
    P = np.array(points)
    return bool(np.all(P >= lo) and np.all(P <= hi))


@pytest.mark.parametrize("method", ["central", "forward", "backward", "five-point"])
def test_at_the_bounds_one_sided_same_order(method):
    x = np.array([0.4, 0.9, -1.3])
    lo, hi = np.array([0.4, -5.0, -5.0]), np.array([5.0, 0.9, -1.3 + 1e-3])
    rec = Recorder(vec_f)
    J, info = sd.jacobian(rec, x, method=method, bounds=(lo, hi), full_output=True)
    assert inside(rec.points, lo, hi)
    assert info.schemes[0] == "forward" if method != "backward" else True
    assert info.schemes[1] == "backward" if method != "forward" else True
    order = {"central": 2, "forward": 1, "backward": 1, "five-point": 4}[method]
    tol = {1: 3e-6, 2: 1e-8, 4: 1e-9}[order]
    err = np.abs(J - vec_jac(x))
    assert np.all(err[:, :2] < tol * 10)


def test_narrow_box_shrinks_step():
    x = np.array([0.4, 0.9, -1.3])
    lo, hi = x - 1e-7, x + 2e-7
    rec = Recorder(vec_f)
    J, info = sd.jacobian(rec, x, bounds=(lo, hi), full_output=True)
    assert inside(rec.points, lo, hi)
    assert np.all(info.step <= 2e-7)
    assert all("shrunk" in s for s in info.schemes)
    assert np.max(np.abs(J - vec_jac(x))) < 1e-6


def test_fixed_coordinate_is_zero_and_reported():
    x = np.array([0.4, 0.9, -1.3])
    lo = np.array([-np.inf, 0.9, -np.inf])
    hi = np.array([np.inf, 0.9, np.inf])
    rec = Recorder(vec_f)
    J, info = sd.jacobian(rec, x, bounds=(lo, hi), full_output=True)
    assert np.all(J[:, 1] == 0.0) and np.all(np.isfinite(J))
    assert info.fixed == [1] and info.schemes[1] == "fixed"
    assert all(p[1] == 0.9 for p in rec.points)
    assert info.nfev == 5  # x ± h for the two free coordinates, and f(x)


def test_simulator_bounds_attribute_used():
    class Boxed(sd.Simulator):
        """sqrt defined on x ≥ 0 only."""

        bounds = (0.0, np.inf)

        def evaluate(self, x):
            if np.any(x < 0):
                raise ValueError("outside the domain")
            return float(np.sum(np.sqrt(x)))

    x = np.array([0.0 + 1e-3, 2.0])
    g = sd.gradient(Boxed(), x)
    np.testing.assert_allclose(g, 0.5 / np.sqrt(x), rtol=1e-5)


@settings(max_examples=50, deadline=None)
@given(
    x=st.lists(st.floats(-3, 3), min_size=3, max_size=3),
    left=st.lists(st.floats(0, 1e-2), min_size=3, max_size=3),
    right=st.lists(st.floats(0, 1e-2), min_size=3, max_size=3),
    method=st.sampled_from(["central", "forward", "backward", "five-point"]),
)
@example(x=[0.0, 0.5, 0.0], left=[0.0, 0.0, 0.0], right=[0.0, 1e-05, 0.0], method="central")
def test_points_never_leave_box(x, left, right, method):
    x = np.array(x)
    lo, hi = x - np.array(left), x + np.array(right)
    rec = Recorder(vec_f)
    J = sd.jacobian(rec, x, method=method, bounds=(lo, hi))
    assert inside(rec.points, lo, hi)
    assert np.all(np.isfinite(J))
