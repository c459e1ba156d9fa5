"""step_sweep: the error of a finite difference as a function of its step, and its figure.

For a stencil of order p for the first derivative the error behaves as

    E(h) ≈ ε·|f|·Σ|w| / h  +  |C|·|f^(p+1)|·h^p,

a "V" in log-log axes: slope −1 where rounding dominates (small h), slope p where truncation
dominates (large h), the optimum h* between (see ``steps.py``). ``step_sweep`` measures that
curve: it plans the stencil at every step of a grid (by default 65 steps from
1e-16·max(1, |x|) to max(1, |x|), geometric), evaluates all points in ONE batch, and
compares each estimate with ``true`` or, without it, with the step="adaptive" estimate.

Noise floor. Values with noise of standard deviation σ give the difference an error of
standard deviation σ·‖w‖₂/h (‖w‖₂ of the stencil in units of 1/h: 1/√2 central, √2
forward): the rounding branch of the V is that line for σ = ε·|f|, and lies above it when f is
noisy. ``noise=None`` (default) reads σ off the fitted branch, σ̂ = a / (‖w‖₂·√(2/π)) (the
mean |error| of a Gaussian is √(2/π) of its standard deviation), at no cost; ``noise=
"estimate"`` measures it with ``simdiff.noise_level`` (12 more runs, one more batch); a float
gives it. ``SweepResult.noise`` holds σ, ``noise_floor`` the line σ·‖w‖₂/h per step, the plot
draws it and ``noise_step`` marks the noise-optimal step (``simdiff.noise``).
``print(sweep)`` is a table of step, estimate, error and noise floor.

Array x without ``direction``: every coordinate is swept (along e_j, one batch each) and a
``SweepSet`` is returned, a list of one SweepResult per coordinate with their table and plot.
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

__all__ = ["step_sweep", "SweepResult", "SweepSet"]

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
    noise: float = float("nan")  # σ, the noise level of f (module docstring)
    noise_kind: str = ""  # "fitted", "estimated" (noise_level) or "given"
    noise_floor: np.ndarray = field(repr=False, default=None)  # σ·‖w‖₂/h per step
    noise_step: float = float("nan")  # the noise-optimal step for σ (simdiff.noise)
    label: str = ""

    def __str__(self) -> str:
        head = (f"step sweep of the {self.method} difference{(' along ' + self.label) if self.label else ''}"
                f" (order {self.order}), {self.nfev} evaluations; errors against the "
                f"{self.reference_kind} value {self.reference:.10g}")
        lines = [head,
                 f"best step {self.best_step:.3g}, rule of steps.py {self.optimal_step:.3g}, noise "
                 f"{self.noise:.3g} ({self.noise_kind or 'none'}), noise-optimal step {self.noise_step:.3g}"]
        rows = [("step", "estimate", "|error|", "noise floor", "")]
        marks = _marks(self)
        floor = self.noise_floor if self.noise_floor is not None else np.full(len(self.steps), np.nan)
        for k, h in enumerate(self.steps):
            rows.append((f"{h:.3e}", f"{self.values[k]: .10e}" if np.isfinite(self.values[k]) else "nan",
                         f"{self.errors[k]:.2e}", f"{floor[k]:.2e}", marks.get(k, "")))
        widths = [max(len(r[c]) for r in rows) for c in range(5)]
        lines += ["  " + "  ".join(r[c].rjust(widths[c]) if c < 4 else r[c] for c in range(5)).rstrip()
                  for r in rows]
        return "\n".join(lines)

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
        if self.noise_floor is not None and np.isfinite(self.noise) and self.noise > 0:
            ax.loglog(self.steps, self.noise_floor, "-.", color="tab:purple", lw=1,
                      label=f"noise floor, σ = {self.noise:.2g} ({self.noise_kind})")
            if np.isfinite(self.noise_step):
                ax.axvline(self.noise_step, color="tab:purple", lw=0.8, ls=":",
                           label=f"noise-optimal step {self.noise_step:.2g}")
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
               n_jobs: int | None = None, backend: Any = None, evaluator: Any = None,
               noise: Any = None) -> SweepResult:
    """The error of the ``method`` difference of f at x for every step of ``steps``.

    f : R -> R with x a float; or f : R^n -> R with x an array and ``direction`` v (the
        directional derivative ∇f·v/‖v‖, the step taken along v/‖v‖); an array x without
        ``direction`` sweeps every coordinate and returns a ``SweepSet`` (``true`` then an
        array (n,) or None).
    noise : None (σ read off the rounding branch), "estimate" (``simdiff.noise_level``), a
        float σ, or False (no noise floor); see the module docstring.
    steps : None (65 steps, 1e-16·s to s geometric, s = max(1, |x|)) or an array of steps.
    true : the exact derivative, if known; otherwise the step="adaptive" estimate is used
        (its evaluations count in ``nfev``).

    Every step's points are evaluated in one batch. A step below the spacing of floats at x
    leaves the points equal to x; its estimate is 0 (flagged in ``degenerate``). The widest
    steps may leave f's domain: without ``evaluator`` failed points are skipped and their
    errors are NaN (with an evaluator of yours, its ``on_failure`` decides).
    """
    method = _method(method)
    if direction is None and np.ndim(x) != 0:
        return _sweep_coordinates(f, x, method=method, steps=steps, true=true, order=order,
                                  vectorized=vectorized, n_jobs=n_jobs, backend=backend,
                                  evaluator=evaluator, noise=noise)
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
            ref = float(np.ravel(out)[0])  # a float-valued f gives a float
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
    sigma, nkind, extra = _noise_of(noise, st, a, sim, xa, u, ev)
    nfev += extra
    wnorm = float(np.linalg.norm(st.weights)) if st is not None else 0.0
    floor = sigma * wnorm / hs ** (1 if st is None else st.deriv) if np.isfinite(sigma) else None
    h_noise = float("nan")
    if st is not None and np.isfinite(sigma) and sigma > 0:
        from .noise import noise_optimal_step

        fx = abs(float(np.nanmedian(F.real[:, 0]))) if len(X) else 1.0
        mu = max(fx, 1e3 * sigma) / scale ** (st.order + st.deriv)
        h_noise = float(noise_optimal_step(sigma, mu, method if method != "five-point" else "five-point"))
    return SweepResult(steps=hs, values=values, errors=errors, reference=ref, reference_kind=kind,
                       method=method, order=p, best_step=best, optimal_step=h_opt, nfev=nfev,
                       degenerate=degenerate, rounding_coef=a, truncation_coef=b,
                       noise=sigma, noise_kind=nkind, noise_floor=floor, noise_step=h_noise)


def _noise_of(noise, st, a, sim, xa, u, ev):
    """(σ, kind, runs spent) for the ``noise`` argument (module docstring)."""
    if noise is False or st is None:
        return float("nan"), "", 0
    if noise is None:
        wnorm = float(np.linalg.norm(st.weights))
        if a > 0 and wnorm > 0:
            return a / (wnorm * np.sqrt(2 / np.pi)), "fitted", 0
        return float("nan"), "", 0
    if isinstance(noise, str) and noise == "estimate":
        from .noise import noise_level

        est = noise_level(sim, xa, direction=u, evaluator=ev)
        return float(np.max(est.level)), "estimated", est.nfev
    from .noise import resolve_noise

    return float(np.max(resolve_noise(noise))), "given", 0


def _marks(r: SweepResult) -> dict:
    """Row index -> the marks of the table: nearest steps to the best, the rule's and the
    noise-optimal step."""
    marks: dict = {}
    lh = np.log(r.steps)
    for name, h in (("best", r.best_step), ("rule", r.optimal_step), ("noise-optimal", r.noise_step)):
        if np.isfinite(h) and h > 0:
            k = int(np.argmin(np.abs(lh - np.log(h))))
            marks[k] = (marks[k] + ", " if k in marks else "<- ") + name
    return marks


class SweepSet(list):
    """One ``SweepResult`` per coordinate (``step_sweep`` of an array x without direction)."""

    @property
    def best_step(self) -> np.ndarray:
        return np.array([r.best_step for r in self])

    @property
    def optimal_step(self) -> np.ndarray:
        return np.array([r.optimal_step for r in self])

    @property
    def noise(self) -> np.ndarray:
        return np.array([r.noise for r in self])

    @property
    def nfev(self) -> int:
        return int(sum(r.nfev for r in self))

    def __str__(self) -> str:
        rows = [("input", "best step", "rule step", "least error", "noise σ", "noise step")]
        for r in self:
            least = float(np.nanmin(r.errors)) if np.isfinite(r.errors).any() else float("nan")
            rows.append((r.label, f"{r.best_step:.3g}", f"{r.optimal_step:.3g}", f"{least:.2e}",
                         f"{r.noise:.3g}", f"{r.noise_step:.3g}"))
        widths = [max(len(row[c]) for row in rows) for c in range(6)]
        lines = [f"step sweep of every input ({len(self)}), {self.nfev} evaluations"]
        lines += ["  " + "  ".join(row[c].rjust(widths[c]) for c in range(6)) for row in rows]
        lines += ["", *[str(r) for r in self]]
        return "\n".join(lines)

    def plot(self, path: Any = "step_sweep.png", *, title: str | None = None) -> str:
        """The error-versus-step curves of every input in one log-log figure (extra ``plot``)."""
        require("matplotlib", "plot")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.4, 4.6))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for r in self:
            good = np.isfinite(r.errors) & (r.errors > 0)
            line, = ax.loglog(r.steps[good], r.errors[good], "o-", ms=2, lw=1, label=r.label)
            if r.noise_floor is not None:
                ax.loglog(r.steps, r.noise_floor, "-.", lw=0.8, color=line.get_color())
        ax.set_xlabel("step h")
        ax.set_ylabel("|error|")
        ax.set_title(title or "error versus step, per input (dash-dot: noise floor)")
        ax.grid(True, which="major", lw=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = str(path)
        fig.savefig(path, dpi=110)
        return path


def _sweep_coordinates(f, x, *, true, **kw) -> SweepSet:
    xa = as_point(x)
    n = xa.size
    if true is not None:
        t = np.asarray(true, dtype=float).reshape(-1)
        if t.size != n:
            raise ArgumentError(f"true must hold one derivative per coordinate, shape ({n},), for an "
                                f"array x without direction; got {true!r}")
    out = SweepSet()
    for j in range(n):
        e = np.zeros(n)
        e[j] = 1.0
        r = step_sweep(f, xa, direction=e, true=None if true is None else float(t[j]), **kw)
        r.label = f"x[{j}]"
        out.append(r)
    return out


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
