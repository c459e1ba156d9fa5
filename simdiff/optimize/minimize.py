"""``simdiff.minimize``: one front door, methods by name, every evaluation through one Tally."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArgumentError
from .options import (check_bounds, check_callback, check_maxfev, check_noise, check_positive,
                      check_x0, make_evaluator, slots, unknown_options)
from .tally import Tally

__all__ = ["METHODS", "minimize"]

#: the methods of ``minimize`` (the first is the default)
METHODS = ("bfgs", "spsa", "nelder-mead", "cobyqa", "powell", "gradient-descent")
_ALIASES = {"l-bfgs-b": "bfgs", "quasi-newton": "bfgs", "nelder_mead": "nelder-mead",
            "neldermead": "nelder-mead", "gradient_descent": "gradient-descent", "gd": "gradient-descent"}

_METHOD_OPTIONS = {
    "bfgs": ("gtol", "ftol", "xtol", "maxiter", "switch", "speculate", "memory"),
    "spsa": ("a", "c", "A", "alpha", "gamma", "pairs", "maxiter", "seed"),
    "nelder-mead": ("xatol", "fatol", "maxiter", "adaptive", "initial_simplex"),
    "cobyqa": ("maxiter", "initial_tr_radius", "final_tr_radius", "scale"),
    "powell": ("xtol", "ftol", "maxiter", "direc"),
    "gradient-descent": ("lr", "line_search", "adam", "beta1", "beta2", "eps", "maxiter",
                         "gtol", "scheme"),
}


def _method(method: Any) -> str:
    if method is None:
        return "bfgs"
    if isinstance(method, str):
        m = method.lower()
        m = _ALIASES.get(m, m)
        if m in METHODS:
            return m
    raise ArgumentError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")


def minimize(f: Any, x0: Any, *, method: str | None = None, bounds: Any = None,
             maxfev: int | None = None, callback: Any = None, noise: Any = None,
             n_jobs: int | None = None, backend: Any = None, evaluator: Any = None,
             cache: Any = None, retries: int | None = None, timeout: float | None = None,
             progress: bool | None = None, vectorized: bool | None = None,
             seed: Any = None, **options: Any):
    """Minimize a black-box f: R^n -> R; every evaluation through one Evaluator.

    Parameters
    ----------
    f : callable or Simulator
        f(x) -> float (or an array of size 1), x a float64 array (n,).
    x0 : array (n,)
        The start; finite, inside ``bounds``.
    method : str
        "bfgs" (default; FD quasi-Newton with projected bounds, see ``quasi_newton.py``),
        "spsa" (``spsa.py``), "nelder-mead", "cobyqa", "powell" (scipy's, ``scipy_methods.py``),
        "gradient-descent" (fixed step or backtracking, optional Adam; ``gradient_descent.py``).
    bounds : None, (lower, upper) or scipy.optimize.Bounds
        No evaluated point leaves the box; x0 outside is a ``BoundsError``.
    maxfev : int
        Budget of evaluations (distinct points; default 200·(n + 1)).
    callback : callable
        callback(intermediate_result) or callback(xk) after each iteration; True or
        StopIteration stops (status 4).
    noise : None, float, "estimate" or a noise estimate
        The noise level σ of f: steps, the line-search test and the stop rule take it into
        account. "estimate" measures it once at x0 (ECnoise, a few evaluations).
    n_jobs, backend, evaluator, cache, retries, timeout, progress, vectorized
        Where and how evaluations run (``simdiff.Evaluator``); with ``cache=DIR`` a killed run
        started again retraces its path from the cache and evaluates only the rest.
    seed : int or Generator
        For the random methods (SPSA) and the noise estimate.
    **options
        Method options: bfgs: gtol, ftol, xtol, maxiter, switch; spsa: a, c, A, alpha, gamma,
        pairs, maxiter; nelder-mead: xatol, fatol, maxiter, adaptive, initial_simplex;
        cobyqa: maxiter, initial_tr_radius, final_tr_radius, scale; powell: xtol, ftol,
        maxiter, direc; gradient-descent: lr, line_search, adam, beta1, beta2, eps, maxiter,
        gtol, scheme. An unknown option is an ``ArgumentError``.

    Returns
    -------
    scipy.optimize.OptimizeResult
        x, fun, jac, nfev, nit, success, status, message, nrounds, nfailed, history (one
        record per iteration: x, fun, nfev, nrounds, step, grad_norm, grad_error).
    """
    m = _method(method)
    x0 = check_x0(x0)
    box = check_bounds(bounds, x0)
    n = x0.shape[0]
    maxfev = check_maxfev(maxfev, 200 * (n + 1))
    callback = check_callback(callback)
    noise = check_noise(noise)
    allowed = _METHOD_OPTIONS[m]
    unknown_options(f"minimize(method={m!r})", {k: v for k, v in options.items() if k not in allowed},
                    allowed + ("method", "bounds", "maxfev", "callback", "noise", "n_jobs", "backend",
                               "evaluator", "cache", "retries", "timeout", "progress", "vectorized",
                               "seed"))
    sim, ev = make_evaluator(f, vectorized, evaluator, n_jobs, backend, cache, retries, timeout,
                             progress)
    with Tally(sim, ev, box, maxfev) as tally:
        sigma, noise = _resolve_noise(tally, x0, box, noise, seed)
        if m == "bfgs":
            from .quasi_newton import fd_bfgs

            for k in ("gtol", "ftol", "xtol", "switch"):
                if k in options:
                    options[k] = check_positive(k, options[k], allow_zero=True)
            return fd_bfgs(tally, x0, box, noise=noise, callback=callback, slots=slots(ev),
                           sigma=sigma, **options)
        if m == "spsa":
            from .spsa import spsa

            return spsa(tally, x0, box, callback=callback, seed=seed, sigma=sigma, **options)
        if m == "gradient-descent":
            from .gradient_descent import gradient_descent

            return gradient_descent(tally, x0, box, noise=noise, callback=callback, **options)
        from .scipy_methods import scipy_method

        return scipy_method(m, tally, x0, box, maxfev=maxfev, callback=callback, **options)


def _resolve_noise(tally: Tally, x0: np.ndarray, box: Any, noise: Any, seed: Any):
    """(σ, noise for the derivative functions): "estimate" measured once here, at x0."""
    if noise is None:
        return 0.0, None
    if isinstance(noise, str):  # "estimate"
        s = seed if isinstance(seed, (int, np.integer)) else 0
        sigma = estimate(tally, x0, box, s)
        return sigma, (sigma if sigma > 0 else None)
    sigma = float(np.max(getattr(noise, "level", noise)))
    return sigma, noise


def estimate(tally: Tally, x0: np.ndarray, box: Any, seed: int) -> float:
    """σ at x0: ``simdiff.noise_level`` (ECnoise) through the Tally when it is available and
    no bound is in the way (its points are not bounds-aware), else ``fdgrad.estimate_noise``."""
    from .. import noise as _noise_mod  # noqa: F401  (present since issue 10)

    level = getattr(_noise_mod, "noise_level", None)
    if level is not None and box is None:
        est = level(tally.sim, x0, seed=seed, evaluator=tally)
        lv = float(np.max(np.atleast_1d(est.level)))
        if np.isfinite(lv) and lv >= 0:
            return lv
    from .fdgrad import estimate_noise

    return estimate_noise(tally, x0, box, seed=seed)
