"""What kind of bug a mismatched derivative likely is, and where it sits.

``diagnose`` compares the analytical array A (m, n) with the numerical one N (m, n) on the entries
the check flagged as mismatched, S, and tries simple explanations in this order:

====================  =========================================================================
kind                  A ≈ T(N) for the transform T
====================  =========================================================================
``sign``              −N, everywhere or on S
``factor``            c·N for one constant c ≠ ±1, everywhere or on S (two entries or more)
``transposed``        Nᵀ (square J), or x or f seen as a p×q array whose derivative is returned
                      in q×p layout
``shifted``           N moved by s ∈ {±1, ±2, ±3} along the inputs or the outputs (circular or
                      not), flat or within the rows/columns of a p×q reshape: an off-by-one index
``batch``             x seen as B samples: each sample receives the batch sum (or mean) of the
                      numerical gradients; for a Jacobian that is block-diagonal in B samples,
                      the analytical one fills (sums or averages into) the blocks between
                      samples ("summed"), or has mismatches between the blocks ("mixed": two or
                      more, ≥ 10 % of S)
``permuted``          the columns (inputs) or rows (outputs) of N in another order
``zero``              0 on S where N is not: a missing term or an input not propagated
``spurious``          non-zero on S where N is 0: a dependence f does not have
``offset``            N + a constant on S (two entries or more)
``diagonal``          A − N a diagonal matrix (square J): a wrong elementwise term
``rank-1``            A − N = u·vᵀ, or so in every sample's block: one outer-product term
``confined``          none of the above, but S lies in one entry, one input or one output
``entries``           none of the above: the worst entries, named
====================  =========================================================================

A transform *explains* the mismatch when it reproduces A, to a relative 1e-4 plus ten times the
largest finite-difference error estimate, on at least 90 % of S and 95 % of all significant
entries where it is defined, and is defined on at least half of each. Within a family
(transposed, shifted, batch) the transform that reproduces the most mismatched entries wins, then
the one wrong on the fewest entries, then the first listed. These tolerances are loose
on purpose: the numerical side is accurate to ~1e-9 while a planted transform is exact, so the
gap between "explains" and "does not" is several orders of magnitude wide.

All of it is pure numpy on two small arrays; nothing here evaluates f.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = ["Hint", "diagnose", "format_factor"]

MATCH_RTOL = 1e-4
SHIFTS = (1, -1, 2, -2, 3, -3)


@dataclass(frozen=True)
class Hint:
    """One diagnosis: ``kind`` (see the module table), a readable ``message``, and the entries
    ``(i, j)`` it is about."""

    kind: str
    message: str
    entries: tuple = ()

    def __str__(self) -> str:
        return self.message


def format_factor(c: float) -> str:
    """``×2``, ``×1/2 (0.5)``, ``×-3`` or ``×1.37``: the ratio analytical / numerical."""
    frac = Fraction(c).limit_denominator(8)
    if frac != 0 and abs(float(frac) - c) <= 1e-6 * abs(c):  # 1.001 is ×1.001, not ×1
        if frac.denominator == 1:
            return f"×{frac.numerator}"
        return f"×{frac.numerator}/{frac.denominator} ({c:.4g})"
    return f"×{c:.4g}"


class _Ctx:
    """The arrays and labels a diagnosis works on."""

    def __init__(self, A, N, E, mism, use, entry_label, in_label, out_label, gradient):
        self.A, self.N, self.use = A, N, use
        self.S = mism & use
        self.m, self.n = A.shape
        scale = np.abs(A) + np.abs(N)
        self.T = float(np.sqrt(np.mean(scale[use] ** 2))) if use.any() else 0.0
        self.sig = use & (scale > 1e-8 * self.T)
        self.atol = 10.0 * float(np.max(E[use], initial=0.0)) + 1e-9 * self.T
        self.entry_label, self.in_label, self.out_label = entry_label, in_label, out_label
        self.gradient = gradient
        self.I, self.J = np.indices(A.shape)
        self.S_idx = np.nonzero(self.S)
        nS = len(self.S_idx[0])
        self.sample = np.unique(np.linspace(0, nS - 1, min(nS, 64)).astype(int)) if nS else np.zeros(0, int)

    def close(self, X, Y):
        return np.abs(X - Y) <= MATCH_RTOL * (np.abs(X) + np.abs(Y)) + self.atol

    def explains(self, at: Candidate) -> bool:
        """Does A ≈ TN = at(I, J) (NaN where undefined) account for the mismatch?"""
        return self.fit(at) is not None

    def fit(self, at: Candidate) -> tuple | None:
        """None unless ``at`` explains the mismatch; then how well, as a sortable tuple: the
        share of the mismatched entries it reproduces, then minus the share of the entries where
        it is defined and wrong (zeros included: a block-diagonal reading beats a full one that
        also fills the zero blocks).

        A sample of at most 64 mismatched entries is tried first, so that the many candidates
        that fail cost almost nothing; the survivors are checked on every entry.
        """
        Si, Sj = self.S_idx
        v = at(Si[self.sample], Sj[self.sample])
        ok = ~np.isnan(v)
        if ok.mean() < 0.3 or self.close(self.A[Si[self.sample][ok], Sj[self.sample][ok]], v[ok]).mean() < 0.7:
            return None
        TN = at(self.I, self.J)
        defined = ~np.isnan(TN) & self.use
        S, sig = self.S, self.sig
        nS = int(S.sum())
        Sd, sigd = S & defined, sig & defined
        if nS == 0 or Sd.sum() < 0.5 * nS or sigd.sum() < 0.5 * sig.sum():
            return None
        good = np.zeros_like(S)
        good[defined] = self.close(self.A[defined], TN[defined])
        if good[Sd].mean() < 0.9 or good[sigd].mean() < 0.95:
            return None
        return (float(good[S].mean()), -float((defined & ~good).sum()) / max(int(self.use.sum()), 1))

    def best(self, candidates: Iterator[tuple[Candidate, str]]) -> str | None:
        """The message of the candidate that explains the mismatch best (the first on a tie),
        so that a flat shift by 2 is not reported as a row shift by 1 of some reshape that
        reproduces all but the entries at its edges."""
        found = [(score, -k, msg) for k, (at, msg) in enumerate(candidates)
                 if (score := self.fit(at)) is not None]
        return max(found)[2] if found else None

    # -- describing a set of entries -------------------------------------------------------
    def describe(self, mask: np.ndarray) -> str:
        idx = np.argwhere(mask)
        if (mask >= self.sig).all():
            return "everywhere"
        rows, cols = np.unique(idx[:, 0]), np.unique(idx[:, 1])
        if len(cols) <= 8 and (self.sig[:, cols] <= mask[:, cols]).all():
            what = "input" if len(cols) == 1 else "inputs"
            return f"for {what} " + _join([self.in_label(int(j)) for j in cols])
        if not self.gradient and len(rows) <= 8 and (self.sig[rows] <= mask[rows]).all():
            what = "output" if len(rows) == 1 else "outputs"
            return f"in {what} " + _join([self.out_label(int(i)) for i in rows])
        where = _join([self.entry_label(tuple(map(int, e))) for e in idx])
        return f"at entry {where}" if len(idx) == 1 else f"at {len(idx)} entries: {where}"


def _join(items: list[str], most: int = 6) -> str:
    if len(items) <= most:
        return ", ".join(items)
    return ", ".join(items[:most]) + f" and {len(items) - most} more"


Candidate = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (I, J) -> TN[I, J], NaN = undefined


def _remap(N: np.ndarray, axis: int, f: Callable) -> Candidate:
    """TN[i, j] = N at index f(j) along the inputs (axis 1) or f(i) along the outputs (axis 0)."""
    def at(I, J):
        K2, ok = f(J if axis == 1 else I)
        out = np.full(np.shape(I), np.nan)
        out[ok] = N[I[ok], K2[ok]] if axis == 1 else N[K2[ok], J[ok]]
        return out
    return at


def _flat_shift(s: int, L: int, circular: bool) -> Callable:
    def f(K):
        K2 = K + s
        return (K2 % L, np.ones(K.shape, bool)) if circular else (K2, (K2 >= 0) & (K2 < L))
    return f


def _row_shift(s: int, q: int, circular: bool) -> Callable:
    """Within rows of length q: index a·q + b -> a·q + (b + s)."""
    def f(K):
        a, b = np.divmod(K, q)
        b2 = b + s
        if circular:
            return a * q + b2 % q, np.ones(K.shape, bool)
        return a * q + b2, (b2 >= 0) & (b2 < q)
    return f


def _col_shift(s: int, p: int, q: int) -> Callable:
    """Between rows: index a·q + b -> (a + s)·q + b."""
    def f(K):
        a, b = np.divmod(K, q)
        return (a + s) * q + b, (a + s >= 0) & (a + s < p)
    return f


def _swap(p: int, q: int) -> Callable:
    """A p×q array read in q×p layout: index c·p + a -> a·q + c."""
    def f(K):
        return (K % p) * q + K // p, np.ones(K.shape, bool)
    return f


def _factor_pairs(L: int) -> list[tuple[int, int]]:
    return [(p, L // p) for p in range(2, L) if L % p == 0]


def _transposes(ctx: _Ctx) -> Iterator[tuple[Candidate, str]]:
    N, m, n = ctx.N, ctx.m, ctx.n
    if m == n and m > 1:
        yield (lambda I, J: N[J, I]), "transposed: analytical ≈ numerical.T (J[j, i] returned for J[i, j])"
    for p, q in _factor_pairs(n):
        yield _remap(N, 1, _swap(p, q)), (
            f"transposed: with x seen as a {p}×{q} array, the analytical derivative is "
            f"the numerical one laid out as {q}×{p} (a .T before flattening)")
    if not ctx.gradient:
        for p, q in _factor_pairs(m):
            yield _remap(N, 0, _swap(p, q)), (
                f"transposed: with f's output seen as a {p}×{q} array, the analytical "
                f"rows are the numerical ones laid out as {q}×{p}")


def _shifts(ctx: _Ctx) -> Iterator[tuple[Candidate, str]]:
    """Flat shifts first (every s), then the shifts within or between the rows of a reshape, so
    that a tie between equivalent readings goes to the plain one."""
    N, m, n = ctx.N, ctx.m, ctx.n
    axes = [(1, "inputs", "x", n)] + ([] if ctx.gradient else [(0, "outputs", "f", m)])
    for reshaped in (False, True):
        for s in SHIFTS:
            word = f"shifted by {abs(s)}"
            off = "an off-by-one index" if abs(s) == 1 else f"an index off by {abs(s)}"
            side = "right" if s > 0 else "left"
            for axis, what, sym, L in axes:
                if abs(s) >= L:
                    continue
                k = "j" if axis == 1 else "i"
                if not reshaped:
                    if L <= 2:  # of two entries a shift is a swap: _permutation says so
                        continue
                    for circ in (True, False):
                        rel = f"{sym}[{k}{'+' if s > 0 else '-'}{abs(s)}]"
                        yield _remap(N, axis, _flat_shift(s, L, circ)), (
                            f"{word}: the analytical entry for {sym}[{k}] equals the numerical one for "
                            f"{rel}{' (wrapping around)' if circ else ''}: {off} over the {what}")
                    continue
                for p, q in _factor_pairs(L):
                    for circ in (True, False):
                        if abs(s) < q:
                            yield _remap(N, axis, _row_shift(s, q, circ)), (
                                f"{word}: with {sym} seen as a {p}×{q} array, each row's analytical "
                                f"entries are the numerical ones {abs(s)} place(s) to the {side}"
                                f"{' (wrapping)' if circ else ''}: {off} within each row")
                    if abs(s) < p:
                        yield _remap(N, axis, _col_shift(s, p, q)), (
                            f"{word}: with {sym} seen as a {p}×{q} array, the analytical rows are "
                            f"the numerical rows {abs(s)} further {'down' if s > 0 else 'up'}: "
                            f"{off.replace('index', 'row index')}")


def _block_structures(ctx: _Ctx) -> Iterator[tuple[int, int, int]]:
    """(B, k, d) for every B ≥ 2 samples in which the numerical Jacobian is block-diagonal."""
    m, n = ctx.m, ctx.n
    I, J = ctx.I, ctx.J
    for B in [B for B in range(2, min(m, n) + 1) if m % B == 0 and n % B == 0]:
        k, d = m // B, n // B
        off = I // k != J // d
        if ctx.close(ctx.N[off], 0.0).all():
            yield B, k, d


def _batch(ctx: _Ctx) -> Iterator[tuple[Candidate, str]]:
    N, n = ctx.N, ctx.n
    if ctx.gradient:
        for B, d in [(B, n // B) for B in range(2, n + 1) if n % B == 0]:
            G = N.reshape(B, d)
            per = "" if d == 1 else f" of {d}"
            for how, agg in (("sum", G.sum(0)), ("mean", G.mean(0))):
                yield (lambda I, J, agg=agg, d=d: agg[J % d]), (
                    f"batch dimension summed: with x seen as {B} samples{per}, every sample's "
                    f"analytical gradient is the {how} over the batch of the numerical ones")
        return
    for B, k, d in _block_structures(ctx):
        total = sum(N[b * k:(b + 1) * k, b * d:(b + 1) * d] for b in range(B))
        cands = [
            (lambda I, J, k=k, d=d: N[I, (I // k) * d + J % d],
             "each output sample's analytical row holds its own Jacobian block under every input sample"),
            (lambda I, J, k=k, d=d: N[(J // d) * k + I % k, J],
             "each input sample's Jacobian block is repeated for every output sample"),
            (lambda I, J, k=k, d=d, t=total: t[I % k, J % d],
             "every block is the sum of the per-sample blocks"),
            (lambda I, J, k=k, d=d, t=total: np.where(I // k == J // d, t[I % k, J % d], 0.0),
             "each sample's block is the sum of the per-sample blocks"),
            (lambda I, J, k=k, d=d, t=total / B: t[I % k, J % d],
             "every block is the mean of the per-sample blocks"),
            (lambda I, J, k=k, d=d, t=total / B: np.where(I // k == J // d, t[I % k, J % d], 0.0),
             "each sample's block is the mean of the per-sample blocks"),
        ]
        for at, what in cands:
            yield at, (f"batch dimension summed: f treats x as {B} independent samples (its Jacobian "
                       f"is block-diagonal, {k}×{d} blocks), but in the analytical one {what}")


def _batch_mixed(ctx: _Ctx, ents: tuple) -> Hint | None:
    """N block-diagonal in B samples while A couples them (mismatches between the blocks)."""
    structures = list(_block_structures(ctx))
    if not structures:
        return None
    B, k, d = structures[-1]  # the most samples: the finest independence f shows
    Si, Sj = ctx.S_idx
    between = Si // k != Sj // d
    if between.sum() < 2 or between.mean() < 0.1:
        return None
    a = int(np.argmax(np.where(between, np.abs(ctx.A[Si, Sj]), -1.0)))
    i, j = int(Si[a]), int(Sj[a])
    if k == d == 1:
        what = "f is elementwise (its Jacobian is diagonal), but the analytical Jacobian has " \
               "off-diagonal entries"
    else:
        what = (f"f treats x as {B} independent samples (its Jacobian is block-diagonal, {k}×{d} "
                f"blocks), but the analytical Jacobian couples samples")
    return Hint("batch", f"batch dimension mixed: {what} — e.g. {ctx.entry_label((i, j))} "
                f"(output sample {i // k}, input sample {j // d}) is {ctx.A[i, j]:.6g} where f has 0; "
                "a sum, mean or softmax over the wrong axis?", ents)


def _permutation(ctx: _Ctx, axis: int) -> str | None:
    """Columns (axis 1) or rows (axis 0) of A that are other columns/rows of N."""
    A, N = (ctx.A, ctx.N) if axis == 1 else (ctx.A.T, ctx.N.T)
    use = ctx.use if axis == 1 else ctx.use.T
    A, N = np.where(use, A, 0.0), np.where(use, N, 0.0)
    bad = np.flatnonzero(ctx.S.any(axis=0) if axis == 1 else ctx.S.any(axis=1))
    if len(bad) < 2 or len(bad) > 500:
        return None
    an, nn = np.linalg.norm(A[:, bad], axis=0), np.linalg.norm(N[:, bad], axis=0)
    slack = MATCH_RTOL * (an[:, None] + nn[None, :]) + ctx.atol * np.sqrt(A.shape[0])
    near = np.abs(an[:, None] - nn[None, :]) <= slack  # (bad, bad): norms compatible
    match: dict[int, int] = {}
    for a, j in enumerate(bad):
        hit = next((int(bad[b]) for b in np.flatnonzero(near[a]) if bad[b] != j
                    and int(bad[b]) not in match.values() and ctx.close(A[:, j], N[:, bad[b]]).all()), None)
        if hit is None:
            return None
        match[int(j)] = hit
    label = ctx.in_label if axis == 1 else ctx.out_label
    what = "inputs" if axis == 1 else "outputs"
    if len(match) == 2 and all(match[jj] == j for j, jj in match.items()):
        j, jj = sorted(match)
        return (f"swapped {what}: the analytical entries for {label(j)} and {label(jj)} are the "
                f"numerical ones of the other (the two {what} exchanged)")
    pairs = _join([f"{label(j)} ← {label(jj)}" for j, jj in match.items()])
    return f"permuted {what}: the analytical entries are the numerical ones of other {what} ({pairs})"


def diagnose(A: np.ndarray, N: np.ndarray, E: np.ndarray, mism: np.ndarray, use: np.ndarray,
             entry_label: Callable, in_label: Callable, out_label: Callable,
             gradient: bool) -> list[Hint]:
    """Hints for the mismatch between analytical A and numerical N (both (m, n)).

    ``E`` is the numerical side's error estimate, ``mism`` the entries the check flagged, ``use``
    the entries that count (the non-smooth ones are left out). Returns the best explanation
    first (see the module docstring for the order); empty when nothing is mismatched.
    """
    ctx = _Ctx(A, N, E, mism, use, entry_label, in_label, out_label, gradient)
    S = ctx.S
    if not S.any():
        return []
    ents = tuple(map(tuple, np.argwhere(S).tolist()))
    hints: list[Hint] = []
    A_S, N_S = A[S], N[S]
    everywhere = ctx.describe(S) == "everywhere"
    if ctx.close(A_S, -N_S).all():
        return [Hint("sign", f"sign: analytical = −numerical {ctx.describe(S)}", ents)]
    if ctx.close(A_S, 0.0).all():
        hints.append(Hint("zero", f"analytical is 0 {ctx.describe(S)} where f does depend on x "
                          "(numerical ≠ 0): a missing term, or an input not propagated", ents))
    elif ctx.close(N_S, 0.0).all():
        hints.append(Hint("spurious", f"analytical is non-zero {ctx.describe(S)} where the numerical "
                          "derivative is 0 within its error: a dependence f does not have, or a "
                          "term that should vanish at this x", ents))
    elif len(A_S) >= 2 or A.size == 1:
        c = float(A_S @ N_S / (N_S @ N_S))
        if ctx.close(A_S, c * N_S).all():
            hints.append(Hint("factor", f"factor {format_factor(c)}: analytical = {c:.6g} × "
                              f"numerical {ctx.describe(S)}", ents))
    if not hints and len(A_S) >= 2:
        off = float(np.mean(A_S - N_S))
        if ctx.close(A_S, N_S + off).all():
            hints.append(Hint("offset", f"offset: analytical = numerical {off:+.6g} {ctx.describe(S)} "
                              "(a constant term added or left out there)", ents))
    if hints and everywhere:
        return hints
    for kind, gen in (("transposed", _transposes), ("shifted", _shifts), ("batch", _batch)):
        msg = ctx.best(gen(ctx))
        if msg:
            return [Hint(kind, msg, ents)] + hints
    for axis in (1, 0) if not gradient else (1,):
        msg = _permutation(ctx, axis)
        if msg:
            return [Hint("permuted", msg, ents)] + hints
    if hints:
        return hints
    structured = _low_rank(ctx, ents) or (None if gradient else _batch_mixed(ctx, ents))
    return [structured or _confined(ctx, ents)]


def _low_rank(ctx: _Ctx, ents: tuple) -> Hint | None:
    """A − N diagonal, or of rank one (u vᵀ): the signature of one missing or extra term."""
    if ctx.gradient or min(ctx.m, ctx.n) < 2 or len(ents) < 3 or ctx.m * ctx.n > 250_000:
        return None
    D = np.where(ctx.use, ctx.A - ctx.N, 0.0)
    noise = ctx.atol * np.sqrt(D.size)
    if ctx.m == ctx.n and np.linalg.norm(D - np.diag(np.diag(D))) <= noise:
        return Hint("diagonal", "only the diagonal is wrong (analytical − numerical is a diagonal "
                    "matrix): a wrong or missing elementwise term", ents)
    rank1 = _rank_one(D, noise)
    if rank1 is not None:
        return Hint("rank-1", "analytical − numerical is a rank-one matrix u·vᵀ" + rank1 +
                    ": one outer-product term is missing, extra, or has the wrong sign", ents)
    for B, k, d in _block_structures(ctx):
        off = np.kron(1 - np.eye(B, dtype=int), np.ones((k, d), dtype=int)).astype(bool)
        if min(k, d) < 2 or np.linalg.norm(D[off]) > noise:
            continue
        per = [_rank_one(D[b * k:(b + 1) * k, b * d:(b + 1) * d], noise) for b in range(B)]
        if all(p is not None for p in per):
            return Hint("rank-1", f"f treats x as {B} independent samples, and in each sample's "
                        f"{k}×{d} block analytical − numerical is a rank-one matrix u·vᵀ{per[0]}: "
                        "one outer-product term is missing, extra, or has the wrong sign", ents)
    return None


def _rank_one(D: np.ndarray, noise: float) -> str | None:
    """None unless D ≈ u·vᵀ (D ≠ 0); then a remark on its symmetry ("" if none)."""
    u, sv, vt = np.linalg.svd(D)
    if sv[0] <= noise or len(sv) < 2 or sv[1] > max(noise, 1e-6 * sv[0]):
        return None
    square = D.shape[0] == D.shape[1]
    if square and min(np.linalg.norm(u[:, 0] - vt[0]), np.linalg.norm(u[:, 0] + vt[0])) < 1e-3:
        return " with u ∝ v (a symmetric term like s·sᵀ)"
    return ""


def _confined(ctx: _Ctx, ents: tuple) -> Hint:
    S, A, N = ctx.S, ctx.A, ctx.N
    idx = np.argwhere(S)
    if len(idx) == 1:
        i, j = map(int, idx[0])
        a, nu = A[i, j], N[i, j]
        # one definition of "relative" in the whole report: |a − n| / (|a| + |n|), the table's
        # "rel err"; the percentage is said to be of the numerical value
        rel = abs(a - nu) / (abs(a) + abs(nu))
        pct = f", {100 * (a - nu) / abs(nu):+.3g} % of the numerical value" if nu != 0 else ""
        return Hint("confined", f"the mismatch is confined to one entry, {ctx.entry_label((i, j))}: "
                    f"analytical {a:.8g} vs numerical {nu:.8g}, off by {a - nu:+.3g}{pct} "
                    f"(relative error {rel:.2g})", ents)
    rows, cols = np.unique(idx[:, 0]), np.unique(idx[:, 1])
    if len(cols) == 1:
        return Hint("confined", f"the mismatch is confined to the derivative with respect to "
                    f"{ctx.in_label(int(cols[0]))} ({len(idx)} entries)", ents)
    if len(rows) == 1 and not ctx.gradient:
        return Hint("confined", f"the mismatch is confined to output {ctx.out_label(int(rows[0]))} "
                    f"({len(idx)} entries)", ents)
    order = np.argsort(-(np.abs(A - N)[S]), kind="stable")
    worst = [ctx.entry_label(tuple(map(int, idx[k]))) for k in order]
    return Hint("entries", f"{len(idx)} of {int(ctx.sig.sum())} significant entries mismatch, "
                f"with no simple pattern (a missing or wrong term?); worst: {_join(worst, 5)}", ents)
