"""The usual derivative call, without the general path's per-entry objects (issue 15).

``refine.run_partials`` is general: any stencil, bounds, failed points, second looks, noise,
one ``Term`` object per entry. Most calls need none of that: the default steps, no bounds,
every point returns a finite float64, no entry doubtful. For the two-point stencils (central
±h with f(x), forward 0, h, backward 0, −h), along the coordinates (``two_point``: gradient,
jacobian, derivative) or along one direction (``direction``: jvp), this module does what the
general path does in that case:

* the points: x first (the general ``PointSet`` order), then x + t·h_j·e_j for each j and each
  offset t of the stencil, with h_j realized as ``steps.realize`` does;
* one Evaluator batch, failures collected (``refine._Collect``);
* D and E in the same floating-point operations as ``plan._estimate`` (so the same bits): on
  Python floats entry by entry up to SCALAR_ENTRIES entries, on whole arrays beyond;
* the tests that would make the general path do more: a failed or non-finite point, float32
  (or complex) outputs, an entry ``plan`` doubts (a root inside the stencil, a critical point
  under a one-sided difference), an input below its step scale (``refine.SMALL_X``), a step
  grown past ``refine.LARGE_X`` whose values turn over (aliasing), values that could be
  printed or single precision, or central midpoints that spread like noise
  (``noise.detect_noise``). These may fire where the general path would not act (they are
  cheaper supersets), never the reverse;
* the warning's test (``refine.warn_unresolved``), with its reference sizes
  (``refine._variation``) computed only when an entry may need naming.

When a test fires, the call goes on in the general path, handed the batch already evaluated
(``run_partials(pre=...)``: no evaluation is repeated, nfev counts each run once). So the lane
changes the cost of a call, never its result: ``tests/test_lean.py`` checks D, E, nfev, the
steps and the warnings bit for bit against the general path, for both kernels, on random
functions, points and scales, including those that must be handed on.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .fastpath import surely_unprinted
from .noise import CURVATURE_MARGIN, MAX_PRINTED_DIGITS, SLOPE_SHARE
from .plan import (CURVATURE_FACTOR, FLAT, MIN_LENGTH, MODEL_FACTOR, MODEL_SHARE_WITH_CURVATURE,
                   ROUND_FACTOR)
from .refine import LARGE_X, SMALL_X, UNRESOLVED, _Collect
from .steps import EPS

__all__ = ["two_point", "direction", "Done", "ENABLED"]

#: Switch for the tests (False: every call takes ``refine.run_partials``).
ENABLED = True

_OFFSETS = {(-1, 1): "central", (0, 1): "forward", (0, -1): "backward"}


class Done:
    """The lane's result: D, E (r, m), nfev, the realized steps, the entries' kind, the
    warning's notes ({"ref": ...}), whether some entry needs naming in it, whether f returned
    scalars, the batch's points and values, and what the looks named in ``two_point``'s
    ``report`` found (``flags``: {"doubt": (r,) bool, "turn": (r,) bool, "noise": bool,
    "quantized": bool})."""

    __slots__ = ("D", "E", "nfev", "steps", "kind", "notes", "named", "scalar", "points", "flags",
                 "values")

    def __init__(self, D, E, nfev, steps, kind, notes, named, scalar, points, flags=None,
                 values=None):
        self.D, self.E, self.nfev, self.steps, self.kind = D, E, nfev, steps, kind
        self.notes, self.named, self.scalar, self.points = notes, named, scalar, points
        self.flags, self.values = flags, values


def two_point(sim: Any, x: np.ndarray, st: Any, h: np.ndarray, s: np.ndarray, ev: Any,
              skip: frozenset = frozenset(), report: frozenset = frozenset()):
    """The default-step partials of f at x with the two-point stencil ``st``.

    Returns a ``Done``; or ``(X, batch)`` when the general path must go on from the batch
    evaluated here; or None when the case is not this lane's (nothing evaluated).

    ``skip`` names hand-over tests a caller does without, because it weighs their concern
    itself (the optimizers): "noise", the central midpoints' noise test (``_spread``; near a
    minimum where f is ~0 the midpoints spread by h²f''/2 against a tiny f, and the general
    path's one-level test reads that curvature as noise); "flat", the one-sided critical-point
    test (|f'|·s below FLAT·|f|, where the general path measures f'' on the other side), for a
    caller that bounds a one-sided entry's error by h·|f''|/2 from a curvature of its own;
    "small_x", the second estimate on the scale of an input below its step (an optimizer
    closing in on x_j = 0 meets one at every step).

    ``report`` names looks whose finding is returned in ``Done.flags`` instead of handing on.
    "root" (a root or pole inside an entry's stencil: the values say nothing of f's length
    scale, and the model takes L = s_j) and "flat" (the critical-point test above) mark the
    entries whose two values cannot bound their truncation in ``flags["doubt"]``: their error
    must come from elsewhere (a curvature of the caller's, or f'' it measures). "turn": a
    central pair at a step grown past LARGE_X whose values turn over (aliasing, or a minimum
    inside the stencil: a caller with a curvature of its own can tell), in ``flags["turn"]``.
    "noise": the midpoint test (skipped as for ``skip``), its outcome in ``flags["noise"]``
    for a caller that weighs the spread itself. "quantized": values that could be printed or
    single precision (``_quantized``), in ``flags["quantized"]``, for a caller that settles it
    with a probe of its own (exact arithmetic on short inputs, such as f at x = 0 with
    power-of-two steps, gives such values too)."""
    kind = _OFFSETS.get(tuple(st.offsets)) if st.deriv == 1 else None
    if kind is None or not ENABLED:
        return None
    n = x.shape[0]
    T = st.offsets
    Tm = [t for t in T if t != 0]
    if n <= 16:  # the same tests on floats (up to n = 16 cheaper than the array operations)
        hs = []
        for xj, hj in zip(x.tolist(), h.tolist()):
            if (xj == 0 and math.copysign(1.0, xj) < 0) or not abs(xj) < 1e300:
                return None
            r = abs((xj + hj) - xj)  # steps.realize
            r = r if r > 0 else hj
            if not r > 0:
                return None
            for t in Tm:  # (t = 0 gives 0 for every finite x_j ≠ −0.0, tested above)
                if ((xj + t * r) - xj) / r != t:
                    return None
            hs.append(r)
        hr = np.array(hs)
    else:
        if (np.signbit(x) & (x == 0)).any() or not np.abs(x).max() < 1e300:
            return None  # −0.0 inputs (x + 0·h·e_j is another point than x), or near overflow
        hr = np.abs((x + h) - x)  # steps.realize
        hr = np.where(hr > 0, hr, h)
        real = ((x[:, None] + np.asarray(T, dtype=float) * hr[:, None]) - x[:, None]) / hr[:, None]
        if not ((hr > 0).all() and (real == T).all()):
            return None  # realized offsets differ from the stencil's: Fornberg weights, the general path
    # the rows as plan._stencil_term forms them, x + (t·h)·e_j (x_k + 0 = x_k elsewhere), after x
    q = len(Tm)
    P = np.repeat(x[None, :], 1 + n * q, axis=0)
    P.reshape(-1)[_diagonal(n, q)] = (x[:, None] + np.array(Tm) * hr[:, None]).reshape(-1)
    return _finish(sim, P, ev, x, np.abs(x), n, q, kind, st, hr, s, skip, report)


_DIAGONALS: dict = {}


def _diagonal(n: int, q: int) -> np.ndarray:
    """Flat indices, in P (1 + n·q, n), of entry j of row 1 + j·q + k (j < n, k < q)."""
    key = (n, q)
    idx = _DIAGONALS.get(key)
    if idx is None:
        j = np.repeat(np.arange(n), q)
        rows = 1 + np.arange(n * q)
        idx = _DIAGONALS[key] = rows * n + j
        if len(_DIAGONALS) > 256:
            _DIAGONALS.clear()
            _DIAGONALS[key] = idx
    return idx


def direction(sim: Any, x: np.ndarray, u: np.ndarray, st: Any, h: float, s_t: float, ev: Any):
    """The derivative along u (one entry) at the step h, as ``two_point`` (``refine.run_partials``
    with ``partial=False``: the nodes x + (t·h)·u after x, no input-scale second looks)."""
    kind = _OFFSETS.get(tuple(st.offsets)) if st.deriv == 1 else None
    if kind is None or not ENABLED or not (h > 0 and math.isfinite(h)):
        return None
    T = st.offsets
    if any(((0.0 + t * h) - 0.0) / h != t for t in T) or not np.abs(x).max() < 1e300:
        return None
    if 0 in T and (np.signbit(x) & (x == 0)).any():
        return None  # x + 0·u is another point than x at −0.0 inputs
    moving = [t for t in T if t != 0]
    P = np.empty((1 + len(moving), x.shape[0]))
    P[0] = x
    for k, t in enumerate(moving):
        P[1 + k] = x + (t * h) * u
    if (P[1:] == x).all(axis=1).any() or (len(moving) == 2 and (P[1] == P[2]).all()):
        return None  # a node rounds onto another: the general PointSet would merge them
    return _finish(sim, P, ev, None, None, 1, len(moving), kind, st, np.array([h]), np.array([s_t]))


def _finish(sim, P, ev, x, ax, n, q, kind, st, hr, s, skip=frozenset(), report=frozenset()):
    """Evaluate the rows P (one batch) and assemble, or hand on (see ``two_point``)."""
    quantize = getattr(sim, "quantize", None)
    if quantize is not None:
        Q = quantize(P)
        if Q is not P and not np.array_equal(np.asarray(Q, dtype=float), P):
            return None  # the program reads other points (simulator.written_plan)
    with _Collect(ev):
        batch = ev.evaluate(sim, P)
    F = batch.values
    if not batch.ok.all() or batch.eps > 1.5 * EPS or F.dtype.kind != "f":
        return P, batch
    with np.errstate(all="ignore"):
        flags = dict.fromkeys(report, False)  # the looks to report, not hand on for
        if n * F.shape[1] <= SCALAR_ENTRIES:
            out = _assemble_scalar(x, ax, F, n, q, kind, st, hr, s, skip, flags)
        else:
            out = _assemble(x, ax, F, n, q, kind, st, hr, s, skip, flags)
    if out is None:
        return P, batch
    D, E, ref, named = out
    return Done(D, E, batch.nfev, hr, kind, {"ref": ref} if ref is not None else None, named,
                batch.scalar, P, flags, F)


def _assemble(x, ax, F, n, q, kind, st, hr, s, skip=frozenset(), flags=None):
    """D, E and the warning's reference sizes (n, m) with whether some entry may need naming,
    or None where the general path must go on; x and ax None for a direction (no input scales
    to look at).

    D and E are the general path's, in the same floating-point operations:

    * ``plan._estimate`` (d = 1, no embedded stencil, ε = 2^-52): D = Σ w·(F − F₁)/h over the
      values centred on the first node; rounding ε·Σ|w|·max(|F|, |D|·s)/h; truncation
      7·|C|·h^p·|D|/L^p, L = clip(max|F|/|D|, 4h, s); for central, the larger of half that and
      ``plan._curvature_model`` (the measured second difference (F₊ + F₋ − 2f(x))/h², carried
      one order up by the growth it shows, or half the gap of a kink's slopes);
    * ``refine._variation``: max(max|F − F₁|, 64ε·max|F|)/span over the nodes and f(x).

    The tests that send the call on may fire where the general path would not act (never the
    reverse), which costs time, not results: a sign change among the nodes or a product that
    underflows (``plan._length``'s root), |f'|·s below FLAT·max|F| one-sided (a critical
    point), 0 < |x_j| < SMALL_X·h_j (``refine``'s small input), values that turn over inside a
    step grown past LARGE_X (aliasing), and any value or derivative that is not finite.
    """
    if not np.isfinite(F).all():
        return None
    flags = {} if flags is None else flags
    m = F.shape[1]
    F0 = F[0]
    Fn = F[1:].reshape(n, q, m)
    h, sc = hr[:, None], s[:, None]
    w0, w1 = float(st.weights[0]), float(st.weights[1])
    if kind == "central":
        Fa, Fb = Fn[:, 0], Fn[:, 1]  # x − h, x + h
    else:
        Fa, Fb = np.broadcast_to(F0, (n, m)), Fn[:, 0]  # x, x ± h
    c1 = Fb - Fa
    D = (w0 * (Fa - Fa) + w1 * c1) / h  # einsum over the centred values
    A = np.abs(D)
    floor = A * sc
    aa, ab = np.abs(Fa), np.abs(Fb)
    big = np.maximum(aa, ab)
    ell = big / A  # inf (or nan) where D = 0: the model then has no length to use
    if not np.isfinite(D).all():
        return None
    doubt = (Fa * Fb <= 0) & (ell < sc)
    if doubt.any():
        if "root" not in flags:
            return None  # a root or pole inside a stencil: widened (refine.py)
        ell = np.where(doubt, sc, ell)  # reported: the values tell no length, L = s
    if "flat" not in skip and kind != "central":
        flat = (floor < FLAT * big) & (D != 0)
        if flat.any():
            if "flat" not in flags:
                return None  # a one-sided difference at a critical point: widened
            doubt = doubt | flat
    if doubt.any():
        flags["doubt"] = doubt.any(axis=1)
    if x is not None and "small_x" not in skip and ((ax < SMALL_X * hr) & (x != 0)).any():
        return None  # an input below its step scale: estimated on its own scale too
    rounding = ROUND_FACTOR * EPS * (abs(w0) * np.maximum(aa, floor) + abs(w1) * np.maximum(ab, floor)) / h
    p = st.order
    hp = h**p
    ell = np.where(A > 0, ell ** 1.0, np.inf)
    trunc = MODEL_FACTOR * abs(st.error_coef) * hp * A / np.clip(ell, MIN_LENGTH * h, sc)**p
    if kind == "central":
        bigc = np.maximum(big, np.abs(F0))
        h2 = h**2
        f2 = np.abs(Fa + Fb - 2 * F0) / h2
        f2 = np.where(f2 > 4 * (4 * EPS * bigc / h2), f2, 0.0)
        g = np.where(A > 0, f2 / A, np.inf)
        bigf = np.maximum(bigc, f2 * sc**2 / 8)
        g0 = np.where(bigf > 0, np.sqrt(f2 / bigf), np.inf)
        g = np.where(A < MIN_LENGTH * f2 * h, g0, g)
        g = np.minimum(np.maximum(g, 1.0 / sc), 1.0 / (MIN_LENGTH * h))
        curv = CURVATURE_FACTOR * abs(st.error_coef) * hp * f2 * g
        dp = (Fb - F0) / h
        dm = (F0 - Fa) / h
        gap = np.abs(dp - dm)
        kink = (gap > 0.25 * A) & (dp * dm > 0) & (f2 > 0)
        curv = np.where(kink, np.maximum(curv, 0.5 * gap), curv)
        trunc = np.maximum(MODEL_SHARE_WITH_CURVATURE * trunc, curv)
        if x is not None and s.max() > LARGE_X:
            turn = (s[:, None] > LARGE_X) & (np.abs(Fb + Fa - 2 * F0) > 4 * np.abs(Fb - Fa))
            if turn.any():
                if "turn" not in flags:
                    return None  # the values turn over inside a long step: aliasing checked there
                flags["turn"] = turn.any(axis=1)
    if _quantized(F):
        if "quantized" not in flags:
            return None
        flags["quantized"] = True
    if kind == "central" and n >= 3 and ("noise" not in skip or "noise" in flags):
        if _spread(0.5 * (Fb + Fa), A, hr, sc):
            if "noise" not in flags:
                return None
            flags["noise"] = True
    E = rounding + trunc
    # refine.warn_unresolved names an entry with E > UNRESOLVED·r, r ≥ max(|D|, its output's
    # largest |D|, ref): with r = |D| the test can only name more, so none named here is none
    # named there (and then ref is not needed)
    named = bool((E > UNRESOLVED * A).any())
    ref = _reference(F, n, q, kind, hr) if named or x is None else None
    return D, E, ref, named


def _reference(F, n, q, kind, hr):
    """``refine._variation``: max(max|F − F₁|, 64ε·max|F|)/span over each entry's nodes and
    f(x) (the size against which ``warn_unresolved`` calls an entry resolved)."""
    F0 = F[0]
    Fn = F[1:].reshape(n, q, F.shape[1])
    h = hr[:, None]
    if kind == "central":
        Fa, Fb = Fn[:, 0], Fn[:, 1]
        moved = np.maximum(np.abs(Fb - Fa), np.abs(F0 - Fa))
        big = np.maximum(np.maximum(np.abs(Fa), np.abs(Fb)), np.abs(F0))
        return np.maximum(moved, 64 * EPS * big) / (2.0 * h)
    Fb = Fn[:, 0]
    return np.maximum(np.abs(Fb - F0), 64 * EPS * np.maximum(np.abs(F0), np.abs(Fb))) / h


def _quantized(F) -> bool:
    """True unless no output can be printed (``fastpath.surely_unprinted``) or single precision
    (every value a float32): ``noise.detect_noise``'s first tests."""
    F1 = F[0]
    if (F1.astype(np.float32) == F1).any() and (F.astype(np.float32) == F).all(axis=0).any():
        return True
    # printed with at most MAX_PRINTED_DIGITS significant digits (``noise.decimal_quantum``'s
    # count) exactly when that many digits give the value back
    fmt = f".{MAX_PRINTED_DIGITS}g"
    for i, v in enumerate(F1.tolist()):
        if v != 0 and float(format(v, fmt)) != v:
            continue
        # f(x) prints short (an integer f at x0, or 0): the output is unprinted when some
        # other value is long (``fastpath.surely_unprinted``'s rule, read on floats)
        nonzero = False
        for u in F[1:, i].tolist():
            if u != 0 and math.isfinite(u):
                if float(format(u, fmt)) != u:
                    break
                nonzero = True
        else:
            if nonzero or v != 0:
                return not surely_unprinted(F)
    return False


def _spread(P, A, hr, s) -> bool:
    """True unless the central midpoints P_j = (f(x + h_j e_j) + f(x − h_j e_j))/2 (n ≥ 3) surely
    stay within the allowance of ``noise.detect_noise``'s random-noise test. Their standard
    deviation over any subset is at most their range; the allowance is at least 400ε·max|P|
    plus the least curvature term 100·h_j²·(max|P|/s_j² + |D_j|/s_j), which every kept subset
    holds or exceeds. A range below half that settles it; otherwise the test itself is taken,
    with a margin (near its bar the general path decides)."""
    big = np.abs(P).max(axis=0)
    curv = CURVATURE_MARGIN[0] * hr[:, None]**2 * (big / s**2 + A / s)
    if not (P.max(axis=0) - P.min(axis=0) > 0.5 * (400 * EPS * big + curv.min(axis=0))).any():
        return False
    slope = (hr[:, None] * A).max(axis=0)
    least = np.where(curv > 0, curv, np.inf).min(axis=0)
    keep = curv <= 10 * np.where(np.isfinite(least), least, 0.0)
    for i in np.flatnonzero(keep.sum(axis=0) < 3):  # the three least, as detect_noise takes them
        keep[:, i] = False
        keep[np.argsort(curv[:, i])[:3], i] = True
    cnt = keep.sum(axis=0)
    mean = np.where(keep, P, 0.0).sum(axis=0) / cnt
    spread = np.sqrt(np.where(keep, (P - mean) ** 2, 0.0).sum(axis=0) / (cnt - 1))
    allowed = 400 * EPS * big + np.where(keep, curv, 0.0).max(axis=0) + SLOPE_SHARE * slope
    return bool(np.any((spread > allowed * (1 - 1e-6)) & (slope > 0)))


#: Up to this many entries (inputs × outputs) the estimate runs per entry on Python floats
#: (``_assemble_scalar``): a few microseconds an entry against the ~100 array operations of
#: ``_assemble``, whose cost does not grow with the entries.
SCALAR_ENTRIES = 32


def _assemble_scalar(x, ax, F, n, q, kind, st, hr, s, skip=frozenset(), flags=None):
    """``_assemble`` entry by entry on Python floats: the same IEEE operations in the same
    order (numpy's h**2 is h·h, its clip min(max(·)), its where a branch), so the same bits,
    and the same hand-over tests."""
    flags = {} if flags is None else flags
    if kind != "central" and F.shape[1] == 1:
        return _one_sided_scalar(x, F, n, st, hr, s, skip, flags)
    rows = F.tolist()
    F0s = rows[0]
    m = len(F0s)
    hs, ss = hr.tolist(), s.tolist()
    xs = None if x is None else x.tolist()
    small_x = xs is not None and "small_x" not in skip
    w0, w1 = float(st.weights[0]), float(st.weights[1])
    aw0, aw1 = abs(w0), abs(w1)
    central = kind == "central"
    flat = not central and "flat" not in skip
    p = st.order
    coef = abs(st.error_coef)
    model = MODEL_FACTOR * coef
    curvc = CURVATURE_FACTOR * coef
    inf = math.inf
    isfinite = math.isfinite
    roots, flats, turns = "root" in flags, "flat" in flags, "turn" in flags
    doubted, turned = [], []
    D, E = [], []
    named = False
    for j in range(n):
        h, s_ = hs[j], ss[j]
        if small_x and abs(xs[j]) < SMALL_X * h and xs[j] != 0:
            return None  # an input below its step scale
        ra = rows[1 + j * q]
        rb = rows[2 + j * q] if central else ra
        hp = h * h if p == 2 else h
        Dj, Ej = [], []
        for i in range(m):
            F0 = F0s[i]
            if central:
                Fa, Fb = ra[i], rb[i]
            else:
                Fa, Fb = F0, ra[i]
            if not (isfinite(Fa) and isfinite(Fb) and isfinite(F0)):
                return None
            core = _entry(Fa, Fb, h, hp, s_, w0, w1, aw0, aw1, model, p, flat, roots, flats)
            if core is None:
                return None
            d, a, big, rounding, trunc, doubt = core
            if doubt:
                doubted.append(j)
            if central:
                a0 = abs(F0)
                bigc = big if big >= a0 else a0
                h2 = h * h
                f2 = abs(Fa + Fb - 2 * F0) / h2
                if not f2 > 4 * (4 * EPS * bigc / h2):
                    f2 = 0.0
                g = f2 / a if a > 0 else inf
                t = f2 * (s_ * s_) / 8
                bigf = bigc if bigc >= t else t
                g0 = math.sqrt(f2 / bigf) if bigf > 0 else inf
                if a < MIN_LENGTH * f2 * h:
                    g = g0
                lo_g, hi_g = 1.0 / s_, 1.0 / (MIN_LENGTH * h)
                g = g if g >= lo_g else lo_g
                g = g if g <= hi_g else hi_g
                curv = curvc * hp * f2 * g
                dp = (Fb - F0) / h
                dm = (F0 - Fa) / h
                gap = abs(dp - dm)
                if gap > 0.25 * a and dp * dm > 0 and f2 > 0:
                    half = 0.5 * gap
                    curv = curv if curv >= half else half
                share = MODEL_SHARE_WITH_CURVATURE * trunc
                trunc = share if share >= curv else curv
                if xs is not None and s_ > LARGE_X and abs(Fb + Fa - 2 * F0) > 4 * abs(Fb - Fa):
                    if not turns:
                        return None  # aliasing
                    turned.append(j)
            e = rounding + trunc
            named = named or e > UNRESOLVED * a
            Dj.append(d)
            Ej.append(e)
        D.append(Dj)
        E.append(Ej)
    if _quantized(F):
        if "quantized" not in flags:
            return None
        flags["quantized"] = True
    if doubted:
        flags["doubt"] = np.isin(np.arange(n), doubted)
    if turned:
        flags["turn"] = np.isin(np.arange(n), turned)
    if ("noise" not in skip or "noise" in flags) and central and n >= 3:
        # the range test of ``_spread`` on floats first; the arrays only when it cannot settle
        K = CURVATURE_MARGIN[0]
        for i in range(m):
            mids = [0.5 * (rows[2 + j * q][i] + rows[1 + j * q][i]) for j in range(n)]
            big = max(abs(v) for v in mids)
            least = min(K * hs[j] * hs[j] * (big / (ss[j] * ss[j]) + abs(D[j][i]) / ss[j])
                        for j in range(n))
            if max(mids) - min(mids) > 0.5 * (400 * EPS * big + least) * (1 - 1e-12):
                Fn = F[1:].reshape(n, q, m)
                if _spread(0.5 * (Fn[:, 1] + Fn[:, 0]), np.abs(np.array(D)), hr, s[:, None]):
                    if "noise" not in flags:
                        return None
                    flags["noise"] = True
                break
    D, E = np.array(D), np.array(E)
    ref = None
    if named or x is None:  # the warning's reference sizes (as ``_assemble``)
        ref = _reference(F, n, q, kind, hr)
    return D, E, ref, named


def _one_sided_scalar(x, F, n, st, hr, s, skip, flags):
    """``_assemble_scalar`` for a one-sided stencil and one output (an optimizer's forward
    gradient): the same operations on the same floats without the loop over outputs, the
    centre's value read once."""
    col = F[:, 0].tolist()
    F0 = col[0]
    if not math.isfinite(F0):
        return None
    hs, ss = hr.tolist(), s.tolist()
    xs = x.tolist() if x is not None and "small_x" not in skip else None
    flat = "flat" not in skip
    w0, w1 = float(st.weights[0]), float(st.weights[1])
    aw0, aw1 = abs(w0), abs(w1)
    p = st.order
    model = MODEL_FACTOR * abs(st.error_coef)
    isfinite = math.isfinite
    roots, flats = "root" in flags, "flat" in flags
    doubted = []
    D, E = [], []
    named = False
    for j in range(n):
        h, s_ = hs[j], ss[j]
        if xs is not None and abs(xs[j]) < SMALL_X * h and xs[j] != 0:
            return None  # an input below its step scale
        Fb = col[1 + j]
        if not isfinite(Fb):
            return None
        core = _entry(F0, Fb, h, h * h if p == 2 else h, s_, w0, w1, aw0, aw1, model, p, flat,
                      roots, flats)
        if core is None:
            return None
        d, a, _, rounding, trunc, doubt = core
        if doubt:
            doubted.append(j)
        e = rounding + trunc
        named = named or e > UNRESOLVED * a
        D.append(d)
        E.append(e)
    if _quantized(F):
        if "quantized" not in flags:
            return None
        flags["quantized"] = True
    if doubted:
        flags["doubt"] = np.isin(np.arange(n), doubted)
    ref = _reference(F, n, 1, "forward", hr) if named or x is None else None
    return np.array(D).reshape(n, 1), np.array(E).reshape(n, 1), ref, named


def _entry(Fa, Fb, h, hp, s_, w0, w1, aw0, aw1, model, p, flat, roots=False, flats=False):
    """One entry of the two-point estimate on floats (``_assemble``'s operations, in order):
    (d, |d|, max(|Fa|, |Fb|), rounding, truncation, doubt) or None where the general path
    goes on: a root or pole inside the stencil (unless ``roots``: then L = s), or with
    ``flat`` a one-sided difference at a critical point (unless ``flats``); ``doubt`` says
    whether an entry kept was either.
    Fa is the first node's value (x − h for central, f(x) one-sided), Fb the last."""
    d = (w0 * (Fa - Fa) + w1 * (Fb - Fa)) / h
    a = abs(d)
    floor = a * s_
    aa, ab = abs(Fa), abs(Fb)
    big = aa if aa >= ab else ab
    if not math.isfinite(d):
        return None
    root = Fa * Fb <= 0 and a > 0 and big / a < s_
    if root and not roots:
        return None  # a root or pole inside the stencil
    critical = flat and floor < FLAT * big and d != 0
    if critical and not flats:
        return None  # one-sided at a critical point
    rounding = ROUND_FACTOR * EPS * (aw0 * (aa if aa >= floor else floor)
                                     + aw1 * (ab if ab >= floor else floor)) / h
    ell = big / a if a > 0 else math.inf
    lo = MIN_LENGTH * h
    L = ell if ell > lo else lo
    L = L if L < s_ and not root else s_  # clip: min(max(ell, 4h), s); at a root s
    return d, a, big, rounding, model * hp * a / (L * L if p == 2 else L), root or critical
