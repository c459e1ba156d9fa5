"""Whole-array versions of the per-entry bookkeeping of a derivative call (issue 15).

Every function here computes exactly what the per-entry Python loop it replaces computes,
bit for bit (the same floating-point operations in the same order, only applied to all the
entries of one stencil shape at once), or selects the entries that loop would visit, as a
superset, so that the loop itself decides as before. The rule each one keeps is stated in
its docstring, with the function whose result it must equal.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["center_estimates", "surely_unprinted", "look_candidates", "variation"]


def _first_word(kind: str) -> str:
    return kind.split(" ")[0]


def center_estimates(terms: list, active: list, Fre: np.ndarray, good: np.ndarray):
    """``noise._center_estimate`` for every term in ``active``, grouped by nodes.

    Terms of one kind whose offsets are equal share the positions of their symmetric pairs and
    the extrapolation weights, so the midpoints m(k·a) = (f(x + k·a·h) + f(x − k·a·h))/2 and
    the Lagrange sums Σ w_l·m_l are formed for the whole group with one indexing (the same
    additions in the same order as the scalar code, starting from 0). Returns the lists
    (est, info, lows) that ``detect_noise`` builds, in the order of ``active``: info rows are
    (k, a·h, 2L, scale, ‖w‖₂). Terms the grouping does not cover (a single term of its shape,
    a pair that failed) go through ``_center_estimate`` itself.
    """
    from .noise import _center_estimate

    groups: dict = {}
    for k in active:
        t = terms[k]
        if _first_word(t.kind) != "central" or len(t.rows) < 2:
            continue
        offs = np.asarray(t.offsets, dtype=float)
        groups.setdefault((len(offs), offs.tobytes()), []).append(k)
    out: dict = {}
    for (q, key), ks in groups.items():
        if len(ks) < 2:
            continue
        lay = _pair_layout(key)
        if lay is None:
            continue
        a, pairs, w, wl_, nw = lay
        R = np.array([terms[k].rows for k in ks], dtype=int)  # (g, q)
        rp = R[:, [p for p, _ in pairs]]
        rm = R[:, [m_ for _, m_ in pairs]]
        if not (good[rp].all() and good[rm].all()):
            continue  # the scalar code stops at a failed pair, term by term
        mids = [0.5 * (Fre[rp[:, l]] + Fre[rm[:, l]]) for l in range(len(pairs))]  # (g, m) each
        est = 0
        for wl, ml in zip(w, mids):
            est = est + wl * ml
        low = None
        if len(mids) >= 2:
            low = 0
            for c, ml in zip(wl_, mids[:-1]):
                low = low + c * ml
        for g, k in enumerate(ks):
            out[k] = (est[g], a * terms[k].h, 2 * len(mids), nw,
                      None if low is None else low[g])
    est_l, info, lows = [], [], []
    for k in active:
        c = out.get(k)
        if c is None:
            c = _center_estimate(terms[k], Fre, good)
        if c is not None:
            est_l.append(c[0])
            info.append((k, c[1], c[2], terms[k].scale, c[3]))
            lows.append(c[4])
    return est_l, info, lows


@lru_cache(maxsize=256)
def _pair_layout(key: bytes):
    """What ``noise._center_estimate`` derives from a central term's offsets alone (given as
    the bytes of a float64 array): the smallest positive offset a, the node indices of the
    pairs ±k·a, k = 1..L (L ≤ 3, consecutive), the Lagrange weights w of the extrapolation to
    0 in (k·a)², those of one level less, and ‖w‖₂; None without a pair."""
    offs = np.frombuffer(key, dtype=float)
    pos = offs[offs > 0]
    if not pos.size:
        return None
    a = float(np.min(pos))
    pairs = []
    for kk in (1, 2, 3):
        v = kk * a
        ip = np.flatnonzero(np.isclose(offs, v, rtol=1e-9, atol=0))
        im = np.flatnonzero(np.isclose(offs, -v, rtol=1e-9, atol=0))
        if not len(ip) or not len(im):
            break
        pairs.append((int(ip[0]), int(im[0])))
    if not pairs:
        return None
    u = np.array([(kk + 1.0) ** 2 for kk in range(len(pairs))])
    w = np.array([np.prod([(0 - u[i]) / (u[l] - u[i]) for i in range(len(u)) if i != l])
                  for l in range(len(u))])
    wl_ = None
    if len(pairs) >= 2:
        ul = u[:-1]
        wl_ = [np.prod([(0 - ul[i]) / (ul[l] - ul[i]) for i in range(len(ul)) if i != l])
               for l in range(len(ul))]
    return a, tuple(pairs), w, wl_, float(np.linalg.norm(w))


#: ``noise.MAX_PRINTED_DIGITS`` (kept equal by ``surely_unprinted``'s import).
_TRIES = 3


def surely_unprinted(F: np.ndarray) -> bool:
    """True when no output of F (q, m) can be taken for printed or flat-printed by
    ``noise._quantized_outputs`` (both its modes are then all False): every output either has
    no finite nonzero value (then it is never "printed") or has a value whose shortest
    round-trip decimal (repr) needs more than MAX_PRINTED_DIGITS significant digits (then it
    fails "every value has few digits"). Looks at the first few finite nonzero values of each
    output only; False (undecided) sends the caller to the full test."""
    from .noise import MAX_PRINTED_DIGITS, decimal_quantum

    F = np.asarray(F, dtype=float)
    if F.ndim != 2:
        return False
    fin = np.isfinite(F) & (F != 0)
    for i in range(F.shape[1]):
        idx = np.flatnonzero(fin[:, i])
        if not idx.size:
            continue
        _, dg = decimal_quantum(F[idx[:_TRIES], i])
        if not np.any(dg > MAX_PRINTED_DIGITS):
            return False
    return True


def look_candidates(terms: list, D: np.ndarray, E: np.ndarray, doubt: np.ndarray, rnd: int,
                    hx: np.ndarray | None, origin: np.ndarray, scale: np.ndarray,
                    fallback_ok: float, small_x: float, large_x: float) -> np.ndarray:
    """The entries ``refine.run_partials``'s second-look loop must visit in round ``rnd`` (a
    superset of those it acts on; the loop's own tests decide): not fixed, and failed (a
    non-finite entry, or a fallback rebuild with E > fallback_ok·|D|), or in round 0 possibly
    a small input (x_j ≠ 0 and its own-scale step below h/small_x), a step grown past
    large_x unit steps (aliasing check), or doubted by ``assemble``."""
    r = len(terms)
    fixed = np.fromiter((t.kind == "fixed" for t in terms), dtype=bool, count=r)
    fb = np.fromiter(("fallback" in t.kind for t in terms), dtype=bool, count=r)
    with np.errstate(invalid="ignore"):
        failed = ~np.all(np.isfinite(D), axis=1)
        if fb.any():
            failed |= fb & np.any(E > fallback_ok * np.abs(D), axis=1)
    mask = failed
    if rnd == 0:
        mask = mask | np.asarray(doubt, dtype=bool)
        if hx is not None:
            hs = np.fromiter((t.h for t in terms), dtype=float, count=r)
            with np.errstate(invalid="ignore"):
                mask = mask | ((origin != 0) & (hx < hs / small_x)) | (scale > large_x)
    return np.flatnonzero(mask & ~fixed)


def variation(terms: list, F: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """``refine._variation`` (r, m), max|F_i − F_0| / span per entry, with the entries of one
    node count formed together (the same operations per entry)."""
    r, m = len(terms), F.shape[1]
    out = np.zeros((r, m))
    groups: dict = {}
    for i, t in enumerate(terms):
        if t.kind == "fixed" or len(t.rows) < 2:
            continue
        groups.setdefault(len(t.rows), []).append(i)
    for q, idx in groups.items():
        R = np.array([terms[i].rows for i in idx], dtype=int)
        keep = ok[R].all(axis=1)
        if not keep.any():
            continue
        idx = np.asarray(idx)[keep]
        R = R[keep]
        O = np.array([terms[i].offsets for i in idx], dtype=float)
        hs = np.array([terms[i].h for i in idx], dtype=float)
        span = np.ptp(O, axis=1) * hs
        pos = span > 0
        if not pos.any():
            continue
        Fr = F[R[pos]]  # (g, q, m)
        out[idx[pos]] = np.max(np.abs(Fr - Fr[:, :1]), axis=1) / span[pos][:, None]
    return out


def partial_terms(axes: Any, pts: Any, st: Any, h: np.ndarray) -> list | None:
    """``[axes.term(pts, i, st, h[i], True) for i in range(r)]`` for the usual case, built with
    whole arrays: no bounds (every lo_r = −∞, hi_r = +∞), finite origins and steps, and every
    entry's realized offsets ((x_j + t·h) − x_j)/h equal to the stencil's own (the nominal
    weights). The steps are realized as ``steps.realize`` does, the points are
    x + (t·h)·u_r as ``plan._stencil_term`` forms them, added to ``pts`` in the same order
    (f(x) first when the stencil holds 0), so the rows, terms and batch are the same. Returns
    None (and adds nothing) when the case does not apply; the caller then takes the loop."""
    from .plan import Term, _embedded_nominal

    lo, hi, o = np.asarray(axes.lo), np.asarray(axes.hi), np.asarray(axes.origin, dtype=float)
    r = len(o)
    if r == 0 or not (np.all(lo == -np.inf) and np.all(hi == np.inf)):
        return None
    h = np.asarray(h, dtype=float)
    if h.shape != (r,) or not (np.all(np.isfinite(o)) and np.all(np.isfinite(h))):
        return None
    tmin, tmax = st.width
    kind = "central" if tmin < 0 < tmax else ("forward" if tmin >= 0 else "backward")
    T = np.asarray(st.offsets, dtype=float)
    with np.errstate(all="ignore"):
        hr = np.abs((o + h) - o)
        hr = np.where(hr > 0, hr, h)  # realize
        if not np.all(np.isfinite(hr)) or not np.all(hr > 0):
            return None
        th = T[None, :] * hr[:, None]  # t·h
        real = ((o[:, None] + th) - o[:, None]) / hr[:, None]
    if not np.array_equal(real, np.broadcast_to(T, real.shape)):
        return None  # some entry's offsets are not the stencil's own: the loop handles it
    # also the edge tests of steps.place: the stencil fits inside (-inf, inf)
    if not (np.all(o + tmin * hr >= -np.inf) and np.all(o + tmax * hr <= np.inf)):
        return None
    U = np.asarray(axes.U)
    x = np.asarray(axes.x)
    P = x[None, None, :] + (real * hr[:, None])[:, :, None] * U[:, None, :]  # (r, q, n)
    if 0.0 in st.offsets:
        pts.add(x)
    rows = _add_rows(pts, P.reshape(-1, P.shape[-1])).reshape(r, len(T))
    low_w, low_p, low_c = _embedded_nominal(st)
    scale = axes.scale
    terms = []
    for i in range(r):
        terms.append(Term(rows=rows[i], offsets=real[i].copy(), weights=st.weights, h=float(hr[i]),
                          deriv=st.deriv, order=st.order, error_coef=st.error_coef, kind=kind,
                          scale=float(scale[i]), low_weights=low_w, low_order=low_p, low_coef=low_c))
    return terms


def _add_rows(pts: Any, P: np.ndarray) -> np.ndarray:
    """``[pts.add(p) for p in P]`` as an int array (``plan.PointSet``: deduplicated by exact
    bytes, in insertion order)."""
    P = np.ascontiguousarray(P, dtype=pts.dtype)
    index, store = pts._index, pts._rows
    out = np.empty(len(P), dtype=int)
    for k in range(len(P)):
        p = P[k]
        key = p.tobytes()
        i = index.get(key)
        if i is None:
            i = len(store)
            index[key] = i
            store.append(p.copy())
        out[k] = i
    return out


def active_terms(terms: list, good: np.ndarray) -> list:
    """``[k for k, t in enumerate(terms) if t.kind != "fixed" and not
    t.kind.startswith("complex") and len(t.rows) and good[t.rows].all()]`` (the entries
    ``noise.detect_noise`` reads), with the last test done per node count at once."""
    groups: dict = {}
    for k, t in enumerate(terms):
        if t.kind != "fixed" and not t.kind.startswith("complex") and len(t.rows):
            groups.setdefault(len(t.rows), []).append(k)
    keep = []
    for ks in groups.values():
        R = np.array([terms[k].rows for k in ks], dtype=int)
        sel = good[R].all(axis=1)
        keep.extend(k for k, s_ in zip(ks, sel) if s_)
    return sorted(keep)
