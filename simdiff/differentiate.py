"""derivative, gradient, jacobian and jvp: plan -> evaluate -> assemble.

Each call checks its arguments at the door, plans every point it needs as one batch
(``plan.py``), hands the batch to an Evaluator (``evaluate.py``) and assembles the result with
the stencil weights. The options are the same everywhere:

method : "central" (default, order 2), "forward", "backward" (order 1), "five-point"
    (central, order 4), "complex" (complex step, order 2, no cancellation).
order : accuracy order of the stencil: 2, 4, 6, 8 for central, 1..8 for forward/backward.
step : None (the scheme's optimal step c·ε^(1/(p+d))·max(1, |x_j|), see ``steps.py``),
    "adaptive" (a per-coordinate step search with Richardson-type error estimates, see
    ``adaptive.py``; central pairs for "central"/"five-point", one-sided nodes for
    "forward"/"backward"; "complex" keeps the complex step, which needs no search), or
    absolute steps: a float or an array (n,).
rel_step : steps relative to |x_j| (rel_step itself where x_j = 0).
bounds : None or (lower, upper); no planned point leaves the box. Defaults to the simulator's
    ``bounds`` attribute.
vectorized : f takes (k, n) and returns (k,) or (k, m); the batch is evaluated in one call.
n_jobs, backend, evaluator : where the evaluations run (``simdiff.Evaluator``).
full_output : return ``(value, info)``; ``info`` (attribute or key access) holds ``error``
    (estimated absolute error, shape of the value), ``nfev``, ``step``, ``method``,
    ``failures``, and ``schemes`` / ``fixed`` (which stencil each coordinate used).

Evaluation counts: central 2n + 1 (x ± h_j e_j and f(x), whose second difference measures
the curvature behind each entry's error estimate), forward/backward n + 1, five-point 4n,
complex n; jvp 3 (central) or 1 + 1 (forward), plus 2 when the nodes x ± t·v cannot be exact
(``_correct_direction``). Entries whose first estimate cannot be trusted get a second batch of
their own (``refine.py``: roots inside a two-point stencil, small inputs, failed points).
Bounds may turn a central stencil one-sided (plus f(x)).
``jacobian(..., sparsity=S)`` counts groups of columns instead of columns (``sparsity.py``);
step="adaptive" spends 6 to 12 per coordinate (``adaptive.py``); ``simdiff.hessian``
(``hessians.py``) 2n² + 2n + 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .attrdict import AttrDict
from .errors import ArgumentError, ArgumentTypeError, OutputError
from .evaluate import failure_records, resolve_evaluator
from .adaptive import adaptive_directional
from .plan import Plan, Term, assemble, direction_range, plan_direction, plan_partials
from .lean import Done, direction as lean_direction, two_point
from .refine import run_partials, warn_unresolved
from .simulator import Simulator, as_simulator, written_plan
from .stencils import METHODS, scheme
from .noise import adaptive_with_noise, noise_error, setup_noise
from .steps import base_steps, normalize_bounds, optimal_factor, typical_scale

__all__ = ["derivative", "gradient", "jacobian", "jvp", "Info", "as_point"]


class Info(AttrDict):
    """The ``info`` of ``full_output=True``: a dict whose keys are also attributes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "failures" in self:  # one record type with a kind (evaluate.Failure)
            self["failures"] = failure_records(self["failures"])


def as_point(x: Any, name: str = "x") -> np.ndarray:
    """``x`` as a finite float64 array of shape (n,), n ≥ 1; ArgumentError otherwise."""
    if np.iscomplexobj(x):
        raise ArgumentTypeError(f"{name} must be real; got complex values {x!r}")
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise ArgumentTypeError(f"{name} must be an array of floats of shape (n,); got {x!r}") from None
    if arr.ndim != 1:
        raise ArgumentError(
            f"{name} must be 1-D, shape (n,); got an array of shape {arr.shape}"
            + (" (for a function of one variable use simdiff.derivative)" if arr.ndim == 0 else "")
        )
    if arr.size == 0:
        raise ArgumentError(f"{name} must have at least one entry; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        j = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ArgumentError(f"{name} must be finite; got {name}[{j}] = {float(arr[j])!r}")
    return arr


def _method(method: Any) -> str:
    if not isinstance(method, str) or method not in METHODS:
        raise ArgumentError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    return method


def _check_complex(sim: Simulator, method: str) -> None:
    if method == "complex" and sim.complex_safe is False:
        raise ArgumentError(
            f"method='complex': simulator {sim!r} declares complex_safe = False; allowed for it: "
            + ", ".join(repr(m) for m in METHODS if m != "complex")
        )


def _bounds_for(sim: Simulator, bounds: Any, x: np.ndarray):
    if bounds is None:
        bounds = getattr(sim, "bounds", None)
    return normalize_bounds(bounds, x)


def _run(sim: Simulator, plan: Plan, evaluator: Any, method: str):
    """The complex step: evaluate the plan's batch and assemble, (D, E, nfev, failures,
    scalar). Stencil methods go through ``refine.run_partials``."""
    plan = written_plan(sim, plan)  # the points as the simulator reads them (issue 13)
    points = plan.points
    nfev = 0
    failures: list[dict] = []
    if len(points):
        batch = evaluator.evaluate(sim, points)
        nfev += batch.nfev
        F, ok = batch.values, batch.ok
        failures.extend(_failure_dict(f) for f in batch.failures)
        if plan.complex_step and ok.any() and not np.iscomplexobj(F):
            raise OutputError(
                f"method='complex': f returned real output for complex input, so it dropped the "
                f"imaginary part (it is not complex-safe); use method='central' or make f accept "
                f"complex x (simulator {sim!r})"
            )
        if plan.complex_step and ok.any():
            nfev += _refuse_complex_valued(sim, plan.x, F[ok], evaluator)
    else:
        # Every coordinate is fixed: one evaluation at x tells the output size.
        batch = _at_x(sim, plan.x, evaluator)
        nfev += batch.nfev
        F, ok = batch.values[:0], batch.ok[:0]
    D, E, lost = assemble(plan, F, ok)
    E = noise_error(plan, F, ok, D, E)  # noise given (noise=) or seen in the values (noise.py)
    failures.extend(lost)
    return D, E, nfev, failures, batch.scalar


def _refuse_complex_valued(sim: Simulator, x: np.ndarray, F: np.ndarray, evaluator: Any) -> int:
    """The complex step reads f'(x) off Im f(x + ih) / h, which holds only for an f that is
    real on real inputs. For such an f, |Im f(x + ih)| = h·|f'(x)| is tiny against |Re f|
    (h = 2^-60·s), so outputs with |Im F| > 2^-26·|Re F| are checked with f(x) itself (one
    more run, only then): a nonzero Im f(x) means f is complex-valued, and the step cannot
    work there. Returns the runs it spent (0 or 1)."""
    if np.all(np.abs(F.imag) <= 2.0**-26 * np.abs(F.real)):
        return 0
    at = evaluator.evaluate(sim, x[None, :])
    v = at.values[0] if at.ok[0] else None
    if v is not None and np.iscomplexobj(v) and np.any(np.abs(v.imag) > 2.0**-40 * np.abs(v)):
        k = int(np.argmax(np.abs(v.imag)))
        raise ArgumentError(
            f"method='complex': f is complex-valued (output {k} at x is {complex(v[k])!r}), and "
            "the complex step only works for an f that is real for real x; allowed for a "
            "complex-valued f: 'central', 'forward', 'backward', 'five-point' (they return the "
            "complex derivative)"
        )
    return at.nfev


def _failure_dict(f: Any, offset: int = 0) -> dict:
    d = f.as_dict() if hasattr(f, "as_dict") else dict(f)
    d["index"] = d.get("index", 0) + offset
    return d


def _prepare(f, x, method, order, step, rel_step, bounds, vectorized, n_jobs, backend, evaluator,
             scalar_input=False, deriv=1, **shorthands):
    method = _method(method)
    sim = as_simulator(f, vectorized=vectorized, scalar_input=scalar_input)
    _check_complex(sim, method)
    st = scheme(method, order, deriv)
    box = _bounds_for(sim, bounds, x)
    ev = resolve_evaluator(evaluator, n_jobs, backend, **shorthands)
    return sim, st, box, ev, method


def _scale_for(sim: Simulator, scale: Any, x: np.ndarray) -> np.ndarray | None:
    """``scale=`` or, failing it, the simulator's ``scales`` attribute (checked alike)."""
    if scale is None:
        scale = getattr(sim, "scales", None)
        return typical_scale(scale, x, "scales (attribute of the simulator)") if scale is not None else None
    return typical_scale(scale, x)


def _partials(sim, x, st, step, rel_step, scale, box, ev, method, caller, noise=None):
    """Every partial derivative with a fixed-step stencil (``refine.run_partials``), with the
    noise of ``noise=`` or seen in the values (``noise.py``): (D (n, m), E (n, m), nfev,
    failures, plan, scalar, nz)."""
    n = x.shape[0]
    typ = _scale_for(sim, scale, x)
    nz = setup_noise(noise, sim, x, ev, method, step, rel_step, scale=typ, bounds=box)
    auto = step is None and rel_step is None and typ is None and nz.steps is None
    h = base_steps(x, st, step, rel_step, typical=typ) if nz.steps is None else nz.steps
    s = typ if typ is not None else np.maximum(1.0, np.abs(x))
    with nz:
        pre = None
        if auto and box is None and nz.level is None:
            # the usual call in whole arrays; the general path goes on from its batch if needed
            out = two_point(sim, x, st, h, s, nz.evaluator)
            if isinstance(out, Done):
                if out.named:
                    warn_unresolved(caller, sim, out.D, out.E, [out.kind] * n, out.notes,
                                    stacklevel=4)
                return out.D, out.E, out.nfev, [], out, out.scalar, nz
            pre = out
        lo, hi = box if box is not None else (np.full(n, -np.inf), np.full(n, np.inf))
        D, E, nfev, failures, plan, scalar, notes = run_partials(
            sim, x, np.eye(n), x.copy(), lo, hi, s, st, h, nz.evaluator, auto=auto, partial=True,
            unit_scale=None if typ is not None else s, pre=pre)
    warn_unresolved(caller, sim, D, E, [t.kind for t in plan.terms], notes, stacklevel=4)
    return D, E, nfev, failures, plan, scalar, nz


ADAPTIVE = "adaptive"
_SIDES = {"central": 0, "five-point": 0, "forward": 1, "backward": -1}


def _is_adaptive(step: Any, rel_step: Any, order: Any, method: str) -> bool:
    """True for step="adaptive" (checked against the options it cannot be combined with)."""
    if not isinstance(step, str):
        return False
    if step != ADAPTIVE:
        raise ArgumentError(
            f"step must be None, a positive float, an array of positive floats or 'adaptive'; "
            f"got {step!r}"
        )
    if rel_step is not None:
        raise ArgumentError(f"give step='adaptive' or rel_step=, not both (got rel_step={rel_step!r})")
    if order is not None:
        raise ArgumentError(
            f"order: step='adaptive' chooses the order itself; got order={order!r} (allowed: None)"
        )
    return method != "complex"  # the complex step is at the rounding level already


def _adaptive_partials(sim, x, box, ev, method, scale=None, caller="jacobian"):
    """step="adaptive" for every partial derivative: (D (n, m), E (n, m), nfev, failures,
    steps (n,), schemes, scalar). Fixed coordinates (lower == upper) get 0.

    A coordinate with |x_j| < max(1, |x_j|)/64, whose first level would reach past 0 (log,
    sqrt, 1/x, an input in SI units), is searched twice in the same rounds: from the usual
    scale and from |x_j| itself. Where the two results agree within their estimates the
    sharper is kept; where they disagree the long steps saw a singularity their windows
    could not, and the search on x_j's own scale is kept (as ``refine.py`` does)."""
    n = x.shape[0]
    lo, hi = box if box is not None else (np.full(n, -np.inf), np.full(n, np.inf))
    free = np.flatnonzero(lo != hi)
    nfev = 0
    if len(free) == 0:
        batch = _at_x(sim, x, ev)
        m = batch.values.shape[1]
        return (np.zeros((n, m)), np.zeros((n, m)), batch.nfev, [], np.zeros(n),
                ["fixed"] * n, batch.scalar)
    typ = _scale_for(sim, scale, x)
    s = typ if typ is not None else np.maximum(1.0, np.abs(x))
    small = [j for j in free if typ is None and x[j] != 0 and abs(x[j]) < s[j] / 64]
    rows = list(free) + small
    scales = np.concatenate([s[free], np.abs(x[small])])
    U = np.eye(n)[rows]
    from .errors import SimulationError

    before = getattr(ev, "nfev", None)
    try:
        Dl, El, nfev, failures, st, sch, scalar = adaptive_directional(
            sim, x, U, scales, (lo - x)[rows], (hi - x)[rows], ev, side=_SIDES[method])
    except SimulationError as exc:
        # f fails at every step the search tried on some side of x (x on the edge of its
        # domain): the fixed-step path, which ends one-sided where it must (refine.py), at
        # order 4; the search's runs are counted, and the warning says what happened
        import warnings as _w

        from .errors import SimdiffWarning

        after = getattr(ev, "nfev", None)
        spent = after - before if isinstance(before, int) and isinstance(after, int) else 0
        _w.warn(f"simdiff.{caller}: the adaptive search failed at {exc.point!r} (f failed there "
                "at every step it tried: the edge of its domain?); used fixed-step differences "
                "of order 4, one-sided where f fails", SimdiffWarning, stacklevel=4)
        st4 = scheme("central", 4) if method in ("central", "five-point") else \
            scheme(method, 2)
        D, E, nfev2, failures, plan, scalar, _ = _partials(sim, x, st4, None, None, scale, box, ev,
                                                           "five-point", caller)
        schemes = [t.kind for t in plan.terms]
        return D, E, nfev2 + spent, failures, plan.steps, schemes, scalar
    k = len(free)
    for a, j in enumerate(small):
        i = int(np.flatnonzero(free == j)[0])
        d1, e1, d2, e2 = Dl[i], El[i], Dl[k + a], El[k + a]
        with np.errstate(invalid="ignore"):
            take = ~np.isfinite(d1) | (np.isfinite(d2) & ((np.abs(d1 - d2) > e1 + e2) | (e2 < e1)))
        if np.all(take):
            st[i], sch[i] = st[k + a], sch[k + a] + " (on x's own scale)"
        Dl[i] = np.where(take, d2, d1)
        El[i] = np.where(take, e2, e1)
    Dl, El = Dl[:k], El[:k]
    m = Dl.shape[1]
    D, E, steps = np.zeros((n, m), dtype=Dl.dtype), np.zeros((n, m)), np.zeros(n)
    D[free], E[free], steps[free] = Dl, El, st[:k]
    schemes = ["fixed"] * n
    for a, j in enumerate(free):
        schemes[j] = sch[a]
    warn_unresolved(caller, sim, D, E, schemes, {}, stacklevel=4)
    if failures and not any(np.isnan(D).ravel()):
        import warnings as _w

        from .errors import SimdiffWarning

        _w.warn(f"simdiff.{caller}: {len(failures)} point(s) of the adaptive search failed and "
                "were left out (the entries were computed from the others, or closer to x); "
                "see info.failures", SimdiffWarning, stacklevel=3)
    return D, E, nfev, failures, steps, schemes, scalar


def _adaptive_info(E, nfev, steps, schemes, method, failures) -> Info:
    return Info(error=E, nfev=nfev, step=steps, method=method, failures=failures,
                schemes=schemes, fixed=[j for j, s in enumerate(schemes) if s == "fixed"])


def _sparse_jacobian(sim, x, st, box, ev, method, adaptive, step, rel_step, sparsity):
    """The Jacobian on the pattern ``sparsity`` by grouped columns (see ``sparsity.py``)."""
    from .sparsity import colour_columns, pattern, plan_groups, scatter

    n = x.shape[0]
    rows, cols, m, sparse, kind = pattern(sparsity, n)
    if box is not None:  # fixed coordinates (lower == upper) have a zero column
        keep = box[0][cols] != box[1][cols]
        rows, cols = rows[keep], cols[keep]
    groups = colour_columns(rows, cols, m, n)
    nfev, failures, schemes, steps = 0, [], ["zero column"] * n, np.zeros(n)
    if not groups:
        D = E = np.zeros((0, m))
        U = np.zeros((0, n))
    elif adaptive:
        s = np.maximum(1.0, np.abs(x))
        U = np.zeros((len(groups), n))
        sg = np.array([np.max(s[g]) for g in groups])
        for k, g in enumerate(groups):
            U[k, g] = 2.0 ** np.round(np.log2(s[g] / sg[k]))
        rng = [direction_range(x, U[k], box) for k in range(len(groups))]
        D, E, nfev, failures, st_g, sch, _ = adaptive_directional(
            sim, x, U, sg, np.array([r[0] for r in rng]), np.array([r[1] for r in rng]), ev,
            side=_SIDES[method])
        for k, g in enumerate(groups):
            steps[g] = st_g[k] * U[k, g]
            for j in g:
                schemes[j] = sch[k]
    elif st is None:
        h = base_steps(x, st, step, rel_step)
        plan, U = plan_groups(x, h, groups)
        D, E, nfev, failures, _ = _run(sim, plan, ev, method)
        for k, (g, term) in enumerate(zip(groups, plan.terms)):
            steps[g] = term.h * U[k, g]
            for j in g:
                schemes[j] = term.kind
    else:
        # the groups' directions through the same second looks as single columns
        # (``refine.run_partials``: f(x) for the curvature, widening, closer steps)
        from .sparsity import group_directions

        h = base_steps(x, st, step, rel_step)
        U, hg, sg = group_directions(x, st, h, groups, box)
        rng = [direction_range(x, U[k], box) for k in range(len(groups))]
        D, E, nfev, failures, plan, _, notes = run_partials(
            sim, x, U, np.zeros(len(groups)), np.array([r_[0] for r_ in rng]),
            np.array([r_[1] for r_ in rng]), sg, st, hg, ev,
            auto=step is None and rel_step is None, partial=False)
        for k, (g, term) in enumerate(zip(groups, plan.terms)):
            steps[g] = term.h * U[k, g]
            for j in g:
                schemes[j] = term.kind
    if len(groups) and D.shape[1] != m:
        raise ArgumentError(
            f"sparsity has {m} rows but f returns {D.shape[1]} values per point; "
            f"allowed: a pattern of shape ({D.shape[1]}, {n})"
        )
    ratio = [np.where(U[k] != 0, 1.0 / np.where(U[k] != 0, U[k], 1.0), 0.0)
             for k in range(len(groups))]
    J, Err = scatter(D, E, ratio, groups, rows, cols, m, n, sparse, kind)
    info = Info(error=Err, nfev=nfev, step=steps, method=method, failures=failures,
                schemes=schemes, fixed=[j for j, s_ in enumerate(schemes) if s_ == "zero column"],
                groups=[g.tolist() for g in groups], n_groups=len(groups))
    from .sparsity import SparsityWarning, verify_pattern  # one J·v check of the pattern

    info.pattern_check, extra = verify_pattern(sim, x, J, Err, box, ev, groups=groups, D=D, DE=E,
                                               rows=(rows, cols))
    info.nfev += extra
    info.pattern_nfev = extra
    if info.pattern_check:
        import warnings

        warnings.warn(info.pattern_check, SparsityWarning, stacklevel=3)
    return J, info


def _info(E, nfev, plan, method, failures, shape=None) -> Info:
    steps = plan.steps
    if isinstance(plan, Done):  # the lean lane: every entry of one two-point kind
        return Info(error=E if shape is None else E.reshape(shape), nfev=nfev, step=steps,
                    method=method, failures=failures, schemes=[plan.kind] * len(steps), fixed=[])
    info = Info(
        error=E if shape is None else E.reshape(shape),
        nfev=nfev,
        step=steps,
        method=method,
        failures=failures,
        schemes=[t.kind.replace("central", "five-point", 1)
                 if method == "five-point" and t.kind.startswith("central") and len(t.rows) == 4
                 else t.kind for t in plan.terms],
        fixed=[j for j, t in enumerate(plan.terms) if t.kind == "fixed"],
    )
    return info


def jacobian(f: Any, x: Any, *, method: str = "central", order: int | None = None,
             step: Any = None, rel_step: Any = None, scale: Any = None, bounds: Any = None,
             vectorized: bool | None = None, n_jobs: int | None = None, backend: Any = None,
             evaluator: Any = None, full_output: bool = False, sparsity: Any = None,
             cache: Any = None, timeout: Any = None, retries: Any = None,
             on_failure: Any = None, noise: Any = None, _caller: str = "jacobian"):
    """The Jacobian J[i, j] = ∂f_i/∂x_j of f: R^n -> R^m at x, shape (m, n) always.

    See the module docstring for the options; the step rule is in ``simdiff.steps``.

    sparsity : None, or the nonzero pattern S of J: a boolean array (m, n) or a scipy.sparse
        matrix. Columns are grouped by a greedy Curtis–Powell–Reid colouring
        (``simdiff.sparsity``), so a central Jacobian costs 2 × (number of groups)
        evaluations; entries outside S are 0. J (and info.error) is a scipy.sparse CSR array
        (matrix, if S is a sparse matrix) when S is sparse, dense otherwise;
        ``info.groups`` lists the column groups, ``info.n_groups`` counts them.

    noise : None, a level (float or array (m,)), a ``NoiseEstimate``, or "estimate" (see
        ``simdiff.noise``): noise-optimal steps and the noise term in ``info.error``
        (``info.noise`` is the level used); it replaces step="adaptive".

    Returns
    -------
    J : ndarray (m, n), or ``(J, info)`` with ``full_output=True``; info.error is (m, n).
    """
    x = as_point(x)
    adaptive = _is_adaptive(step, rel_step, order, _method(method)) and noise is None
    step = None if noise is not None and isinstance(step, str) and step == ADAPTIVE else step
    if adaptive or (isinstance(step, str) and method == "complex"):
        step = None
    sim, st, box, ev, method = _prepare(f, x, method, order, step, rel_step, bounds, vectorized,
                                        n_jobs, backend, evaluator, cache=cache, timeout=timeout,
                                        retries=retries, on_failure=on_failure)
    if sparsity is not None:
        nz = setup_noise(noise, sim, x, ev, method, step, rel_step, bounds=box)  # noise.py
        with nz:
            J, info = _sparse_jacobian(sim, x, st, box, nz.evaluator, method, adaptive,
                                       step if nz.steps is None else nz.steps, rel_step, sparsity)
        return (J, nz.annotate(info)) if full_output else J
    if adaptive:
        D, E, nfev, failures, steps, schemes, _ = adaptive_with_noise(
            lambda e: _adaptive_partials(sim, x, box, e, method, scale, _caller), x, ev, method,
            sim, box)  # noise.py
        J = np.ascontiguousarray(D.T)
        if not full_output:
            return J
        return J, _adaptive_info(np.ascontiguousarray(E.T), nfev, steps, schemes, method, failures)
    if st is None:
        nz = setup_noise(noise, sim, x, ev, method, step, rel_step, bounds=box)
        h = base_steps(x, st, step, rel_step, typical=_scale_for(sim, scale, x))
        plan = plan_partials(x, st, h, box)
        with nz:
            D, E, nfev, failures, _ = _run(sim, plan, nz.evaluator, method)
    else:
        D, E, nfev, failures, plan, _, nz = _partials(sim, x, st, step, rel_step, scale, box, ev,
                                                      method, _caller, noise)
    J = np.ascontiguousarray(D.T)
    if not full_output:
        return J
    return J, nz.annotate(_info(np.ascontiguousarray(E.T), nfev, plan, method, failures))


def gradient(f: Any, x: Any, **opts: Any):
    """The gradient ∇f of f: R^n -> R at x, shape (n,).

    f may return a float or an array of size 1. Options as for ``jacobian``.
    """
    full = opts.pop("full_output", False)
    allowed = _JACOBIAN_OPTIONS
    unknown = sorted(set(opts) - allowed) if not allowed.issuperset(opts) else None
    if unknown:
        import difflib

        near = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
        raise ArgumentTypeError(
            f"gradient() got an unexpected keyword argument {unknown[0]!r}"
            + (f" (did you mean {near[0]!r}?)" if near else "")
            + f"; allowed: {', '.join(sorted(allowed))}")
    opts.setdefault("_caller", "gradient")
    J, info = jacobian(f, x, full_output=True, **opts)
    if J.shape[0] != 1:
        raise OutputError(
            f"gradient needs a scalar output; f returned {J.shape[0]} values per point "
            "(allowed: a float or an array of size 1; use simdiff.jacobian for vector outputs)"
        )
    g = J[0]
    if not full:
        return g
    info.error = info.error[0]
    return g, info


#: The options ``gradient`` passes on to ``jacobian``.
_JACOBIAN_OPTIONS = frozenset(jacobian.__kwdefaults__) - {"_caller", "full_output"}


def derivative(f: Any, x: Any, *, method: str = "central", order: int | None = None,
               step: Any = None, rel_step: Any = None, scale: Any = None, bounds: Any = None,
               vectorized: bool | None = None, n_jobs: int | None = None, backend: Any = None,
               evaluator: Any = None, full_output: bool = False, cache: Any = None,
               timeout: Any = None, retries: Any = None, on_failure: Any = None,
               noise: Any = None):
    """The derivative f'(x) of f: R -> R at the float x.

    A callable is called with a float (with a (k,) array when ``vectorized``); a Simulator
    with an array of shape (1,). Returns a float, or an array (m,) when f returns one.
    """
    if np.ndim(x) != 0:
        raise ArgumentError(
            f"x must be a single float for derivative; got an array of shape {np.shape(x)} "
            "(use simdiff.gradient or simdiff.jacobian for several variables)"
        )
    xa = as_point(np.reshape(np.asarray(x, dtype=float) if not np.iscomplexobj(x) else x, (1,)))
    adaptive = _is_adaptive(step, rel_step, order, _method(method)) and noise is None
    step = None if noise is not None and isinstance(step, str) and step == ADAPTIVE else step
    if adaptive or (isinstance(step, str) and method == "complex"):
        step = None
    sim, st, box, ev, method = _prepare(f, xa, method, order, step, rel_step, bounds, vectorized,
                                        n_jobs, backend, evaluator,
                                        scalar_input=not isinstance(f, Simulator), cache=cache,
                                        timeout=timeout, retries=retries, on_failure=on_failure)
    if adaptive:
        D, E, nfev, failures, steps, schemes, scalar = adaptive_with_noise(
            lambda e: _adaptive_partials(sim, xa, box, e, method, scale, "derivative"), xa, ev,
            method, sim, box)  # noise.py
        info = _adaptive_info(E, nfev, steps, schemes, method, failures)
    elif st is None:
        nz = setup_noise(noise, sim, xa, ev, method, step, rel_step, bounds=box)
        h = base_steps(xa, st, step, rel_step, typical=_scale_for(sim, scale, xa))
        plan = plan_partials(xa, st, h, box)
        with nz:
            D, E, nfev, failures, scalar = _run(sim, plan, nz.evaluator, method)
        info = nz.annotate(_info(E, nfev, plan, method, failures))
    else:
        D, E, nfev, failures, plan, scalar, nz = _partials(sim, xa, st, step, rel_step, scale, box,
                                                           ev, method, "derivative", noise)
        info = nz.annotate(_info(E, nfev, plan, method, failures))
    value = D[0, 0].item() if scalar else D[0].copy()  # a complex f gives a complex value
    if not full_output:
        return value
    info.error = float(E[0, 0]) if scalar else E[0].copy()
    info.step = float(info.step[0])
    return value, info


def jvp(f: Any, x: Any, v: Any, *, method: str = "central", order: int | None = None,
        step: Any = None, rel_step: Any = None, scale: Any = None, bounds: Any = None,
        vectorized: bool | None = None, n_jobs: int | None = None, backend: Any = None,
        evaluator: Any = None, full_output: bool = False, cache: Any = None,
        timeout: Any = None, retries: Any = None, on_failure: Any = None, noise: Any = None):
    """The directional derivative J(x)·v: shape (m,), or a float when f returns a float.

    The stencil runs along u = v/‖v‖₂ and the result is scaled by ‖v‖₂. The step t along u
    respects every coordinate's own scale: t = min_j h_j/|u_j| over the coordinates v moves,
    h_j the step the coordinate would get alone (``steps.py``: optimal·max(1, |x_j|), or
    optimal·scale_j), so that no coordinate moves further than its own optimal step (at
    x = [100, −0.5] and v = [1, 1] the second coordinate sets it). ``step`` (a float) is the
    step along u. Costs 2 evaluations (central) or 1 + 1 (forward).
    """
    x = as_point(x)
    v = as_point(v, "v") if np.any(np.asarray(v, dtype=float) != 0) else np.asarray(v, dtype=float)
    if v.shape != x.shape:
        raise ArgumentError(f"v must have the shape of x, {x.shape}; got shape {v.shape}")
    adaptive = _is_adaptive(step, rel_step, order, _method(method)) and noise is None
    step = None if noise is not None and isinstance(step, str) and step == ADAPTIVE else step
    if adaptive or (isinstance(step, str) and method == "complex"):
        step = None
    sim, st, box, ev, method = _prepare(f, x, method, order, step, rel_step, bounds, vectorized,
                                        n_jobs, backend, evaluator, cache=cache, timeout=timeout,
                                        retries=retries, on_failure=on_failure)
    if np.ndim(step) not in (0,) or np.ndim(rel_step) not in (0,):
        raise ArgumentError(f"step/rel_step for jvp must be a single float (the step along v); got step={step!r}, rel_step={rel_step!r}")
    norm = float(np.linalg.norm(v))
    if norm == 0.0:
        batch = _at_x(sim, x, ev)
        m = batch.values.shape[1]
        out = np.zeros(m)
        info = Info(error=np.zeros(m), nfev=batch.nfev, step=0.0, method=method, failures=[],
                    schemes=["zero direction"], fixed=[])
        if batch.scalar:
            out, info["error"] = 0.0, 0.0
        return (out, info) if full_output else out
    # a power-of-two norm keeps v's mantissas in u, and a power-of-two step then makes the
    # nodes x + t·u exact for directions with short mantissas (v = [1, -2, 0.5]): see
    # ``_correct_direction`` for the others
    norm = float(2.0 ** np.round(np.log2(norm)))
    u = v / norm
    moved = u != 0
    typ = _scale_for(sim, scale, x)
    s_j = typ if typ is not None else np.maximum(1.0, np.abs(x))
    # the length along u over which some coordinate moves by its own scale
    s_t = float(np.min(s_j[moved] / np.abs(u[moved])))
    if adaptive:
        t_lo, t_hi = direction_range(x, u, box)
        D, E, nfev, failures, steps, schemes, scalar = adaptive_directional(
            sim, x, u[None, :], np.array([s_t]), np.array([t_lo]), np.array([t_hi]), ev,
            side=_SIDES[method])
        out, err = D[0] * norm, E[0] * norm
        info = _adaptive_info(err, nfev, float(steps[0]), schemes, method, failures)
    elif st is None:
        h = float(np.min(base_steps(x, st, None, None, typical=s_j)[moved] / np.abs(u[moved]))) \
            if step is None and rel_step is None else \
            float(base_steps(np.array([s_t]), st, step, rel_step, scale=np.array([s_t]))[0])
        plan = plan_direction(x, u, st, h, box, s_t)
        D, E, nfev, failures, scalar = _run(sim, plan, ev, method)
        out, err = D[0] * norm, E[0] * norm
        info = _info(err, nfev, plan, method, failures)
        info.step = float(plan.steps[0])
    else:
        nz = setup_noise(noise, sim, x, ev, method, step, rel_step, scale=np.array([s_t]),
                         direction=u, bounds=box)
        auto = step is None and rel_step is None and nz.steps is None
        if nz.steps is not None:
            h = float(nz.steps[0])
        elif auto:
            h = float(np.min(base_steps(x, st, None, None, typical=s_j)[moved] / np.abs(u[moved])))
            h = float(2.0 ** np.floor(np.log2(h)))
        else:
            h = float(base_steps(np.array([s_t]), st, step, rel_step, scale=np.array([s_t]))[0])
        t_lo, t_hi = direction_range(x, u, box)
        with nz:
            out = pre = None
            if auto and box is None and nz.level is None:
                out = lean_direction(sim, x, u, st, h, s_t, nz.evaluator)  # the usual call
            if isinstance(out, Done):
                D, E, nfev, failures, scalar, notes = out.D, out.E, out.nfev, [], out.scalar, out.notes
                # the general path's term: rows of x ∓ h·u (central) or of x, x ± h·u
                rows = np.array([1, 2]) if out.kind == "central" else np.array([0, 1])
                plan = Plan(x, out.points, [Term(rows, np.asarray(st.offsets, dtype=float),
                                                 st.weights, h, 1, st.order, st.error_coef,
                                                 out.kind, s_t)], center=0)
            else:
                pre = out
                D, E, nfev, failures, plan, scalar, notes = run_partials(
                    sim, x, u[None, :], np.zeros(1), np.array([t_lo]), np.array([t_hi]),
                    np.array([s_t]), st, np.array([h]), nz.evaluator, auto=auto, partial=False,
                    pre=pre)
        D, E, nfev = _correct_direction(sim, x, u, plan, D, E, nfev, nz.evaluator, st, s_t, box)
        warn_unresolved("jvp", sim, D, E, [t.kind for t in plan.terms], notes, what="direction")
        out, err = D[0] * norm, E[0] * norm
        info = nz.annotate(_info(err, nfev, plan, method, failures))
        info.step = float(plan.steps[0])
    if scalar and out.shape == (1,):
        out, info["error"] = out[0].item(), info["error"][0].item()
    return (out, info) if full_output else out


def _correct_direction(sim, x, u, plan, D, E, nfev, ev, st, s_t, box):
    """Undo the rounding of the nodes x + t·u.

    Each coordinate of a node is rounded to the floats near x_j, so the stencil measures J
    along the direction its nodes realize, w = Σ_k w_k (X_k − x) / h (exact, for the linear
    part of f), not along u: off by ulp(x_j)/(t·|u_j|) per coordinate, 1.6e-9 at x_j = 100
    and t = 1e-5, far above the rounding of f itself when f is sensitive to x_j. The
    difference c = u − w is known exactly, so J·u = J·w + ‖c‖·J·ĉ, and J·ĉ, needed to a
    few digits only, costs one central pair (2 runs) when c ≠ 0."""
    term = plan.terms[0]
    if term.kind == "fixed" or not len(term.rows) or not np.all(np.isfinite(D)):
        return D, E, nfev
    X = plan.points[term.rows]
    w = (term.weights @ (X - x)) / term.h
    c = u - w
    cn = float(np.linalg.norm(c))
    if cn == 0.0 or cn < 1e-15 * float(np.linalg.norm(u)) * 1e-3:
        return D, E, nfev
    chat = c / cn
    t_lo, t_hi = direction_range(x, chat, box)
    tau = min(float(optimal_factor(scheme("central")) * s_t), 0.5 * t_hi, -0.5 * t_lo)
    if not tau > 0:
        return D, E + cn * np.abs(D), nfev
    batch = ev.evaluate(sim, np.array([x + tau * chat, x - tau * chat]))
    nfev += batch.nfev
    if not batch.ok.all():
        return D, E + cn * np.abs(D), nfev
    Fc = np.real(batch.values) if not np.iscomplexobj(D) else batch.values
    Jc = (Fc[0] - Fc[1]) / (2 * tau)
    # the pair's own error is far below 10 % of J·ĉ, and the term is ‖c‖ ≲ 1e-8 small
    return D + cn * Jc, E + cn * (0.1 * np.abs(Jc)), nfev


def _at_x(sim: Simulator, x: np.ndarray, ev: Any):
    """f(x) alone, through the Evaluator: for the output size when nothing else is planned,
    or for the centre a failed stencil falls back on."""
    return ev.evaluate(sim, x[None, :])
