"""Stencil weights against the laws they must satisfy (Fornberg 1988)."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simdiff.errors import ArgumentError
from simdiff.stencils import fornberg_weights, one_sided, scheme, stencil


@pytest.mark.parametrize(
    "offsets, deriv, expected",
    [
        ((-1, 1), 1, [-0.5, 0.5]),
        ((-2, -1, 1, 2), 1, [1 / 12, -2 / 3, 2 / 3, -1 / 12]),
        ((-1, 0, 1), 2, [1.0, -2.0, 1.0]),
        ((0, 1, 2), 1, [-1.5, 2.0, -0.5]),
        ((0, 1), 1, [-1.0, 1.0]),
    ],
)
def test_classic_weights(offsets, deriv, expected):
    w = fornberg_weights(offsets, deriv)
    np.testing.assert_array_equal(w, np.array(expected))


@settings(max_examples=60, deadline=None)
@given(
    nodes=st.lists(st.floats(-4, 4, allow_nan=False), min_size=2, max_size=7, unique=True),
    deriv=st.integers(0, 3),
)
def test_weights_reproduce_monomials(nodes, deriv):
    # Σ w_i t_i^k = k!·δ(k, deriv) for every k ≤ N: the stencil is exact on polynomials of
    # degree ≤ N, which is what defines the weights.
    nodes = sorted(nodes)
    if len(nodes) < deriv + 1 or min(np.diff(nodes)) < 0.05:
        return
    w = fornberg_weights(nodes, deriv)
    t = np.array(nodes)
    scale = max(1.0, np.max(np.abs(t))) ** len(t) * np.sum(np.abs(w)) / min(np.diff(nodes)) ** 2
    for k in range(len(nodes)):
        expected = math.factorial(k) if k == deriv else 0.0
        assert abs(np.sum(w * t**k) - expected) <= 1e-10 * max(1.0, scale)


def test_exact_rational_weights_for_integer_nodes():
    w = fornberg_weights([Fraction(-3), Fraction(-1), Fraction(2)], 1)
    # exact values -1/5·..., checked through the monomial law in exact arithmetic
    t = [Fraction(-3), Fraction(-1), Fraction(2)]
    ws = [Fraction(v).limit_denominator(1000) for v in w]
    assert sum(a * b for a, b in zip(ws, t)) == 1
    assert sum(ws) == 0


@pytest.mark.parametrize("method, order", [("forward", 1), ("backward", 1), ("central", 2),
                                           ("five-point", 4), ("central", 6), ("central", 8),
                                           ("forward", 3), ("backward", 5)])
def test_named_schemes_have_their_order(method, order):
    s = scheme(method, None if method == "five-point" else order)
    assert s.order == order
    assert s.deriv == 1
    # one Taylor term beyond the order is not reproduced: that is the truncation coefficient
    t = np.asarray(s.offsets)
    assert abs(np.sum(s.weights * t ** (order + 1)) / math.factorial(order + 1) - s.error_coef) < 1e-14


def test_central_second_derivative_order_two():
    s = scheme("central", 2, deriv=2)
    assert s.offsets == (-1.0, 0.0, 1.0) and s.order == 2


def test_one_sided_nodes():
    assert one_sided(2, 1, +1).offsets == (0.0, 1.0, 2.0)
    assert one_sided(2, 1, -1).offsets == (0.0, -1.0, -2.0)


def test_unknown_method_lists_allowed():
    with pytest.raises(ArgumentError, match="'central'.*'complex'.*got 'centre'"):
        scheme("centre")


@pytest.mark.parametrize("method, order", [("central", 3), ("central", 10), ("forward", 0), ("forward", 9),
                                           ("five-point", 2), ("complex", 4)])
def test_bad_orders(method, order):
    with pytest.raises(ArgumentError, match="order"):
        scheme(method, order)


def test_nodes_must_be_distinct_and_enough():
    with pytest.raises(ArgumentError, match="distinct"):
        fornberg_weights([0.0, 1.0, 1.0], 1)
    with pytest.raises(ArgumentError, match="at least 3 points"):
        stencil((0, 1), 2)
