"""Lifting a residual off its root, and the error of central differences taken there.

Why. A residual at its solution changes sign across every central stencil (F(y ± h e_j) ≈
±h·∂F/∂y_j). simdiff reads a sign change inside a two-point stencil as a root of unknown length
scale and settles it with a wider stencil (twice the evaluations). For a residual the root is
known: it is the point itself, where F − F(y, θ) vanishes exactly, so the third point a
two-point stencil lacks is there already.

Lift. The values handed to simdiff's assembly are F − F(y, θ) + K_i, one constant per output
for the whole call, K_i = max(2·max|F_i|, share·max_j |∂F_i/∂z_j|·s_j) estimated from the first
batch (``_core.lift_constant``; share 1/64 for symmetric stencils, 1/4 for one-sided ones).
The derivatives are unchanged and f stays a function (simdiff's checks across its points, such
as noise between central pairs, see one f); no value changes sign, so no widening; simdiff's
model reads a length scale of at least s/64 (hundreds of steps) rather than a root, so its
comparisons between estimates (the second look at small inputs) stay sane; the rounding added,
ε·K, is below the floor simdiff assumes.

Error. simdiff's estimate of a lifted two-point difference models the length scale from the
lifted values (s/64), so the error of a central difference is computed instead from the
unlifted values of its own points (F₀ = 0 at the point): along e with points w + a·e and
w − b·e (a = 1, b ≈ 1, in units of the step),

    D = (b²F₊ − a²F₋) / (ab(a + b)),      S = 2(F₊/a + F₋/b) / (a + b),
    rounding  R = ε·√2·max(|F₊|, |F₋|, |D|·s_e) / (a + b)      (the floor |D|·s_e: F is
              computed from parts of the size its variation over its scale s_e, as in plan.py),
    truncation T = (ab/6)·|S| / L,  L = max(|D|/|S|, MIN_LENGTH)   (third derivative modelled as
              S/L: exact for exponentials, f'''/f'' = f''/f'; L at least MIN_LENGTH steps),

and the error of entry (i, j), j the one column of e that row i touches, is (R + T)/|e_j|.
"""

from __future__ import annotations

import numpy as np

EPS = np.finfo(float).eps
MIN_LENGTH = 4.0


def direction_key(d: np.ndarray) -> tuple | None:
    """The line through the point along displacement d: its nonzero coordinates and their
    ratios (sign-normalized, 9 significant digits), so that ±h, ±2h share it."""
    nz = np.flatnonzero(d)
    if not len(nz):
        return None
    r = d[nz] / d[nz[0]]
    return (tuple(nz.tolist()), tuple(float(f"{v:.9g}") for v in r))


def pair_errors(records, w: np.ndarray, pattern, m: int, N: int):
    """(E (m, N), covered (m, N) bool): the error of the central-difference entries from the
    recorded unlifted batches; ``covered`` False where no ± pair was found."""
    pts, vals = [], []
    for X, V, ok in records:
        if np.iscomplexobj(X) or np.iscomplexobj(V):
            return np.zeros((m, N)), np.zeros((m, N), dtype=bool)
        pts.append(X[ok])
        vals.append(V[ok])
    E = np.zeros((m, N))
    covered = np.zeros((m, N), dtype=bool)
    if not pts:
        return E, covered
    P, F = np.vstack(pts), np.vstack(vals)
    d = P - w[None, :]
    lines: dict = {}
    for k in range(len(P)):
        key = direction_key(d[k])
        if key is not None:
            lines.setdefault(key, []).append(k)
    for (idx, _), ks in lines.items():
        j0 = idx[0]
        plus = [k for k in ks if d[k, j0] > 0]
        minus = [k for k in ks if d[k, j0] < 0]
        if not plus or not minus:
            continue
        kp = min(plus, key=lambda k: abs(d[k, j0]))
        km = min(minus, key=lambda k: abs(d[k, j0]))
        e = d[kp]
        a, b = 1.0, abs(d[km, j0]) / abs(e[j0])
        Fp, Fm = F[kp], F[km]
        D = (b**2 * Fp - a**2 * Fm) / (a * b * (a + b))
        S = 2 * (Fp / a + Fm / b) / (a + b)
        cols = np.array(idx)
        s_e = float(np.max(np.maximum(1.0, np.abs(w[cols])) / np.abs(e[cols])))
        R = EPS * np.sqrt(2.0) * np.maximum(np.maximum(np.abs(Fp), np.abs(Fm)),
                                            np.abs(D) * s_e) / (a + b)
        with np.errstate(divide="ignore", invalid="ignore"):
            L = np.where(S != 0, np.abs(D) / np.abs(S), np.inf)
        T = np.where(S != 0, a * b / 6 * np.abs(S) / np.maximum(L, MIN_LENGTH), 0.0)
        err = R + T
        if len(cols) == 1:
            E[:, cols[0]] = err / abs(e[cols[0]])
            covered[:, cols[0]] = True
            continue
        if pattern is None:
            continue
        for i in range(m):  # a group: the one column of row i in the pattern
            hit = [j for j in cols if pattern[i, j]]
            if len(hit) == 1:
                E[i, hit[0]] = err[i] / abs(e[hit[0]])
                covered[i, hit[0]] = True
            elif not hit:
                covered[i, cols] = True  # row i untouched by the group: its entries are 0
    return E, covered
