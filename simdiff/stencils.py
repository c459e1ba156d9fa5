"""Finite-difference weights and the named schemes.

Weights come from Fornberg's recursion (B. Fornberg, "Generation of finite difference formulas
on arbitrarily spaced grids", Math. Comp. 51 (1988) 699-706): for nodes t_0..t_N (offsets in
units of the step h) and a derivative order d it returns w with

    f^(d)(x) ≈ h^-d · Σ_i w_i f(x + t_i h),

exact for every polynomial of degree ≤ N. Integer offsets are computed in exact rational
arithmetic, so the classic weights (1/2, 2/3, 1/12, ...) are correctly rounded.

A stencil of accuracy order p has truncation error C·h^p·f^(p+d)(ξ); ``Stencil.error_coef``
holds C = Σ w_i t_i^(p+d) / (p+d)!, the number the optimal-step rule of ``steps.py`` needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Sequence

import numpy as np

from .errors import ArgumentError

__all__ = [
    "fornberg_weights",
    "Stencil",
    "stencil",
    "scheme",
    "METHODS",
    "one_sided",
]

#: The method names every derivative function accepts.
METHODS = ("central", "forward", "backward", "five-point", "complex")


def fornberg_weights(offsets: Sequence[float], deriv: int = 1, at: float = 0) -> np.ndarray:
    """Weights of the ``deriv``-th derivative at ``at`` from values at ``offsets``.

    Fornberg (1988), the recursion in its numerically stable form. Exact (rational) when the
    offsets and ``at`` are integers or Fractions; float64 otherwise.

    Parameters
    ----------
    offsets : sequence of distinct numbers, at least ``deriv + 1`` of them.
    deriv : derivative order, ≥ 0.
    at : the point the derivative is taken at.

    Returns
    -------
    ndarray (len(offsets),) of float64.
    """
    _check_nodes(offsets, deriv)
    exact_types = (int, Fraction, np.integer)
    if all(isinstance(t, exact_types) for t in offsets) and isinstance(at, exact_types):
        nodes = tuple(Fraction(int(t)) if isinstance(t, np.integer) else Fraction(t) for t in offsets)
        return np.array([float(w) for w in _weights_exact(nodes, deriv, Fraction(at))])
    return np.array(_weights(tuple(float(t) for t in offsets), deriv, float(at)), dtype=float)


def _check_nodes(offsets: Sequence[float], deriv: int) -> None:
    if int(deriv) != deriv or deriv < 0:
        raise ArgumentError(f"deriv must be an integer ≥ 0; got {deriv!r}")
    if len(offsets) < deriv + 1:
        raise ArgumentError(
            f"offsets: a derivative of order {deriv} needs at least {deriv + 1} points; "
            f"got {len(offsets)} ({list(offsets)!r})"
        )
    if len(set(float(t) for t in offsets)) != len(offsets):
        raise ArgumentError(f"offsets must be distinct; got {list(offsets)!r}")


@lru_cache(maxsize=256)
def _weights_exact(offsets: tuple, deriv: int, at: Fraction) -> tuple:
    return tuple(_fornberg(list(offsets), deriv, at, Fraction(1), Fraction(0)))


def _weights(offsets: tuple, deriv: int, at: float) -> list:
    return _fornberg(list(offsets), deriv, at, 1.0, 0.0)


def _fornberg(t: list, m: int, z, one, zero) -> list:
    # c[i][k]: weight of node i for the k-th derivative using nodes 0..(current); grown node by
    # node, each new node updating the old weights (Fornberg 1988, eqs. 3.4-3.7).
    n = len(t)
    c = [[zero] * (m + 1) for _ in range(n)]
    c[0][0] = one
    c1 = one
    c4 = t[0] - z
    for i in range(1, n):
        mn = min(i, m)
        c2 = one
        c5 = c4
        c4 = t[i] - z
        for j in range(i):
            c3 = t[i] - t[j]
            c2 = c2 * c3
            if j == i - 1:
                for k in range(mn, 0, -1):
                    c[i][k] = c1 * (k * c[i - 1][k - 1] - c5 * c[i - 1][k]) / c2
                c[i][0] = -c1 * c5 * c[i - 1][0] / c2
            for k in range(mn, 0, -1):
                c[j][k] = (c4 * c[j][k] - k * c[j][k - 1]) / c3
            c[j][0] = c4 * c[j][0] / c3
        c1 = c2
    return [c[i][m] for i in range(n)]


@dataclass(frozen=True)
class Stencil:
    """A finite-difference stencil in units of the step h.

    ``f^(deriv)(x) ≈ h^-deriv · Σ weights[i] · f(x + offsets[i]·h)`` with truncation error
    ``error_coef · h^order · f^(order+deriv)``.
    """

    name: str
    offsets: tuple
    weights: np.ndarray = field(compare=False, repr=False)
    deriv: int
    order: int
    error_coef: float

    @property
    def uses_center(self) -> bool:
        """True when f(x) enters with a nonzero weight."""
        return any(t == 0 and w != 0 for t, w in zip(self.offsets, self.weights))

    @property
    def abs_weight_sum(self) -> float:
        """Σ|w|: the factor by which rounding in the values is amplified (times ε|f|/h^d)."""
        return float(np.sum(np.abs(self.weights)))

    @property
    def width(self) -> tuple[float, float]:
        """The smallest and largest offset."""
        return float(min(self.offsets)), float(max(self.offsets))


@lru_cache(maxsize=256)
def stencil(offsets: tuple, deriv: int = 1, name: str = "custom") -> Stencil:
    """The Stencil on integer (or Fraction) ``offsets`` for derivative ``deriv``.

    The accuracy order is found, not assumed: it is the first power q ≥ 1 of the Taylor
    expansion whose moment Σ w t^(q+deriv) is nonzero (symmetric stencils gain one).
    Nodes with a zero weight (the centre of a central first difference) are dropped.
    """
    _check_nodes(offsets, deriv)
    fr = tuple(Fraction(t) for t in offsets)
    w = _weights_exact(fr, deriv, Fraction(0))
    order, coef = None, 0.0
    for q in range(1, len(fr) + 3):
        moment = sum(wi * ti ** (q + deriv) for wi, ti in zip(w, fr))
        if moment != 0:
            order, coef = q, float(moment / math.factorial(q + deriv))
            break
    if order is None:  # pragma: no cover - impossible for distinct nodes
        raise ArgumentError(f"offsets {offsets!r} give no finite-order stencil")
    keep = [i for i, wi in enumerate(w) if wi != 0]
    return Stencil(
        name=name,
        offsets=tuple(float(fr[i]) for i in keep),
        weights=np.array([float(w[i]) for i in keep]),
        deriv=deriv,
        order=order,
        error_coef=coef,
    )


def _central_offsets(order: int, deriv: int) -> tuple:
    # The smallest symmetric node set -r..r whose stencil reaches `order` for `deriv`
    # (symmetry cancels every other Taylor term, so 2r+1 nodes can give more than 2r+1-deriv).
    r = 1
    while stencil(tuple(range(-r, r + 1)), deriv).order < order:
        r += 1
    return tuple(range(-r, r + 1))


def one_sided(order: int, deriv: int = 1, side: int = +1) -> Stencil:
    """The one-sided stencil of accuracy ``order`` on nodes 0, ±1, ..., ±(order+deriv-1)."""
    nodes = tuple(side * i for i in range(order + deriv))
    return stencil(nodes, deriv, "forward" if side > 0 else "backward")


def scheme(method: str, order: int | None = None, deriv: int = 1) -> Stencil | None:
    """The stencil a method name stands for (None for "complex", which has no stencil).

    ==============  =====================  ================================
    method          default order          nodes (units of h), deriv 1
    ==============  =====================  ================================
    "forward"       1 (1..8 allowed)       0, 1, ..., order
    "backward"      1 (1..8 allowed)       0, -1, ..., -order
    "central"       2 (2, 4, 6, 8 allowed) -order/2, ..., order/2
    "five-point"    4 (fixed)              -2, -1, 1, 2
    "complex"       2 (fixed)              Im f(x + ih) / h  (Squire & Trapp 1998)
    ==============  =====================  ================================
    """
    if method not in METHODS:
        raise ArgumentError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    if order is not None and (isinstance(order, bool) or int(order) != order):
        raise ArgumentError(f"order must be an integer; got {order!r}")
    if method == "complex":
        if order not in (None, 2):
            raise ArgumentError(f"order: the complex step has order 2 only; got {order!r}")
        if deriv != 1:
            raise ArgumentError(f"method 'complex' gives first derivatives only; got deriv={deriv}")
        return None
    if method == "five-point":
        if order not in (None, 4):
            raise ArgumentError(f"order: 'five-point' is of order 4; got {order!r} (use method='central', order=...)")
        method, order = "central", 4
    if method == "central":
        order = 2 if order is None else int(order)
        if order not in (2, 4, 6, 8):
            raise ArgumentError(f"order for method 'central' must be one of 2, 4, 6, 8; got {order!r}")
        st = stencil(_central_offsets(order, deriv), deriv, "central")
        return st
    order = 1 if order is None else int(order)
    if not 1 <= order <= 8:
        raise ArgumentError(f"order for method {method!r} must be one of 1..8; got {order!r}")
    return one_sided(order, deriv, +1 if method == "forward" else -1)
