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

Evaluation counts: central 2n, forward/backward n + 1, five-point 4n, complex n; jvp 2
(central) or 1 + 1 (forward). Bounds may turn a central stencil one-sided (plus f(x)).
``jacobian(..., sparsity=S)`` counts groups of columns instead of columns (``sparsity.py``);
step="adaptive" spends 6 to 12 per coordinate (``adaptive.py``); ``simdiff.hessian``
(``hessians.py``) 2n² + 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ArgumentError, ArgumentTypeError, OutputError
from .evaluate import resolve_evaluator
from .adaptive import adaptive_directional
from .plan import Plan, assemble, direction_range, needs_center, plan_direction, plan_partials
from .simulator import Simulator, as_simulator
from .stencils import METHODS, scheme
from .noise import adaptive_with_noise, noise_error, setup_noise
from .steps import base_steps, normalize_bounds

__all__ = ["derivative", "gradient", "jacobian", "jvp", "Info", "as_point"]


class Info(dict):
    """The ``info`` of ``full_output=True``: a dict whose keys are also attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


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
    if not np.all(np.isfinite(arr)):
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
    """Evaluate the plan's batch, repair failed entries, assemble: (D, E, nfev, failures)."""
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
        if needs_center(plan, ok):
            extra = _at_x(sim, plan.x, evaluator)
            nfev += extra.nfev
            failures.extend(_failure_dict(f, offset=len(points)) for f in extra.failures)
            if extra.values.shape[1] == F.shape[1]:
                F = np.vstack([F, extra.values])
                ok = np.concatenate([ok, extra.ok])
                plan.points = np.vstack([points, plan.x[None, :]])
                plan.center = len(points)
    else:
        # Every coordinate is fixed: one evaluation at x tells the output size.
        batch = _at_x(sim, plan.x, evaluator)
        nfev += batch.nfev
        F, ok = batch.values[:0], batch.ok[:0]
    D, E, lost = assemble(plan, F, ok)
    E = noise_error(plan, F, ok, D, E)  # noise given (noise=) or seen in the values (noise.py)
    failures.extend(lost)
    return D, E, nfev, failures, batch.scalar


def _failure_dict(f: Any, offset: int = 0) -> dict:
    d = f.as_dict() if hasattr(f, "as_dict") else dict(f)
    d["index"] = d.get("index", 0) + offset
    return d


def _prepare(f, x, method, order, step, rel_step, bounds, vectorized, n_jobs, backend, evaluator,
             scalar_input=False, deriv=1):
    method = _method(method)
    sim = as_simulator(f, vectorized=vectorized, scalar_input=scalar_input)
    _check_complex(sim, method)
    st = scheme(method, order, deriv)
    box = _bounds_for(sim, bounds, x)
    ev = resolve_evaluator(evaluator, n_jobs, backend)
    return sim, st, box, ev, method


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


def _adaptive_partials(sim, x, box, ev, method):
    """step="adaptive" for every partial derivative: (D (n, m), E (n, m), nfev, failures,
    steps (n,), schemes, scalar). Fixed coordinates (lower == upper) get 0."""
    n = x.shape[0]
    lo, hi = box if box is not None else (np.full(n, -np.inf), np.full(n, np.inf))
    free = np.flatnonzero(lo != hi)
    nfev = 0
    if len(free) == 0:
        batch = _at_x(sim, x, ev)
        m = batch.values.shape[1]
        return (np.zeros((n, m)), np.zeros((n, m)), batch.nfev, [], np.zeros(n),
                ["fixed"] * n, batch.scalar)
    Dl, El, nfev, failures, st, sch, scalar = adaptive_directional(
        sim, x, np.eye(n)[free], np.maximum(1.0, np.abs(x[free])), (lo - x)[free],
        (hi - x)[free], ev, side=_SIDES[method])
    m = Dl.shape[1]
    D, E, steps = np.zeros((n, m)), np.zeros((n, m)), np.zeros(n)
    D[free], E[free], steps[free] = Dl, El, st
    schemes = ["fixed"] * n
    for k, j in enumerate(free):
        schemes[j] = sch[k]
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
    else:
        h = base_steps(x, st, step, rel_step)
        plan, U = plan_groups(x, st, h, groups, box)
        D, E, nfev, failures, _ = _run(sim, plan, ev, method)
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
    return J, info


def _info(E, nfev, plan, method, failures, shape=None) -> Info:
    steps = plan.steps
    info = Info(
        error=E if shape is None else E.reshape(shape),
        nfev=nfev,
        step=steps,
        method=method,
        failures=failures,
        schemes=[t.kind for t in plan.terms],
        fixed=[j for j, t in enumerate(plan.terms) if t.kind == "fixed"],
    )
    return info


def jacobian(f: Any, x: Any, *, method: str = "central", order: int | None = None,
             step: Any = None, rel_step: Any = None, bounds: Any = None,
             vectorized: bool | None = None, n_jobs: int | None = None, backend: Any = None,
             evaluator: Any = None, full_output: bool = False, sparsity: Any = None,
             noise: Any = None):
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
                                        n_jobs, backend, evaluator)
    if sparsity is not None:
        nz = setup_noise(noise, sim, x, ev, method, step, rel_step, bounds=box)  # noise.py
        with nz:
            J, info = _sparse_jacobian(sim, x, st, box, nz.evaluator, method, adaptive,
                                       step if nz.steps is None else nz.steps, rel_step, sparsity)
        return (J, nz.annotate(info)) if full_output else J
    if adaptive:
        D, E, nfev, failures, steps, schemes, _ = adaptive_with_noise(
            lambda e: _adaptive_partials(sim, x, box, e, method), x, ev, method, sim, box)  # noise.py
        J = np.ascontiguousarray(D.T)
        if not full_output:
            return J
        return J, _adaptive_info(np.ascontiguousarray(E.T), nfev, steps, schemes, method, failures)
    nz = setup_noise(noise, sim, x, ev, method, step, rel_step, bounds=box)
    h = base_steps(x, st, step, rel_step) if nz.steps is None else nz.steps
    plan = plan_partials(x, st, h, box)
    with nz:
        D, E, nfev, failures, _ = _run(sim, plan, nz.evaluator, method)
    J = np.ascontiguousarray(D.T)
    if not full_output:
        return J
    return J, nz.annotate(_info(np.ascontiguousarray(E.T), nfev, plan, method, failures))


def gradient(f: Any, x: Any, **opts: Any):
    """The gradient ∇f of f: R^n -> R at x, shape (n,).

    f may return a float or an array of size 1. Options as for ``jacobian``.
    """
    full = opts.pop("full_output", False)
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


def derivative(f: Any, x: Any, *, method: str = "central", order: int | None = None,
               step: Any = None, rel_step: Any = None, bounds: Any = None,
               vectorized: bool | None = None, n_jobs: int | None = None, backend: Any = None,
               evaluator: Any = None, full_output: bool = False, noise: Any = None):
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
                                        scalar_input=not isinstance(f, Simulator))
    if adaptive:
        D, E, nfev, failures, steps, schemes, scalar = adaptive_with_noise(
            lambda e: _adaptive_partials(sim, xa, box, e, method), xa, ev, method, sim, box)  # noise.py
        info = _adaptive_info(E, nfev, steps, schemes, method, failures)
    else:
        nz = setup_noise(noise, sim, xa, ev, method, step, rel_step, bounds=box)
        h = base_steps(xa, st, step, rel_step) if nz.steps is None else nz.steps
        plan = plan_partials(xa, st, h, box)
        with nz:
            D, E, nfev, failures, scalar = _run(sim, plan, nz.evaluator, method)
        info = nz.annotate(_info(E, nfev, plan, method, failures))
    value = float(D[0, 0]) if scalar else D[0].copy()
    if not full_output:
        return value
    info.error = float(E[0, 0]) if scalar else E[0].copy()
    info.step = float(info.step[0])
    return value, info


def jvp(f: Any, x: Any, v: Any, *, method: str = "central", order: int | None = None,
        step: Any = None, rel_step: Any = None, bounds: Any = None,
        vectorized: bool | None = None, n_jobs: int | None = None, backend: Any = None,
        evaluator: Any = None, full_output: bool = False, noise: Any = None):
    """The directional derivative J(x)·v, shape (m,) (a float-valued f gives shape (1,)).

    The stencil runs along u = v/‖v‖₂ with the step rule of ``steps.py`` on the scale
    max(1, max_j |x_j| over the coordinates v moves), and the result is scaled by ‖v‖₂.
    ``step`` (a float) is the step along u. Costs 2 evaluations (central) or 1 + 1 (forward).
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
                                        n_jobs, backend, evaluator)
    norm = float(np.linalg.norm(v))
    if norm == 0.0:
        batch = _at_x(sim, x, ev)
        m = batch.values.shape[1]
        out = np.zeros(m)
        info = Info(error=np.zeros(m), nfev=batch.nfev, step=0.0, method=method, failures=[],
                    schemes=["zero direction"], fixed=[])
        return (out, info) if full_output else out
    u = v / norm
    moved = u != 0
    scale = float(max(1.0, np.max(np.abs(x[moved]))))
    if np.ndim(step) not in (0,) or np.ndim(rel_step) not in (0,):
        raise ArgumentError(f"step/rel_step for jvp must be a single float (the step along v); got step={step!r}, rel_step={rel_step!r}")
    if adaptive:
        t_lo, t_hi = direction_range(x, u, box)
        D, E, nfev, failures, steps, schemes, _ = adaptive_directional(
            sim, x, u[None, :], np.array([scale]), np.array([t_lo]), np.array([t_hi]), ev,
            side=_SIDES[method])
        out = D[0] * norm
        if not full_output:
            return out
        info = _adaptive_info(E[0] * norm, nfev, float(steps[0]), schemes, method, failures)
        return out, info
    nz = setup_noise(noise, sim, x, ev, method, step, rel_step, scale=np.array([scale]), direction=u,
                     bounds=box)
    h = float(base_steps(np.array([scale]), st, step, rel_step, scale=np.array([scale]))[0]
              if nz.steps is None else nz.steps[0])
    plan = plan_direction(x, u, st, h, box, scale)
    with nz:
        D, E, nfev, failures, _ = _run(sim, plan, nz.evaluator, method)
    out = D[0] * norm
    if not full_output:
        return out
    info = nz.annotate(_info(E[0] * norm, nfev, plan, method, failures))
    info.step = float(plan.steps[0])
    return out, info


def _at_x(sim: Simulator, x: np.ndarray, ev: Any):
    """f(x) alone, through the Evaluator: for the output size when nothing else is planned,
    or for the centre a failed stencil falls back on."""
    return ev.evaluate(sim, x[None, :])
