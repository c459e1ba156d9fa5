"""The default method of ``simdiff.minimize``: BFGS on finite-difference gradients.

One iteration, usually one parallel round:

1. Direction. d = −H·g on the free variables, H the limited-memory BFGS inverse-Hessian
   approximation of the last ``memory`` = 10 pairs (s, y), by the two-loop recursion with
   H₀ = (sᵀy/yᵀy)·I from the newest pair (Nocedal 1980; Nocedal & Wright, Numerical
   Optimization, 2nd ed., Alg. 7.4); ``memory=None`` uses the dense BFGS matrix (N&W (6.17)).
   On the MGH set the limited memory with its rescaled H₀ needs fewer evaluations. The pairs
   are kept as measured; a pair with sᵀy ≤ 0, which the Armijo-only line search allows and the
   update would have to drop, is Powell-damped instead (sᵀy = 0.2·sᵀBs, Powell 1978).
   With bounds, a variable at a bound whose gradient points out of the box is held there (the
   projected quasi-Newton method of Bertsekas 1982, as in L-BFGS-B) and every trial point is
   projected onto the box.
2. Speculative round. The trial point x + d AND the finite-difference stencil of the gradient
   at it go to the Evaluator in ONE batch (with a forward stencil f(x + d) is one of the
   stencil's points). When Armijo's test accepts the trial — the common case for BFGS — the
   iteration costs one round and the next gradient is already there. When it rejects it, the
   gradient at the trial is not wasted: (s, y) still updates H, and the slope at the trial
   makes the backtracking interpolation cubic (``linesearch.py``). Backtracking trials are
   then single points (several at once when the Evaluator has idle slots), and the gradient at
   the accepted point follows in its own round, its f(x) taken from memory.
3. Scheme per iteration. Forward differences (n runs) while the gradient is large against
   its error estimate (info.error); central (2n runs) once the forward error exceeds
   ``switch``·‖g‖ — near the solution, where a forward gradient's truncation error would
   stall the iteration.
4. Stop when the (projected) gradient is indistinguishable from zero: every |g_j| ≤ 2·error_j
   with central differences (a forward gradient that small is first recomputed centrally), or
   ‖g‖∞ ≤ gtol, or the relative decrease of f is below ftol = 2.2e-9 (scipy L-BFGS-B's
   default, factr = 1e7) in two iterations in a row, the second on central differences (two
   such decreases on forward ones switch to central), or the budget ``maxfev`` is spent
   (status 1), or no decrease can be found along the central-difference direction (status 2).
   The second small decrease may be foretold rather than measured: the quadratic model's
   ½·gᵀHg for the next step below 1e-3 of the ftol bar (``_bar``), after a small decrease on
   a central gradient, or — once the model has predicted the last step's decrease within a
   factor 2 (its ratio ρ, as a trust-region method checks it; for a first step, the
   parabola of the line search) — with |g| + error in place of g, which stops a
   forward-difference run at a minimum without the central confirmation (a sphere: 35 runs,
   L-BFGS-B 33; the MGH set keeps its solved count).

A failed evaluation at a trial point is a rejected step (shrunk by 0.25); a failed stencil
point is repaired by the derivative functions' fallback; a gradient that cannot be formed is
recomputed centrally and, if that fails too, ends the run (status 6).
"""

from __future__ import annotations

import math

from typing import Any

import numpy as np

from .fdgrad import fd_gradient
from .linesearch import armijo, backtrack
from .options import call_callback
from .result import STATUS, History, make_result
from .tally import BudgetExhausted

__all__ = ["fd_bfgs"]

DAMPED = True
_ZERO = ("the gradient is indistinguishable from zero given its finite-difference error "
         "estimate, and a last line search found no significant decrease")
MAX_PAIRS = 30
#: Switches for benchmarks and tests: the predicted-decrease stop, and the vertex of the
#: bracket in the first steepest-descent step (``_expand``).
PREDICTED_STOP = True
INTERPOLATE = True
PREDICTED_SHARE = 1e-3
_FTOL = ("the relative decrease of f fell below ftol={:g} in two iterations in a row (the "
         "second measured, or predicted by the quasi-Newton model on a central-difference "
         "gradient)")


def _project(x: np.ndarray, box: Any) -> np.ndarray:
    return x if box is None else np.clip(x, box[0], box[1])


def _active(x: np.ndarray, g: np.ndarray, box: Any) -> np.ndarray:
    """Variables held at a bound: at it (within a hair) with the gradient pointing outward."""
    if box is None:
        return np.zeros(x.shape, dtype=bool)
    lo, hi = box
    tol = 1e-12 * np.maximum(1.0, np.abs(x))
    return ((x - lo <= tol) & (g > 0)) | ((hi - x <= tol) & (g < 0)) | (lo == hi)


def fd_bfgs(tally: Any, x0: np.ndarray, box: Any, *, noise: Any = None, gtol: float = 1e-10,
            ftol: float = 2.2e-9, xtol: float = 1e-14, maxiter: int | None = None,
            switch: float = 0.05, callback: Any = None, max_backtracks: int = 30,
            slots: int = 1, sigma: float = 0.0, stop_factor: float = 2.0,
            speculate: Any = "auto", memory: int | None = 10):
    n = x0.shape[0]
    hist = History()
    scheme = g_scheme = "forward"
    status, message = None, ""
    x = x0.copy()
    f = None
    g = err = None
    nit = 0
    noise_tol = 2.0 * sigma  # a noise-tolerant Armijo test (f known to ±σ at each end)
    maxiter = maxiter if maxiter is not None else 100 * n * 100
    H = None
    last_first_ok = False
    probing = False
    model_ok = False
    small_before = False  # one small decrease can be a short step's; two in a row stop
    try:
        g, err, f = fd_gradient(tally, x, scheme, box, noise)
        if f is None:
            from ..errors import SimulationError

            raise SimulationError(f"f failed at the starting point x0={x0!r}; the optimizer "
                                  "needs f(x0)", point=x0)
        if g is None:
            scheme = "central"
            g, err, f = fd_gradient(tally, x, scheme, box, noise)
            if g is None:
                status, message = 6, "the gradient at x0 could not be formed: too many failed points"
        g_scheme = scheme  # the scheme g was taken with (``scheme`` is the next one's)
        hist.record(tally, x, f, 0.0, _norm(g) if g is not None else np.nan,
                    _norm(err) if err is not None else np.nan, scheme=scheme)
        while status is None:
            if box is None:  # every variable free
                act, pg, free_err = None, g, err
            else:
                act = _active(x, g, box)
                pg = np.where(act, 0.0, g)
                free_err = np.where(act, 0.0, err)
            gnorm = float(_norm(pg))
            # -- stop tests -----------------------------------------------------------------
            if (np.abs(pg) <= stop_factor * free_err).all():
                if model_ok and H is not None and box is None and PREDICTED_STOP and _predicted(
                        H, np.abs(pg) + free_err, memory) <= _bar(ftol, f):
                    # zero within its error, and the model (validated on the last step) predicts
                    # no significant decrease even at the error bound: no central confirmation
                    status, message = 3, _FTOL.format(ftol)
                    break
                if scheme == "forward":
                    scheme = "central"
                    g2, e2, _ = fd_gradient(tally, x, scheme, box, noise)
                    if g2 is not None:
                        g, err, g_scheme = g2, e2, scheme
                    continue
                if not probing:
                    # confirm with one short line search: an error estimate can be pessimistic
                    probing = True
                else:
                    status, message = 0, _ZERO
                    break
            if np.abs(pg).max() <= gtol:
                status, message = 0, f"the projected gradient is below gtol={gtol:g}"
                break
            if nit >= maxiter:
                status, message = 5, STATUS[5]
                break
            g_central = g_scheme == "central"
            if scheme == "forward" and _norm(free_err) > switch * gnorm:
                scheme = "central"
            # -- direction ------------------------------------------------------------------
            free = None if act is None else ~act
            d = None if act is None else np.zeros(n)  # (no box: d is the direction itself)
            if H is not None:
                q = -_apply(H, pg, free, memory)
                if d is None:
                    d = q
                else:
                    d[free] = q
                if not pg.dot(d) < 0:
                    H = None
            if H is not None and PREDICTED_STOP:
                # the decrease the quasi-Newton model predicts for the next step, ½·gᵀHg,
                # below the bar, after a small decrease on a central gradient; or, the model
                # having foretold the last decrease within a factor 2, with |g| + its error
                # bound in place of g (a forward gradient at the minimum is mostly error).
                # ½·gᵀHg, already at hand, screens the second form: the run goes on unless
                # it is within 100× of the bar
                bar = _bar(ftol, f)
                pred = -0.5 * float(pg.dot(d))
                if (small_before and g_central and pred <= bar) or (
                        model_ok and pred <= 100 * bar
                        and _predicted(H, np.abs(pg) + free_err, memory) <= bar):
                    status, message = 3, _FTOL.format(ftol)
                    break
            quad = -float(pg.dot(d)) if H is not None and box is None else None
            if H is None:
                # steepest descent, a step of unit length at most (as L-BFGS-B starts)
                if free is None:
                    d = -pg * min(1.0, 1.0 / max(gnorm, 1e-300))
                else:
                    d[free] = -pg[free] * min(1.0, 1.0 / max(gnorm, 1e-300))
            # -- line search ----------------------------------------------------------------
            t = 1.0
            accepted = model_ok = False
            g_new = err_new = None
            x_new, f_new = x, f
            for trial in range(3 if probing else max_backtracks):
                xt = _project(x + t * d, box)
                s = xt - x
                if not (s != 0).any() or (np.abs(s) / np.maximum(1.0, np.abs(x))).max() < xtol:
                    break
                slope = float(g.dot(s))
                if slope >= 0:  # projection turned the step uphill: shorten
                    t *= 0.25
                    continue
                if trial == 0 and (speculate is True or (speculate == "auto" and H is not None
                                                          and last_first_ok)):
                    gt, et, ft = fd_gradient(tally, xt, scheme, box, noise, curvature=_curv(H))
                else:
                    ft = tally.value(xt)
                    gt = et = None
                if trial == 0:
                    last_first_ok = armijo(f, slope, ft, noise_tol)
                if armijo(f, slope, ft, noise_tol):
                    accepted = True
                    x_new, f_new, g_new, err_new = xt, ft, gt, et
                    if quad is not None:
                        # the quadratic model's decrease along t·d, d = −H·g: (t − t²/2)·gᵀHg
                        rho = (f - ft) / ((t - 0.5 * t * t) * quad)
                        model_ok = 0.5 <= rho <= 2.0
                    if H is None and trial == 0 and f - ft >= -0.5 * slope:
                        # steepest descent of unknown scale, f still falling nearly linearly:
                        # expand the step tenfold while it keeps paying (as a Moré–Thuente
                        # search would), each trial one point
                        (x_new, f_new, g_new, err_new), model_ok = _expand(
                            tally, x, d, t, f_new, box, x_new, g_new, err_new, f)
                    break
                t = backtrack(t, f, slope / t, ft, None if gt is None else float(gt.dot(s)) / t)
            if not accepted:
                if probing:
                    status, message = 0, _ZERO
                    break
                if scheme == "forward":
                    scheme = "central"
                    g2, e2, _ = fd_gradient(tally, x, scheme, box, noise)
                    if g2 is not None:
                        g, err, g_scheme = g2, e2, scheme
                    H = None
                    continue
                if H is not None:
                    H = None  # one more try along the steepest-descent direction
                    continue
                status, message = 2, ("no decrease found along the central-difference gradient "
                                      "direction: f is at the accuracy limit of its gradient")
                break
            if g_new is None:
                g_new, err_new, _ = fd_gradient(tally, x_new, scheme, box, noise, curvature=_curv(H))
                if g_new is None:
                    scheme = "central"
                    g_new, err_new, _ = fd_gradient(tally, x_new, scheme, box, noise, curvature=_curv(H))
                    if g_new is None:
                        x, f = x_new, f_new
                        status, message = 6, STATUS[6] + " (the gradient could not be formed)"
                        break
            s = x_new - x
            df = f - f_new
            if H is not None and df <= 1e-10 * max(abs(f), 1e-300) and _norm(
                    s) <= 1e-8 * max(1.0, float(_norm(x))):
                H = None  # stalled on a badly conditioned H: start again from steepest descent
            else:
                H = _update(H, s, g_new - g)
            x, f, g, err, g_scheme = x_new, f_new, g_new, err_new, scheme
            nit += 1
            if probing and df <= max(4.0 * sigma, 1e-14 * abs(f)):
                probe_failed = True
            else:
                probe_failed = False
            probing = False
            hist.record(tally, x, f, float(_norm(s)), float(_norm(g)),
                        float(_norm(err)), scheme=scheme)
            if call_callback(callback, x, f, nit):
                status, message = 4, STATUS[4]
                break
            if probe_failed:
                status, message = 0, _ZERO
                break
            small = df <= ftol * max(abs(f), abs(f + df), 1.0)
            if small and small_before:
                if scheme == "central":
                    status, message = 3, _FTOL.format(ftol)
                    break
                # on forward gradients, confirm with central ones: with f far below 1 the
                # test is absolute and stops early (MGH gaussian, f* = 1e-8)
                scheme = "central"
            small_before = small
    except BudgetExhausted:
        status, message = 1, STATUS[1]
    if status is None:  # pragma: no cover
        status, message = 2, STATUS[2]
    if g is not None and status != 1:
        # the reported gradient with simdiff.gradient's noise looks on: the iterations' own
        # leave noise to ``noise=``, so on a noisy f their error bars would not hold
        try:
            g2, e2, _ = fd_gradient(tally, x, g_scheme, box, noise, curvature=_curv(H), final=True)
        except BudgetExhausted:
            g2 = None
        if g2 is not None:
            g, err = g2, e2
    return make_result(tally, x, f, g, nit, status, message, hist, "bfgs",
                       grad_error=err, scheme=g_scheme)


def _bar(ftol: float, f: float) -> float:
    """The bar a predicted decrease must stay under: PREDICTED_SHARE of scipy's measured one,
    ftol·max(|f|, 1). The measured bar is absolute for |f| < 1 (predicted, it would stop MGH
    gaussian, f* = 1e-8, at f − f* ≈ 1e-9), and a decrease of ftol·|f| still leaves x about
    √(2·ftol·|f|/λ) from the minimum (sphere + sin x₀: 2e-6, where one more step lands within
    1e-9)."""
    return PREDICTED_SHARE * ftol * max(abs(f), 1.0)


def _predicted(H: Any, v: np.ndarray, memory: int | None) -> float:
    """½·vᵀHv: the decrease the quadratic model predicts for the step −H·v (no box)."""
    return 0.5 * float(v.dot(_apply(H, v, None, memory)))


def _expand(tally: Any, x: np.ndarray, d: np.ndarray, t: float, ft: float, box: Any,
            xt: np.ndarray, gt: Any, et: Any, f0: float | None = None):
    """The steepest-descent step grown tenfold while f keeps falling; once a trial rises, the
    minimum along the line is bracketed by the three last steps t_lo < t_b < t_hi, and the
    vertex of the parabola through them (Nocedal & Wright §3.5) is tried too: one more point
    for a first step near the line's minimum, whose (s, y) pair then starts the quasi-Newton
    matrix with the curvature where it matters (log-cosh from 2: 109 runs to 46). Returns
    (the accepted point's (x, f, g, error), whether a model foretold its decrease)."""
    best = (xt, ft, gt, et)
    t_lo, f_lo, t_b = 0.0, f0, t
    for _ in range(8):
        t_hi = 10.0 * t_b
        xe = _project(x + t_hi * d, box)
        if np.array_equal(xe, best[0]):
            break
        fe = tally.value(xe)
        if fe is None or not fe < best[1]:
            if INTERPOLATE and fe is not None and f_lo is not None and box is None:
                vx = _vertex(t_lo, f_lo, t_b, best[1], t_hi, fe)
                if vx is not None and abs(vx[0] - t_b) > 0.1 * t_b:
                    tv, pv = vx
                    xv = x + tv * d
                    fv = tally.value(xv)
                    if fv is not None and fv < best[1]:
                        # the parabola foretold this decrease within a factor 2: a model checked
                        fit = best[1] > pv and 0.5 <= (best[1] - fv) / (best[1] - pv) <= 2.0
                        return (xv, fv, None, None), fit
            break
        t_lo, f_lo, t_b = t_b, best[1], t_hi
        best = (xe, fe, None, None)
    return best, False


def _vertex(a: float, fa: float, b: float, fb: float, c: float,
            fc: float) -> tuple[float, float] | None:
    """The minimizer of the parabola through (a, fa), (b, fb), (c, fc), a < b < c with fb below
    both ends, and the parabola's value there; None when the three are (numerically) on a line
    or the vertex falls outside (a, c)."""
    num = (b - a) ** 2 * (fb - fc) - (b - c) ** 2 * (fb - fa)
    den = (b - a) * (fb - fc) - (b - c) * (fb - fa)
    if not den > 0 and not den < 0:
        return None
    v = b - 0.5 * num / den
    if not (a < v < c and math.isfinite(v)):
        return None
    # the parabola's value there (Lagrange form)
    pv = (fa * (v - b) * (v - c) / ((a - b) * (a - c)) + fb * (v - a) * (v - c) / ((b - a) * (b - c))
          + fc * (v - a) * (v - b) / ((c - a) * (c - b)))
    return v, pv


# 1-D products as v.dot(w): the same BLAS dot as v @ w, the same bits, without matmul's
# dispatch (half the time; the two-loop recursion takes forty of them an iteration)


def _norm(v: np.ndarray) -> float:
    """‖v‖₂ as ``np.linalg.norm`` computes it for a real vector, sqrt(v·v), without its
    dispatch (the same bits; it is taken several times an iteration)."""
    return math.sqrt(float(v.dot(v)))


def _curv(H: Any) -> np.ndarray | None:
    """|f''_jj| estimates: the diagonal of the direct BFGS Hessian approximation B kept
    next to H (the inverse's 1/H_jj underestimates it badly in a curved valley)."""
    B = getattr(H, "B", None)
    return None if B is None else np.abs(np.diag(B))


def _update(H: np.ndarray | None, s: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """The BFGS update of the inverse Hessian; skipped when sᵀy ≤ 1e-10·‖s‖‖y‖ (no curvature
    information the update could keep positive definite)."""
    sy = float(s.dot(y))
    if not np.isfinite(sy):
        return H
    B = getattr(H, "B", None)
    if B is not None and DAMPED and sy <= 1e-10 * _norm(s) * _norm(y):
        # Powell's damping (1978), only for a pair the update would otherwise drop (sᵀy ≤ 0:
        # the Armijo-only search makes no curvature promise): move y towards B s until
        # sᵀy = 0.2 sᵀBs. Damping every pair with sᵀy < 0.2 sᵀBs, as Powell does, pulls the
        # limited-memory pairs towards the dense B, a different approximation; on the MGH set
        # that cost evaluations (extended Rosenbrock: 620 against 433 to τ = 1e-5)
        Bs0 = B @ s
        sBs0 = float(s.dot(Bs0))
        if sBs0 > 0:
            theta = 0.8 * sBs0 / (sBs0 - sy)
            y = theta * y + (1 - theta) * Bs0
            sy = float(s.dot(y))
    if sy <= 1e-10 * _norm(s) * _norm(y):
        return H
    n = s.shape[0]
    if H is None:
        yy = float(y.dot(y))
        H = _Inverse(np.eye(n) * (sy / yy), np.eye(n) * (yy / sy))
    rho = 1.0 / sy
    B = H.B
    Bs = B @ s
    sBs = float(s.dot(Bs))
    s, y = s.copy(), y.copy()
    new = _Inverse(None, B - np.outer(Bs, Bs) / sBs + rho * np.outer(y, y) if sBs > 0 else B)
    new.base, new.pending = H.base, H.pending + [(s, y, rho)]
    # with s·y and whether the pair passes _apply's curvature test, as _apply computes them
    new.pairs = (H.pairs + [(s, y, s.dot(y), bool(s.dot(y) > 1e-12 * _norm(s) * _norm(y)))])[-MAX_PAIRS:]
    return new


def _apply(H: Any, g: np.ndarray, free: np.ndarray | None, memory: int | None) -> np.ndarray:
    """H·g on the free variables (``free`` None: all of them): the dense BFGS matrix, or
    (memory = m) the L-BFGS two-loop recursion over the last m pairs with H₀ = (sᵀy/yᵀy)·I from
    the newest pair (Nocedal 1980), restricted to the free coordinates."""
    if free is not None and free.all():
        free = None
    if not memory:
        return _dense_apply(H, g, free)
    kept = H.pairs[-memory:]
    if free is None:  # every coordinate free: s·y and the test as _update stored them
        q = g.copy()
        pairs = [(s, y, sy) for s, y, sy, good in kept if good]
    else:
        q = g[free].copy()
        pairs = [(s[free], y[free]) for s, y, _, _ in kept]
        pairs = [(s, y, s.dot(y)) for s, y in pairs if s.dot(y) > 1e-12 * _norm(s) * _norm(y)]
    if not pairs:
        return _dense_apply(H, g, free)
    alphas = []
    for s, y, sy in reversed(pairs):
        a = (s.dot(q)) / sy
        alphas.append(a)
        q -= a * y
    s, y, sy = pairs[-1]
    q *= sy / (y.dot(y))
    for (s, y, sy), a in zip(pairs, reversed(alphas)):
        b = (y.dot(q)) / sy
        q += (a - b) * s
    return q


def _dense_apply(H: Any, g: np.ndarray, free: np.ndarray | None) -> np.ndarray:
    M = H.dense()
    return M @ g if free is None else M[np.ix_(free, free)] @ g[free]


class _Inverse:
    """The quasi-Newton state: the dense inverse-Hessian approximation H (``dense()``), the
    direct approximation B (``.B``) and the pairs (s, y, sᵀy, kept) of the limited memory.

    The dense H is needed only for ``memory=None`` and when no pair passes the curvature test
    on the free variables; its BFGS updates (N&W (6.17), O(n²) each) are kept pending and
    applied in order when it is asked for, with the same floating-point operations as one
    update at a time."""

    __slots__ = ("base", "pending", "B", "pairs")

    def __init__(self, H0: np.ndarray | None, B: np.ndarray) -> None:
        self.base, self.pending, self.B, self.pairs = H0, [], B, []

    def dense(self) -> np.ndarray:
        H = self.base
        for s, y, rho in self.pending:
            Hy = H @ y
            H = (H - rho * (np.outer(s, Hy) + np.outer(Hy, s))
                 + (rho * rho * float(y.dot(Hy)) + rho) * np.outer(s, s))
        self.base, self.pending = H, []
        return H
