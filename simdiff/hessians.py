"""hessian: central second differences, exactly symmetric, 2n² + 2n + 1 evaluations.

The scheme
----------
With steps h_j = c·ε^(1/4)·max(1, |x_j|) (c = 48^(1/4), the optimum of the second central
difference, ``steps.optimal_factor``) and e_j the unit vectors:

    H_jj = (f(x + h_j e_j) − 2 f(x) + f(x − h_j e_j)) / h_j²,
    H_ij = (f(x + h_i e_i + h_j e_j) − f(x + h_i e_i − h_j e_j)
            − f(x − h_i e_i + h_j e_j) + f(x − h_i e_i − h_j e_j)) / (4 h_i h_j),   i < j,

both of order 2 (errors h_j²·f_jjjj/12 and (h_i²·f_iiij + h_j²·f_ijjj)/6). H_ij is computed
once per pair and written to both triangles, so H is exactly symmetric. Points: f(x), 2 per
coordinate, 4 per pair: 1 + 2n + 4·n(n−1)/2 = 2n² + 1 evaluations, and x ± 2h_j e_j for the
diagonal's measured error (``_default_estimate``): **2n² + 2n + 1** (fewer only when points
coincide or a bound leaves no room for x ± 2h_j; numdifftools' Hessian spends 3,001 at n = 10,
this one 221).

Bounds: a coordinate whose ±h_j does not fit has its stencil shifted by one step into the box
(nodes x_j, x_j ± h_j, x_j ± 2h_j on one side; the estimate is then of order 1 in h_j, and the
count stays 2n² + 1); a box narrower than 2h_j shrinks h_j; lower == upper fixes the
coordinate (its row and column are 0).

Error estimate: rounding ε·√Σ(w·F)² / (h_i h_j) (independent roundings of the values) plus
the truncation model of ``plan.py``
(|f^(4)| ≈ |H|/L² with the length L over which f changes by its own size, s where f changes
sign among the points (a root at x says nothing of the length); for shifted
stencils the first-order term h·|H|/L), with |H_ij| taken at least 0.01·√|H_ii H_jj|
(``CROSS_SHARE``: f_iiij follows H_ij, not the diagonal; at √|H_ii H_jj| the estimate of the
off-diagonal entries ran 100-8000× above their error on the benchmark's Hessians; now the
median over a 38-function zoo is 7.2× at 97.3 % coverage (factor 5), ``benchmarks/accuracy.py``).

step="adaptive": Richardson extrapolation over levels h_k = h_0·2^-k (h_0 ≈ 2^-3·max(1,|x_j|),
a power of two so that all offsets are exact): each level is the scheme above, the table
T[k][q] = T[k][q−1] + (T[k][q−1] − T[k−1][q−1]) / (4^q − 1) removes h², h⁴, ... (powers h, h²,
... for shifted coordinates), and each entry takes the extrapolant with the least estimated
error |T[k][q] − T[k][q−1]| + rounding (Richardson 1911; the rule of numdifftools; the
rounding is the root-sum-square of the levels' roundings through the extrapolation weights,
each value's rounding at least ε·|H|·s_i·s_j, as in ``plan.py``: coverage 98 % on the
benchmark's Hessians (93 % before the floor, with the worst-case sum at half weight), 99 % on
the zoo above, median overestimate 4.1× and 5.9×).
The first round evaluates three levels (6n² + 1 points in one batch); another level (2n² more)
is added while the largest error estimate falls by 2× or more, up to ``MAX_LEVELS``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .differentiate import Info, _bounds_for, _method, as_point
from .errors import ArgumentError, OutputError
from .evaluate import resolve_evaluator
from .plan import PointSet, _length
from .simulator import as_simulator, warn_if_rounded
from .stencils import scheme
from .steps import EPS, base_steps, realize
from .noise import hessian_noise_error, setup_noise

__all__ = ["hessian", "MAX_LEVELS"]

#: Factor of the truncation model of the default scheme (calibrated like plan.py's).
MODEL_FACTOR = 5.0
#: Share of √|H_ii·H_jj| that stands for |H_ij| in the cross-entry model (see _truncation).
CROSS_SHARE = 0.01
#: Rounding of the values combined as a root-sum-square (True) or a sum of magnitudes.
ROUND_RSS = True
#: Levels of the adaptive Richardson table at most.
MAX_LEVELS = 5
#: The first step of the adaptive table, relative to max(1, |x_j|) (rounded to a power of 2).
ADAPTIVE_START = 2.0**-3
#: Weight of the rounding term in the adaptive estimate (the Richardson difference carries
#: the rounding noise of the levels already).
ADAPTIVE_ROUNDING = 1.0


class _Level:
    """The points of the 2n² + 1 scheme at steps h (n,) with shifts sigma (n,) in units of h."""

    def __init__(self, pts: PointSet, x: np.ndarray, h: np.ndarray, sigma: np.ndarray,
                 free: np.ndarray, wide: np.ndarray | None = None) -> None:
        n = x.shape[0]
        self.h, self.sigma, self.free = h, sigma, free
        self.center = pts.add(x)
        self.diag = {}
        self.cross = {}
        for j in free:
            self.diag[j] = tuple(pts.add(_shift(x, {j: (sigma[j] + t) * h[j]})) for t in (-1, 0, 1))
        for a, i in enumerate(free):
            for j in free[a + 1:]:
                self.cross[i, j] = tuple(
                    pts.add(_shift(x, {i: (sigma[i] + si) * h[i], j: (sigma[j] + sj) * h[j]}))
                    for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)))
        # x_j ± 2h_j where they fit (``wide``): a five-point second difference with the
        # three-point one embedded, whose difference measures f_jjjj instead of modelling it
        self.wide = {}
        if wide is not None:
            for j in free:
                if wide[j] and sigma[j] == 0:
                    self.wide[j] = tuple(pts.add(_shift(x, {j: t * h[j]})) for t in (-2, 2))
        self.n = n
        self.scale = np.maximum(1.0, np.abs(x))
        self.eps = EPS  # the outputs' unit roundoff, set once f has answered (float32: 2^-23)

    def assemble(self, F: np.ndarray, ok: np.ndarray):
        """H (n, n), rounding (n, n), and the entries whose points failed.

        The rounding of each value is taken at least ε·|H|·s_i·s_j: f varies by about that
        over its scale, so it is computed from parts of that size even where its value is
        small (a sum whose terms cancel; the floor of ``plan.py``). A complex-valued f gives
        H(Re f) + i·H(Im f), with the two parts' roundings added."""
        if np.iscomplexobj(F):
            Hr, Rr, bad = self.assemble(np.ascontiguousarray(F.real), ok)
            Hi, Ri, _ = self.assemble(np.ascontiguousarray(F.imag), ok)
            return Hr + 1j * Hi, Rr + Ri, bad
        n, h, s = self.n, self.h, self.scale
        H = np.zeros((n, n))
        R = np.zeros((n, n))
        bad = np.zeros((n, n), dtype=bool)
        for j, rows in self.diag.items():
            v = F[list(rows)]
            H[j, j] = (v[0] - 2 * v[1] + v[2]) / h[j] ** 2
            bad[j, j] = not ok[list(rows)].all()
        for (i, j), rows in self.cross.items():
            v = F[list(rows)]
            H[i, j] = H[j, i] = (v[0] - v[1] - v[2] + v[3]) / (4 * h[i] * h[j])
            bad[i, j] = bad[j, i] = not ok[list(rows)].all()
        d = np.abs(np.diag(H))
        for j, rows in self.diag.items():
            v = np.maximum(np.abs(F[list(rows)]), d[j] * s[j] ** 2)
            R[j, j] = self.eps * _combine(v, np.array([1.0, 2.0, 1.0])) / h[j] ** 2
        for (i, j), rows in self.cross.items():
            part = max(abs(H[i, j]), np.sqrt(d[i] * d[j])) * s[i] * s[j]
            v = np.maximum(np.abs(F[list(rows)]), part)
            R[i, j] = R[j, i] = self.eps * _combine(v, np.ones(4)) / (4 * h[i] * h[j])
        return H, R, bad


def _combine(v: np.ndarray, w: np.ndarray) -> float:
    """Σ|w_i·v_i| (worst case) or √Σ(w_i·v_i)² (independent roundings), per ``ROUND_RSS``."""
    a = np.abs(w * v)
    return float(np.sqrt(np.sum(a**2))) if ROUND_RSS else float(np.sum(a))


def _shift(x: np.ndarray, moves: dict) -> np.ndarray:
    p = x.copy()
    for j, d in moves.items():
        p[j] = x[j] + d
    return p


def _fit(x: np.ndarray, h: np.ndarray, box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps, shifts (−1, 0, +1) and the free coordinates, so that every node stays in the box.

    Nodes of coordinate j lie at x_j + (sigma_j + t)·h_j, t ∈ {−1, 0, 1}."""
    n = x.shape[0]
    h = np.array([realize(x[j], h[j]) for j in range(n)])
    sigma = np.zeros(n)
    if box is None:
        return h, sigma, np.arange(n)
    lo, hi = box
    free = []
    for j in range(n):
        if lo[j] == hi[j]:
            continue
        up, down = hi[j] - x[j], x[j] - lo[j]
        toward = 1.0 if up >= down else -1.0
        if min(up, down) >= h[j]:
            pass
        elif max(up, down) >= 2 * h[j]:
            sigma[j] = toward
        else:  # the box is narrower than the stencil: the larger of the two steps that fit
            if min(up, down) >= max(up, down) / 2:
                h[j] = min(up, down)
            else:
                sigma[j], h[j] = toward, max(up, down) / 2
            h[j] = _inside(x[j], h[j], sigma[j], lo[j], hi[j])
            if h[j] <= 4 * np.spacing(abs(x[j])):
                continue
        free.append(j)
    return h, sigma, np.array(free, dtype=int)


def _inside(xj: float, hj: float, s: float, lo: float, hi: float) -> float:
    for _ in range(16):
        nodes = [xj + (s + t) * hj for t in (-1, 0, 1)]
        if min(nodes) >= lo and max(nodes) <= hi:
            return hj
        hj = hj - np.spacing(max(abs(v) for v in nodes))
    return hj


def _truncation(H: np.ndarray, F: np.ndarray, level: _Level, scale: np.ndarray) -> np.ndarray:
    """The model truncation error of one level (see the module docstring)."""
    n = H.shape[0]
    h, sigma = level.h, level.sigma
    ends = np.array([[np.min(F)], [np.max(F)]])  # max|F|, and whether f changes sign (a root)
    diag = np.abs(np.diag(H))
    L = np.array([float(_length(np.array([diag[j]]), ends, scale[j], h[j], 2)[0])
                  for j in range(n)])
    T = np.zeros((n, n))
    for j in level.free:
        T[j, j] = h[j] ** 2 / 12 * diag[j] / L[j] ** 2 + abs(sigma[j]) * h[j] * diag[j] / L[j]
    for (i, j) in level.cross:
        size = max(abs(H[i, j]), CROSS_SHARE * np.sqrt(diag[i] * diag[j]))
        Lij = min(L[i], L[j])
        t = (h[i] ** 2 + h[j] ** 2) / 6 * size / Lij**2
        t += (abs(sigma[i]) * h[i] + abs(sigma[j]) * h[j]) * size / Lij
        T[i, j] = T[j, i] = t
    return MODEL_FACTOR * T


def _evaluate(sim, pts: PointSet, start: int, ev, F, ok, failures, nfev):
    """The rows of ``pts`` from ``start`` on, appended to F and ok: (F, ok, nfev, eps), eps the
    outputs' unit roundoff (``Batch.eps``: 2^-23 for float32)."""
    X = pts.array()[start:]
    if not len(X):
        return F, ok, nfev, EPS
    batch = ev.evaluate(sim, X)
    if batch.values.shape[1] != 1:
        raise OutputError(
            f"hessian needs a scalar output; f returned {batch.values.shape[1]} values per point "
            "(allowed: a float or an array of size 1)"
        )
    for f in batch.failures:
        d = f.as_dict() if hasattr(f, "as_dict") else dict(f)
        d["index"] = d.get("index", 0) + start
        failures.append(d)
    vals = batch.values[:, 0]
    if F is not None and np.iscomplexobj(vals) != np.iscomplexobj(F):
        F, vals = F.astype(complex), vals.astype(complex)
    F = vals if F is None else np.concatenate([F, vals])
    ok = batch.ok if ok is None else np.concatenate([ok, batch.ok])
    return F, ok, nfev + batch.nfev, float(getattr(batch, "eps", EPS))


def hessian(f: Any, x: Any, *, method: str = "central", step: Any = None, rel_step: Any = None,
            bounds: Any = None, vectorized: bool | None = None, n_jobs: int | None = None,
            backend: Any = None, evaluator: Any = None, full_output: bool = False,
            noise: Any = None, scale: Any = None, cache: Any = None, timeout: Any = None,
            retries: Any = None, on_failure: Any = None):
    """The Hessian ∇²f of f: R^n -> R at x, shape (n, n), exactly symmetric.

    Parameters as for ``simdiff.gradient``; ``method`` must be "central". ``step``: None
    (c·ε^(1/4)·max(1, |x_j|)), "adaptive" (Richardson over halved steps), or absolute steps
    (a float or an array (n,)). Costs 2n² + 2n + 1 evaluations (see the module docstring);
    a user step keeps the plain 2n² + 1 scheme.
    ``noise``: as for ``simdiff.gradient`` (noise-optimal steps for the second difference,
    (48·ε_f/μ)^(1/4), and the noise term in ``info.error``; it replaces step="adaptive").

    Returns
    -------
    H : ndarray (n, n), or ``(H, info)`` with ``full_output=True``; ``info.error`` is (n, n).
    """
    x = as_point(x)
    method = _method(method)
    if method != "central":
        raise ArgumentError(f"method for hessian must be 'central'; got {method!r}")
    adaptive = isinstance(step, str) and noise is None
    step = None if noise is not None and isinstance(step, str) and step == "adaptive" else step
    if adaptive and step != "adaptive":
        raise ArgumentError(
            f"step must be None, a positive float, an array of positive floats or 'adaptive'; "
            f"got {step!r}")
    if adaptive and rel_step is not None:
        raise ArgumentError(f"give step='adaptive' or rel_step=, not both (got rel_step={rel_step!r})")
    sim = as_simulator(f, vectorized=vectorized)
    warn_if_rounded(sim, x, "hessian")  # issue 13: offsets not re-weighted here
    box = _bounds_for(sim, bounds, x)
    ev = resolve_evaluator(evaluator, n_jobs, backend, cache=cache, timeout=timeout,
                           retries=retries, on_failure=on_failure)
    n = x.shape[0]
    from .differentiate import _scale_for

    typ = _scale_for(sim, scale, x)
    scale = np.maximum(1.0, np.abs(x)) if typ is None else typ
    nz = setup_noise(noise, sim, x, ev, method, step, rel_step, deriv=2)  # noise.py
    ev = nz.evaluator
    failures: list = []
    H, E, bad, nfev, steps, sigma, free = _pass(sim, x, box, ev, step, rel_step, adaptive, nz,
                                                scale, failures)
    # Inputs far below the unit scale (|x_j| < 1/64: two ions 5.6e-6 m apart, the unit-scale
    # step 3e-4 jumps them past each other): a second pass with steps on their own scale; where
    # the two disagree beyond their estimates the long steps saw what their model could not
    # (the rule of ``refine.py``), else the sharper estimate is kept.
    small = (x != 0) & (np.abs(x) < scale / 64) if (typ is None and (step is None or adaptive)
                                                    and rel_step is None and nz.steps is None) \
        else np.zeros(n, dtype=bool)
    if small.any():
        scale2 = np.where(small, np.abs(x), scale)
        H2, E2, bad2, nfev2, steps2, _, _ = _pass(sim, x, box, ev, None, None, adaptive, nz,
                                                  scale2, failures)
        nfev += nfev2
        touched = small[:, None] | small[None, :]
        with np.errstate(invalid="ignore"):
            disagree = np.abs(H - H2) > E + E2
            take = touched & np.isfinite(H2) & (disagree | (E2 < E) | ~np.isfinite(H))
        H, E = np.where(take, H2, H), np.where(take, E2, E)
        bad = np.where(touched, bad & bad2, bad)
        steps = np.where(small & np.diag(take), steps2, steps)
    for i, j in zip(*np.nonzero(np.triu(bad))):
        failures.append({"entry": (int(i), int(j)), "reason": "a point of its stencil failed"})
    if not full_output:
        return H
    fixed = [j for j in range(n) if j not in set(free.tolist())]
    return H, nz.annotate(Info(error=E, nfev=nfev, step=steps, method=method, failures=failures,
                   schemes=["shifted" if sigma[j] else ("fixed" if j in fixed else "central")
                            for j in range(n)], fixed=fixed))


def _pass(sim, x, box, ev, step, rel_step, adaptive, nz, scale, failures):
    """One Hessian on the steps of ``scale``: (H, E, bad, nfev, steps, sigma, free)."""
    n = x.shape[0]
    if adaptive:
        h0 = 2.0 ** np.round(np.log2(ADAPTIVE_START * scale))
    elif nz.steps is not None:
        h0 = nz.steps
    elif step is None and rel_step is None:
        h0 = base_steps(x, scheme("central", 2, deriv=2), None, None, typical=scale)
    else:
        h0 = base_steps(x, scheme("central", 2, deriv=2), step, rel_step)
    h0, sigma, free = _fit(x, h0, box)
    pts = PointSet(n)
    F = ok = None
    nfev = 0
    if adaptive:
        H, E, bad, nfev, steps = _adaptive(sim, x, h0, sigma, free, scale, pts, ev, failures)
        return H, E, bad, nfev, steps, sigma, free
    # the wide diagonal nodes are for smooth f: with noise= the plain scheme and its noise term
    wide = _fits_wide(x, h0, box) if step is None and rel_step is None and nz.steps is None \
        else None
    level = _Level(pts, x, h0, sigma, free, wide)
    level.scale = scale
    F, ok, nfev, eps = _evaluate(sim, pts, 0, ev, F, ok, failures, nfev)
    if eps > 1.5 * EPS and step is None and rel_step is None and nz.steps is None:
        # float32 outputs: the steps were planned for float64 values; once more, longer
        h0 = base_steps(x, scheme("central", 2, deriv=2), None, None, eps=eps, typical=scale)
        h0, sigma, free = _fit(x, h0, box)
        pts = PointSet(n)
        level = _Level(pts, x, h0, sigma, free, _fits_wide(x, h0, box))
        level.scale = scale
        F, ok, nfev, _ = _evaluate(sim, pts, 0, ev, None, None, failures, nfev)
    level.eps = eps
    if np.iscomplexobj(F):  # a complex-valued f: its real and imaginary parts
        Hr, Er, bad = _default_estimate(level, F.real.copy(), ok, scale)
        Hi, Ei, _ = _default_estimate(level, F.imag.copy(), ok, scale)
        H, E = Hr + 1j * Hi, Er + Ei
    else:
        H, E, bad = _default_estimate(level, F, ok, scale)
    E = E if nz.level is None else E + hessian_noise_error(nz.level, h0)
    H[bad] = E[bad] = np.nan
    return H, E, bad, nfev, h0, sigma, free


def _fits_wide(x: np.ndarray, h: np.ndarray, box) -> np.ndarray:
    """Which coordinates have room for x_j ± 2h_j inside the box."""
    if box is None:
        return np.ones(x.shape[0], dtype=bool)
    lo, hi = box
    return (x - 2 * h >= lo) & (x + 2 * h <= hi)


def _default_estimate(level: _Level, F: np.ndarray, ok: np.ndarray, scale: np.ndarray):
    """H, its error estimate and the failed entries of the default scheme.

    Diagonal entries with the wide nodes x_j ± 2h_j take the five-point second difference
    (order 4), whose error is estimated as ``plan.py`` estimates any stencil with an embedded
    lower-order one: the three-point difference on the inner nodes differs from it by
    h_j²·|f_jjjj|/12, a measured fourth derivative (the quartic terms a model of |H_jj| misses:
    on Rosenbrock, H_00 = 22 is small by cancellation while f_0000 = 2400). The measured
    |f_jjjj| also bounds the cross entries' truncation: |f_iiij|, |f_ijjj| taken at least
    ``CROSS4``·√(|f_iiii|·|f_jjjj|). Costs 2 evaluations per coordinate more: 2n² + 2n + 1."""
    H, R, bad = level.assemble(F, ok)
    E = R + _truncation(H, F, level, scale)
    if not level.wide:
        return H, E, bad
    from .plan import _embedded_nominal, _estimate

    st = scheme("central", 4, deriv=2)
    order = list(st.offsets)
    low, low_order, low_coef = _embedded_nominal(st)
    f4 = np.zeros(level.n)
    for j, (m2, p2) in level.wide.items():
        m1, c0, p1 = level.diag[j]
        rows = {-2.0: m2, -1.0: m1, 0.0: c0, 1.0: p1, 2.0: p2}
        idx = [rows[float(t)] for t in order]
        if not ok[idx].all() or bad[j, j]:
            continue
        Fr = F[idx][None, :, None]
        D, Ej = _estimate(Fr - Fr[:, :1], st.weights[None], np.array([[level.h[j]]]),
                          np.array([[scale[j]]]), 2, st.order, st.error_coef, low[None],
                          low_order, low_coef, level.eps, mag=Fr)
        f4[j] = abs(float(D[0, 0]) - H[j, j]) * 12 / level.h[j] ** 2
        H[j, j] = float(D[0, 0])
        E[j, j] = max(float(Ej[0, 0]), R[j, j])
    h = level.h
    for (i, j) in level.cross:
        t = CROSS4 * (h[i] ** 2 + h[j] ** 2) / 6 * np.sqrt(f4[i] * f4[j])
        E[i, j] = E[j, i] = max(E[i, j], R[i, j] + t)
    return H, E, bad


#: Share of √(|f_iiii|·|f_jjjj|) (measured on the diagonal's wide nodes) that bounds the
#: fourth derivatives of a cross entry: at 1 the median overestimate of the cross entries
#: was 14× on the test zoo; at 0.1 it stays under 10× with the coverage unchanged.
CROSS4 = 0.1


def _adaptive(sim, x, h0, sigma, free, scale, pts, ev, failures):
    """The Richardson search of step="adaptive" (see the module docstring)."""
    n = x.shape[0]
    levels = []
    F = ok = None
    nfev = 0
    done = 0
    best_prev = np.inf
    Hs, Rs, bads = [], [], []
    eps = EPS
    for k in range(MAX_LEVELS):
        levels.append(_Level(pts, x, h0 / 2.0**k, sigma, free))
        levels[-1].scale = scale
        if k < 2:
            continue  # the first batch holds three levels
        F, ok, nfev, eps_k = _evaluate(sim, pts, done, ev, F, ok, failures, nfev)
        done = len(F)
        eps = max(eps, eps_k)
        for lv in levels[len(Hs):]:
            lv.eps = eps
            H, R, bad = lv.assemble(F, ok)
            Hs.append(H), Rs.append(R), bads.append(bad)
        Hb, Eb, badb, kb = _richardson(Hs, Rs, bads, sigma)
        with np.errstate(invalid="ignore"):
            worst = float(np.max(np.where(np.isfinite(Eb), Eb / np.maximum(np.abs(Hb), 1e-300), 0.0)))
        if worst > best_prev / 2:
            break
        best_prev = worst
        # Another level only if some entry's best extrapolant uses the finest level and is
        # still dominated by truncation (a smaller step would help it).
        if not np.any(kb == len(Hs) - 1):
            break
    steps = h0 / 2.0 ** np.max(kb) if np.size(kb) else h0
    return Hb, Eb, badb, nfev, np.broadcast_to(steps, (n,)).copy()


def _richardson(Hs, Rs, bads, sigma):
    """Per entry the extrapolant with the least |T[k][q] − T[k][q−1]| + rounding."""
    K = len(Hs)
    n = Hs[0].shape[0]
    shifted = (sigma[:, None] != 0) | (sigma[None, :] != 0)
    best_H = np.full((n, n), np.nan, dtype=Hs[0].dtype)
    best_E = np.full((n, n), np.inf)
    best_k = np.zeros((n, n), dtype=int)
    for powers in (2, 1):
        mask = ~shifted if powers == 2 else shifted
        if not mask.any():
            continue
        T = {}
        W = {}
        for k in range(K):
            T[k, 0], W[k, 0] = Hs[k], np.eye(K)[k]
            for q in range(1, k + 1):
                c = 2.0 ** (powers * q) - 1
                T[k, q] = T[k, q - 1] + (T[k, q - 1] - T[k - 1, q - 1]) / c
                W[k, q] = W[k, q - 1] + (W[k, q - 1] - W[k - 1, q - 1]) / c
                rnd = ADAPTIVE_ROUNDING * np.sqrt(sum((W[k, q][l] * Rs[l]) ** 2 for l in range(K)))
                dq = np.abs(T[k, q] - T[k, q - 1])
                E = dq + rnd
                take = mask & (E < best_E)
                best_H[take], best_E[take], best_k[take] = T[k, q][take], E[take], k
    bad = np.any(bads, axis=0)
    best_H[bad] = best_E[bad] = np.nan
    return best_H, best_E, bad, best_k
