"""Checking the optimizers' arguments at the door, and the pieces every method shares.

x0, bounds (a pair or ``scipy.optimize.Bounds``), maxfev, callback, the Evaluator (``n_jobs``,
``backend``, ``evaluator``, ``cache``, ...), and ``noise=``: each is checked once here, with an
``ArgumentError`` naming the argument, the value and what is allowed.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

from ..differentiate import as_point, jacobian
from ..errors import ArgumentError, ArgumentTypeError, BoundsError
from ..evaluate import SerialEvaluator, resolve_evaluator
from ..simulator import as_simulator
from ..steps import normalize_bounds

__all__ = ["check_x0", "check_bounds", "check_maxfev", "check_callback", "make_evaluator",
           "check_noise", "NOISE_SUPPORTED", "call_callback", "check_positive"]

#: True when the derivative functions accept ``noise=`` (the noise-aware steps).
NOISE_SUPPORTED = "noise" in inspect.signature(jacobian).parameters


def check_x0(x0: Any) -> np.ndarray:
    return as_point(x0, "x0").copy()


def check_bounds(bounds: Any, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(lower, upper) arrays or None; x0 outside is a BoundsError naming the coordinate."""
    if bounds is None:
        return None
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):  # scipy.optimize.Bounds
        bounds = (bounds.lb, bounds.ub)
    if isinstance(bounds, (list, tuple)) and len(bounds) == len(x0) and len(x0) != 2 and all(
            isinstance(b, (list, tuple)) and len(b) == 2 for b in bounds):
        bounds = ([b[0] for b in bounds], [b[1] for b in bounds])  # scipy's [(lo, hi), ...]
    try:
        box = normalize_bounds(bounds, x0)
    except BoundsError as exc:
        raise BoundsError(str(exc).replace("x must lie", "x0 must lie").replace("got x[", "got x0[")) from None
    if box is None or (np.all(np.isneginf(box[0])) and np.all(np.isposinf(box[1]))):
        return None
    return box


def check_maxfev(maxfev: Any, default: int) -> int:
    if maxfev is None:
        return default
    if isinstance(maxfev, bool) or not isinstance(maxfev, (int, np.integer)) or maxfev <= 0:
        raise ArgumentError(f"maxfev must be a positive int (the budget of evaluations); got {maxfev!r}")
    return int(maxfev)


def check_positive(name: str, value: Any, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        what = "a finite float >= 0" if allow_zero else "a finite float > 0"
        raise ArgumentError(f"{name} must be {what}; got {value!r}")
    return float(value)


def check_callback(callback: Any) -> Any:
    if callback is not None and not callable(callback):
        from ..evaluate import _ArgumentValueTypeError  # ArgumentError and TypeError both

        raise _ArgumentValueTypeError(
            f"callback must be None or callable (callback(intermediate_result) or callback(xk)); "
            f"got {type(callback).__name__} {callback!r}")
    return callback


def call_callback(callback: Any, x: np.ndarray, fun: float, nit: int) -> bool:
    """Call the user's callback the way scipy does; True when it asks to stop.

    A parameter named ``intermediate_result`` receives an OptimizeResult (x, fun, nit), any
    other signature the current x. Raising ``StopIteration`` or returning True stops.
    """
    if callback is None:
        return False
    from scipy.optimize import OptimizeResult

    try:
        params = inspect.signature(callback).parameters
    except (TypeError, ValueError):
        params = {}
    try:
        if "intermediate_result" in params:
            out = callback(intermediate_result=OptimizeResult(x=x.copy(), fun=fun, nit=nit))
        else:
            out = callback(x.copy())
    except StopIteration:
        return True
    return out is True


def make_evaluator(f: Any, vectorized: Any, evaluator: Any, n_jobs: Any, backend: Any,
                   cache: Any, retries: Any, timeout: Any, progress: Any):
    """(sim, evaluator): the simulator and the Evaluator every evaluation goes through."""
    sim = as_simulator(f, vectorized=vectorized)
    ev = resolve_evaluator(evaluator, n_jobs, backend, cache=cache, retries=retries,
                           timeout=timeout, progress=progress)
    return sim, ev


def slots(ev: Any) -> int:
    """How many points the Evaluator runs at once (1 for in-process evaluation)."""
    from ..evaluate import _effective_n_jobs

    if isinstance(ev, SerialEvaluator):
        return 1
    n = getattr(ev, "n_jobs", None)
    try:
        return max(1, _effective_n_jobs(n))
    except TypeError:
        return 1


def check_noise(noise: Any) -> Any:
    """None, "estimate", a float ≥ 0, or an estimate object with ``level``."""
    if noise is None or (isinstance(noise, str) and noise == "estimate"):
        return noise
    if hasattr(noise, "level"):
        return noise
    if isinstance(noise, str):
        raise ArgumentError(f"noise must be None, 'estimate', a float >= 0 or a noise estimate; got {noise!r}")
    try:
        arr = np.asarray(noise, dtype=float)
    except (TypeError, ValueError):
        raise ArgumentError(
            f"noise must be None, 'estimate', a float >= 0 or a noise estimate; got {noise!r}") from None
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ArgumentError(f"noise must be None, 'estimate', a float >= 0 or a noise estimate; got {noise!r}")
    return float(arr.max()) if arr.ndim == 0 or arr.size == 1 else arr


def unknown_options(where: str, opts: dict, allowed: tuple) -> None:
    if opts:
        name = sorted(opts)[0]
        raise ArgumentError(
            f"{where}: unknown option {name}={opts[name]!r}; allowed: {', '.join(sorted(allowed))}")
