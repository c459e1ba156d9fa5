"""A curvature term for the error of central differences of a residual at its root.

simdiff's error model for a central difference without an embedded stencil takes the third
derivative as |f'|/L², L the length over which f changes by its own size; where f changes sign
among the nodes it takes L = s (the step's scale), because a root says nothing of the length.
A residual at its solution always has that root, so a residual that bends on a scale shorter
than s (a diode's exp(v/V_T), V_T = 0.026 V) has its truncation error underestimated.

The points of the central stencil carry the second difference the model lacks. Along each
direction e of the batch (a coordinate, or a group of columns) the pair w ± e and the value at
w (0 for the shifted residual) give, per output row i,

    D_i = (b²(F₊ − F₀) − a²(F₋ − F₀)) / (ab(a + b)),   S_i = 2[(F₊ − F₀)/a + (F₋ − F₀)/b]/(a + b)

(points w + a·e and w − b·e, in units of the step e; a = 1, b ≈ 1),

and the third derivative is modelled as S_i / L_i with L_i = max(|D_i|/|S_i|, MIN_LENGTH) (in
units of the step; exact for exponentials, where f''' / f'' = f'' / f'), so the truncation of
the central difference is (ab/6)·|S_i|/L_i in units of the step, divided by |e_j| to become the
error of entry (i, j), j the one column of the direction that row i touches. The term is
added to ``info.error`` of the partials before the propagation through the solve. Used for
method="central" with the default or given steps (step="adaptive" and five-point carry their
own Richardson estimates; one-sided stencils lack the pair).
"""

from __future__ import annotations

import numpy as np

MIN_LENGTH = 4.0


def central_curvature(records, w: np.ndarray, pattern) -> np.ndarray | None:
    """The extra error (m, N) of the partials from the recorded batches (X, values)."""
    pts, vals = [], []
    for X, V, ok in records:
        if np.iscomplexobj(X):
            return None
        keep = ok & (X.ndim == 2)
        pts.append(X[keep])
        vals.append(np.real(V[keep]))
    if not pts:
        return None
    P, F = np.vstack(pts), np.vstack(vals)
    m, N = F.shape[1], w.shape[0]
    d = P - w[None, :]
    T = np.zeros((m, N))
    nz = d != 0
    keys: dict[tuple, list[int]] = {}
    for k in range(len(P)):
        idx = tuple(np.flatnonzero(nz[k]))
        if idx:
            keys.setdefault(idx, []).append(k)
    rows_of = None if pattern is None else pattern
    for idx, ks in keys.items():
        j0 = idx[0]
        plus = [k for k in ks if d[k, j0] > 0]
        minus = [k for k in ks if d[k, j0] < 0]
        if not plus or not minus:
            continue
        kp = min(plus, key=lambda k: abs(d[k, j0]))
        km = min(minus, key=lambda k: abs(d[k, j0]))
        e = d[kp]
        a = 1.0
        b = abs(d[km, j0]) / abs(e[j0])
        if np.max(np.abs(d[km] + b * e)) > 1e-6 * b * np.max(np.abs(e)):
            continue  # not a pair along one line
        Fp, Fm = F[kp], F[km]  # F₀ = 0: the residual is shifted to its root
        D = (Fp * b**2 - Fm * a**2) / (a * b * (a + b))
        S = 2 * (Fp / a + Fm / b) / (a + b)
        with np.errstate(divide="ignore", invalid="ignore"):
            L = np.where(S != 0, np.abs(D) / np.abs(S), np.inf)
        L = np.maximum(L, MIN_LENGTH)
        trunc = np.where(S != 0, a * b / 6 * np.abs(S) / L, 0.0)
        cols = np.array(idx)
        if len(cols) == 1:
            T[:, cols[0]] += trunc / abs(e[cols[0]])
            continue
        for i in np.flatnonzero(trunc):  # a group: the one column of row i in the pattern
            if rows_of is None:
                continue
            hit = [j for j in cols if rows_of[i, j]]
            if len(hit) == 1:
                T[i, hit[0]] += trunc[i] / abs(e[hit[0]])
    return T
