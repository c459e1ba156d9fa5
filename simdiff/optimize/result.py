"""The result every optimizer returns: a ``scipy.optimize.OptimizeResult`` with simdiff's counts.

Fields: ``x, fun, jac, nfev, nit, success, status, message`` as scipy's, plus ``nrounds``
(batches handed to the Evaluator: the wall-clock time with enough workers), ``nfailed``
(evaluations that failed, e.g. rejected line-search points), ``method`` and ``history``: one
record per iteration, a dict with ``x, fun, nfev, nrounds, step`` (the length of the step that
led here), ``grad_norm`` and ``grad_error`` (the norm of the gradient's FD error estimate;
NaN for methods without one).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["STATUS", "History", "make_result"]

#: status code -> meaning (success for codes 0 and 3)
STATUS = {
    0: "converged",
    1: "evaluation budget (maxfev) reached",
    2: "line search found no decrease",
    3: "tolerance on f or x reached",
    4: "stopped by the callback",
    5: "iteration limit (maxiter) reached",
    6: "too many failed evaluations",
}


class History(list):
    """The per-iteration records of a run (a list of dicts)."""

    def record(self, tally: Any, x: np.ndarray, fun: float, step: float = np.nan,
               grad_norm: float = np.nan, grad_error: float = np.nan, **more: Any) -> None:
        self.append({"x": np.array(x, dtype=float), "fun": float(fun), "nfev": tally.nfev,
                     "nrounds": tally.nrounds, "step": float(step), "grad_norm": float(grad_norm),
                     "grad_error": float(grad_error), **more})


def make_result(tally: Any, x: np.ndarray, fun: Any, jac: Any, nit: int, status: int,
                message: str, history: History, method: str, **more: Any):
    from scipy.optimize import OptimizeResult

    if tally.nfailed and "failed" not in message:
        message = f"{message} ({tally.nfailed} evaluation(s) failed and were treated as rejected points)"
    return OptimizeResult(
        x=np.array(x, dtype=float), fun=fun, jac=None if jac is None else np.asarray(jac),
        nfev=int(tally.nfev), nit=int(nit), success=status in (0, 3), status=int(status),
        message=message, nrounds=int(tally.nrounds), nfailed=int(tally.nfailed),
        history=history, method=method, **more)
