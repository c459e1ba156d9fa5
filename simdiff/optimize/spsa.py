"""Simultaneous-perturbation stochastic approximation (SPSA) for noisy f.

Spall, "Multivariate stochastic approximation using a simultaneous perturbation gradient
approximation", IEEE TAC 37 (1992), and "Implementation of the simultaneous perturbation
algorithm for stochastic optimization", IEEE TAES 34 (1998):

    a_k = a / (k + 1 + A)^α,   c_k = c / (k + 1)^γ,   α = 0.602, γ = 0.101 (the 1998 gains)
    ĝ_k = mean over q pairs of (f(x + c_k Δ) − f(x − c_k Δ)) / (2 c_k) · Δ⁻¹,  Δ_j = ±1
    x_{k+1} = Π(x_k − a_k ĝ_k)          (Π: projection onto the bounds)

All 2q points of an iteration are one Evaluator batch (one round). Defaults: q = ``pairs`` = 2,
A = 10 % of the expected iterations, c = 0.01·max(1, ‖x0‖∞) (or twice the noise level's
square root scale when ``noise`` is known), and a chosen so that the first step moves x by
about 10 % of max(1, ‖x0‖∞) (Spall 1998, §III.B). With bounds, a perturbed coordinate is
clipped into the box and its difference divided by the distance actually travelled. A pair
with a failed point is dropped; an iteration whose pairs all failed halves c_k.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .options import call_callback, check_positive
from .result import STATUS, History, make_result
from .tally import BudgetExhausted

__all__ = ["spsa"]


def spsa(tally: Any, x0: np.ndarray, box: Any, *, a: float | None = None, c: float | None = None,
         A: float | None = None, alpha: float = 0.602, gamma: float = 0.101, pairs: int = 2,
         maxiter: int | None = None, seed: Any = None, callback: Any = None, sigma: float = 0.0):
    if not isinstance(pairs, (int, np.integer)) or isinstance(pairs, bool) or pairs < 1:
        from ..errors import ArgumentError

        raise ArgumentError(f"pairs must be an int >= 1 (perturbation pairs per round); got {pairs!r}")
    alpha = check_positive("alpha", alpha)
    gamma = check_positive("gamma", gamma)
    rng = np.random.default_rng(seed)
    n = x0.shape[0]
    scale = max(1.0, float(np.max(np.abs(x0))))
    budget_iters = int(tally.remaining // (2 * pairs)) if np.isfinite(tally.remaining) else 1000
    maxiter = budget_iters if maxiter is None else int(maxiter)
    A = 0.1 * max(maxiter, 1) if A is None else check_positive("A", A, allow_zero=True)
    c = (0.01 * scale if sigma <= 0 else max(0.01 * scale, 10 * np.sqrt(sigma) * scale)) \
        if c is None else check_positive("c", c)
    lo, hi = box if box is not None else (np.full(n, -np.inf), np.full(n, np.inf))
    x = x0.copy()
    hist = History()
    status, message = None, ""
    f_x = None
    k = 0
    try:
        while status is None:
            if k >= maxiter:
                status, message = 5, STATUS[5]
                break
            ck = c / (k + 1) ** gamma
            D = rng.choice([-1.0, 1.0], size=(pairs, n))
            Xp = np.clip(x + ck * D, lo, hi)
            Xm = np.clip(x - ck * D, lo, hi)
            if tally.remaining < 2 * pairs:
                status, message = 1, STATUS[1]
                break
            vals, ok = tally.values(np.vstack([Xp, Xm]))
            fp, fm = vals[:pairs, 0], vals[pairs:, 0]
            good = ok[:pairs] & ok[pairs:]
            if not good.any():
                c *= 0.5
                k += 1
                continue
            dx = (Xp - Xm)[good]
            ghat = np.zeros(n)
            with np.errstate(divide="ignore", invalid="ignore"):
                est = np.where(dx != 0, (fp[good] - fm[good])[:, None] / np.where(dx != 0, dx, 1), 0.0)
            ghat = est.mean(axis=0)
            if a is None:
                gm = float(np.mean(np.abs(ghat)))
                a = 0.1 * scale * (A + 1) ** alpha / gm if gm > 0 else 0.1 * scale
            ak = a / (k + 1 + A) ** alpha
            step = -ak * ghat
            x_new = np.clip(x + step, lo, hi)
            f_x = float(np.mean(np.concatenate([fp[good], fm[good]])))
            k += 1
            hist.record(tally, x_new, f_x, float(np.linalg.norm(x_new - x)),
                        float(np.linalg.norm(ghat)), np.nan, pairs_used=int(good.sum()))
            x = x_new
            if call_callback(callback, x, f_x, k):
                status, message = 4, STATUS[4]
    except BudgetExhausted:
        status, message = 1, STATUS[1]
    fun = None
    try:
        if tally.remaining >= 1:
            fun = tally.value(x)
    except BudgetExhausted:
        pass
    if fun is None:
        fun = f_x if f_x is not None else np.nan
    # SPSA has no convergence test: running its iterations or budget out is its normal end
    if status in (1, 5):
        status = 3
        message = f"SPSA ran its {k} iterations ({message})"
    return make_result(tally, x, fun, None, k, status, message, hist, "spsa")
