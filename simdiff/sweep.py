"""step_sweep: the error of a finite difference as a function of its step, and its figure.

For a stencil of order p for the first derivative the error behaves as

    E(h) ≈ ε·|f|·Σ|w| / h  +  |C|·|f^(p+1)|·h^p,

a "V" in log-log axes: slope −1 where rounding dominates (small h), slope p where truncation
dominates (large h), the optimum h* between (see ``steps.py``). ``step_sweep`` measures that
curve: it plans the stencil at every step of a grid (by default 65 steps from
1e-16·max(1, |x|) to max(1, |x|), geometric), evaluates all points in ONE batch, and
compares each estimate with ``true`` or, without it, with the step="adaptive" estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .differentiate import _method, as_point, derivative, jvp
from .errors import ArgumentError, require
from .evaluate import resolve_evaluator
from .plan import assemble, plan_direction, plan_partials
from .simulator import Simulator, as_simulator
from .stencils import scheme
from .steps import optimal_factor

__all__ = ["step_sweep", "SweepResult"]

#: Number of steps of the default grid.
DEFAULT_STEPS = 65


@dataclass
class SweepResult:
    """The error-versus-step table of a finite difference.

    steps : (k,) the steps h; values : (k,) the estimates; errors : (k,) |value − reference|;
    reference : the value compared with (``true`` or the adaptive estimate) and
    ``reference_kind`` ("true" or "adaptive"); best_step : the minimum h* = (a/(p·b))^(1/(p+1))
    of the V E(h) = a/h + b·h^p fitted to the errors (robust to the lucky dips of the noisy
    rounding branch; for the complex step, which has no rounding branch, the largest step
    within 2× of the least error);
    order : p of the stencil (the truncation slope); optimal_step : the rule of ``steps.py``.
    """

    steps: np.ndarray
    values: np.ndarray
    errors: np.ndarray
    reference: float
    reference_kind: str
    method: str
    order: int
    best_step: float
    optimal_step: float
    nfev: int
    degenerate: np.ndarray = field(repr=False, default=None)
    rounding_coef: float = 0.0  # a of the fitted V, E(h) ≈ a/h + b·h^p
    truncation_coef: float = 0.0  # b

    def plot(self, path: Any = "step_sweep.png", *, title: str | None = None) -> str:
        """Save the log-log error-versus-step figure as a PNG at ``path``; returns the path.

        Draws the measured errors, the truncation slope p and the rounding slope −1 through
        the optimum, the optimum itself and the scheme-optimal step. Needs the ``plot`` extra
        (matplotlib, drawn with the Agg canvas; no global backend is changed)."""
        require("matplotlib", "plot")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.4, 4.6))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        good = np.isfinite(self.errors) & (self.errors > 0)
        tiny = np.finfo(float).tiny
        ax.loglog(self.steps[good], self.errors[good], "o-", ms=3, lw=1, label="measured error")
        hb = self.best_step
        a, b, p = self.rounding_coef, self.truncation_coef, self.order
        if b > 0:
            ax.loglog(self.steps, b * self.steps**p, "--", lw=1, label=f"truncation, slope {p}")
        if a > 0:
            ax.loglog(self.steps, a / self.steps, ":", lw=1.2, label="rounding, slope −1")
        eb = a / hb + b * hb**p if (a > 0 or b > 0) else float(np.nanmin(self.errors))
        ax.plot([hb], [max(eb, tiny)], "r*", ms=12, label=f"optimum {hb:.2g}")
        ax.axvline(self.optimal_step, color="gray", lw=0.8,
                   label=f"rule of steps.py {self.optimal_step:.2g}")
        lo = max(float(np.min(self.errors[good])) / 10, tiny) if good.any() else tiny
        hi = float(np.max(self.errors[good])) * 10 if good.any() else 1.0
        ax.set_ylim(lo, hi)
        ax.set_xlabel("step h")
        ax.set_ylabel(f"|error| (against the {self.reference_kind} value)")
        ax.set_title(title or f"{self.method} difference: error versus step")
        ax.grid(True, which="major", lw=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = str(path)
        fig.savefig(path, dpi=110)
        return path


def step_sweep(f: Any, x: Any, *, method: str = "central", steps: Any = None, true: Any = None,
               direction: Any = None, order: int | None = None, vectorized: bool | None = None,
               n_jobs: int | None = None, backend: Any = None, evaluator: Any = None) -> SweepResult:
    """The error of the ``method`` difference of f at x for every step of ``steps``.

    f : R -> R with x a float; or f : R^n -> R with x an array and ``direction`` v (the
        directional derivative ∇f·v/‖v‖, the step taken along v/‖v‖).
    steps : None (65 steps, 1e-16·s to s geometric, s = max(1, |x|)) or an array of steps.
    true : the exact derivative, if known; otherwise the step="adaptive" estimate is used
        (its evaluations count in ``nfev``).

    Every step's points are evaluated in one batch. A step below the spacing of floats at x
    leaves the points equal to x; its estimate is 0 (flagged in ``degenerate``). The widest
    steps may leave f's domain: without ``evaluator`` failed points are skipped and their
    errors are NaN (with an evaluator of yours, its ``on_failure`` decides).
    """
    method = _method(method)
    st = scheme(method, order)
    ev = resolve_evaluator(evaluator, n_jobs, backend)
    if evaluator is None and hasattr(ev, "on_failure"):
        ev.on_failure = "skip"  # the widest steps may leave f's domain; those points are NaN
    if direction is None:
        if np.ndim(x) != 0:
            raise ArgumentError(
                f"x must be a float for step_sweep (or give direction= for an array x); "
                f"got shape {np.shape(x)}")
        xa = as_point(np.reshape(np.asarray(x, dtype=float), (1,)))
        sim = as_simulator(f, vectorized=vectorized, scalar_input=not isinstance(f, Simulator))
        u, scale = np.ones(1), max(1.0, abs(float(xa[0])))
    else:
        xa = as_point(x)
        v = as_point(direction, "direction")
        if v.shape != xa.shape or not np.any(v):
            raise ArgumentError(
                f"direction must be a nonzero array of the shape of x, {xa.shape}; got {v!r}")
        sim = as_simulator(f, vectorized=vectorized)
        u = v / np.linalg.norm(v)
        scale = float(max(1.0, np.max(np.abs(xa[u != 0]))))
    if steps is None:
        hs = np.logspace(-16, 0, DEFAULT_STEPS) * scale
    else:
        hs = np.asarray(steps, dtype=float).ravel()
        if hs.size == 0 or not np.all(np.isfinite(hs)) or np.any(hs <= 0):
            raise ArgumentError(f"steps must be a non-empty array of positive floats; got {steps!r}")
    plans, degenerate = [], np.zeros(len(hs), dtype=bool)
    for k, h in enumerate(hs):
        moved = xa + h * u
        if st is not None and (np.array_equal(moved, xa) or np.array_equal(xa - h * u, xa)):
            degenerate[k] = True
            plans.append(None)
            continue
        if direction is None:
            plans.append(plan_partials(xa, st, np.array([h]), None))
        else:
            plans.append(plan_direction(xa, u, st, float(h), None, scale))
    blocks = [p.points for p in plans if p is not None]
    X = np.vstack(blocks) if blocks else np.zeros((0, xa.shape[0]))
    values = np.zeros(len(hs))
    nfev = 0
    if len(X):
        uniq, inverse = np.unique(X, axis=0, return_inverse=True)  # f(x) once, not per step
        batch = ev.evaluate(sim, uniq)
        nfev += batch.nfev
        if batch.values.shape[1] != 1:
            raise ArgumentError(
                f"step_sweep needs a scalar output; f returned {batch.values.shape[1]} values per point")
        F, ok = batch.values[inverse.ravel()], batch.ok[inverse.ravel()]
        start = 0
        for k, p in enumerate(plans):
            if p is None:
                continue
            stop = start + len(p.points)
            D, _, _ = assemble(p, F[start:stop], ok[start:stop])
            values[k] = D[0, 0]
            start = stop
    ref_error = 0.0  # errors at or below the reference's own uncertainty measure nothing
    if true is not None:
        ref, kind = float(true), "true"
    else:
        if direction is None:
            ref, info = derivative(sim if isinstance(f, Simulator) else f, float(xa[0]),
                                   step="adaptive", vectorized=vectorized, evaluator=ev,
                                   full_output=True)
        else:
            out, info = jvp(sim, xa, u, step="adaptive", evaluator=ev, full_output=True)
            ref = float(np.ravel(out)[0])  # jvp returns a float for a float-valued f
        ref, kind = float(ref), "adaptive"
        ref_error = float(np.max(info.error))
        nfev += info.nfev
    errors = np.abs(values - ref)
    p = 2 if st is None else st.order
    a, b = _fit_v(hs, errors, abs(ref), p, rounding=st is not None, floor=ref_error)
    if st is not None and a > 0 and b > 0:
        best = float((a / (p * b)) ** (1.0 / (p + 1)))
    else:
        finite = np.where(np.isfinite(errors), np.maximum(errors, ref_error), np.inf)
        floor = float(np.min(finite))
        best = float(np.max(hs[finite <= 2 * floor])) if np.isfinite(floor) else float(hs[0])
    h_opt = (optimal_factor(st) if st is not None else 2.0**-60) * scale
    return SweepResult(steps=hs, values=values, errors=errors, reference=ref, reference_kind=kind,
                       method=method, order=p, best_step=best, optimal_step=h_opt, nfev=nfev,
                       degenerate=degenerate, rounding_coef=a, truncation_coef=b)


def _fit_v(hs, errors, size, p, rounding=True, floor=0.0):
    """Fit E(h) = a/h + b·h^p to the measured errors, robustly.

    Over the steps where the estimate is not saturated (floor < error < |f'|/2; ``floor`` is
    the reference's own error estimate, below which a difference measures nothing): split the grid at
    the minimum of the running median of log error, take a = median(e·h) left of it and
    b = median(e/h^p) right of it, split again at the new optimum and refit once. Medians
    ignore the lucky dips of the rounding branch, which a least-squares fit would follow."""
    use = np.isfinite(errors) & (errors > max(floor, 0.0)) & (errors < 0.5 * max(size, np.finfo(float).tiny))
    if use.sum() < 3:
        return 0.0, 0.0
    h, e = hs[use], errors[use]
    if not rounding:
        return 0.0, float(np.median(e / h**p))
    le = np.log(e)
    smooth = np.array([np.median(le[max(0, i - 2):i + 3]) for i in range(len(le))])
    split = float(h[int(np.argmin(smooth))])
    a = b = 0.0
    for _ in range(2):
        left, right = h <= split, h >= split
        if left.any():
            a = float(np.median(e[left] * h[left]))
        if right.any():
            b = float(np.median(e[right] / h[right] ** p))
        if a > 0 and b > 0:
            split = (a / (p * b)) ** (1.0 / (p + 1))
    return a, b
