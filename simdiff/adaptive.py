"""step="adaptive": a per-direction step search on nested, equally spaced central stencils.

The rule
--------
Along each direction u_r (a coordinate, a jvp direction, a group of sparse columns) with
scale s_r = max(1, |x_j|), the first level is the pairs f(x ± t·h_r·u_r), t = 1, 2, 3, 4,
with a power-of-two unit step h_r ≈ 2^-6·s_r; the first round evaluates t = 1, 2, 3 (6
evaluations), and t = 4 follows (2 more) only where the target below is not met yet, so a
polynomial of degree ≤ 4 or a slowly varying f costs 6 per coordinate. Powers of two
make every offset x_j ± t·h_r exact in floating point, so the weights of every node set are
exact rationals (Fornberg 1988), cached and shared by all directions with the same pattern.

From the node pairs 0 < t_1 < ... < t_K evaluated so far, every window of consecutive pairs
W = {t_i, ..., t_k} with at least two pairs gives a central estimate D_W of order 2|W|. Its
error is estimated as

    E_W = |D_W − D_W'| + c_r · ε · ‖w_W ⊙ F_W‖₂ / h ,

where W' is W without its largest pair. D_W' is the estimate of one order less, so the
difference is the size of its leading error term — Richardson's principle (L. F. Richardson,
Phil. Trans. R. Soc. A 210 (1911) 307-357), an upper bound of the error of D_W while the
estimates converge. The second term is the rounding of the values (ε = 2^-52, the noise level
of Moré & Wild, SIAM J. Sci. Comput. 33 (2011) 1292-1314) carried through the weights as a
root-sum-square; c_r = ``ROUNDING_FACTOR`` = 1 was calibrated on the zoo of
``tests/test_error_estimates.py`` (coverage 100 %, median overestimate ≈ 5×). Each entry gets
the window with the smallest E_W, and E_W is its ``info.error``.

The search. After each round a direction looks at its best window (judged by its worst
output, each output measured against the largest |D| of that output over all directions):

* no convergence at all (the difference above 1 % of |D| and 100× the rounding): the step is
  far too large; a new level 16× smaller is evaluated (8 points);
* error estimate below ``TARGET`` = 3e-13 relative (the estimate runs ≈ 5× above the true
  error, so that is ≈ 1e-13 of accuracy): done;
* the last move did not halve the error estimate: done, unless the estimate is still above
  ``STALLED`` = 1e-6 relative and truncation dominates (then a level 16× smaller);
* truncation dominates and the window starts at the smallest pair: one pair at half the
  smallest step is added (2 points). For central pairs "dominates" is judged on the
  window's own predicted truncation — the Richardson difference (which measures the error of
  the window one order lower) times the convergence ratio of the last two differences — and
  must exceed ``NOISE`` = 2 × the rounding: a difference of two noisy estimates is noise up
  to about twice their rounding;
* rounding dominates (central): the level of twice the largest unit, 2k·h·(1, 2, 3, 4), is
  completed (2 new pairs; its nodes 2k, 4k are there already): its own window has half the
  rounding, and it is judged both on its Richardson difference and against the level it
  doubled (same order, ≥ 256× less truncation at the smaller step while truncation rules);
  it doubles again only if the last doubling paid (its level's window is the best), and
  where the doubled level does not fit the bounds, one pair at 1.5× the largest (2 points);
* otherwise, or after ``MAX_ROUNDS`` rounds: done.

Windows are the runs of consecutive nodes and, for central pairs, the runs inside one
level's progression k·(1, 2, 3, 4). Each round is one batch for the Evaluator, all directions
together. A point whose evaluation raises (a singularity or the edge of f's domain inside
the stencil, with on_failure="raise") makes its direction jump 16× closer to x, then 256×,
4096×, … and the round retry, up to ``RETRIES`` times (a log singularity at distance 0.1 from
x = 1e5 is found); with on_failure="skip" failed nodes are left out of the windows.

This is Richardson extrapolation on nested stencils, as numdifftools (P. A. Brodtkorb) and
scipy.differentiate do it, with equally spaced nodes at a large step instead of a long
geometric sequence: the spread of the nodes sets the rounding amplification, so equal spacing
reaches the rounding floor with fewer evaluations (6 to 12 per coordinate for smooth
functions; ``benchmarks/accuracy.py``, table 2).

Bounds: when the pairs do not fit inside the box, the direction uses one-sided nodes
t = 1..6 towards the side with more room, plus f(x), with the same windows (f(x) always in);
method "forward"/"backward" asks for them everywhere. One-sided orders climb by one per node,
so there a shrink adds a whole level at half the smallest step (3 new nodes), and a window's
truncation is the larger of its differences to the two sub-windows one order lower (without
its largest and without its smallest node), which keeps lucky agreements out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

import numpy as np

from .plan import PointSet
from .simulator import warn_if_rounded
from .steps import EPS

__all__ = ["adaptive_directional", "ROUNDING_FACTOR", "TARGET", "MAX_ROUNDS", "UNIT_STEP"]

#: Multiplier of the root-sum-square rounding term (see the module docstring).
ROUNDING_FACTOR = 1.0
#: A direction whose relative error estimate is below this is not refined for rounding.
TARGET = 3e-13
#: Central pairs of the first round (the level's others follow only where the target is
#: not met: a polynomial of degree ≤ 4 or a slowly varying f is done at 6 evaluations).
FIRST_PAIRS = 3
#: Rounds of the search at most (the first one included).
MAX_ROUNDS = 9
#: The first unit step, relative to max(1, |x_j|); rounded to a power of two.
UNIT_STEP = 2.0**-6
#: Relative truncation above which the estimates have not converged at all; the step then
#: jumps down by JUMP.
GARBAGE = 1e-2
JUMP = 16
#: A search whose last move did not halve the error stops, unless its relative error
#: estimate is still above this (then the step jumps down by JUMP).
STALLED = 1e-6
#: One-sided windows are checked against both of their sub-windows one order lower: their
#: orders climb by one per node, so a lucky agreement of two estimates is likelier.
BOTH_ENDS = True
#: A Richardson difference below NOISE × the rounding term is taken for noise: the two
#: estimates it compares carry that rounding each, so truncation is not known to dominate.
NOISE = 2.0
#: Safety factor on the convergence ratio (0: the plain Richardson difference).
RATIO = 4.0
#: Retries of a round whose batch raised SimulationError (see ``_evaluate_round``).
RETRIES = 4
#: Pairs of a central level (t = 1..4) and nodes of a one-sided level (t = 1..6).
CENTRAL_LEVEL = (1.0, 2.0, 3.0, 4.0)
ONE_SIDED_LEVEL = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)


@lru_cache(maxsize=4096)
def _weights(nodes: tuple, side: int) -> tuple:
    """Exact first-derivative weights on the node set (units of h).

    side 0: ``nodes`` are the positive halves of pairs ±t and the weights returned are those of
    +t (the weight of −t is its negative). side ±1: ``nodes`` are one-sided offsets and f(x) is
    added at 0; the weight of f(x) comes first.
    """
    from .stencils import _weights_exact

    exact = [Fraction(t) for t in nodes]  # dyadic rationals: the floats are exact
    if side == 0:
        full = tuple(v for t in exact for v in (t, -t))
        w = _weights_exact(full, 1, Fraction(0))
        return tuple(float(w[2 * i]) for i in range(len(nodes)))
    full = (Fraction(0),) + tuple(side * t for t in exact)
    return tuple(float(v) for v in _weights_exact(full, 1, Fraction(0)))


@dataclass
class _Direction:
    """The search state of one direction."""

    side: int  # 0 central, +1 forward, -1 backward
    h: float  # unit step (a power of two unless shrunk to fit bounds)
    scale: float = 1.0  # s_r: the size of x along the direction, max(1, |x_j|)
    level: float = 1.0  # the current stencil is level·h·(1..4), a dyadic rational
    levels: list = field(default_factory=lambda: [1.0])  # every level k evaluated: k·h·(1..4)
    nodes: dict = field(default_factory=dict)  # t (units of h) -> (row+, row-) or (row,)
    best: float = np.inf
    done: bool = False
    history: list = field(default_factory=list)
    pending: list = field(default_factory=list)
    eps: float = EPS  # unit roundoff of f's outputs (2^-23 for float32), once f has answered
    confirm: tuple | None = None  # (t_c, t_min): the confirming pair asked for, not yet judged
    confirmed: bool = False
    ceiling: float = np.inf  # nodes above a refuted level are aliased: never in a window


def _level_nodes(d: _Direction) -> list:
    base = CENTRAL_LEVEL if d.side == 0 else ONE_SIDED_LEVEL
    if d.level not in d.levels:
        d.levels.append(d.level)
    return [d.level * t for t in base]


def _fits(d: _Direction, ts, lo: float, hi: float) -> bool:
    tmax = max(ts) * d.h
    if d.side == 0:
        return -tmax >= lo and tmax <= hi
    return (d.side * tmax >= lo) and (d.side * tmax <= hi)


def _start(s: float, lo: float, hi: float, side: int = 0) -> _Direction:
    """The first level of a direction: central pairs if they fit (and side is 0), else
    one-sided nodes towards ``side`` (or the side with more room), shrunk to fit if needed."""
    h = float(2.0 ** np.round(np.log2(UNIT_STEP * s)))
    if side == 0:
        d = _Direction(0, h)
        if _fits(d, CENTRAL_LEVEL, lo, hi):
            return d
        side = 1 if hi >= -lo else -1
    d = _Direction(side, h)
    if not _fits(d, ONE_SIDED_LEVEL, lo, hi):
        other = _Direction(-side, h)
        if _fits(other, ONE_SIDED_LEVEL, lo, hi):
            return other
        room_side = 1 if hi >= -lo else -1
        room = hi if room_side > 0 else -lo
        d = _Direction(room_side, float(room / max(ONE_SIDED_LEVEL)))
    return d


def _node_points(x, u, d: _Direction, t) -> list:
    off = float(t) * d.h * u
    return [x + off, x - off] if d.side == 0 else [x + d.side * off]


def _evaluate_round(sim, x, U, dirs, pts: PointSet, evaluator, need_center: bool):
    """Evaluate every direction's pending nodes (and f(x) if ``need_center``) in one batch.

    Returns (batch or None, nfev). If the evaluator raises SimulationError at a point
    (on_failure="raise"), the direction owning that point has its pending nodes replaced by a
    level JUMP times closer to x (a singularity or the edge of f's domain lies within the
    stencil) and the round is retried, up to ``RETRIES`` times; evaluations spent on a failed
    attempt count in nfev when the evaluator keeps an ``nfev`` counter."""
    from .errors import SimulationError

    spent = 0
    for attempt in range(RETRIES + 1):
        new = PointSet(pts.n)
        if need_center:
            new.add(x)
        marks = []
        for i, d in enumerate(dirs):
            for t in d.pending:
                if t in d.nodes:
                    continue
                refs = []
                for p in _node_points(x, U[i], d, t):
                    row = pts.find(p)
                    refs.append(row if row is not None else -1 - new.add(p))
                marks.append((i, t, refs))
        X = new.array()
        if not len(X):
            for d in dirs:
                d.pending = []
            return None, spent
        before = getattr(evaluator, "nfev", None)
        try:
            batch = evaluator.evaluate(sim, X)
        except SimulationError as exc:
            after = getattr(evaluator, "nfev", None)
            if isinstance(before, int) and isinstance(after, int):
                spent += after - before
            idx = getattr(exc, "index", None)
            owners = {i for i, t, refs in marks if idx is not None and -1 - idx in refs}
            if attempt == RETRIES or not owners:
                raise
            for i in owners:  # 16x, then 256x, 4096x, ... closer: a far edge is found fast
                d = dirs[i]
                d.level = min(list(d.nodes) + list(d.pending)) / JUMP ** (attempt + 1)
                d.pending = _level_nodes(d)
            continue
        base = len(pts.array())
        for p in X:
            pts.add(p)
        for i, t, refs in marks:
            dirs[i].nodes[t] = tuple(rr if rr >= 0 else base + (-1 - rr) for rr in refs)
        for d in dirs:
            d.pending = []
        return batch, spent + batch.nfev
    raise AssertionError("unreachable")  # pragma: no cover


def _windows(d: _Direction, ts: list) -> list:
    """The candidate windows of direction d on its good nodes ``ts`` (sorted): every run of
    consecutive nodes and, for central pairs, every run inside one level's progression
    k·(1, 2, 3, 4) (a doubled level k·(2, 4, 6, 8) has half the rounding of k·(1, 2, 3, 4))."""
    wins = {tuple(ts[i:k + 1]) for i in range(len(ts)) for k in range(i, len(ts))}
    if d.side == 0:
        have = set(ts)
        for k in d.levels:
            prog = [k * t for t in CENTRAL_LEVEL]
            for i in range(len(prog)):
                for j in range(i + 1, len(prog)):
                    if all(t in have for t in prog[i:j + 1]):
                        wins.add(tuple(prog[i:j + 1]))
    return sorted(wins)


def _estimates(d: _Direction, F: np.ndarray, ok: np.ndarray, center: int | None):
    """Every window's value, error and parts for direction d: lists over windows.

    Returns (values (W, m), errors (W, m), truncation (W, m), rounding (W, m), windows,
    predicted truncation of each window itself (W, m)).
    """
    ts = sorted(t for t, rows in d.nodes.items() if ok[list(rows)].all() and t <= d.ceiling)
    vals, errs, truncs, rounds, wins, preds = [], [], [], [], [], []
    if d.side != 0 and (center is None or not ok[center]):
        return vals, errs, truncs, rounds, wins, preds
    value = {}

    def val(win):
        if win not in value:
            value[win] = _window_value(d, win, F, center, d.scale)
        return value[win]

    for win in _windows(d, ts):
        if len(win) < 2:
            continue  # a single pair (order 2) or node (order 1): only a reference
        D, R = val(win)
        trunc = np.abs(D - val(win[:-1])[0])
        if len(win) >= 3 and BOTH_ENDS and d.side != 0:  # one-sided: also against dropping the smallest
            trunc = np.maximum(trunc, np.abs(D - val(win[1:])[0]))
        full = d.side == 0 and len(win) == 4 and win[0] / 2 in d.levels and \
            win == tuple(win[0] * t for t in CENTRAL_LEVEL)
        if full and all(win[0] / 2 * t in ts for t in CENTRAL_LEVEL):
            # a doubled level against the level it doubled: both of order 8, the smaller step
            # 256x more accurate while truncation rules, equally noisy (its rounding added)
            lower = tuple(win[0] / 2 * t for t in CENTRAL_LEVEL)
            D_lo, R_lo = val(lower)
            trunc = np.minimum(trunc, np.abs(D - D_lo) + R_lo)
        pred = trunc
        if len(win) >= 3:
            # the difference measures the error of W' = W without its largest pair; carried to
            # W with the convergence ratio of the last two differences (capped at 1), it says
            # whether truncation still matters for W (used to choose the move, never reported)
            prev = np.abs(val(win[:-1])[0] - val(win[:-2])[0])
            with np.errstate(divide="ignore", invalid="ignore"):
                rho = np.where(prev > 0, np.minimum(1.0, RATIO * trunc / prev), 1.0)
            pred = trunc * rho
        preds.append(pred)
        vals.append(D)
        truncs.append(trunc)
        rounds.append(R)
        errs.append(trunc + R)
        wins.append(win)
    return vals, errs, truncs, rounds, wins, preds


def _window_value(d: _Direction, win: tuple, F: np.ndarray, center: int | None, s: float):
    """The window's estimate D and its rounding term (see the module docstring)."""
    w = np.asarray(_weights(win, d.side))
    if d.side == 0:
        rows_p = [d.nodes[t][0] for t in win]
        rows_m = [d.nodes[t][1] for t in win]
        Fp, Fm = F[rows_p], F[rows_m]
        D = w @ (Fp - Fm) / d.h
        floor = (np.abs(D) * s) ** 2
        R = ROUNDING_FACTOR * d.eps * np.sqrt((w**2) @ (np.maximum(Fp**2, floor)
                                                       + np.maximum(Fm**2, floor))) / d.h
        return D, R
    rows = [center] + [d.nodes[t][0] for t in win]
    Fr = F[rows]
    D = w @ Fr / d.h
    R = ROUNDING_FACTOR * d.eps * np.sqrt((w**2) @ np.maximum(Fr**2, (np.abs(D) * s) ** 2)) / d.h
    return D, R


def _confirm(d: _Direction, win: tuple, val: np.ndarray, err: np.ndarray, F, ok) -> str | None:
    """Before a direction stops, its result must be confirmed by a pair JUMP times closer to x
    than any node it rests on: windows of a level far longer than f's length scale can agree
    among themselves by accident (sin at 1e8 with steps of 2e6: the values at x ± t·h are
    unrelated, their combinations agree to 1e-17 and mean nothing). The two-point estimate of
    that pair has the truncation of the pair at t_min, measured by |D_pair(t_min) − D|,
    shrunk JUMP² times; it must agree with D within that, its rounding and D's own error
    estimate, or the level is aliased and the search jumps on, below the pair.

    Returns "confirm" (evaluate the pair), "jump" (refuted) or None (confirmed)."""
    ts = sorted(t for t, rows in d.nodes.items() if ok[list(rows)].all())
    if d.confirmed or not ts:
        return None
    if d.confirm is None:
        if ts[0] < win[0] / (JUMP / 2):  # the search went far closer already and agrees
            d.confirmed = True
            return None
        return "confirm"
    t_c, t_min = d.confirm
    d.confirm = None
    if t_c not in ts or t_min not in ts:
        d.confirmed = True
        return None
    D_c, R_c = _window_value(d, (t_c,), F, None, d.scale)
    D_m, _ = _window_value(d, (t_min,), F, None, d.scale)
    allowed = err + R_c + 4.0 * np.abs(D_m - val) / JUMP**2
    if np.all(np.abs(D_c - val) <= allowed):
        d.confirmed = True
        return None
    # refuted: f varies on a scale far below |x|; the search starts again on the unit scale
    # (steps 2^-6, as for |x| <= 1), below the pair, with the old level's nodes left out
    d.best = np.inf
    d.scale = 1.0
    unit = float(2.0 ** np.round(np.log2(UNIT_STEP))) / d.h
    d.level = min(unit, t_c / JUMP)
    d.ceiling = d.level * max(CENTRAL_LEVEL)
    d.confirmed = True
    return "restart"


def _plan_move(d: _Direction, move: str) -> None:
    """Set d.pending to the nodes the move adds (see the module docstring)."""
    ts = sorted(d.nodes)
    if move == "jump":
        d.level = ts[0] / JUMP
        d.pending = _level_nodes(d)
    elif move == "shrink" and d.side != 0:  # one-sided orders climb slowly: a whole level
        d.level = ts[0] / 2
        d.pending = _level_nodes(d)
    elif move == "shrink":
        d.pending = [ts[0] / 2]
    elif move == "restart":  # d.level was set by _confirm
        d.pending = _level_nodes(d)
    elif move == "confirm":
        d.pending = [ts[0] / JUMP]
        d.confirm = (ts[0] / JUMP, ts[0])
    elif move == "complete":
        d.pending = [t for t in _level_nodes(d) if t not in d.nodes]
        d.best = np.inf  # the level is whole only now: the next round counts as its first
    elif move == "double":  # the level 2k·(1, 2, 3, 4) of the largest k: two new pairs
        d.level = 2 * max(d.levels)
        d.pending = _level_nodes(d)
    else:
        d.pending = [ts[-1] * 1.5]


def _move(d: _Direction, win, trunc, rnd, val, ref, lo, hi, improved: bool = True,
          pred=None) -> str | None:
    """The next move of a direction from its best window: "jump", "shrink", "grow" or None.

    ``ref`` (m,) is the size each output is judged against: max(|D|, the largest |D| of that
    output over all directions), so that an entry far smaller than the rest of its row is
    not refined for an accuracy nobody can see in the Jacobian."""
    all_ts = sorted(d.nodes)
    # each output judged on its own scale: a cosine beside an output of 1e6·t
    if np.any((trunc > GARBAGE * ref) & (trunc > 100 * rnd)):
        return "jump"  # no convergence at all: the step is far too large
    need = (trunc + rnd) / np.maximum(ref, np.finfo(float).tiny)
    if np.all(need <= TARGET * d.eps / EPS):
        return None
    if d.side == 0 and any(t not in d.nodes for t in _level_nodes(d)):
        return "complete"  # the first level's remaining pairs before anything else
    k = int(np.argmax(need))  # the output furthest from the target decides
    t, r = float(trunc[k]), float(rnd[k])
    tp = t if pred is None or d.side != 0 else float(pred[k])  # one-sided: as measured
    noise = NOISE if d.side == 0 else 1.0
    if not improved:  # the last move did not pay: stop, unless the error is still gross
        return "jump" if (t > r and need[k] > STALLED) else None
    if tp > noise * r and (win[0] == all_ts[0] or d.side != 0):
        return "shrink"
    top = max(d.levels)
    paid = len(d.levels) == 1 or win == tuple(top * q for q in CENTRAL_LEVEL)
    if tp <= noise * r and d.side == 0 and _fits(d, [8 * top], lo, hi):
        return "double" if paid else None  # double again only if the last doubling paid
    if t <= r and win[-1] == all_ts[-1] and _fits(d, [all_ts[-1] * 1.5], lo, hi):
        return "grow"
    return None


def adaptive_directional(sim, x: np.ndarray, U: np.ndarray, scale: np.ndarray,
                         t_lo: np.ndarray, t_hi: np.ndarray, evaluator, side: int = 0):
    """Adaptive first derivatives of ``sim`` at x along the rows of U (r, n).

    ``scale`` (r,) is the size s_r of the step scale, ``[t_lo, t_hi]`` the range of the offset t
    along u_r that keeps x + t·u_r inside the bounds (±inf without bounds); ``side`` +1 or −1
    asks for one-sided nodes (forward or backward differences), 0 for central pairs. Each
    round of the search is one ``evaluator.evaluate(sim, X)`` call.

    Returns
    -------
    D (r, m), E (r, m), nfev, failures (list of dicts), steps (r,), schemes (list of str),
    scalar (bool: the simulator returned floats).
    """
    r, n = U.shape
    warn_if_rounded(sim, x, "adaptive step", stacklevel=4)  # issue 13: offsets not re-weighted
    dirs = [_start(scale[i], t_lo[i], t_hi[i], side) for i in range(r)]
    for d, s_ in zip(dirs, scale):
        d.scale = float(s_)
        d.pending = _level_nodes(d)
        if d.side == 0 and FIRST_PAIRS < len(CENTRAL_LEVEL):  # the rest of the level on demand
            d.pending = d.pending[:FIRST_PAIRS]
        if not d.h > 4 * np.spacing(np.max(np.abs(x))):  # no room inside the bounds
            d.done, d.pending = True, []
    pts = PointSet(n)
    center = 0 if any(d.side != 0 for d in dirs) else None  # f(x) leads the first batch
    F = None
    ok = np.zeros(0, dtype=bool)
    nfev, failures, scalar = 0, [], True
    complex_out = None
    best = [None] * r
    ref_prev = None
    for rnd in range(MAX_ROUNDS):
        batch, spent = _evaluate_round(sim, x, U, dirs, pts, evaluator, rnd == 0 and center == 0)
        nfev += spent
        if batch is not None:
            scalar = batch.scalar
            base = len(pts.array()) - len(batch.ok)
            for f in batch.failures:
                fd = f.as_dict() if hasattr(f, "as_dict") else dict(f)
                fd["index"] = fd.get("index", 0) + base
                failures.append(fd)
            vals = batch.values
            if complex_out is None:
                complex_out = np.iscomplexobj(vals)
            # a complex-valued f is searched as its real and imaginary parts, side by side
            vals = np.hstack([vals.real, vals.imag]) if complex_out else np.real(vals)
            for d in dirs:
                d.eps = max(d.eps, getattr(batch, "eps", EPS))
            F = vals if F is None else np.vstack([F, vals])
            ok = np.concatenate([ok, batch.ok])
        more = False
        current = {}
        for i, d in enumerate(dirs):
            if d.done:
                continue
            current[i] = _estimates(d, F, ok, center)
            vals_i, errs, truncs, rounds, wins, _ = current[i]
            if wins:
                errs_a = np.array(errs)
                # the direction's choice: its worst output, each relative to its own size
                norm = np.max(np.abs(np.array(vals_i)), axis=0)
                if ref_prev is not None:
                    norm = np.maximum(norm, ref_prev)
                rel = errs_a / np.maximum(norm, np.finfo(float).tiny)
                j = int(np.argmin(rel.max(axis=1)))
                best[i] = (np.array(vals_i), errs_a, j, wins[j])
        ref = np.max([np.abs(b[0][b[2]]) for b in best if b is not None], axis=0) \
            if any(b is not None for b in best) else None
        ref_prev = ref
        for i, (vals_i, errs, truncs, rounds, wins, preds) in current.items():
            d = dirs[i]
            if not wins:
                if rnd < MAX_ROUNDS - 1 and d.nodes and not ok[[r_ for rows in d.nodes.values() for r_ in rows]].all():
                    _plan_move(d, "jump")  # points failed: retry far closer to x
                    more = True
                else:
                    d.done = True
                continue
            j = best[i][2]
            scale_k = np.maximum(np.maximum(np.abs(vals_i[j]), ref), np.finfo(float).tiny)
            score = float(np.max(best[i][1][j] / scale_k))
            improved = score < d.best / 2
            d.history.append(score)
            d.best = min(d.best, score)
            move = _move(d, wins[j], truncs[j], rounds[j], vals_i[j],
                         np.maximum(np.abs(vals_i[j]), ref), t_lo[i], t_hi[i],
                         improved=improved or rnd == 0, pred=preds[j])
            # only where the steps grew with |x| (s > JUMP): the assumption that f varies on the
            # scale of |x| is the one a fast oscillation breaks; on the unit scale the steps
            # are those every peer takes
            if move is None and d.side == 0 and d.scale > JUMP and rnd < MAX_ROUNDS - 1:
                move = _confirm(d, wins[j], vals_i[j], best[i][1][j], F, ok)
            if rnd == MAX_ROUNDS - 1 or move is None:
                d.done = True
                continue
            _plan_move(d, move)
            more = True
        if not more:
            break
    m = F.shape[1] if F is not None else 1
    D = np.full((r, m), np.nan)
    if complex_out:
        D, E, *rest = _finish(dirs, best, failures, r, m)
        h = m // 2
        return (D[:, :h] + 1j * D[:, h:], E[:, :h] + E[:, h:], nfev, failures, *rest[:2], scalar)
    D, E, steps, schemes = _finish(dirs, best, failures, r, m)
    return D, E, nfev, failures, steps, schemes, scalar


def _finish(dirs, best, failures, r, m):
    """Each direction's result from its best windows: (D, E, steps, schemes)."""
    D = np.full((r, m), np.nan)
    E = np.full((r, m), np.nan)
    steps = np.zeros(r)
    schemes = []
    for i, d in enumerate(dirs):
        if best[i] is None and not d.nodes:  # the box leaves no room along this direction
            D[i] = E[i] = 0.0
            schemes.append("fixed")
            continue
        if best[i] is None:
            schemes.append("adaptive (failed)")
            failures.append({"entry": i, "reason": "too few points survived for any stencil"})
            continue
        vals_i, errs_a, j, win = best[i]
        pick = np.argmin(errs_a, axis=0)  # per output, the window with the least error
        D[i] = vals_i[pick, np.arange(m)]
        E[i] = errs_a[pick, np.arange(m)]
        steps[i] = float(win[0]) * d.h
        kind = {0: "central", 1: "forward", -1: "backward"}[d.side]
        schemes.append(f"adaptive {kind}, order {2 * len(win) if d.side == 0 else len(win)}, "
                       f"nodes {[float(t) * d.h for t in win]}")
    return D, E, steps, schemes
