"""Planning the points of a derivative, and assembling it from their values.

Both halves are pure numpy and never call a simulator:

* ``plan_partials`` / ``plan_direction`` build every point a call needs as one array (k, n),
  duplicates removed, in a deterministic order, plus one ``Term`` per derivative entry saying
  which rows enter it with which weights.
* ``assemble`` combines the returned values F (k, m) into the derivative D (r, m) and its error
  estimate, and repairs entries whose points failed (``on_failure="skip"``).

Error estimate of an entry (rounding plus truncation), ``info.error``:

* rounding: ε·Σ_i |w_i|·max(|F_i|, |f^(d)|·s^d) / h^d, the values' relative rounding
  ε = 2^-52 amplified by the weights (the noise term of Moré & Wild, "Estimating computational
  noise", SIAM J. Sci. Comput. 33 (2011), with the noise level taken as ε·|f|); the floor
  |f^(d)|·s^d stands for the size of the parts f is computed from where its value is small
  (a polynomial near a root, a sum whose terms cancel);
* truncation, when the stencil embeds a lower-order one on a subset of its nodes (five-point
  embeds central, one-sided order 2 embeds forward): the two estimates differ by the lower
  one's error |C_lo|·h^p_lo·|f^(p_lo+d)|, which measures that derivative; it is carried up to
  f^(p+d) by the growth it shows against f^(d) itself, read as that of a pole or branch point
  at distance L, |f^(k)| ∝ k!/L^k (the nearest singularity sets the growth of the Taylor
  coefficients of a function analytic in a disc, and the factorials are what geometric growth
  g = (|f^(p_lo+d)|/|f^(d)|)^(1/p_lo) misses: 20/6 ≈ 3.3× more for five-point, which sqrt and
  log near 0 need), with g never below 1/s (s = max(1, |x_j|)), giving
  3.5·|D − D_lo|·|C/C_lo|·(h·g)^(p−p_lo)·G, G = (p+d)!/(p_lo+d)! / ((p_lo+d)!/d!)^((p−p_lo)/p_lo)
  (Richardson's principle: the difference of two orders estimates the error);
* truncation, without an embedded stencil (central on ±h, forward on 0, h):
  the points carry no second estimate, so a model: |f^(p+d)| ≈ |f^(d)| / L^p, where
  L = min(s, (max|F| / |f^(d)|)^(1/d)) is the length over which f changes by its own size
  (1 for exp(x) at any x, x for log x or x^k, 1/a for exp(a·x)), at least 4h, and s where
  f changes sign among the nodes (a root inside the stencil makes |F| small; it says
  nothing of the length); the term is
  7·|C|·h^p·|f^(d)| / L^p;
* the complex step has no subtraction: 4ε·|D| + h²/6·max(|f|, |D|·s)/s³ (Squire & Trapp 1998).

The factors 3.5 and 7 were calibrated on a zoo of functions (exp, sin, cos, log, sqrt,
rationals, polynomials, exp(10x), values scaled by 1e±8, |x| up to 1e6, and sums like those
of ``benchmarks/problems.py``): the estimate bounds the true error in ≥ 95 % of entries for
every method (central 98 %, forward and backward 97 %, five-point 98 %, complex 100 %) while
its median overestimate stays below 10× (6× five-point, 9× two-point);
``tests/test_error_estimates.py`` keeps that true. On 600 random functions
(A·exp(bx), A·sin(dx + e) with d up to 8, A·log x with x up to 1e6, quartics, A/(a² + x²),
exp(sin(x/s)) with s up to 1e5) the two-point coverage is 93-94 % (five-point 98-99 %,
adaptive 99-100 %): the two-point error depends on f^(3) or f^(2), which two points cannot
measure, and a function that varies on a scale much shorter than L at x (sin(dx) between its
crests) escapes the model. Use step="adaptive", whose estimate is measured, not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from .errors import ArgumentError
from .stencils import Stencil, fornberg_weights
from .steps import EPS, Placement, place, realize

__all__ = ["Term", "Plan", "PointSet", "plan_partials", "plan_direction", "assemble"]


class PointSet:
    """Rows of a batch, deduplicated by their exact bytes, in insertion order."""

    def __init__(self, n: int, dtype=float) -> None:
        self.n = n
        self.dtype = np.dtype(dtype)
        self._rows: list[np.ndarray] = []
        self._index: dict[bytes, int] = {}

    def add(self, p: np.ndarray) -> int:
        p = np.asarray(p, dtype=self.dtype)
        key = p.tobytes()
        i = self._index.get(key)
        if i is None:
            i = len(self._rows)
            self._index[key] = i
            self._rows.append(p.copy())
        return i

    def find(self, p: np.ndarray) -> int | None:
        return self._index.get(np.asarray(p, dtype=self.dtype).tobytes())

    def array(self) -> np.ndarray:
        if not self._rows:
            return np.empty((0, self.n), dtype=self.dtype)
        return np.array(self._rows)


@dataclass
class Term:
    """One derivative entry: Σ weights[i]·F[rows[i]] / h^deriv."""

    rows: np.ndarray
    offsets: np.ndarray  # realized offsets, in units of h
    weights: np.ndarray
    h: float
    deriv: int
    order: int
    error_coef: float
    kind: str  # "central", "forward", "backward", "complex", "fixed", or "... (fallback)"
    scale: float
    low_weights: np.ndarray | None = None  # an embedded lower-order stencil on the same rows
    low_order: int = 0
    low_coef: float = 0.0
    note: str = ""


@dataclass
class Plan:
    """Everything a derivative call evaluates and how it combines the values."""

    x: np.ndarray
    points: np.ndarray
    terms: list
    placements: list = field(default_factory=list)
    complex_step: bool = False
    center: int | None = None  # the row holding x itself, if planned
    doubt: np.ndarray | None = None  # set by ``assemble``: entries ``upgrade`` should widen

    @property
    def steps(self) -> np.ndarray:
        return np.array([t.h for t in self.terms])


def _weights_for(st: Stencil, real: np.ndarray) -> np.ndarray:
    if np.array_equal(real, np.asarray(st.offsets)):
        return st.weights
    return fornberg_weights(list(real), st.deriv)


def _embedded(st: Stencil, real: np.ndarray) -> tuple[np.ndarray | None, int, float]:
    """Weights (zero-padded to the stencil's nodes) of the lower-order stencil left after
    dropping the outermost node(s), with its order and truncation coefficient."""
    t = np.asarray(st.offsets)
    keep = np.abs(t) < np.abs(t).max()  # central: both ends; one-sided: the far end
    if keep.sum() < st.deriv + 1:
        return None, 0, 0.0
    from .stencils import stencil as make_stencil

    sub = tuple(int(v) if float(v).is_integer() else v for v in t[keep])
    try:
        low = make_stencil(sub, st.deriv, "embedded")
    except Exception:  # noqa: BLE001 - no lower-order stencil on these nodes
        return None, 0, 0.0
    if low.order >= st.order or len(low.offsets) < st.deriv + 1:
        return None, 0, 0.0
    w = np.zeros(len(t))
    wl = fornberg_weights(list(real[keep]), st.deriv) if not np.array_equal(real, t) else None
    if wl is None:
        full = dict(zip(low.offsets, low.weights))
        for i, ti in enumerate(t):
            w[i] = full.get(float(ti), 0.0)
    else:
        w[np.flatnonzero(keep)] = wl
    return w, low.order, low.error_coef


@lru_cache(maxsize=64)
def _embedded_nominal(st: Stencil) -> tuple[np.ndarray | None, int, float]:
    """``_embedded`` on the stencil's own nodes (the usual case), computed once per stencil."""
    return _embedded(st, np.asarray(st.offsets, dtype=float))


def _stencil_term(points: PointSet, x: np.ndarray, direction: np.ndarray, pl: Placement,
                  scale: float, xj: float, j: int | None = None) -> Term:
    st = pl.stencil
    real_t = tuple(((xj + t * pl.h) - xj) / pl.h for t in st.offsets)
    nominal = real_t == st.offsets
    real = np.array(real_t)
    if not nominal and len(np.unique(real)) < len(real):
        where = f"x[{j}] = {xj!r}" if j is not None else "x"
        raise ArgumentError(
            f"step: {pl.h!r} is below the spacing of floats at {where}, so the stencil's points "
            f"coincide; allowed: a step of at least {np.spacing(abs(xj)) * 4:.3g} there "
            "(or step=None for the scaled optimal step)"
        )
    rows = np.array([points.add(x + (t * pl.h) * direction) for t in real_t], dtype=int)
    low_w, low_p, low_c = _embedded_nominal(st) if nominal else _embedded(st, real)
    return Term(
        rows=rows,
        offsets=real,
        weights=st.weights if nominal else _weights_for(st, real),
        h=pl.h,
        deriv=st.deriv,
        order=st.order,
        error_coef=st.error_coef,
        kind=pl.kind + (" (shrunk to fit bounds)" if pl.shrunk else ""),
        scale=scale,
        low_weights=low_w,
        low_order=low_p,
        low_coef=low_c,
    )


def _fixed_term() -> Term:
    return Term(np.zeros(0, dtype=int), np.zeros(0), np.zeros(0), 0.0, 1, 0, 0.0, "fixed", 1.0,
                note="lower == upper: the coordinate is fixed, its derivative is 0")


def plan_partials(x: np.ndarray, st: Stencil | None, h: np.ndarray,
                  bounds: tuple[np.ndarray, np.ndarray] | None) -> Plan:
    """Points and terms of every partial derivative ∂f/∂x_j, j = 0..n-1.

    ``st`` None means the complex step Im f(x + i·h·e_j)/h.
    """
    n = x.shape[0]
    lo, hi = bounds if bounds is not None else (np.full(n, -np.inf), np.full(n, np.inf))
    scale = np.maximum(1.0, np.abs(x))
    if st is None:
        pts = PointSet(n, complex)
        terms = []
        for j in range(n):
            if lo[j] == hi[j]:
                terms.append(_fixed_term())
                continue
            e = np.zeros(n, dtype=complex)
            e[j] = 1j * h[j]
            r = pts.add(x + e)
            terms.append(Term(np.array([r]), np.array([1.0]), np.array([1.0]), float(h[j]), 1, 2,
                              1.0 / 6.0, "complex", float(scale[j])))
        return Plan(x, pts.array(), terms, complex_step=True)
    placements = []
    for j in range(n):
        hj = realize(x[j], float(h[j]))
        pl = place(st, float(x[j]), hj, float(lo[j]), float(hi[j]))
        if pl.shrunk:
            pl = replace(pl, h=realize(x[j], pl.h, -1.0 if pl.kind == "backward" else 1.0))
        if pl.stencil is not None and bounds is not None:
            # a stencil that just fits (x + 2h == upper) can round a node past the bound too
            pl = _keep_inside(pl, float(x[j]), float(lo[j]), float(hi[j]))
        placements.append(pl)
    pts = PointSet(n)
    center = pts.add(x) if any(p.stencil is not None and 0.0 in p.stencil.offsets for p in placements) else None
    terms = []
    for j, pl in enumerate(placements):
        if pl.stencil is None:
            terms.append(_fixed_term())
            continue
        e = np.zeros(n)
        e[j] = 1.0
        terms.append(_stencil_term(pts, x, e, pl, float(scale[j]), float(x[j]), j))
    return Plan(x, pts.array(), terms, placements, center=center)


def _keep_inside(pl: Placement, xj: float, lo: float, hi: float) -> Placement:
    # Realizing a shrunk step can round a node past the bound by an ulp of x_j; step h back
    # by that spacing until every node, computed as _stencil_term computes it, lies inside.
    h = pl.h
    for _ in range(16):
        nodes = [xj + (((xj + t * h) - xj) / h) * h for t in pl.stencil.offsets]
        if min(nodes) >= lo and max(nodes) <= hi:
            break
        tmax = max(abs(t) for t in pl.stencil.offsets)
        h = h - max(np.spacing(max(abs(v) for v in nodes)), np.spacing(h)) / tmax
    return replace(pl, h=h)


def direction_range(x: np.ndarray, u: np.ndarray,
                    bounds: tuple[np.ndarray, np.ndarray] | None) -> tuple[float, float]:
    """The interval [t_lo, t_hi] of t for which x + t·u stays inside the bounds."""
    if bounds is None:
        return -np.inf, np.inf
    lo, hi = bounds
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.where(u > 0, (hi - x) / u, np.where(u < 0, (lo - x) / u, np.inf))
        dn = np.where(u > 0, (x - lo) / u, np.where(u < 0, (x - hi) / u, np.inf))
    return -float(np.min(dn)), float(np.min(up))


def plan_direction(x: np.ndarray, u: np.ndarray, st: Stencil | None, h: float,
                   bounds: tuple[np.ndarray, np.ndarray] | None, scale: float) -> Plan:
    """Points and the one term of the directional derivative along the unit vector u."""
    n = x.shape[0]
    if st is None:
        pts = PointSet(n, complex)
        r = pts.add(x + 1j * h * u)
        term = Term(np.array([r]), np.array([1.0]), np.array([1.0]), h, 1, 2, 1.0 / 6.0,
                    "complex", scale)
        return Plan(x, pts.array(), [term], complex_step=True)
    t_lo, t_hi = direction_range(x, u, bounds)
    pl = place(st, 0.0, h, t_lo, t_hi)
    if pl.stencil is None:
        return Plan(x, np.empty((0, n)), [_fixed_term()], [pl])
    pts = PointSet(n)
    center = pts.add(x) if 0.0 in pl.stencil.offsets else None
    term = _stencil_term(pts, x, u, pl, scale, 0.0)
    return Plan(x, pts.array(), [term], [pl], center=center)


#: Calibration of the truncation models (see ``error_estimate``); fitted on the zoo of
#: ``tests/test_error_estimates.py`` for coverage ≥ 95 % at the least median overestimate.
MODEL_FACTOR = 7.0
EMBEDDED_FACTOR = 3.5
ROUND_FACTOR = 1.0
#: The shortest length scale a model will assume, in units of the step.
MIN_LENGTH = 4.0
ROUND_RSS = False


def _pole_growth(d: int, p_lo: int, p: int) -> float:
    """How much faster f^(p+d) grows past f^(p_lo+d) for f^(k) ∝ k!/L^k (a pole or branch
    point at distance L) than for geometric growth with the same f^(p_lo+d)/f^(d)."""
    from math import factorial

    ratio = factorial(p_lo + d) / factorial(d)
    return factorial(p + d) / factorial(p_lo + d) / ratio ** ((p - p_lo) / p_lo)


def _length(D: np.ndarray, Fr: np.ndarray, s, h, d: int, doubt: list | None = None,
            at_root: str = "scale") -> np.ndarray:
    """The length L over which f changes by its own size: min(s, (max|F| / |f^(d)|)^(1/d)),
    at least MIN_LENGTH·h (shorter scales cannot be told apart from noise by the stencil).
    Fr is (q, m) for one term or (r, q, m) for r terms (then s and h are (r, 1)).

    Where f changes sign among the nodes, |F| is small because of a root (or a pole) inside
    the stencil, not because f varies fast, so the values say nothing of the length: sin at 0
    and (t − 1)³ at 1 give the same two values ±a at ±h, yet the second one's central
    difference is pure truncation. There L is taken as h itself (the error may be as large as
    the estimate) with ``at_root="step"``, and the entries are appended to ``doubt`` (a list,
    when given), so that the caller can add the nodes that tell the two apart (``upgrade``).
    ``at_root="scale"`` (the Hessian's rule, whose stencil holds f(x)) takes L = s there."""
    big = np.max(np.abs(Fr), axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ell = np.where(np.abs(D) > 0, (big / np.abs(D)) ** (1.0 / d), np.inf)
    root = np.any(Fr <= 0, axis=-2) & np.any(Fr >= 0, axis=-2) & (ell < s)
    if doubt is not None:
        doubt.append(root)
    return np.where(root, h if at_root == "step" else s, np.clip(ell, MIN_LENGTH * h, s))


#: A one-sided two-point entry with |f'|·s below this share of |f| is taken for a critical
#: point (its value is then mostly truncation) and widened.
FLAT = 1e-4

#: Safety factor of the truncation measured through f(x) (``_curvature_model``), and the
#: share of the plain model kept beside it (calibrated on tests/test_error_estimates.py's zoo
#: and benchmarks/accuracy.py: coverage held, median overestimate back under 10×).
CURVATURE_FACTOR = 2.0
MODEL_SHARE_WITH_CURVATURE = 0.5


def _curvature_model(D, Fv, center, h, s, order, coef, eps):
    """Truncation of a two-point central difference from its nodes and f(x) itself.

    The three values give the second derivative f2 = (F+ − 2f(x) + F−)/h², measured; the
    third is carried from it with the growth per order it shows against the first,
    g = f2/|f'| (at least 1/s, at most 1/(MIN_LENGTH·h)): |f3| ≈ f2·g. Where f' is small by
    cancellation (a Lennard-Jones force, −13.9 + 12.3 at r = 1.1) the model |f'|/L² of
    ``_estimate`` misses the size of the higher derivatives by 1000×, while f2 shows it. A
    second difference below its own rounding (4ε·max|F|/h²) counts as 0."""
    Fc = center[:, None, :]
    f2 = np.abs(Fv[:, 0:1, :] + Fv[:, 1:2, :] - 2 * Fc)[:, 0, :] / h**2
    noise = 4 * eps * np.maximum(np.max(np.abs(Fv), axis=1), np.abs(center)) / h**2
    f2 = np.where(f2 > 4 * noise, f2, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(np.abs(D) > 0, f2 / np.abs(D), np.inf)
        # near a critical point (f' changes by more than itself within a few steps) the ratio
        # f2/|f'| measures the closeness of the zero of f', not the growth of the derivatives:
        # there the growth is read off f itself, (f2/max|F|)^(1/2) (cos at 1e-6: 1, not 1e6)
        # (f taken at least as large as its curvature makes it over an eighth of its scale:
        # at a minimum f itself may be ~0, Rosenbrock near (1, 1))
        big = np.maximum(np.maximum(np.max(np.abs(Fv), axis=1), np.abs(center)), f2 * s**2 / 8)
        g0 = np.where(big > 0, np.sqrt(f2 / big), np.inf)
    g = np.where(np.abs(D) < MIN_LENGTH * f2 * h, g0, g)
    g = np.minimum(np.maximum(g, 1.0 / s), 1.0 / (MIN_LENGTH * h))
    trunc = CURVATURE_FACTOR * abs(coef) * h**order * f2 * g
    # the one-sided slopes on either side differ by f2·h; for an f smooth on the scale of 4h
    # that is at most |f'|/4. More, with both slopes of one sign (no critical point between),
    # is a kink or a jump inside the stencil (relu at 5e-5 with h = 1e-4: slopes 2 and 1,
    # central 1.5): the stencil cannot say which slope holds at x, so the error is half their gap
    dp = (Fv[:, 1, :] - center) / h
    dm = (center - Fv[:, 0, :]) / h
    gap = np.abs(dp - dm)
    kink = (gap > 0.25 * np.abs(D)) & (dp * dm > 0) & (f2 > 0)
    return np.where(kink, np.maximum(trunc, 0.5 * gap), trunc)


def _term_estimate(term: Term, Fr: np.ndarray, weights: np.ndarray, order: int, coef: float,
                   low: np.ndarray | None, low_order: int, low_coef: float, eps: float = EPS,
                   doubt: list | None = None, mag: np.ndarray | None = None):
    """D and its error estimate: rounding + truncation (see ``error_estimate``)."""
    D, E = _estimate(Fr[None], weights[None], np.array([[term.h]]), np.array([[term.scale]]),
                     term.deriv, order, coef, None if low is None else low[None], low_order, low_coef,
                     eps, doubt, None if mag is None else mag[None])
    return D[0], E[0]


def _estimate(Fr: np.ndarray, weights: np.ndarray, h: np.ndarray, s: np.ndarray, d: int,
              order: int, coef: float, low: np.ndarray | None, low_order: int, low_coef: float,
              eps: float = EPS, doubt: list | None = None, mag: np.ndarray | None = None,
              center: np.ndarray | None = None):
    """``_term_estimate`` for r terms of one stencil shape at once: Fr (r, q, m), weights and
    low (r, q), h and s (r, 1); returns D and E of shape (r, m). ``eps`` is the unit roundoff
    of f's outputs (2^-23 for float32). ``mag`` holds the raw values when Fr was centred
    (``_centred``): rounding and length scales are those of the values themselves."""
    hd = h**d
    D = np.einsum("rq,rqm->rm", weights, Fr) / hd
    Fv = Fr if mag is None else mag
    # Values carry noise at least ε·|f^(d)|·s^d: f varies by about that over its scale, so it
    # is computed from parts of that size even where its own value is small.
    floor = np.abs(D) * s**d
    mag = np.maximum(np.abs(Fv), floor[:, None, :])
    if ROUND_RSS:
        rounding = ROUND_FACTOR * eps * np.sqrt(np.einsum("rq,rqm->rm", weights**2, mag**2)) / hd
    else:
        rounding = ROUND_FACTOR * eps * np.einsum("rq,rqm->rm", np.abs(weights), mag) / hd
    if low is not None and low_coef != 0:
        # The embedded estimate measures |f^(p_lo+d)|; carry it to f^(p+d) with the growth per
        # order it shows against f^(d) itself (geometric growth), but never less than 1/s.
        D_lo = np.einsum("rq,rqm->rm", low, Fr) / hd
        diff = np.abs(D - D_lo)
        a_lo = diff / (abs(low_coef) * h**low_order)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(np.abs(D) > 0, (a_lo / np.abs(D)) ** (1.0 / low_order), 0.0)
        g = np.minimum(np.maximum(g, 1.0 / s), 1.0 / (MIN_LENGTH * h))
        trunc = EMBEDDED_FACTOR * diff * abs(coef / low_coef) * (h * g) ** (order - low_order)
        trunc = trunc * _pole_growth(d, low_order, order)
    else:
        # No second estimate on these points: the model |f^(p+d)| ≈ |f^(d)| / L^p with the
        # length L of ``_length``.
        L = _length(D, Fv, s, h, d, doubt, at_root="step")
        trunc = MODEL_FACTOR * abs(coef) * h**order * np.abs(D) / L**order
        if center is not None and d == 1 and Fv.shape[1] == 2:
            # the measured curvature carries the estimate: the model keeps a share as a floor
            trunc = np.maximum(MODEL_SHARE_WITH_CURVATURE * trunc,
                               _curvature_model(D, Fv, center, h, s, order, coef, eps))
    return D, rounding + trunc


def assemble(plan: Plan, F: np.ndarray, ok: np.ndarray | None = None, eps: float = EPS):
    """The derivative entries D (r, m), their error estimates (r, m), and the entries lost.

    Rows of F where ``ok`` is False are failed evaluations: an entry that used one is rebuilt
    from its surviving rows (plus f(x) when planned) with Fornberg weights of the same step,
    a lower-order but valid estimate; with fewer than deriv + 1 survivors it is NaN.

    A complex-valued f (complex F without the complex step) is differentiated as two real
    functions: D = D(Re f) + i·D(Im f), and the error bound is the sum of the two parts'.
    ``eps`` is the unit roundoff of the outputs (``Batch.eps``). Afterwards ``plan.doubt`` (r,)
    marks the two-point entries whose estimate could not be checked (a root or pole inside
    the stencil, see ``_length``), for ``upgrade``.
    """
    ok = np.ones(len(F), dtype=bool) if ok is None else ok
    if np.iscomplexobj(F) and not plan.complex_step:
        Dr, Er, lost = _assemble_real(plan, np.ascontiguousarray(F.real), ok, eps)
        doubt = plan.doubt
        Di, Ei, _ = _assemble_real(plan, np.ascontiguousarray(F.imag), ok, eps)
        plan.doubt = doubt | plan.doubt
        return Dr + 1j * Di, Er + Ei, lost
    return _assemble_real(plan, F, ok, eps)


def _assemble_real(plan: Plan, F: np.ndarray, ok: np.ndarray, eps: float):
    m = F.shape[1]
    r = len(plan.terms)
    D = np.zeros((r, m))
    E = np.zeros((r, m))
    doubt = np.zeros(r, dtype=bool)
    lost: list[dict] = []
    Fre = F.imag if plan.complex_step else F
    done = np.zeros(r, dtype=bool)
    if not plan.complex_step:
        c = plan.center if plan.center is not None and ok[plan.center] else None
        _assemble_groups(plan.terms, Fre, ok, D, E, done, eps, doubt, c)
    for i, term in enumerate(plan.terms):
        if done[i]:
            continue
        if term.kind == "fixed":
            continue
        if plan.complex_step:
            row = term.rows[0]
            if not ok[row]:
                D[i] = E[i] = np.nan
                lost.append({"entry": i, "reason": "its only (complex-step) point failed"})
                continue
            D[i] = Fre[row] / term.h
            M = np.maximum(np.abs(F[row].real), np.abs(D[i]) * term.scale)
            E[i] = 4 * eps * np.abs(D[i]) + term.h**2 / 6.0 * M / term.scale**3
            continue
        good = ok[term.rows]
        if good.all():
            dl: list = []
            D[i], E[i] = _term_estimate(term, _centred(Fre[term.rows]), term.weights, term.order,
                                        term.error_coef, term.low_weights, term.low_order,
                                        term.low_coef, eps, dl, mag=Fre[term.rows])
            doubt[i] = bool(np.any(dl)) if dl else False
            continue
        rows, offs = list(term.rows[good]), list(term.offsets[good])
        if 0.0 not in offs and plan.center is not None and ok[plan.center]:
            rows.append(plan.center)
            offs.append(0.0)
        if len(rows) < term.deriv + 1:
            D[i] = E[i] = np.nan
            lost.append({"entry": i, "reason": f"{int((~good).sum())} of its {len(good)} points failed "
                         "and too few survive for any stencil"})
            continue
        w = fornberg_weights(offs, term.deriv)
        order = len(offs) - term.deriv
        coef = float(np.sum(w * np.asarray(offs) ** (order + term.deriv))) / float(
            np.prod(np.arange(1, order + term.deriv + 1)))
        Fr = Fre[np.asarray(rows)]
        D[i], E[i] = _term_estimate(term, _centred(Fr), w, order, coef or 1.0, None, 0, 0.0, eps,
                                    mag=Fr)
        term.kind = term.kind.split(" ")[0] + " (fallback: points failed)"
        lost.append({"entry": i, "reason": f"{int((~good).sum())} point(s) failed; rebuilt from "
                     f"offsets {sorted(offs)} (order {order})", "recovered": True})
    plan.doubt = doubt
    return D, E, lost


def _centred(Fr: np.ndarray) -> np.ndarray:
    """The values minus the first node's: the weights of a derivative sum to 0, so D is
    unchanged, but equal values (an output that does not depend on x_j) cancel exactly and
    give an exact 0, and the differences of nearby values are exact (Sterbenz)."""
    return Fr - Fr[..., :1, :]


def _assemble_groups(terms: list, Fre: np.ndarray, ok: np.ndarray, D, E, done, eps: float = EPS,
                     doubt: np.ndarray | None = None, center: int | None = None) -> None:
    """Entries whose points all succeeded, grouped by stencil shape and estimated together
    (the same arithmetic as ``_term_estimate``, without a Python loop per entry)."""
    groups: dict = {}
    for i, t in enumerate(terms):
        if t.kind == "fixed" or not ok[t.rows].all():
            continue
        key = (len(t.rows), t.deriv, t.order, t.error_coef, t.low_weights is None, t.low_order,
               t.low_coef)
        groups.setdefault(key, []).append(i)
    for (q, d, order, coef, no_low, low_order, low_coef), idx in groups.items():
        ts = [terms[i] for i in idx]
        rows = np.array([t.rows for t in ts])
        W = np.array([t.weights for t in ts])
        low = None if no_low else np.array([t.low_weights for t in ts])
        h = np.array([[t.h] for t in ts])
        s = np.array([[t.scale] for t in ts])
        Fr = Fre[rows]
        dl: list = []
        Fc = None
        if center is not None and q == 2 and d == 1 and no_low and \
                all(t.offsets[0] == -t.offsets[1] for t in ts):
            Fc = np.broadcast_to(Fre[center], (len(idx), Fre.shape[1]))
        D[idx], E[idx] = _estimate(_centred(Fr), W, h, s, d, order, coef, low, low_order, low_coef,
                                   eps, dl, mag=Fr, center=Fc)
        if doubt is not None and dl:
            doubt[idx] = np.any(dl[0], axis=-1)
        if doubt is not None and q == 2 and d == 1 and no_low and \
                all(min(t.offsets) >= 0 or max(t.offsets) <= 0 for t in ts):
            # a one-sided difference near a critical point (f' ≈ 0) is its own truncation,
            # h·f''/2, and its model scales with |f'|: widened like a root (``refine.py``)
            # (an output that does not move at all, D exactly 0, is no critical point: it does
            # not depend on this input)
            flat = (np.abs(D[idx]) * s < FLAT * np.max(np.abs(Fr), axis=1)) & (D[idx] != 0)
            doubt[idx] |= np.any(flat, axis=-1)
        done[idx] = True


def needs_center(plan: Plan, ok: np.ndarray) -> bool:
    """True when a failed entry could be rebuilt if f(x) were evaluated (and it was not planned)."""
    if plan.complex_step or plan.center is not None:
        return False
    for term in plan.terms:
        if term.kind != "fixed" and not ok[term.rows].all() and ok[term.rows].sum() < term.deriv + 1:
            return True
    return False
