"""The default difference with second looks: plan, evaluate, assemble, then check what the
first round could not.

A fixed-step difference (``method`` "central", "forward", "backward", "five-point", any
``order``) is one batch. Its estimate rests on assumptions the batch itself can sometimes
refute, and then a second batch, for the affected entries only, settles them:

* **Output precision.** The optimal step c·ε^(1/(p+d)) (``steps.py``) depends on the
  rounding ε of f's values, which is known only once f has answered: a float32 output
  (ε = 2^-23) gets steps (2^29)^(1/(p+d)) times longer, re-planned and re-evaluated (once),
  and every rounding term uses that ε.
* **Roots and poles inside a two-point stencil.** Two values ±a at ±h fit sin at 0 as well as
  (t − 1)³ at 1, whose central difference is pure truncation (``plan._length``). Such entries
  get the next wider stencil at the same step (central ±2h: order 4 with the two-point one
  embedded; forward/backward one node further), whose Richardson difference measures the
  truncation instead of modelling it.
* **Small inputs.** The step scale max(1, |x_j|) reaches past 0 when |x_j| is small: log,
  sqrt, 1/x and an input in SI units (a capacitance of 1e-6 F) are then differentiated across
  their singularity or outside their domain. Where the stencil spans more than |x_j|/4, the
  entry is also estimated with the step on x_j's own scale, optimal_factor·|x_j|. The two
  estimates are compared: when they agree within their error estimates the sharper one is
  kept; when they disagree, the long step saw a singularity its model could not (the short
  one's truncation is (|x_j|/s)^p smaller), and the short one is kept.
* **Failed points.** An evaluation that fails (an exception, a non-finite value) inside the
  stencil marks the edge of f's domain: the entry is tried again with a step 16× shorter, then
  256×, 4096× (as ``adaptive.py`` does), before it is rebuilt from the surviving points or
  given up.

None of this applies where the user fixed the step (``step=``, ``rel_step=``, ``scale=``)
except the widening of doubtful entries, whose nodes are the user's step too. What stays
unresolved (an error estimate as large as the value, a NaN entry, an entry rebuilt from
fewer points, a point that failed) is named in a ``SimdiffWarning``.
"""

from __future__ import annotations

import warnings
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

import numpy as np

from .errors import SimdiffWarning
from .evaluate import raise_failures
from .noise import midpoints_look_noisy, noise_error, spread_floor
from .fastpath import look_candidates, partial_terms
from .plan import (Plan, PointSet, Term, _fixed_term, _keep_inside, _stencil_term, assemble,
                   needs_center)
from .simulator import written_plan
from .stencils import Stencil, one_sided, stencil as make_stencil
from .steps import EPS, base_steps, optimal_factor, place, realize

__all__ = ["run_partials", "warn_unresolved", "SMALL_X", "CLOSER", "CLOSER_ROUNDS"]

#: A stencil spanning more than |x_j|/SMALL_X gets a second estimate on x_j's own scale.
SMALL_X = 4.0
#: Steps scaled by |x_j| beyond this many unit steps are checked for aliasing (``_aliased``).
LARGE_X = 16.0
#: A failed point makes its entry retry with a step this many times shorter ...
CLOSER = 16.0
#: ... this many times at most.
CLOSER_ROUNDS = 3
#: An entry rebuilt from the points that did not fail is tried again closer when its
#: relative error estimate exceeds this (a lower-order rebuild at the full step).
FALLBACK_OK = 1e-8
#: An entry whose error estimate exceeds this share of its size (or of the largest entry of
#: its output) is reported as unresolved.
UNRESOLVED = 0.5


#: Whether midpoints that spread like noise get the pairs at ±2h (``noise.midpoints_look_noisy``).
#: The optimizers turn it off around their gradients: near a minimum it would cost 2n runs a
#: gradient for a sharper error bar than their stopping rule needs (the one-level floor only
#: makes them stop sooner).
TWO_LEVEL_NOISE_LOOK: ContextVar = ContextVar("simdiff_two_level_noise_look", default=True)


class _Axes:
    """Where the r entries of a call move: x + t·u_r, t measured from ``origin`` (x_j for a
    partial derivative, 0 along a jvp direction), inside [lo_r, hi_r]."""

    def __init__(self, x, U, origin, lo, hi, scale):
        self.x, self.U, self.origin, self.lo, self.hi, self.scale = x, U, origin, lo, hi, scale

    def term(self, pts: PointSet, r: int, st: Stencil, h: float, partial: bool,
             scale: float | None = None) -> Term:
        o, lo, hi = float(self.origin[r]), float(self.lo[r]), float(self.hi[r])
        if lo == hi:
            return _fixed_term()
        h = realize(o, float(h))
        pl = place(st, o, h, lo, hi)
        if pl.shrunk:
            pl = replace(pl, h=realize(o, pl.h, -1.0 if pl.kind == "backward" else 1.0))
        if pl.stencil is not None and (np.isfinite(lo) or np.isfinite(hi)):
            pl = _keep_inside(pl, o, lo, hi)
        if pl.stencil is None:
            return _fixed_term()
        if 0.0 in pl.stencil.offsets:
            pts.add(self.x)
        return _stencil_term(pts, self.x, self.U[r], pl,
                             float(self.scale[r] if scale is None else scale), o,
                             r if partial else None)


def _wider(term: Term, st: Stencil) -> Stencil | None:
    """The next stencil that embeds ``term``'s: central order p -> p + 2, one-sided p -> p + 1."""
    offs = np.asarray(term.offsets)
    try:
        if offs.min() < 0 < offs.max():
            k = int(round(max(abs(offs)))) + 1
            return make_stencil(tuple(t for t in range(-k, k + 1) if t != 0 or st.deriv % 2 == 0),
                                term.deriv, "central")
        side = 1 if offs.max() > 0 else -1
        return one_sided(term.order + 1, term.deriv, side)
    except Exception:  # noqa: BLE001 - no wider stencil of that kind
        return None


class _Collect:
    """Run batches with on_failure="skip" (failures are data here), restoring the evaluator's
    own mode afterwards; the first failures are kept to raise if they stay unrecovered.

    Wrappers (the noise module's recording and reusing evaluators, the optimizer's tally) hold
    the real evaluator as ``_ev``: the mode is set on every layer, so the innermost one skips."""

    def __init__(self, ev):
        self.layers = []
        obj, seen = ev, set()
        while obj is not None and id(obj) not in seen:
            seen.add(id(obj))
            self.layers.append(obj)
            obj = obj.__dict__.get("_ev") if hasattr(obj, "__dict__") else None
        self.mode = getattr(ev, "on_failure", "raise")
        self.saved = []

    def __enter__(self):
        if self.mode != "skip":
            for obj in self.layers:
                had = "on_failure" in getattr(obj, "__dict__", {})
                self.saved.append((obj, had, getattr(obj, "on_failure", None)))
                try:
                    obj.on_failure = "skip"
                except AttributeError:
                    pass
        return self

    def __exit__(self, *exc):
        for obj, had, value in self.saved:
            try:
                if had:
                    obj.on_failure = value
                else:
                    del obj.on_failure
            except AttributeError:
                pass
        return False


def _evaluate(sim, ev, pts: PointSet, F, ok, state):
    """Evaluate the rows of ``pts`` beyond those of F; returns the grown F, ok. A batch the
    caller evaluated already (``state["pre"]`` = (X, batch), the lean lane's) answers the first
    call when its points are these."""
    X = pts.array()
    k0 = 0 if F is None else len(F)
    if len(X) == k0:
        return F, ok
    pre = state.pop("pre", None)
    if pre is not None and k0 == 0 and np.array_equal(pre[0], X):
        batch = pre[1]
    else:
        batch = ev.evaluate(sim, X[k0:])
    state["nfev"] += batch.nfev
    state["eps"] = max(state.get("eps", EPS), getattr(batch, "eps", EPS))
    state["scalar"] = batch.scalar
    for f in batch.failures:
        d = f.as_dict() if hasattr(f, "as_dict") else dict(f)
        d["index"] = d.get("index", 0) + k0
        state["failures"].append(d)
        state["raw"].append(f)
    vals = batch.values
    if F is None:
        return vals, batch.ok.copy()
    if np.iscomplexobj(vals) and not np.iscomplexobj(F):
        F = F.astype(complex)
    if vals.shape[1] != F.shape[1]:
        vals = np.full((len(vals), F.shape[1]), np.nan)
    return np.vstack([F, vals]), np.concatenate([ok, batch.ok])


def run_partials(sim, x: np.ndarray, U: np.ndarray, origin: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray, scale: np.ndarray, st: Stencil, h: np.ndarray, ev, *,
                 auto: bool, partial: bool = True, unit_scale: np.ndarray | None = None,
                 pre: Any = None):
    """First derivatives along the rows of U with stencil ``st`` and steps h (r,), with the
    second looks of the module docstring (``auto``: the steps were simdiff's own choice).

    ``pre`` = (X, batch): the first batch, evaluated already (``lean.two_point``).

    Returns (D (r, m), E (r, m), nfev, failures, plan, scalar, notes): ``plan.terms`` are the
    terms finally used, ``notes`` the entries' stories for the warning ("closer", ...).
    """
    r = U.shape[0]
    axes = _Axes(x, U, origin, lo, hi, scale)
    state: dict = {"nfev": 0, "failures": [], "raw": [], "eps": EPS, "scalar": True, "pre": pre}
    notes: dict = {}
    with _Collect(ev) as col:
        pts = PointSet(x.shape[0])
        if tuple(st.offsets) == (-1, 1) and st.deriv == 1:
            pts.add(x)  # f(x): a measured f'' for the two-point estimates (plan._curvature_model)
        terms = (partial_terms(axes, pts, st, h) if partial else None) or \
            [axes.term(pts, i, st, h[i], partial) for i in range(r)]
        F, ok = _evaluate(sim, ev, pts, None, None, state)
        if auto and state["eps"] > 1.5 * EPS and F is not None and len(F):
            # float32 (or lower) outputs: the steps were planned for float64 values
            h = h * (optimal_factor(st, state["eps"]) / optimal_factor(st))
            terms = (partial_terms(axes, pts, st, h) if partial else None) or \
                [axes.term(pts, i, st, h[i], partial) for i in range(r)]
            F, ok = _evaluate(sim, ev, pts, F, ok, state)
        if F is None:  # every entry fixed: one evaluation at x tells the output size
            pts.add(x)
            F, ok = _evaluate(sim, ev, pts, None, None, state)
        plan = Plan(x, pts.array(), terms, center=pts.find(x))
        if needs_center(plan, ok):  # a failed entry can be rebuilt one-sided with f(x)
            pts.add(x)
            F, ok = _evaluate(sim, ev, pts, F, ok, state)
            plan = Plan(x, pts.array(), terms, center=pts.find(x))
        D, E, lost = assemble(written_plan(sim, plan), F, ok, state["eps"])
        doubt = plan.doubt if plan.doubt is not None else np.zeros(r, dtype=bool)
        # midpoints of two-point central pairs that spread like noise: the pairs at ±2h (the
        # "widened" look below) let the noise test tell noise from a curvature
        # (noise.midpoints_look_noisy)
        two_levels = auto and TWO_LEVEL_NOISE_LOOK.get() and midpoints_look_noisy(plan, F, ok, D)
        if two_levels:
            doubt = doubt | np.array([t.kind == "central" and len(t.rows) == 2 for t in terms])
        # second looks, each one batch for all the entries concerned
        hx = None
        if auto and partial and unit_scale is not None:
            hx = optimal_factor(st, state["eps"]) * np.abs(origin)
        tried: dict = {}
        for rnd in range(CLOSER_ROUNDS + 1):
            cand: dict = {}
            # the entries this round can act on, found with whole-array tests (fastpath.py)
            for i in look_candidates(terms, D, E, doubt, rnd, hx, origin, scale, FALLBACK_OK,
                                     SMALL_X, LARGE_X):
                t = terms[i]
                if t.kind == "fixed":
                    continue
                with np.errstate(invalid="ignore"):
                    failed = ~np.all(np.isfinite(D[i])) or (
                        "fallback" in t.kind and np.any(E[i] > FALLBACK_OK * np.abs(D[i])))
                if failed and np.any(~ok[t.rows]) and (auto or rnd == 0) and rnd < CLOSER_ROUNDS:
                    if auto:
                        tried[i] = tried.get(i, t.h) / CLOSER
                        own = None
                        if hx is not None and origin[i] != 0 and \
                                64 * np.spacing(abs(origin[i])) < hx[i] < tried[i]:
                            tried[i] = float(hx[i])  # a small x_j: its own scale at once
                            own = abs(float(origin[i]))
                        cand[i] = ("closer", st, tried[i], own)
                    continue
                bad_offs = t.offsets[~ok[t.rows]] if len(t.rows) else np.zeros(0)
                if failed and rnd == CLOSER_ROUNDS and len(bad_offs) and \
                        (np.all(bad_offs < 0) or np.all(bad_offs > 0)):
                    # f fails on one side of x at every step tried (x sits on the edge of its
                    # domain): the one-sided stencil of the same order, away from that side
                    side = 1 if np.all(bad_offs < 0) else -1
                    cand[i] = ("one-sided", one_sided(st.order, st.deriv, side), float(h[i]), None)
                    continue
                if rnd > 0:
                    continue
                span = float(np.max(np.abs(t.offsets))) * t.h
                if hx is not None and origin[i] != 0 and span > abs(origin[i]) / SMALL_X \
                        and 64 * np.spacing(abs(origin[i])) < hx[i] < t.h / SMALL_X:
                    cand[i] = ("small x", st, float(hx[i]), abs(float(origin[i])))
                elif hx is not None and _aliased(t, F, ok, plan.center, scale[i]):
                    cand[i] = ("small x", st, float(optimal_factor(st, state["eps"])), 1.0)
                elif doubt[i]:
                    wide = _wider(t, st)
                    if wide is not None:
                        cand[i] = ("widened", wide, t.h, None)
            if not cand:
                break
            new_terms = {i: axes.term(pts, i, c[1], c[2], partial, c[3]) for i, c in cand.items()}
            F, ok = _evaluate(sim, ev, pts, F, ok, state)
            sub = Plan(x, pts.array(), list(new_terms.values()), center=pts.find(x))
            D2, E2, lost2 = assemble(written_plan(sim, sub), F, ok, state["eps"])
            for k, (i, (why, *_)) in enumerate(cand.items()):
                d2, e2 = D2[k], E2[k]
                if new_terms[i].kind == "fixed" or not np.all(np.isfinite(d2)):
                    if why == "closer":
                        notes.setdefault(i, []).append("closer")
                    continue
                if why == "small x":
                    disagree = np.abs(D[i] - d2) > E[i] + e2
                    take = disagree | (e2 < E[i]) | ~np.isfinite(D[i])
                elif why == "widened":
                    take = np.ones_like(e2, dtype=bool)
                else:  # closer or one-sided: the entry had lost points
                    take = ~np.isfinite(D[i]) | (e2 < E[i]) | ("fallback" in terms[i].kind)
                if np.all(take):
                    D[i], E[i], terms[i] = d2, e2, new_terms[i]
                    if why == "one-sided":
                        notes[i] = [f"one-sided:{new_terms[i].kind}"]
                        lost = [L for L in lost if L.get("entry") != i] + [{
                            "entry": i, "recovered": True,
                            "reason": f"f failed on one side of x at every step tried; computed "
                                      f"with a {new_terms[i].kind} stencil of the same order"}]
                    if why == "closer":
                        notes[i] = [f"closer:{new_terms[i].h:.3g}"]
                        lost = [L for L in lost if L.get("entry") != i] + [{
                            "entry": i, "recovered": True,
                            "reason": f"point(s) failed at step {h[i]:.3g}; computed at the "
                                      f"shorter step {new_terms[i].h:.3g} ({new_terms[i].kind})"}]
                elif np.any(take):
                    D[i] = np.where(take, d2, D[i])
                    E[i] = np.where(take, e2, E[i])
            if not any(c[0] in ("closer", "one-sided") for c in cand.values()):
                break
    # on_failure="raise" allows a complete stencil at a shorter step, never a rebuild from
    # fewer points (that is what on_failure="skip" asks for)
    fin = np.all(np.isfinite(D), axis=1)
    unrecovered = [i for i, t in enumerate(terms) if t.kind != "fixed" and (
        "fallback" in t.kind or (not fin[i] and np.any(~ok[t.rows])))]
    if unrecovered and col.mode == "raise" and state["raw"]:
        # the evaluator was asked to raise: the points that failed, and no shorter step helped
        raise_failures(state["raw"], sim)
    failures = state["failures"] + lost
    plan = Plan(x, pts.array(), terms, center=pts.find(x))
    # noise given (noise=) or seen in the values (noise.py): grows E where it applies
    E = noise_error(plan, F, ok, D, E)
    if two_levels:  # what the two-level estimates still spread by bounds the values' rounding
        E = np.maximum(E, spread_floor(plan, F, ok))
    notes["ref"] = _variation(terms, F, ok, plan.center)
    return D, E, state["nfev"], failures, plan, state["scalar"], notes


def _aliased(t: Term, F: np.ndarray, ok: np.ndarray, center: int | None, s: float) -> bool:
    """A central pair at a step grown with |x_j| (s > LARGE_X) whose values vary far more
    evenly than oddly, |F₊ + F₋ − 2f(x)| > 4·|F₊ − F₋|: f turns over inside the stencil,
    which on a scale of |x_j| means it varies faster than the step assumed (sin at 1e8 with
    h = 600). The entry is then estimated again with the unit-scale step and the two are
    compared as for small inputs."""
    if s <= LARGE_X or not ok[t.rows].all():
        return False
    offs = list(np.round(t.offsets, 12))
    if len(t.rows) == 4 and offs == [-2.0, -1.0, 1.0, 2.0]:
        # five-point, no f(x): the even part's growth from ±h to ±2h, 3h²·f'', against the
        # odd variation 2h·f' at ±h
        Fm2, Fm1, Fp1, Fp2 = (np.real(F[r]) for r in t.rows)
        return bool(np.any(np.abs((Fp2 + Fm2) - (Fp1 + Fm1)) > 12 * np.abs(Fp1 - Fm1)))
    if center is None or len(t.rows) != 2 or not ok[center] or t.offsets[0] != -t.offsets[1]:
        return False
    Fp, Fm, F0 = np.real(F[t.rows[1]]), np.real(F[t.rows[0]]), np.real(F[center])
    return bool(np.any(np.abs(Fp + Fm - 2 * F0) > 4 * np.abs(Fp - Fm)))


def _variation(terms: list, F: np.ndarray, ok: np.ndarray, center: int | None = None) -> np.ndarray:
    """(r, m): how fast each output varies over each entry's stencil, max|F_i − F_0| / span —
    the size against which an entry's error says resolved or not where the derivative itself
    vanishes (a minimum, an output that does not depend on the input)."""
    r, m = len(terms), F.shape[1]
    out = np.zeros((r, m))
    for i, t in enumerate(terms):
        if t.kind == "fixed" or len(t.rows) < 2 or not ok[t.rows].all():
            continue
        Fr = F[t.rows]
        if center is not None and ok[center] and center not in t.rows:
            Fr = np.vstack([Fr, F[center][None, :]])  # f(x): a minimum's values rise from it
        span = float(np.ptp(t.offsets)) * t.h
        if span > 0:
            # at least what the values' rounding lets the stencil resolve: an entry whose error
            # is the rounding of an output that barely moves is zero within rounding, resolved
            out[i] = np.maximum(np.max(np.abs(Fr - Fr[:1]), axis=0),
                                64 * EPS * np.max(np.abs(Fr), axis=0)) / span
    return out


def _entry_name(sim, i: int, j: int, m: int, n: int, what: str = "partial") -> str:
    outs = getattr(sim, "outputs", None)
    ins = getattr(sim, "inputs", None)
    fo = outs[i] if outs is not None and len(outs) == m and i < len(outs) else (f"f[{i}]" if m > 1 else "f")
    xi = ins[j] if ins is not None and len(ins) == n and j < len(ins) else f"x[{j}]"
    if what == "direction":
        return f"{fo} along v"
    return f"∂{fo}/∂{xi}"


def warn_unresolved(caller: str, sim, D: np.ndarray, E: np.ndarray, kinds: list, notes: dict,
                    what: str = "partial", stacklevel: int = 3) -> None:
    """One SimdiffWarning naming every entry (r, m layout: r inputs or directions, m outputs)
    that is NaN, rebuilt from fewer points, computed at a step shorter than planned because a
    point failed, or whose error estimate is as large as the value. ``kinds`` are the entries'
    schemes (``Term.kind``), which say which were rebuilt ("fallback")."""
    r, m = D.shape
    with np.errstate(invalid="ignore"):
        A = np.abs(D)
        ref = np.maximum(A, np.nanmax(np.where(np.isfinite(A), A, 0.0), axis=0, initial=0.0)[None, :])
        if "ref" in notes and np.shape(notes["ref"]) == ref.shape:
            ref = np.maximum(ref, notes["ref"])
        # ref == 0: every value of the stencil was equal, the 0 is exact whatever the bound
        loose = (E > UNRESOLVED * ref) & (E > 0) & (ref > 0)
    items = []
    with np.errstate(invalid="ignore"):
        named = np.any(~np.isfinite(D) | loose, axis=1)  # entries the loop below can name
    for i in range(r):
        kind = kinds[i] if i < len(kinds) else ""
        if not named[i] and "fallback" not in kind and i not in notes:
            continue  # nothing to say about this entry (the fast path, issue 15)
        for k in range(m):
            name = _entry_name(sim, k, i, m, r, what)
            if not np.isfinite(D[i, k]):
                items.append(f"{name} could not be computed (its points failed or f was not "
                             "finite there)")
            elif loose[i, k]:
                items.append(f"{name} = {D[i, k]:.6g} is not resolved (error estimate "
                             f"{E[i, k]:.2g})")
            elif "fallback" in kind:
                items.append(f"{name} was rebuilt from the points that did not fail (lower order)")
        for note in notes.get(i, []) if i in notes else []:
            if note.startswith("closer:"):
                items.append(f"entry {i}: a stencil point failed; used a shorter step "
                             f"{note.split(':', 1)[1]} instead")
            elif note.startswith("one-sided:"):
                items.append(f"entry {i}: f failed on one side of x (the edge of its domain?); "
                             f"used a {note.split(':', 1)[1]} stencil of the same order")
    if not items:
        return
    more = f" (and {len(items) - 8} more)" if len(items) > 8 else ""
    warnings.warn(f"simdiff.{caller}: " + "; ".join(items[:8]) + more
                  + ". See info.error and info.failures (full_output=True); step='adaptive' "
                  "or method='five-point' resolve more.", SimdiffWarning, stacklevel=stacklevel)
