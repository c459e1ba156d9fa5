"""``fun, jac = simdiff.as_scipy(f, **opts)``: simdiff's evaluations for scipy's optimizers.

    res = scipy.optimize.minimize(fun, x0, jac=jac, method="L-BFGS-B")
    res = scipy.optimize.least_squares(fun, x0, jac=jac)     # f returns residuals (m,)

``fun`` and ``jac`` share one Tally (``tally.py``) in front of one Evaluator: f(x) evaluated by
``fun`` is not run again by ``jac`` at the same x (the forward stencil takes it from memory),
each ``jac`` call is ONE Evaluator batch (n points forward, 2n central; parallel with
``n_jobs``), and everything is counted: ``fun.nfev``, ``fun.nrounds`` (also on ``jac``).
``jac`` returns the gradient (n,) for a scalar f and the Jacobian (m, n) for a vector f.
A failed evaluation raises ``SimulationError`` (scipy's optimizers have no failure channel;
``simdiff.minimize`` turns failures into rejected steps instead).
"""

from __future__ import annotations

from typing import Any


from ..differentiate import as_point
from ..errors import ArgumentError, SimulationError
from .fdgrad import fd_jacobian
from .options import check_noise, make_evaluator, unknown_options
from .tally import Tally

__all__ = ["as_scipy"]


def as_scipy(f: Any, *, method: str = "forward", bounds: Any = None, noise: Any = None,
             n_jobs: int | None = None, backend: Any = None, evaluator: Any = None,
             cache: Any = None, retries: int | None = None, timeout: float | None = None,
             progress: bool | None = None, vectorized: bool | None = None, **options: Any):
    """(fun, jac) for scipy.optimize.minimize / least_squares; see the module docstring.

    method : "forward" (default: n runs per jac, f(x) shared with fun) or "central" (2n).
    bounds : (lower, upper) or scipy Bounds: no stencil point leaves the box (give scipy the
        same bounds).
    """
    unknown_options("as_scipy", options, ("method", "bounds", "noise", "n_jobs", "backend",
                    "evaluator", "cache", "retries", "timeout", "progress", "vectorized"))
    if method not in ("forward", "central"):
        raise ArgumentError(f"method must be 'forward' or 'central'; got {method!r}")
    noise = check_noise(noise)
    if isinstance(noise, str):
        raise ArgumentError("as_scipy: noise='estimate' is not available here (no start point); "
                            "give the noise level as a float, or use simdiff.noise_level first")
    sim, ev = make_evaluator(f, vectorized, evaluator, n_jobs, backend, cache, retries, timeout,
                             progress)
    if evaluator is None:
        ev.on_failure = "skip"
    tally = Tally(sim, ev, None, None)
    box_given = bounds

    def _box(x):
        if box_given is None:
            return None
        from .options import check_bounds

        return check_bounds(box_given, x)

    def _raise(x):
        raise SimulationError(f"f failed at x={x!r}", point=x)

    def fun(x):
        x = as_point(x, "x")
        vals, ok = tally.values(x[None, :])
        if not ok[0]:
            _raise(x)
        v = vals[0]
        return float(v[0]) if tally.scalar else v.copy()

    def jac(x, *args):
        x = as_point(x, "x")
        J, _, r = fd_jacobian(tally, x, method, _box(x), noise)
        if J is None:
            _raise(x)
        return J[0].copy() if tally.scalar else J

    fun.__doc__ = "f(x) through simdiff's Evaluator (shared with jac)."
    jac.__doc__ = "The finite-difference gradient / Jacobian at x: one Evaluator batch."
    return _Counted(fun, tally), _Counted(jac, tally)


class _Counted:
    """A callable with the shared counters ``nfev`` and ``nrounds``."""

    def __init__(self, fn, tally) -> None:
        self._fn, self.tally = fn, tally
        self.__doc__ = fn.__doc__

    def __call__(self, *args, **kwargs):
        return self._fn(*args, **kwargs)

    @property
    def nfev(self) -> int:
        return self.tally.nfev

    @property
    def nrounds(self) -> int:
        return self.tally.nrounds
