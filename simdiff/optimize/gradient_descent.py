"""Gradient descent on finite-difference gradients: fixed step, backtracking, or Adam.

x_{k+1} = Π(x_k − t_k·p_k), where p_k = g_k (plain) or the Adam direction
m̂_k/(√v̂_k + ε) (Kingma & Ba, "Adam", ICLR 2015: m_k = β₁m_{k−1} + (1−β₁)g_k,
v_k = β₂v_{k−1} + (1−β₂)g_k², bias-corrected), and t_k = ``lr`` (fixed) or, with
``line_search=True``, the first of lr, lr/2, lr/4, ... that passes Armijo's test (a failed
point counts as a rejection). Each gradient is one Evaluator batch ("forward" reuses f(x), or
``scheme="central"``). For teaching, and for noisy first-order use with ``adam=True``.
Stops when the gradient is indistinguishable from zero given its error estimate, ‖g‖∞ ≤ gtol,
or on the budget.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArgumentError
from .fdgrad import fd_gradient
from .linesearch import armijo
from .options import call_callback, check_positive
from .result import STATUS, History, make_result
from .tally import BudgetExhausted

__all__ = ["gradient_descent"]


def gradient_descent(tally: Any, x0: np.ndarray, box: Any, *, lr: float = 1e-3,
                     line_search: bool = False, adam: bool = False, beta1: float = 0.9,
                     beta2: float = 0.999, eps: float = 1e-8, maxiter: int | None = None,
                     gtol: float = 1e-8, scheme: str = "forward", noise: Any = None,
                     callback: Any = None):
    lr = check_positive("lr", lr)
    if scheme not in ("forward", "central"):
        raise ArgumentError(f"scheme must be 'forward' or 'central'; got {scheme!r}")
    n = x0.shape[0]
    lo, hi = box if box is not None else (np.full(n, -np.inf), np.full(n, np.inf))
    hist = History()
    x = x0.copy()
    m = np.zeros(n)
    v = np.zeros(n)
    status, message = None, ""
    k = 0
    f = g = None
    maxiter = 10 ** 9 if maxiter is None else int(maxiter)
    try:
        g, err, f = fd_gradient(tally, x, scheme, box, noise)
        if g is None or f is None:
            return make_result(tally, x, np.nan if f is None else f, None, 0, 6,
                               STATUS[6] + " (at x0)", hist, "gradient-descent")
        hist.record(tally, x, f, 0.0, np.linalg.norm(g), np.linalg.norm(err))
        while status is None:
            if np.all(np.abs(g) <= 2 * err) and not adam:
                status, message = 0, ("the gradient is indistinguishable from zero given its "
                                      "finite-difference error estimate")
                break
            if np.max(np.abs(g)) <= gtol:
                status, message = 0, f"the gradient is below gtol={gtol:g}"
                break
            if k >= maxiter:
                status, message = 5, STATUS[5]
                break
            if adam:
                m = beta1 * m + (1 - beta1) * g
                v = beta2 * v + (1 - beta2) * g * g
                p = (m / (1 - beta1 ** (k + 1))) / (np.sqrt(v / (1 - beta2 ** (k + 1))) + eps)
            else:
                p = g
            t = lr
            x_new = np.clip(x - t * p, lo, hi)
            if line_search:
                ok = False
                for _ in range(40):
                    x_new = np.clip(x - t * p, lo, hi)
                    if np.all(x_new == x):
                        break
                    if armijo(f, float(g @ (x_new - x)), tally.value(x_new)):
                        ok = True
                        break
                    t *= 0.5
                if not ok:
                    status, message = 2, STATUS[2]
                    break
            g_new, err_new, f_new = fd_gradient(tally, x_new, scheme, box, noise)
            if f_new is None or g_new is None:  # a failed point: shorter step next time
                lr *= 0.5
                k += 1
                continue
            step = float(np.linalg.norm(x_new - x))
            x, f, g, err = x_new, f_new, g_new, err_new
            k += 1
            hist.record(tally, x, f, step, np.linalg.norm(g), np.linalg.norm(err))
            if call_callback(callback, x, f, k):
                status, message = 4, STATUS[4]
    except BudgetExhausted:
        status, message = 1, STATUS[1]
    return make_result(tally, x, f, g, k, status, message, hist, "gradient-descent")
