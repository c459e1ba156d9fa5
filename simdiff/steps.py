"""Step sizes: the scheme-optimal rule, user steps, and fitting a stencil inside bounds.

Optimal step. For a stencil of accuracy order p for the d-th derivative, the error of the
estimate is modelled as (values of f carry a relative rounding error ε):

    E(h) = ε·|f|·Σ|w| / h^d  +  |C|·|f^(p+d)|·h^p,

with C the stencil's truncation coefficient (``Stencil.error_coef``). Setting dE/dh = 0 with
|f^(p+d)| ≈ |f| on the unit scale gives

    h* = c · ε^(1/(p+d)) · max(1, |x_j|),   c = (d·Σ|w| / (p·|C|))^(1/(p+d)),

i.e. ε^(1/2) for forward/backward (c = 2), ε^(1/3) central (c = 3^(1/3)), ε^(1/5) five-point
and ε^(1/4) for central second differences (c = 12^(1/4)). For orders p > 2 the step is then
shortened by min(1, 2/p) (five-point: c ≈ 0.81): high derivatives of most functions grow with
their order, so |f^(p+d)| ≈ |f| understates the truncation term, and an undershoot of the step
by r costs a factor r in rounding while an overshoot costs r^p in truncation. The factor was
calibrated on the functions of ``benchmarks/accuracy.py`` (it halves the worst five-point error). The factor max(1, |x_j|)
keeps the step above the spacing of floats near x_j, so that rounding in x + h does not
dominate. Every step is then made exactly representable: h ← (x_j + h) − x_j.

Bounds. A stencil that would leave [lower, upper] is replaced by a one-sided stencil of the
same order pointing into the box; the step is shrunk only when the box is narrower than any
stencil of full step, and then the stencil keeping the largest step is chosen. A coordinate
with lower == upper is fixed (its derivative is 0 by definition).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .errors import ArgumentError, ArgumentTypeError, BoundsError
from .stencils import Stencil, one_sided

__all__ = [
    "EPS",
    "optimal_factor",
    "base_steps",
    "normalize_bounds",
    "Placement",
    "place",
    "COMPLEX_STEP",
    "typical_scale",
]

EPS = float(np.finfo(float).eps)

#: Complex-step size relative to max(1, |x|): the method has no subtractive cancellation, so a
#: tiny step makes the O(h²) truncation error vanish below rounding (Squire & Trapp 1998).
COMPLEX_STEP = 2.0**-60


@lru_cache(maxsize=256)
def optimal_factor(st: Stencil, eps: float = EPS) -> float:
    """c·ε^(1/(p+d)): the optimal step of ``st`` on the unit scale (see module docstring).

    ``eps`` is the relative rounding of f's values: 2^-52 for float64 outputs, 2^-23 for
    float32 ones (their optimal steps are (2^29)^(1/(p+d)) times longer)."""
    p, d = st.order, st.deriv
    c = (d * st.abs_weight_sum / (p * abs(st.error_coef))) ** (1.0 / (p + d))
    return min(1.0, 2.0 / p) * c * eps ** (1.0 / (p + d))


def _as_step_array(value: Any, n: int, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ArgumentTypeError(
            f"{name} must be a positive float or an array of {n} positive floats; got {value!r}"
        ) from None
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    elif arr.shape != (n,):
        raise ArgumentError(
            f"{name} must be a float or an array of shape ({n},) (one per coordinate); "
            f"got shape {arr.shape}"
        )
    bad = ~np.isfinite(arr) | (arr <= 0)
    if np.any(bad):
        j = int(np.flatnonzero(bad)[0])
        raise ArgumentError(
            f"{name} must be finite and > 0 for every coordinate; got {name}[{j}] = {float(arr[j])!r}"
        )
    return arr


def base_steps(
    x: np.ndarray,
    st: Stencil | None,
    step: Any = None,
    rel_step: Any = None,
    scale: np.ndarray | None = None,
    eps: float = EPS,
    typical: np.ndarray | None = None,
) -> np.ndarray:
    """The unit steps h_j before bounds, before realization.

    step: absolute, a float or one per coordinate. rel_step: h_j = rel_step·|x_j|, or rel_step
    itself where x_j = 0. Neither: the optimal step ``optimal_factor(st, eps)·max(1, |x_j|)``
    (for ``st=None``, the complex step ``2^-60·max(1, |x_j|)``). ``scale`` replaces |x_j|
    in max(1, ·) (jvp uses the size of x along the direction); ``typical`` (the user's
    ``scale=``, an input's typical magnitude) replaces max(1, |x_j|) altogether.
    """
    n = x.shape[0]
    if step is not None and rel_step is not None:
        raise ArgumentError(
            f"give step= or rel_step=, not both (got step={step!r}, rel_step={rel_step!r})"
        )
    mag = np.abs(x) if scale is None else np.asarray(scale, dtype=float)
    if step is not None:
        if isinstance(step, str):
            raise ArgumentError(
                f"step must be None, a positive float or an array of {n} positive floats; got {step!r}"
            )
        return _as_step_array(step, n, "step")
    if rel_step is not None:
        r = _as_step_array(rel_step, n, "rel_step")
        return np.where(mag > 0, r * mag, r)
    unit = COMPLEX_STEP if st is None else optimal_factor(st, eps)
    if typical is not None:
        return unit * np.asarray(typical, dtype=float)
    return unit * np.maximum(1.0, mag)


def typical_scale(scale: Any, x: np.ndarray, name: str = "scale") -> np.ndarray | None:
    """The user's ``scale=`` (or a simulator's ``scales``) as an array (n,) of positive floats,
    or None (then steps follow max(1, |x_j|))."""
    if scale is None:
        return None
    if isinstance(scale, str):
        raise ArgumentError(
            f"{name} must be None, a positive float or an array of {x.shape[0]} positive floats "
            f"(the typical magnitude of each input); got {scale!r}")
    return _as_step_array(scale, x.shape[0], name)


def normalize_bounds(bounds: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(lower, upper) as two float arrays (n,), checked against each other and against x."""
    if bounds is None:
        return None
    n = x.shape[0]
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):  # scipy.optimize.Bounds
        bounds = (bounds.lb, bounds.ub)
    try:
        lower, upper = bounds
    except (TypeError, ValueError):
        raise BoundsError(
            f"bounds must be None, a pair (lower, upper) of floats or arrays ({n},) or a "
            f"scipy.optimize.Bounds; got {bounds!r}"
        ) from None
    out = []
    for name, b, fill in (("lower", lower, -np.inf), ("upper", upper, np.inf)):
        try:
            arr = np.asarray(fill if b is None else b, dtype=float)
        except (TypeError, ValueError):
            raise BoundsError(f"bounds: {name} must be a float or an array of {n} floats; got {b!r}") from None
        if arr.ndim == 0:
            arr = np.full(n, float(arr))
        if arr.shape != (n,):
            raise BoundsError(f"bounds: {name} must be a float or have shape ({n},); got shape {arr.shape}")
        if np.any(np.isnan(arr)):
            raise BoundsError(f"bounds: {name} must not contain NaN; got {arr!r}")
        out.append(arr)
    lower, upper = out
    bad = lower > upper
    if np.any(bad):
        j = int(np.flatnonzero(bad)[0])
        raise BoundsError(
            f"bounds: lower must be ≤ upper; got lower[{j}] = {float(lower[j])!r} > upper[{j}] = {float(upper[j])!r}"
        )
    outside = (x < lower) | (x > upper)
    if np.any(outside):
        j = int(np.flatnonzero(outside)[0])
        raise BoundsError(
            f"x must lie inside bounds; got x[{j}] = {float(x[j])!r} outside [{float(lower[j])!r}, {float(upper[j])!r}]"
        )
    return lower, upper


@dataclass(frozen=True)
class Placement:
    """How one coordinate is differentiated: its stencil, its step, and why."""

    stencil: Stencil | None  # None: fixed coordinate (or complex step)
    h: float
    kind: str  # "central", "forward", "backward", "fixed", "complex"
    shrunk: bool = False


def realize(xj: float, h: float, sign: float = 1.0) -> float:
    """The representable step nearest h: (x_j ± h) − x_j, or h itself if that vanishes."""
    r = abs((xj + sign * h) - xj)
    return r if r > 0 else h


def place(st: Stencil, xj: float, h: float, lo: float = -np.inf, hi: float = np.inf) -> Placement:
    """Fit ``st`` with step ``h`` at x_j inside [lo, hi] (see the module docstring)."""
    if lo == hi:
        return Placement(None, 0.0, "fixed")
    tmin, tmax = st.width
    kind = "central" if tmin < 0 < tmax else ("forward" if tmin >= 0 else "backward")
    if xj + tmin * h >= lo and xj + tmax * h <= hi:
        return Placement(st, h, kind)
    room_up, room_down = hi - xj, xj - lo
    fwd = one_sided(st.order, st.deriv, +1)
    bwd = one_sided(st.order, st.deriv, -1)
    span = fwd.width[1]
    if span * h <= room_up:
        return Placement(fwd, h, "forward")
    if span * h <= room_down:
        return Placement(bwd, h, "backward")
    # The box is narrower than a full-step stencil: keep the largest step that fits.
    options = [(room_up / span, fwd, "forward"), (room_down / span, bwd, "backward")]
    if kind == "central":
        options.insert(0, (min(room_up / tmax, room_down / -tmin), st, "central"))
    h_fit, st_fit, kind_fit = max(options, key=lambda o: o[0])
    if h_fit < 4 * np.spacing(abs(xj)):
        # Too narrow for distinct nodes of this order: the widest two-point difference, or,
        # when even that cannot resolve, the box is a point and the coordinate is fixed.
        side = +1 if room_up >= room_down else -1
        room = max(room_up, room_down)
        if st.deriv != 1 or room < np.spacing(abs(xj)):
            return Placement(None, 0.0, "fixed")
        return Placement(one_sided(1, 1, side), room, "forward" if side > 0 else "backward", True)
    return Placement(st_fit, h_fit, kind_fit, shrunk=True)
