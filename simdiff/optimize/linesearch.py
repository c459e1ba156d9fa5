"""Step-length rules of the line searches: Armijo's test and safeguarded interpolation.

Armijo (1966): accept the point x + s when f(x + s) ≤ f(x) + c₁·gᵀs (c₁ = 1e-4), with s the
step actually taken (projected onto the bounds). A rejected trial is replaced by the minimizer of
the quadratic (or, when the slope at the trial is known, the cubic) that interpolates φ(0),
φ'(0), φ(t) [, φ'(t)] (Nocedal & Wright, Numerical Optimization, 2nd ed., §3.5), kept in
[0.1·t, 0.5·t]; a failed evaluation (the simulator raised, or gave a non-finite value) is a
rejected step shrunk by the factor 0.25.
"""

from __future__ import annotations

import math

__all__ = ["C1", "armijo", "backtrack"]

C1 = 1e-4


def armijo(f0: float, slope: float, ft: float | None, tol: float = 0.0) -> bool:
    """True when ft (None: failed) satisfies f0 + c₁·slope, with ``tol`` for noise in f."""
    return ft is not None and math.isfinite(ft) and ft <= f0 + C1 * slope + tol


def backtrack(t: float, f0: float, slope: float, ft: float | None,
              slope_t: float | None = None) -> float:
    """The next trial step after t was rejected (slopes are per unit of t).

    slope = φ'(0) < 0, ft = φ(t) (None: failed), slope_t = φ'(t) if known.
    """
    if ft is None or not math.isfinite(ft):
        return 0.25 * t
    lo, hi = 0.1 * t, 0.5 * t
    new = None
    if slope_t is not None and math.isfinite(slope_t):
        # cubic through φ(0), φ'(0), φ(t), φ'(t)
        d1 = slope + slope_t - 3.0 * (f0 - ft) / t
        disc = d1 * d1 - slope * slope_t
        if disc >= 0:
            d2 = math.sqrt(disc)
            denom = slope_t - slope + 2.0 * d2
            if denom != 0:
                new = t - t * (slope_t + d2 - d1) / denom
    if new is None or not math.isfinite(new):
        curv = ft - f0 - slope * t
        new = -slope * t * t / (2.0 * curv) if curv > 0 else lo
    return min(max(new, lo), hi)
