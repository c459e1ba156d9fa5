"""scipy's derivative-free methods — Nelder–Mead, COBYQA, Powell — with every evaluation
through simdiff's Evaluator (cache, retries, failures, counting).

The method itself is scipy's (``scipy.optimize.minimize(method=...)``); simdiff supplies the
function. A point whose evaluation fails gets the value +inf for Nelder–Mead (the simplex
moves away from it) and, for COBYQA and Powell (which need finite values),
the largest f seen so far plus ten times the spread of the values seen: a bad point, never a
crash. Points are clipped into the bounds before they are evaluated (scipy's methods keep
inside them; the clip makes sure). These methods evaluate one point at a time, so every
evaluation is one round.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .options import call_callback
from .result import STATUS, History, make_result
from .tally import BudgetExhausted

__all__ = ["scipy_method"]

_SCIPY_NAME = {"nelder-mead": "Nelder-Mead", "cobyqa": "COBYQA", "powell": "Powell"}


def scipy_method(method: str, tally: Any, x0: np.ndarray, box: Any, *, maxfev: int,
                 callback: Any = None, **options: Any):
    from scipy.optimize import Bounds
    from scipy.optimize import minimize as sp_minimize

    n = x0.shape[0]
    lo, hi = box if box is not None else (np.full(n, -np.inf), np.full(n, np.inf))
    seen: list[float] = []
    hist = History()
    state = {"nit": 0, "stop": False}

    def fun(x):
        x = np.clip(np.asarray(x, dtype=float), lo, hi)
        v = tally.value(x)
        if v is None:
            if method == "nelder-mead" or not seen:
                return math.inf if method == "nelder-mead" else 1e300
            return max(seen) + 10.0 * (max(seen) - min(seen) + 1.0)
        seen.append(v)
        return v

    def cb(intermediate_result):
        state["nit"] += 1
        x = np.clip(np.asarray(intermediate_result.x, dtype=float), lo, hi)
        f = float(intermediate_result.fun)
        hist.record(tally, x, f)
        if call_callback(callback, x, f, state["nit"]):
            state["stop"] = True
            raise StopIteration

    opts = dict(options)
    opts.setdefault("maxfev" if method != "powell" else "maxfev", maxfev)
    if method == "cobyqa" and "scale" not in opts:
        pass
    status, message, res = None, "", None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            res = sp_minimize(fun, x0, method=_SCIPY_NAME[method],
                              bounds=None if box is None else Bounds(lo, hi), callback=cb,
                              options=opts)
        except BudgetExhausted:
            status, message = 1, STATUS[1]
    if res is not None:
        if state["stop"]:
            status, message = 4, STATUS[4]
        elif res.success:
            status, message = 0, f"{_SCIPY_NAME[method]}: {res.message}"
        elif tally.remaining <= 0 or "evaluations" in str(res.message).lower():
            status, message = 1, f"{STATUS[1]} ({_SCIPY_NAME[method]}: {res.message})"
        else:
            status, message = 2 if method == "powell" else 5, f"{_SCIPY_NAME[method]}: {res.message}"
    # the best point evaluated (scipy's answer is one of them)
    if tally.best_x is not None:
        x, f = tally.best_x, tally.best_f
    else:
        x, f = x0, np.nan
    return make_result(tally, x, f, None, state["nit"], status, message, hist, method)
