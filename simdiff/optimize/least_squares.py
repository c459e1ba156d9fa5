"""``simdiff.least_squares``: min ½‖r(x)‖² for a black-box residual r: R^n -> R^m.

A trust-region Levenberg–Marquardt method (Moré, "The Levenberg–Marquardt algorithm:
implementation and theory", LNM 630, 1978) on a Jacobian model J that is

* computed by finite differences — n + 1 points (forward, sharing r(x)) or 2n (central), ONE
  Evaluator batch — at the start and whenever the model has gone stale, and
* kept up to date between those from every point of every round by the least-change
  multi-secant update J ← J + (Y − J S) S⁺, S = [s, h_j e_j, ...],
  Y = [r(x_t) − r(x), r(x_t + h_j e_j) − r(x_t), ...] (Schnabel, "Quasi-Newton methods using
  multiple secant equations", 1983; with S = [s] it is Broyden's rank-one update, Broyden 1965).

A ROUND (one Evaluator batch: the wall-clock time with enough workers) holds the trial point
x_t = x + s and, with the default ``probes="auto"``, one or two points that are worth having
whatever ρ turns out to be:

* the LOOK-AHEAD x_t + s', when s reaches the trust-region boundary: s' is the model's next
  step from x_t, r(x_t) predicted as r + J s, in the radius a good step leaves (2Δ). If x_t is
  accepted, x_t + s' is a ready next trial, judged (ρ ≥ 1e-4) by the model updated with r(x_t):
  a round saved. Its secant enters J only then, as the step it is (a long secant off the path
  would pull the local model away from x). After an interior step Jᵀ(r + J s) = 0 and there
  is no look-ahead; instead
* PROBES x_t + h_j e_j: 2, or 1 after a very successful step (ρ > 0.75, Nocedal & Wright's
  threshold, where the model has just been confirmed). They go to the coordinates the model
  learnt longest ago; h_j is the larger of the forward-difference step (noise-optimal with
  ``noise=``) and 1 % of ‖s‖, a secant on the scale the model is used at, as the interpolation
  points of model-based solvers sit within the trust region (Powell; Cartis, Fiala, Marteau &
  Roberts, DFO-LS, ACM TOMS 45, 2019).

A step that fails (ρ < 0.25, Nocedal & Wright's "poor" threshold, or the simulator failed
there) from a model updated since its last FD Jacobian triggers a fresh FD Jacobian at x, and
the updated model's next trial (radius min(Δ, ‖Ds‖/2)) rides in the same round; the fresh
model judges it (taken from ρ ≥ 0.1) before it computes a step of its own. With ``probes=p``
(an int) every round carries p probes and no look-ahead, and the model also counts as fresh
while every column was relearnt within n/p rounds; ``probes=0`` is the Broyden iteration with
one-evaluation trial rounds, the fewest evaluations. On the Moré–Garbow–Hillstrom set
(``benchmarks/optimize.py``, from x0 and from 10·x0) "auto" takes 1.07× and 1.18× DFO-LS's
median evaluations at 0.28 and 0.29 rounds per evaluation (fixed p = max(2, n/3) probes: 1.21×
and 1.41× at 0.27 and 0.28; ``probes=0``: 0.97× and 0.90× at 0.36).

Step: s minimizes ‖r + J s‖ subject to ‖D s‖ ≤ Δ, D = diag of the largest column norms of J seen
(Moré's scaling), solved through the SVD of J D⁻¹ with the Levenberg parameter λ found by
bisection on log λ. ρ = actual / predicted reduction; ρ ≥ 1e-4 accepts, Δ shrinks to ‖Ds‖/4
below ρ = 0.25 and doubles above 0.75 at the boundary (Nocedal & Wright, Numerical
Optimization, 2nd ed., Alg. 4.1). Bounds: every trial and look-ahead is projected onto the box
and a probe that would leave it goes the other way (or is dropped); a failed probe or
look-ahead is only missing information.

Stop: the gradient Jᵀr of a fresh Jacobian is within its FD error |E|ᵀ|r| (forward first
recomputed centrally), ‖Jᵀr‖∞ ≤ gtol, the actual and predicted reductions are below
ftol·cost, Δ ≤ xtol·(xtol + ‖Dx‖), or the budget ``maxfev`` is spent.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..steps import EPS
from .fdgrad import fd_jacobian, noise_steps
from .options import (call_callback, check_bounds, check_callback, check_maxfev, check_noise,
                      check_positive, check_x0, make_evaluator, slots, unknown_options)
from .result import History
from .tally import BudgetExhausted, Tally

__all__ = ["least_squares"]

SPEC_RHO = 0.25  # speculate the next Jacobian after a step this good

_LS_STATUS = {0: "converged: the gradient Jᵀr is indistinguishable from zero given its FD error",
              1: "evaluation budget (maxfev) reached", 2: "ftol: the reductions are below ftol·cost",
              3: "xtol: the trust region shrank below xtol", 4: "stopped by the callback",
              5: "gtol: ‖Jᵀr‖∞ ≤ gtol", 6: "too many failed evaluations"}


def _tr_step(J: np.ndarray, r: np.ndarray, D: np.ndarray, delta: float) -> np.ndarray:
    """argmin ‖r + J s‖ s.t. ‖D s‖ ≤ Δ (SVD of J D⁻¹; λ by bisection on log λ)."""
    Js = J / D[None, :]
    if not np.all(np.isfinite(Js)):
        return np.zeros(J.shape[1])
    try:
        U, S, Vt = np.linalg.svd(Js, full_matrices=False)
    except np.linalg.LinAlgError:  # pragma: no cover - LAPACK's rare non-convergence
        return np.zeros(J.shape[1])
    S = np.where(np.isfinite(S), S, 0.0)
    c = U.T @ r
    tiny = S > S.max(initial=0.0) * 1e-14 * max(J.shape)

    def z(lam: float) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(tiny, S / (S * S + lam), 0.0)
        return -(Vt.T @ (w * c))

    z0 = z(0.0)
    if np.linalg.norm(z0) <= delta:
        return z0 / D
    lo, hi = 0.0, max(float(S.max(initial=1.0)) ** 2, 1e-300)
    while np.linalg.norm(z(hi)) > delta:
        hi *= 100.0
    lo = hi * 1e-30
    for _ in range(80):
        mid = np.sqrt(lo * hi)
        if np.linalg.norm(z(mid)) > delta:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1.0 + 1e-6:
            break
    return z(hi) / D


def least_squares(r: Any, x0: Any, *, bounds: Any = None, maxfev: int | None = None,
                  ftol: float = 1e-12, xtol: float = 1e-12, gtol: float = 1e-12,
                  callback: Any = None, noise: Any = None, n_jobs: int | None = None,
                  backend: Any = None, evaluator: Any = None, cache: Any = None,
                  retries: int | None = None, timeout: float | None = None,
                  progress: bool | None = None, vectorized: bool | None = None,
                  **options: Any):
    """Minimize ½‖r(x)‖² for a residual r: R^n -> R^m (see the module docstring).

    Parameters
    ----------
    r : callable or Simulator returning an array (m,), the same m at every point
        (an ``OutputError`` otherwise).
    x0 : array (n,), finite, inside ``bounds``.
    bounds : None, (lower, upper) or scipy.optimize.Bounds; no evaluated point outside.
    maxfev : budget of evaluations (default 100·(n + 1)).
    ftol, xtol, gtol : the stopping tolerances of the module docstring.
    callback : callback(intermediate_result) or callback(xk) after each accepted step.
    noise : None or the noise level of r (its FD steps and error estimates take it in).
    n_jobs, backend, evaluator, cache, retries, timeout, progress, vectorized
        as for ``simdiff.minimize``.
    probes : "auto" (default), or an int ≥ 0, option
        Points evaluated with each trial point (see the module docstring): "auto" is the
        look-ahead point after a step to the trust-region boundary, else 2 coordinate probes
        (1 after a very successful step); 0 with ``noise="estimate"``, whose noise level is
        measured by each FD Jacobian. An int p: p probes every round; 0 gives one-evaluation
        trial rounds.
    refresh : int, option (default 0: only when a step fails)
        Also recompute the FD Jacobian after this many Broyden updates.
    speculate : "auto" (default), True or False, option
        True: after a good step (ρ ≥ 0.25) the next trial point is evaluated together with
        the FD Jacobian around it, ONE round, and an accepted trial brings a fresh Jacobian:
        few rounds (wall-clock time with idle workers) for more evaluations. False: Broyden
        updates between Jacobians, one evaluation a step (frugal when evaluations are the
        cost). "auto": True when the Evaluator runs several points at once (n_jobs > 1).

    Returns
    -------
    scipy.optimize.OptimizeResult like scipy's ``least_squares``: x, cost (½‖r‖²), fun
    (residuals), jac, grad, optimality (‖Jᵀr‖∞), nfev, njev (FD Jacobians), nit, status,
    message, success, nrounds, nfailed, history.
    """
    refresh = options.pop("refresh", 0)
    probes = options.pop("probes", "auto")
    speculate = options.pop("speculate", "auto")
    if speculate not in ("auto", True, False):
        from ..errors import ArgumentError

        raise ArgumentError(f"speculate must be 'auto', True or False; got {speculate!r}")
    unknown_options("least_squares", options, ("bounds", "maxfev", "ftol", "xtol", "gtol",
                    "callback", "noise", "n_jobs", "backend", "evaluator", "cache", "retries",
                    "timeout", "progress", "vectorized", "refresh", "speculate", "probes"))
    x0 = check_x0(x0)
    box = check_bounds(bounds, x0)
    n = x0.shape[0]
    maxfev = check_maxfev(maxfev, 100 * (n + 1))
    ftol, xtol, gtol = (check_positive(k, v, allow_zero=True)
                        for k, v in (("ftol", ftol), ("xtol", xtol), ("gtol", gtol)))
    callback = check_callback(callback)
    noise = check_noise(noise)
    nprobe, lookahead = _check_probes(probes, n, noise)
    sim, ev = make_evaluator(r, vectorized, evaluator, n_jobs, backend, cache, retries, timeout,
                             progress)
    if speculate == "auto":
        speculate = slots(ev) > 1
    with Tally(sim, ev, box, maxfev) as tally:
        return _solve(tally, x0, box, ftol, xtol, gtol, callback, noise, int(refresh),
                      speculate, nprobe, lookahead)


def _solve(tally, x0, box, ftol, xtol, gtol, callback, noise, refresh, speculate, nprobe,
           lookahead=False):
    from scipy.optimize import OptimizeResult

    n = x0.shape[0]
    lo, hi = box if box is not None else (np.full(n, -np.inf), np.full(n, np.inf))
    hist = History()
    x = x0.copy()
    scheme = "forward"
    njev = 0
    status = None
    J = E = res = None
    fresh = False
    updates = 0
    nit = 0
    guard = 0
    last_ok = True
    age = np.zeros(n)  # per coordinate: the round in which the model last learnt it
    clock = 1  # rounds of trial points so far, plus one
    # probes in every round keep every column relearnt within n/p rounds (not with look-ahead)
    window = n / nprobe if nprobe and not lookahead else 0.0
    last_rho = -1.0  # ρ of the last trial
    pending = None  # a trial point evaluated with the last FD Jacobian, not yet judged
    try:
        J, E, res = fd_jacobian(tally, x, scheme, box, noise)
        njev += 1
        if res is None:
            from ..errors import SimulationError

            raise SimulationError(f"r failed at the starting point x0={x0!r}", point=x0)
        if J is None:
            scheme = "central"
            J, E, res = fd_jacobian(tally, x, scheme, box, noise)
            njev += 1
            if J is None:
                status = 6
        fresh = True
        D = np.maximum(np.linalg.norm(J, axis=0), 1e-12) if J is not None else np.ones(n)
        delta = float(np.linalg.norm(D * x)) or 1.0
        cost = 0.5 * float(res @ res)
        hist.record(tally, x, cost, 0.0, float(np.linalg.norm(J.T @ res)) if J is not None else np.nan)
        while status is None:
            if pending is not None:
                # the trial that rode with the last FD Jacobian, judged by the fresh model
                xb, pending = pending, None
                vb, okb = tally.values(xb[None, :])  # known: no evaluation, no round
                sb = xb - x
                rho_b = _rho(J, res, cost, sb, vb[0]) if okb[0] else -1.0
                if rho_b >= FALLBACK_RHO:
                    J, x, res, cost = _accept_ready(J, x, res, xb, vb[0])
                    fresh = False
                    updates += 1
                    nit += 1
                    if _record(tally, hist, callback, x, cost, sb, J, res, nit):
                        status = 4
                        break
                    delta = _radius(delta, rho_b, float(np.linalg.norm(D * sb)))
                    continue
            g = J.T @ res
            free = ~(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)))
            pg = np.where(free, g, 0.0)
            gerr = np.abs(E).T @ np.abs(res) if E is not None else np.zeros(n)
            if np.all(np.abs(pg) <= 2 * gerr):
                if not fresh or scheme == "forward":
                    scheme = "central" if fresh else scheme
                    J, E, _ = _fresh(tally, x, scheme, box, noise, J)
                    age[:] = clock
                    njev += 1
                    fresh, updates = True, 0
                    if np.all(np.abs(J.T @ res) <= 2 * np.abs(E).T @ np.abs(res)) and scheme == "central":
                        status = 0
                    continue
                status = 0
                break
            if np.max(np.abs(pg)) <= gtol:
                status = 5
                break
            s = np.zeros(n)
            s[free] = _tr_step(J[:, free], res, D[free], delta)  # active bounds held
            xt = np.clip(x + s, lo, hi)
            s = xt - x
            if not np.any(s != 0):
                if not fresh:
                    J, E, _ = _fresh(tally, x, scheme, box, noise, J)
                    age[:] = clock
                    njev += 1
                    fresh, updates = True, 0
                    continue
                status = 3
                break
            pred_r = res + J @ s
            pred = cost - 0.5 * float(pred_r @ pred_r)
            # fresh: an FD Jacobian at x, or every coordinate relearnt within the last window
            model_fresh = fresh or (window > 0 and clock - age.min() <= window)
            guard += 1
            if guard > 50 * tally.maxfev:  # pragma: no cover - a safeguard against cycling
                status = 6
                break
            Jt = None
            cols, P, xa = [], np.zeros((0, n)), None
            if speculate and last_ok:
                # the trial point and the FD Jacobian around it in one round
                Jt, Et, rt0 = fd_jacobian(tally, xt, scheme, box, noise)
                njev += 1
                ok = [rt0 is not None]
                vals = [rt0]
            else:
                if lookahead:
                    xa = _lookahead(J, pred_r, D, delta, s, xt, free, lo, hi)
                kp = nprobe
                if lookahead:  # "auto": the look-ahead, or fewer probes after a very good step
                    kp = 0 if xa is not None else (1 if last_rho > 0.75 else nprobe)
                P, cols = _probes(xt, s, _oldest(age, kp), lo, hi, noise)
                if xa is None:
                    vals, ok = tally.values(np.vstack([xt[None, :], P]))
                else:
                    vals, ok = tally.values(np.vstack([xt, xa, P]))
            if ok[0]:
                rt = vals[0]
                S, Y = [s], [rt - res]
                off = 1 if xa is None else 2
                for i, j in enumerate(cols):
                    if ok[off + i]:
                        S.append(P[i] - xt)
                        Y.append(vals[off + i] - rt)
                        age[j] = clock
                J = _multisecant(J, np.array(S).T, np.array(Y).T)
                fresh = False
                updates += 1
                cost_t = 0.5 * float(rt @ rt)
                rho = (cost - cost_t) / pred if pred > 0 else -1.0
            else:
                rt, cost_t, rho = None, np.inf, -1.0
            clock += 1
            Ds = float(np.linalg.norm(D * s))
            last_ok = rho >= SPEC_RHO
            last_rho = rho
            if rho >= 1e-4:
                actual = cost - cost_t
                x, res, cost = xt, rt, cost_t
                if Jt is not None:
                    J, E, fresh, updates = Jt, Et, True, 0
                    age[:] = clock
                elif speculate:
                    J, E, _ = _fresh(tally, x, scheme, box, noise, J)
                    age[:] = clock
                    njev += 1
                    fresh, updates = True, 0
                nit += 1
                if _record(tally, hist, callback, x, cost, s, J, res, nit):
                    status = 4
                    break
                if actual <= ftol * cost and pred <= ftol * cost:
                    status = 2
                    break
                if xa is not None and ok[1]:
                    # the look-ahead point: the next trial, ready, judged by the updated model.
                    # Its secant enters J only when it is accepted (a long secant off the path
                    # would pull the local model away from x)
                    sa = xa - x
                    rho_a = _rho(J, res, cost, sa, vals[1])
                    if rho_a >= 1e-4:
                        J, x, res, cost = _accept_ready(J, x, res, xa, vals[1])
                        nit += 1
                        if _record(tally, hist, callback, x, cost, sa, J, res, nit):
                            status = 4
                            break
                        Ds, rho = float(np.linalg.norm(D * sa)), rho_a
            if rho < 0.25:
                if not model_fresh:
                    # a poor step from an updated model: refresh it before shrinking, and
                    # evaluate the next trial of the updated model in the same round
                    delta = min(delta, 0.5 * Ds)
                    xb = np.zeros(n)
                    xb[free] = _tr_step(J[:, free], res, D[free], delta)
                    xb = np.clip(x + xb, lo, hi)
                    extra = (xb,) if np.any(xb != x) else ()
                    pending = xb if extra else None
                    J, E, _ = _fresh(tally, x, scheme, box, noise, J, extra)
                    age[:] = clock
                    njev += 1
                    fresh, updates = True, 0
                else:
                    delta = 0.25 * Ds
            elif rho > 0.75 and Ds >= 0.9 * delta:
                delta = 2.0 * delta
            if refresh and updates >= refresh and not fresh:
                J, E, _ = _fresh(tally, x, scheme, box, noise, J)
                age[:] = clock
                njev += 1
                fresh, updates = True, 0
            if fresh:
                D = np.maximum(D, np.linalg.norm(J, axis=0))
            if delta <= xtol * (xtol + float(np.linalg.norm(D * x))):
                status = 3
                break
    except BudgetExhausted:
        status = 1
    if res is None:
        res = np.full(1, np.nan)
    cost = 0.5 * float(res @ res)
    g = J.T @ res if J is not None else None
    message = _LS_STATUS[status]
    if tally.nfailed:
        message += f" ({tally.nfailed} evaluation(s) failed and were treated as rejected points)"
    return OptimizeResult(
        x=x, cost=cost, fun=res, jac=J, grad=g,
        optimality=float(np.max(np.abs(g))) if g is not None else np.nan,
        active_mask=np.where(x <= lo, -1, np.where(x >= hi, 1, 0)),
        nfev=int(tally.nfev), njev=njev, nit=nit, status=status,
        success=status in (0, 2, 3, 5), message=message, nrounds=int(tally.nrounds),
        nfailed=int(tally.nfailed), history=hist, method="trust-region-broyden")


def _rho(J, res, cost, s, rs):
    """ρ = actual / predicted reduction of ½‖r‖² for the step s, r(x + s) = rs (-1 if no gain)."""
    pr = res + J @ s
    pred = cost - 0.5 * float(pr @ pr)
    return (cost - 0.5 * float(rs @ rs)) / pred if pred > 0 else -1.0


def _radius(delta, rho, Ds):
    """The trust-region radius after a step of length ‖Ds‖ with ratio ρ (N&W Alg. 4.1)."""
    if rho < 0.25:
        return 0.25 * Ds
    if rho > 0.75 and Ds >= 0.9 * delta:
        return 2.0 * delta
    return delta


def _lookahead(J, rt_pred, D, delta, s, xt, free, lo, hi):
    """The model's next step from xt, with r(xt) predicted as r + J s; None if negligible.

    The radius is the one a good step leaves (2Δ after a step to the boundary). After an
    interior Gauss–Newton step Jᵀ(r + J s) = 0 and the look-ahead vanishes: probes instead.
    """
    Ds = float(np.linalg.norm(D * s))
    s2 = np.zeros_like(s)
    s2[free] = _tr_step(J[:, free], rt_pred, D[free], 2.0 * delta if Ds >= 0.9 * delta else delta)
    xa = np.clip(xt + s2, lo, hi)
    return xa if float(np.linalg.norm(D * (xa - xt))) > 0.1 * Ds else None


def _fresh(tally, x, scheme, box, noise, J_old, extra=()):
    """A finite-difference Jacobian at x (r(x) known: forward costs n points), in one round
    with the points ``extra``."""
    J, E, _ = fd_jacobian(tally, x, scheme, box, noise, extra)
    if J is None:
        J, E, _ = fd_jacobian(tally, x, "central", box, noise)
    if J is None:
        return J_old, None, None
    return J, E, None


PROBE_REACH = 0.01  # a probe reaches at least this fraction of the step ‖s‖
FALLBACK_RHO = 0.1  # the trial that rode with an FD Jacobian is taken from this ρ on


def _check_probes(probes: Any, n: int, noise: Any) -> tuple[int, bool]:
    """(probes per round, look-ahead on) (see the module docstring)."""
    if isinstance(probes, str) and probes == "auto":
        if isinstance(noise, str):  # "estimate": each FD Jacobian measures the noise
            return 0, False
        return min(n, 2), True
    integer = isinstance(probes, (int, np.integer)) and not isinstance(probes, (bool, np.bool_))
    if not integer or probes < 0:
        from ..errors import ArgumentError

        raise ArgumentError(f"probes must be 'auto' or an int >= 0; got {probes!r}")
    return min(n, int(probes)), False


def _oldest(age: np.ndarray, k: int) -> list:
    """The k coordinates the model learnt longest ago (ties: the lowest index first)."""
    return [int(j) for j in np.argsort(age, kind="stable")[:k]]


def _probes(xt: np.ndarray, s: np.ndarray, cols: list, lo: np.ndarray, hi: np.ndarray,
            noise: Any) -> tuple[np.ndarray, list]:
    """Points xt + h_j e_j for j in cols (rows) and the coordinates they probe.

    h_j = max(forward-difference step, PROBE_REACH·‖s‖); the step is √ε·max(1, |x_j|), or with
    a noise level σ the Moré–Wild forward step 8^(1/4)·√σ·max(1, |x_j|) (``fdgrad.noise_steps``).
    A probe that would leave the box goes the other way; one that cannot is dropped.
    """
    sigma = 0.0 if noise is None else float(np.max(getattr(noise, "level", noise)))
    if sigma > 0:
        unit = noise_steps(xt, "forward", sigma)
    else:
        unit = np.sqrt(EPS) * np.maximum(1.0, np.abs(xt))
    reach = PROBE_REACH * float(np.linalg.norm(s))
    pts, used = [], []
    for j in cols:
        h = max(float(unit[j]), reach)
        for v in (xt[j] + h, xt[j] - h):
            if lo[j] <= v <= hi[j] and v != xt[j]:
                p = xt.copy()
                p[j] = v
                pts.append(p)
                used.append(j)
                break
    return (np.array(pts) if pts else np.zeros((0, xt.shape[0]))), used


def _accept_ready(J: np.ndarray, x: np.ndarray, res: np.ndarray, xr: np.ndarray,
                  vr: np.ndarray) -> tuple:
    """A ready point (the look-ahead, or the trial that rode with the last FD Jacobian)
    accepted: J takes its secant from x; (J, x, r, cost) at the point."""
    return (_multisecant(J, (xr - x)[:, None], (vr - res)[:, None]), xr, vr,
            0.5 * float(vr @ vr))


def _record(tally: Any, hist: Any, callback: Any, x: np.ndarray, cost: float, s: np.ndarray,
            J: np.ndarray, res: np.ndarray, nit: int) -> bool:
    """One iteration's history record and callback; True when the callback stops the run."""
    hist.record(tally, x, cost, float(np.linalg.norm(s)), float(np.linalg.norm(J.T @ res)))
    return call_callback(callback, x, cost, nit)


def _multisecant(J: np.ndarray, S: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """The least-change J+ with J+ S = Y (columns: steps, differences of r): J + (Y − J S) S⁺.

    Schnabel (1983); one column is Broyden's update (1965). The columns are normalized first,
    so that a short probe weighs as much as a long step, and (nearly) dependent ones are
    resolved in the least-squares sense by the pseudo-inverse.
    """
    nrm = np.linalg.norm(S, axis=0)
    keep = nrm > 0
    if not keep.any():
        return J
    S, Y, nrm = S[:, keep], Y[:, keep], nrm[keep]
    try:
        Jn = J + ((Y - J @ S) / nrm) @ np.linalg.pinv(S / nrm, rcond=1e-10)
    except np.linalg.LinAlgError:  # pragma: no cover - LAPACK's rare non-convergence
        return J
    return Jn if np.all(np.isfinite(Jn)) else J
