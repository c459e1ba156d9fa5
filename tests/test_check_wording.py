"""The gradient-check report's wording: one definition of "relative", a swapped pair called
swapped, and an input pinned by the bounds named as such rather than called a bug."""

from __future__ import annotations

import re

import numpy as np

import simdiff as sd


def f(x):
    return float(x[0] ** 2 + x[1] ** 3 + 3 * x[2])


def grad(x):
    return np.array([2 * x[0], 3 * x[1] ** 2, 3.0])


X = np.array([1.0, 2.0, -0.5])


def test_one_definition_of_relative_in_the_report():
    r = sd.check_gradient(f, lambda x: grad(x) * [1.001, 1, 1], X)
    a, n = 2.002, 2.0
    rel = abs(a - n) / (abs(a) + abs(n))
    assert abs(r.rel_error[0] - rel) < 1e-9
    quoted = [float(v) for v in re.findall(r"relative error ([0-9.e+-]+)\)", r.hint)]
    assert quoted and abs(quoted[0] - rel) < 0.01 * rel, r.hint  # the table's number, 2 digits
    assert "% of the numerical value" in r.hint and "+0.1 %" in r.hint
    assert "'rel err' is |a − n| / (|a| + |n|)" in str(r)


def test_a_swapped_pair_at_n_2_is_swapped_not_shifted():
    g = lambda x: float(x[0] ** 2 + x[1] ** 3)  # noqa: E731
    r = sd.check_gradient(g, lambda x: np.array([3 * x[1] ** 2, 2 * x[0]]), [1.0, 2.0])
    assert not r.passed and r.kinds[0] == "permuted"
    assert r.hint.startswith("swapped inputs") and "shifted" not in r.hint


def test_an_input_pinned_by_the_bounds_is_named_and_not_called_a_bug():
    bounds = ([-5, 2.0, -5], [5, 2.0, 5])  # x[1] pinned at 2
    r = sd.check_gradient(f, grad, X, bounds=bounds)
    assert r.passed, str(r)
    assert "pinned" in r.kinds and "x[1] = 2" in str(r) and "not checked" in str(r)
    assert next(e for e in r.entries if e.index == 1).status == "not computed"
    wrong = sd.check_gradient(f, lambda x: grad(x) * [1, 1, -1], X, bounds=bounds)
    assert not wrong.passed and wrong.kinds[0] == "sign" and "pinned" in wrong.kinds
