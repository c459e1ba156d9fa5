"""The one routine behind jacobian, jvp and vjp: residual check, partials, solve, error.

See the package docstring (``simdiff.implicit``) for the rules; this module implements them.
"""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any

import numpy as np

from .. import differentiate as _d
from ..differentiate import Info
from ..errors import (ArgumentError, ArgumentTypeError, SimdiffError, SimdiffWarning,
                      SimulationError)
from ..evaluate import resolve_evaluator
from ..plan import direction_range
from ..steps import normalize_bounds
from ._linalg import EPS, Dense, KrylovMemory, Sparse, gmres_recycled
from ._curvature import pair_errors
from ._residual import Along, Line, Section

LINEAR_SOLVERS = ("lu", "gmres")
ON_RESIDUAL = ("auto", "raise", "warn")
#: κ₁(∂F/∂y) × (relative error of ∂F/∂y) at or above which ∂F/∂y is refused as singular.
#: Below 1, A + δA is nonsingular for every δA with ‖δA‖₁ ≤ δ‖A‖₁ (‖A⁻¹δA‖₁ ≤ κ₁δ < 1,
#: Higham 2002, Thm 7.12 / Lemma 2.3); at or above it, a perturbation of the size of the
#: finite-difference error may make A singular.
SINGULAR = 1.0
#: Above this n the dense error bound is normwise (no explicit A⁻¹).
DENSE_COMPONENTWISE_MAX = 2000
#: Factor of the offset term ρ·|X| (y not exactly y*): the term is first order in ρ and its
#: model |∂X/∂y| ≈ |X|/max(1, |y|) a guess of the length scale; 2 covers the second-order part
#: of 1/y-like dependence (X = 1/(2y): the first-order term alone falls 0.1 % short at ρ = 1e-3).
OFFSET_FACTOR = 2.0


class ResidualError(ArgumentError):
    """y does not solve F(y, θ) = 0 to the accuracy the derivative needs."""


class SingularJacobianError(SimdiffError, ArithmeticError):
    """∂F/∂y (or the Hessian block ∂²f/∂y²) is singular or too ill-conditioned for its
    finite-difference accuracy: the implicit derivative is not determined."""


# ---------------------------------------------------------------------------------------------
# arguments


def as_vector(x: Any, name: str) -> np.ndarray:
    """A float or an array (k,) as a finite float64 array (k,); ArgumentError naming ``name``."""
    if np.ndim(x) == 0 and not isinstance(x, (str, bytes)):
        try:
            x = np.reshape(np.asarray(x, dtype=complex if np.iscomplexobj(x) else float), (1,))
        except (TypeError, ValueError):
            raise ArgumentTypeError(f"{name} must be a float or an array of floats (k,); got {x!r}") from None
    return _d.as_point(x, name)


def fitted(x: Any, size: int, name: str, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float) if not np.iscomplexobj(x) else None
    if arr is None:
        raise ArgumentTypeError(f"{name} must be real; got complex values")
    arr = np.reshape(arr, (1,)) if arr.ndim == 0 and size == 1 else arr
    if arr.shape != (size,):
        raise ArgumentError(f"{name} must have shape ({size},) ({what}); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ArgumentError(f"{name} must be finite; got {arr!r}")
    return arr


_OWN = {"f", "x", "v", "full_output", "sparsity", "evaluator", "n_jobs", "backend", "vectorized"}


def derivative_options(opts: dict, target: Any, where: str) -> dict:
    """The options passed on to ``target`` (sd.jacobian, sd.jvp, sd.hessian): every keyword
    it accepts except the ones this package sets itself; others are an ArgumentError."""
    allowed = [k for k in inspect.signature(target).parameters if k not in _OWN]
    bad = [k for k in opts if k not in allowed]
    if bad:
        raise ArgumentError(
            f"{where}: unknown option {bad[0]}={opts[bad[0]]!r}; allowed: the derivative options "
            f"{', '.join(allowed)}, and n_jobs, backend, evaluator, cache, timeout, retries, "
            f"on_failure, vectorized, sparsity, linear_solver, tol, on_residual, full_output"
        )
    return dict(opts)


class Counted:
    """An Evaluator seen through a counter of simulator runs (nfev) and batches (nrounds),
    which records the batches (``records``) and lifts the residual's values off its root.

    ``lift = (sim, w, share)``: the values of ``sim`` (a residual that vanishes at w) are
    handed on plus one constant per output, ``lift_constant`` of the call's first batch (so
    that every value of the call is lifted alike: f stays a function, and simdiff's checks
    across its points — noise between central pairs — see the same f). The derivatives are
    unchanged; no value changes sign, so simdiff does not widen the stencils (``_curvature``).
    The records hold the values as evaluated."""

    def __init__(self, ev: Any) -> None:
        self.ev, self.nfev, self.nrounds = ev, 0, 0
        self.records: list | None = None  # (X, values, ok) of each batch while recording
        self.lift: tuple | None = None
        self.K: Any = None
        self.r: Any = None  # F at the point: taken from the first batch that holds it

    def _run(self, sim, X):
        batch = self.ev.evaluate(sim, X)
        self.nfev += batch.nfev
        self.nrounds += 1
        return batch

    def _served(self, sim, X):
        """The batch, with the point itself answered by the known F(y, θ) (not run again)."""
        from dataclasses import replace

        key = np.asarray(self.lift[1], dtype=X.dtype).tobytes()
        at = np.array([X[k].tobytes() == key for k in range(len(X))], dtype=bool)
        if not at.any() or self.r is None or np.iscomplexobj(X):
            return self._run(sim, X)
        rest = np.flatnonzero(~at)
        if not len(rest):
            self.nrounds += 1
            return _known_batch(X, self.r)
        sub = self._run(sim, X[rest])
        values = np.empty((len(X), sub.values.shape[1]), dtype=sub.values.dtype)
        values[rest] = sub.values
        values[at] = self.r if self.r.shape[0] == values.shape[1] else np.nan
        ok = np.ones(len(X), dtype=bool)
        ok[rest] = sub.ok
        failures = [replace(f, index=int(rest[f.index])) if hasattr(f, "index") else f
                    for f in sub.failures]
        return replace(sub, values=values, ok=ok, failures=failures)

    def evaluate(self, sim, X):
        X = np.asarray(X)
        batch = self._served(sim, X) if self.lift is not None and sim is self.lift[0] \
            else self._run(sim, X)
        if self.lift is None or sim is not self.lift[0]:
            if self.records is not None:
                self.records.append((np.asarray(X), batch.values, batch.ok))
            return batch
        from dataclasses import replace

        X = np.asarray(X)
        w, share = self.lift[1], self.lift[2]
        if self.r is None:  # F(y, θ): the point itself, in this batch or alone
            key = np.asarray(w, dtype=X.dtype).tobytes()
            at = [k for k in range(len(X)) if batch.ok[k] and X[k].tobytes() == key]
            if at:
                self.r = np.real(batch.values[at[0]]).copy()
            else:
                alone = self._run(sim, np.asarray(w, dtype=float)[None, :])
                if not alone.ok.all():
                    raise SimulationError(f"F could not be evaluated at the point [y, θ] = {w!r}: "
                                          f"{alone.failures[0]}", failures=alone.failures)
                self.r = np.real(alone.values[0]).copy()
        if self.r.shape[0] != batch.values.shape[1]:
            return batch  # F's length changed between points: simdiff reports it
        V = batch.values - self.r[None, :]  # the point is now an exact root
        if self.records is not None:
            self.records.append((X, V, batch.ok))
        if share is not None and not np.iscomplexobj(V):
            if self.K is None:
                self.K = lift_constant(X, V, batch.ok, w, share)
            V = V + self.K[None, :]
        return replace(batch, values=V)

    @property
    def on_failure(self) -> str:
        return getattr(self.ev, "on_failure", "raise")

    @on_failure.setter
    def on_failure(self, mode: str) -> None:  # simdiff switches it while it collects failures
        self.ev.on_failure = mode

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ev, name)


def _known_batch(X: np.ndarray, r: np.ndarray):
    from ..evaluate import Batch

    return Batch(values=np.tile(r, (len(X), 1)), ok=np.ones(len(X), dtype=bool), failures=[],
                 nfev=0, scalar=r.shape[0] == 1)


def lift_share(o: dict) -> float | None:
    """The lift of a call (see ``lift_constant``): LIFT_SHARE for symmetric stencils, whose
    error ``_curvature.pair_errors`` computes; ROW_SHARE for one-sided ones, whose error is
    simdiff's; None for step="adaptive" and the complex step (no two-point stencil to widen)."""
    method = o.get("method", "central")
    if isinstance(o.get("step"), str) or method == "complex":
        return None
    if o.get("noise") is not None:  # noise-optimal steps are long: the length scale s itself
        return 1.0
    return LIFT_SHARE if method in ("central", "five-point") else ROW_SHARE


#: The lift is this share of max_j |∂F_i/∂z_j|·s_j: enough for simdiff's model to read a length
#: scale of s/64 (hundreds of steps) or more rather than a root, little rounding (ε·|∂F|·s/64).
LIFT_SHARE = 1.0 / 64
#: The share for one constant per output (one-sided stencils, whose error simdiff estimates
#: from the length scale it reads, L ≈ s·share: a larger share keeps that estimate near the
#: true error at the price of rounding ε·|∂F/∂e|·s·share).
ROW_SHARE = 1.0 / 4


def lift_constant(X: np.ndarray, V: np.ndarray, ok: np.ndarray, w: np.ndarray,
                  share: float = LIFT_SHARE) -> np.ndarray:
    """K_i = max(2·max_k |V_ik|, share·max_k |V_ik|·s_k/δ_k) (see ``Counted``): above
    every value, so none changes sign; |V_k|/δ_k estimates the derivative along point k's
    displacement, s_k = max(1, |w_j|) over the coordinates it moves its scale."""
    m = V.shape[1]
    K = np.zeros(m)
    for k in np.flatnonzero(ok):
        d = np.abs(X[k] - w)
        delta = float(np.max(d)) if len(d) else 0.0
        if delta == 0.0:
            continue
        s = float(np.max(np.maximum(1.0, np.abs(w[d > 0]))))
        v = np.abs(np.real(V[k]))
        K = np.maximum(K, np.maximum(2.0 * v, share * v * (s / delta)))
    return K


def evaluator_for(evaluator, n_jobs, backend, cache, timeout, retries, on_failure) -> Counted:
    return Counted(resolve_evaluator(evaluator, n_jobs, backend, cache=cache, timeout=timeout,
                                     retries=retries, on_failure=on_failure))


def _box(opts: dict, z: np.ndarray):
    return normalize_bounds(opts.get("bounds"), z) if opts.get("bounds") is not None else None


def _abs_steps(opts: dict, z: np.ndarray, scalar: bool = False):
    """Per-coordinate step arrays of the stacked vector as absolute steps (N,), or None
    (``scalar``: a float step too, as that step for every entry)."""
    N = z.shape[0]
    step, rel = opts.get("step"), opts.get("rel_step")
    if scalar and step is not None and not isinstance(step, str) and np.ndim(step) == 0:
        return np.full(N, float(step))
    if step is not None and not isinstance(step, str) and np.ndim(step) == 1:
        return fitted(step, N, "step", "one step per entry of [y, θ]")
    if rel is not None and np.ndim(rel) == 1:
        r = fitted(rel, N, "rel_step", "one relative step per entry of [y, θ]")
        return r * np.where(z != 0, np.abs(z), 1.0)
    return None


def section_options(opts: dict, z: np.ndarray, idx: np.ndarray) -> dict:
    """Options of the stacked vector restricted to the coordinates ``idx``."""
    out = dict(opts)
    for key in ("step", "rel_step", "scale"):
        val = opts.get(key)
        if val is not None and not isinstance(val, str) and np.ndim(val) == 1:
            out[key] = fitted(val, z.shape[0], key, "one per entry of [y, θ]")[idx]
    box = _box(opts, z)
    if box is not None:
        out["bounds"] = (box[0][idx], box[1][idx])
    return out


def along_options(opts: dict, z: np.ndarray, n: int, W: np.ndarray) -> dict:
    """Options of the stacked vector for w = [y', t] (``Along``): y's entries unchanged; the
    step along direction k the largest that moves no θ_j more than its own step; the range
    of t the one that keeps θ + W t in θ's bounds."""
    out = dict(opts)
    h = _abs_steps(opts, z, scalar=True)
    if h is not None:
        out.pop("rel_step", None)
        ht = [min((h[n + j] / abs(W[j, k]) for j in np.flatnonzero(W[:, k])), default=1.0)
              for k in range(W.shape[1])]
        out["step"] = np.concatenate([h[:n], ht])
    scale = opts.get("scale")
    if scale is not None and np.ndim(scale) == 1:  # t is in units of s_k already
        sc = fitted(scale, z.shape[0], "scale", "one per entry of [y, θ]")
        out["scale"] = np.concatenate([sc[:n], np.ones(W.shape[1])])
    box = _box(opts, z)
    if box is not None:
        lo, hi = box
        rng = [direction_range(z[n:], W[:, k], (lo[n:], hi[n:])) for k in range(W.shape[1])]
        out["bounds"] = (np.concatenate([lo[:n], [r[0] for r in rng]]),
                         np.concatenate([hi[:n], [r[1] for r in rng]]))
    return out


def directions(V: np.ndarray, theta: np.ndarray):
    """W = [u_k·s_k] for the columns v_k of V (p, q): u_k = v_k/‖v_k‖, s_k = max(1, max|θ_j|
    over the θ_j v_k moves) (``sd.jvp``'s scale), and the factors ‖v_k‖/s_k that turn a
    derivative along W_k into ∂F/∂θ·v_k."""
    norms = np.linalg.norm(V, axis=0)
    W = np.zeros_like(V)
    fac = np.zeros(V.shape[1])
    for k in range(V.shape[1]):
        if norms[k] == 0:
            continue
        u = V[:, k] / norms[k]
        s = float(max(1.0, np.max(np.abs(theta[u != 0]))))
        W[:, k], fac[k] = u * s, norms[k] / s
    return W, fac


# ---------------------------------------------------------------------------------------------
# the residual at the point


def residual(sim, z: np.ndarray, n: int, ev, what: str = "F") -> np.ndarray:
    """F(y, θ) (n,), one evaluation through the Evaluator; ArgumentError naming F if its
    length is not n."""
    batch = ev.evaluate(sim, z[None, :])
    if not batch.ok.all():
        raise ArgumentError(f"{what} could not be evaluated at [y, θ] = {z!r}: {batch.failures[0]}")
    r = np.real(batch.values[0])
    if r.shape != (n,):
        raise ArgumentError(
            f"{what} must return one residual per unknown, {n} values (len(y) = {n}); "
            f"{what} returned {r.shape[0]} values at [y, θ]"
        )
    return r


def newton_ratio(dy: np.ndarray, y: np.ndarray) -> float:
    """ρ = max_j |δy_j| / max(1, |y_j|): the Newton correction relative to y's scale."""
    return float(np.max(np.abs(dy) / np.maximum(1.0, np.abs(y))))


def check_residual(rho: float, r: np.ndarray, tol: float, on_residual: str, what: str,
                   how: str) -> None:
    """When the Newton correction ρ exceeds ``tol``: "raise" -> ResidualError; "warn" ->
    SimdiffWarning; "auto" (default) -> SimdiffWarning up to ρ = √tol (a solver stopped a little
    early: the result is good to about ρ), ResidualError beyond (y is not a solution)."""
    if not rho > tol:
        return
    msg = (f"y does not solve {what} = 0 to the accuracy asked: ‖{what}(y, θ)‖ = "
           f"{np.linalg.norm(r):.3g}, which puts the solution about ρ = {rho:.3g} away "
           f"(relative to max(1, |y|), {how}) > tol = {tol:.3g}. The derivative is taken at y, "
           f"so expect a relative error of about {rho:.1g}. Solve more tightly (a smaller "
           f"xtol/ftol for the solver), or pass tol={10 ** math.ceil(math.log10(rho)):.0e} or "
           f"on_residual='warn' to accept it")
    if on_residual == "raise" or (on_residual == "auto" and rho > math.sqrt(tol)):
        raise ResidualError(msg)
    warnings.warn(msg, SimdiffWarning, stacklevel=4)


def check_singular(cond: float, rel_err: float, n: int, what: str = "∂F/∂y") -> None:
    delta = max(rel_err, n * EPS)
    if not (np.isfinite(cond) and cond * delta < SINGULAR):
        raise SingularJacobianError(
            f"{what} is singular or too ill-conditioned for its accuracy: condition number "
            f"κ₁ ≈ {cond:.3g}, relative error of its finite-difference estimate ≈ {delta:.2g}, "
            f"κ₁·error = {cond * delta:.2g} ≥ {SINGULAR} (a perturbation of that size may make it "
            f"singular). The solution y*(θ) is then not locally unique or not differentiable: "
            f"check that y solves the system, that every unknown enters the residual, and "
            f"remove redundant equations or unknowns"
        )


def _options(linear_solver: Any, tol: Any, on_residual: Any) -> None:
    if linear_solver not in LINEAR_SOLVERS:
        raise ArgumentError(f"linear_solver must be one of {LINEAR_SOLVERS}; got {linear_solver!r}")
    number = isinstance(tol, (int, float, np.floating, np.integer)) and not isinstance(tol, bool)
    if not number or not (tol > 0 and math.isfinite(tol)):
        raise ArgumentError(f"tol must be a positive float (the relative accuracy asked); got {tol!r}")
    if on_residual not in ON_RESIDUAL:
        raise ArgumentError(f"on_residual must be one of {ON_RESIDUAL}; got {on_residual!r}")


# ---------------------------------------------------------------------------------------------
# the routine


def implicit(sim, y, theta, *, mode: str, vec=None, linear_solver="lu", sparsity=None,
             tol=1e-6, on_residual="auto", ev: Counted, opts: dict, gmres_rtol=1e-10,
             maxiter=None, what="F"):
    """dy*/dθ (mode "jacobian", (n, p)), its product with v ("jvp", (n,)) or gᵀ·dy*/dθ
    ("vjp", (p,)), and the Info of ``full_output``."""
    _options(linear_solver, tol, on_residual)
    n, p = y.shape[0], theta.shape[0]
    z = np.concatenate([y, theta])
    if sparsity is not None and linear_solver == "gmres":
        raise ArgumentError("sparsity= is for linear_solver='lu' (a sparse LU of ∂F/∂y); "
                            "linear_solver='gmres' never forms ∂F/∂y: give one or the other")
    if mode == "jvp" and _blocked(opts, z, n, vec):
        # bounds leave no room along v (θ at a corner of its box): ∂F/∂θ column by column,
        # each of which may go one-sided inside the box, then dy*/dθ · v
        X, info = implicit(sim, y, theta, mode="jacobian", linear_solver=linear_solver,
                           sparsity=sparsity, tol=tol, on_residual=on_residual, ev=ev, opts=opts,
                           gmres_rtol=gmres_rtol, maxiter=maxiter, what=what)
        info.error = np.abs(info.error) @ np.abs(vec)
        return X @ vec, info
    if linear_solver == "gmres" and not (mode == "vjp" and p >= n):
        r = residual(sim, z, n, ev, what)
        return _gmres_path(sim, y, theta, z, r, mode, vec, tol, on_residual, ev, opts,
                           gmres_rtol, maxiter, what)
    # ---- partials: [∂F/∂y, ∂F/∂θ] (or [∂F/∂y, ∂F/∂θ·v]) in ONE batch
    pat = None if sparsity is None else _y_pattern(sparsity, n, p)
    fac, W = None, None
    if mode == "jvp":
        W, fac = directions(vec[:, None], theta)
        G, w = Along(sim, theta, W, n), np.concatenate([y, np.zeros(1)])
        o = derivative_options(along_options(opts, z, n, W), _d.jacobian, "implicit")
    else:
        G, w = sim, z
        o = derivative_options(opts, _d.jacobian, "implicit")
    q = w.shape[0] - n
    spat = None if pat is None else _with_theta(pat, q)
    J, E, info, r = _block(ev, G, w, o, spat, what, n=n)
    if spat is not None:
        A, EA = J[:, :n], E[:, :n]
        B, EB = J[:, n:].toarray(), E[:, n:].toarray()
    else:
        A, EA, B, EB = J[:, :n], E[:, :n], J[:, n:], E[:, n:]
    steps = np.abs(np.ravel(info.get("step")))
    hy, ht = steps[:n], steps[n:]
    yinfo = tinfo = info
    if opts.get("method", "central") != "complex":  # the complex step subtracts nothing
        EA, EB = _parts_floor(A, EA, B, EB, z, n, hy, ht, mode == "jvp")
    if fac is not None:
        B, EB = B * fac, EB * fac
    if pat is not None:
        fact = Sparse(A)
        normA = fact.norm1
        relA = float(_sparse_norm1(EA)) / normA if normA else np.inf
    else:
        fact = Dense(A)
        normA = fact.norm1
        relA = float(np.linalg.norm(EA, 1)) / normA if normA else np.inf
    if yinfo is tinfo:  # one batch: the θ columns are dense, a group each
        groups = yinfo.get("n_groups")
        jinfo = Info(method=yinfo.get("method"), step=np.ravel(yinfo.get("step")),
                     failures=list(yinfo.get("failures", [])),
                     n_groups=None if groups is None else groups - B.shape[1])
    else:
        jinfo = Info(method=yinfo.get("method"),
                     step=np.concatenate([np.ravel(yinfo.get("step")),
                                          np.ravel(tinfo.get("step"))]),
                     failures=list(yinfo.get("failures", [])) + list(tinfo.get("failures", [])),
                     n_groups=yinfo.get("n_groups"))
    value, err, rho, cond = finish(fact, A, EA, relA, B, EB, r, y, mode, vec, tol, on_residual,
                                   what, "∂F/∂y" if what == "F" else f"∂({what})/∂y")
    info = Info(error=err, residual=float(np.linalg.norm(r)), newton_step=rho, cond=cond,
                nfev=ev.nfev, nrounds=ev.nrounds, linear_solver=fact.kind,
                method=jinfo.get("method"), step=jinfo.get("step"),
                failures=jinfo.get("failures", []), partials_error=float(relA))
    if pat is not None:
        info.n_groups = jinfo.get("n_groups")
    return value, info


def finish(fact, A, EA, relA, B, EB, r, y, mode, vec, tol, on_residual, what, aname):
    """Singularity check, residual check, the solve and its error (dense or sparse factors).

    Error (first-order perturbation of A X = −B with |δA| ≤ EA, |δB| ≤ EB entrywise):
    |δX| ≤ |A⁻¹|(EA|X| + EB) componentwise for dense A (n ≤ DENSE_COMPONENTWISE_MAX); its
    largest entry per column ‖|A⁻¹|(EA|X_k| + EB_k)‖_∞ (1-norm estimator) for sparse A;
    ‖A⁻¹‖_∞·‖EA|X_k| + EB_k‖_∞ for a dense A above that size; plus LU rounding 4nε(|A||X| + |B|)
    through |A⁻¹|, plus OFFSET_FACTOR·ρ·|X| for the offset of y from y* (ρ the Newton correction relative to
    max(1, |y|); the model |∂X/∂y| ≈ |X|/max(1, |y|))."""
    n = y.shape[0]
    cond = np.inf if getattr(fact, "singular", False) else fact.cond
    check_singular(cond, relA, n, aname)
    dy = fact.solve(r)
    rho = newton_ratio(dy, y)
    check_residual(rho, r, tol, on_residual, what, f"the Newton step ({aname})⁻¹·{what}")
    X = -fact.solve(B)  # (n, q)
    Rk = (EA @ np.abs(X)) + EB
    if isinstance(fact, Dense) and n <= DENSE_COMPONENTWISE_MAX:
        EX = fact.abs_inv_times(Rk + 4 * n * EPS * (np.abs(A) @ np.abs(X) + np.abs(B)))
    elif isinstance(fact, Sparse):
        EX = np.empty_like(X)
        for k in range(X.shape[1]):
            EX[:, k] = fact.abs_inv_max(Rk[:, k])
        EX += 4 * n * EPS * cond * np.abs(X)
    else:
        inv = fact.inv_norm_inf()
        EX = np.broadcast_to(inv * np.max(Rk, axis=0), X.shape).copy()
        EX += 4 * n * EPS * cond * np.abs(X)
    EX += OFFSET_FACTOR * rho * np.abs(X)
    if mode == "vjp":
        g = vec
        lam = fact.solve(g, trans=True)  # Aᵀλ = g, then gᵀX = −λᵀB
        return -(B.T @ lam), np.abs(g) @ EX, rho, cond
    if mode == "jvp":
        return X[:, 0], EX[:, 0], rho, cond
    return X, EX, rho, cond


def _finite_partials(J, jinfo, what: str) -> None:
    """SimulationError naming the entries of the partials lost to failed points."""
    vals = J.data if hasattr(J, "data") and not isinstance(J, np.ndarray) else np.asarray(J)
    if np.all(np.isfinite(vals)):
        return
    bad = np.argwhere(~np.isfinite(np.asarray(J.toarray() if hasattr(J, "toarray") else J)))
    raise SimulationError(
        f"{what} could not be evaluated at every point the partials need: entries "
        f"{[tuple(map(int, b)) for b in bad[:5]]} of ∂{what}/∂[y, θ] are NaN "
        f"({len(bad)} in all); failures: {jinfo.get('failures', [])[:3]}",
        failures=list(jinfo.get("failures", [])))


def _blocked(opts: dict, z: np.ndarray, n: int, v: np.ndarray) -> bool:
    """True when the bounds leave θ no room along v in either direction."""
    box = _box(opts, z)
    if box is None or not np.any(v):
        return False
    t_lo, t_hi = direction_range(z[n:], v / np.linalg.norm(v), (box[0][n:], box[1][n:]))
    return not t_hi > t_lo


def _block(ev: Counted, G, w0: np.ndarray, o: dict, pat, what: str, r0=None, n=None):
    """Partials of the residual G at w0, shifted to an exact root there and lifted off it
    (see ``Counted`` and ``_curvature.py``): (J, |error|, info, r), r = G(w0) (``r0`` if known,
    else taken from the batch, which then holds w0, or evaluated alone); J and the error
    sparse when ``pat`` is. Central differences get the error of ``pair_errors``, other
    methods simdiff's own estimate. ``n``: the length G must return (ArgumentError naming F)."""
    share = lift_share(o)
    ev.records = []
    ev.lift, ev.K, ev.r = (G, w0, share), None, r0
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            J, info = _d.jacobian(G, w0, evaluator=ev, full_output=True, sparsity=pat, **o)
        records, r = ev.records, ev.r
    finally:
        ev.records, ev.lift, ev.K, ev.r = None, None, None, None
    for c in caught:  # handed on, from the caller's line
        warnings.warn(c.message, c.category, stacklevel=4)
    # noise (given, or seen in the values by simdiff): its estimate holds the noise term
    noisy = o.get("noise") is not None or any(c.category.__name__ == "NoiseWarning"
                                              for c in caught)
    if n is not None and (J.shape[0] != n or (r is not None and r.shape != (n,))):
        raise ArgumentError(
            f"{what} must return one residual per unknown, {n} values (len(y) = {n}); "
            f"{what} returned {J.shape[0]} values at [y, θ]")
    _finite_partials(J, info, what)
    dense_pat = None if pat is None else _dense_pattern(pat)
    E = np.abs(info.error.toarray() if hasattr(info.error, "toarray") else np.asarray(info.error))
    if o.get("method", "central") == "central" and share is not None:
        Eo, covered = pair_errors(records, w0, dense_pat, E.shape[0], E.shape[1])
        E = np.where(covered, np.maximum(Eo, E) if noisy else Eo, E)
    if pat is not None:
        import scipy.sparse as sp

        return sp.csr_array(J), sp.csr_array(E * dense_pat), info, r
    return J, E, info, r


def _parts_floor(A, EA, B, EB, z, n, hy, ht, along: bool):
    """The rounding floor of a residual's partials: F_i is computed from terms of about
    ρ_i = Σ_j |∂F_i/∂z_j|·|z_j| (it vanishes at the solution, its parts do not), whose
    rounding ε·ρ_i enters every difference: entry (i, j) errs by at least ε·ρ_i/h_j. (The
    values of the stencil, near zero, do not show the parts; simdiff's floor ε·|∂F/∂z_j|·s_j
    misses the other terms of the row.)"""
    if hy.shape != (n,) or ht.shape != (B.shape[1],) or np.any(hy == 0) or np.any(ht == 0):
        return EA, EB
    zy, zt = np.abs(z[:n]), np.abs(z[n:])
    rowA = np.asarray(abs(A) @ zy).ravel()
    rowB = np.zeros(A.shape[0]) if along else np.abs(B) @ zt
    rho = EPS * (rowA + rowB)
    EB = np.maximum(EB, rho[:, None] / ht[None, :])
    if hasattr(EA, "toarray"):  # sparse: on the pattern only
        import scipy.sparse as sp

        coo = sp.coo_array(A)
        floor = sp.csr_array((rho[coo.row] / hy[coo.col], (coo.row, coo.col)), shape=A.shape)
        return EA.maximum(floor), EB
    return np.maximum(EA, np.where(A != 0, rho[:, None] / hy[None, :], 0.0)), EB


def _with_theta(pat, q: int):
    """The pattern of [∂F/∂y, ∂F/∂θ·W]: ∂F/∂y's, padded with q dense columns."""
    import scipy.sparse as sp

    return sp.hstack([pat, sp.csr_array(np.ones((pat.shape[0], q)))], format="csr")


def _y_pattern(sparsity, n: int, p: int):
    """The pattern of ∂F/∂y: S (n, n), or the first n columns of S (n, n + p)."""
    import scipy.sparse as sp

    try:
        S = sp.csr_array(sparsity) if sp.issparse(sparsity) else sp.csr_array(np.asarray(sparsity, dtype=bool))
    except Exception:  # noqa: BLE001
        raise ArgumentTypeError(
            f"sparsity must be a boolean array or scipy.sparse matrix of shape ({n}, {n}) "
            f"(the pattern of ∂F/∂y) or ({n}, {n + p}); got {type(sparsity).__name__}") from None
    if S.ndim != 2 or S.shape not in ((n, n), (n, n + p)):
        raise ArgumentError(
            f"sparsity must have shape ({n}, {n}) (the pattern of ∂F/∂y, n = len(y)) or "
            f"({n}, {n + p}) (of ∂F/∂[y, θ]); got shape {S.shape}")
    return sp.csr_array((S[:, :n] != 0).astype(float))


def _dense_pattern(pat) -> np.ndarray:
    return np.asarray(pat.toarray() != 0)


def _sparse_norm1(E) -> float:
    return float(np.max(np.asarray(abs(E).sum(axis=0)).ravel())) if E.nnz else 0.0


def _directional(ev, sim, z: np.ndarray, v: np.ndarray, opts: dict, what: str, r: np.ndarray):
    """(J·v, its error (m,)) as the derivative along t of F(z + t·W) at t = 0, W = u·s_t,
    u = v/‖v‖, s_t = min_j max(1, |z_j|)/|u_j| over the coordinates v moves (no coordinate
    moves further than its own step, the rule of ``simdiff.jvp``); the nodes t = ±h are exact,
    the rounding of z + t·W is below the differences' own error for |z_j| ≲ 1e3."""
    nv = float(np.linalg.norm(v))
    if nv == 0.0:
        return np.zeros(r.shape[0]), np.zeros(r.shape[0])
    u = v / nv
    moved = np.flatnonzero(u)
    s_t = float(np.min(np.maximum(1.0, np.abs(z[moved])) / np.abs(u[moved])))
    W = (u * s_t)[:, None]
    o = dict(opts)
    h = _abs_steps(opts, z, scalar=False)
    if h is not None:
        o.pop("rel_step", None)
        o["step"] = float(np.min(h[moved] / np.abs(W[moved, 0])))
    elif o.get("step") is not None and not isinstance(o.get("step"), str):
        o["step"] = float(o["step"]) / s_t  # a float step is the step along u
    if o.get("scale") is not None:
        o.pop("scale")
    box = _box(opts, z)
    if box is not None:
        t_lo, t_hi = direction_range(z, W[:, 0], box)
        o["bounds"] = ([t_lo], [t_hi])
    J, E, _, _ = _block(ev, Line(sim, z, W), np.zeros(1), o, None, what, r)
    return np.real(J[:, 0]) * nv / s_t, np.abs(E[:, 0]) * nv / s_t


def _gmres_path(sim, y, theta, z, r, mode, vec, tol, on_residual, ev, opts, rtol, maxiter, what):
    """Matrix-free: every A·v a directional derivative of F (2 evaluations central), the
    derivative along t of F(z + t·W), W = u·s_t (``_directional``)."""
    n, p = y.shape[0], theta.shape[0]
    maxiter = n if maxiter is None else int(maxiter)
    jopts = derivative_options(opts, _d.jacobian, "implicit")
    partial_err = [0.0]

    def matvec(v):
        out, e = _directional(ev, sim, z, np.concatenate([v, np.zeros(p)]), jopts, what, r)
        e = float(np.linalg.norm(e))
        partial_err[0] = max(partial_err[0], e)
        return out, e

    # right-hand sides −∂F/∂θ·v or −∂F/∂θ
    if mode == "jvp":
        b, eb = _directional(ev, sim, z, np.concatenate([np.zeros(n), vec]), jopts, what, r)
        Bq, EBq = b[:, None], eb[:, None]
    else:
        idx = np.arange(n, n + p)
        so = derivative_options(section_options(opts, z, idx), _d.jacobian, "implicit")
        Bq, EBq, _, _ = _block(ev, Section(sim, z, idx), theta, so, None, what, r)
    cols, errs, iters, smin, smax, conv = [], [], [], np.inf, 0.0, True
    mem, eta = KrylovMemory(matvec), 0.0
    for k in range(Bq.shape[1]):
        res = gmres_recycled(mem, -Bq[:, k], rtol, maxiter, eta)
        eta = max(eta, res.eta)
        cols.append(res.x)
        iters.append(res.iterations)
        conv &= res.converged
        if res.iterations:
            smin, smax = min(smin, res.smin), max(smax, res.smax)
        errs.append(res.relres * float(np.linalg.norm(Bq[:, k])))
    X = np.array(cols).T.reshape(n, Bq.shape[1])
    cond = smax / smin if smin > 0 else (np.inf if smax > 0 else np.nan)
    if np.isfinite(smax) and smax > 0:
        check_singular(cond, partial_err[0] / smax, n)
    inv = 1.0 / smin if smin > 0 and np.isfinite(smin) else np.nan
    rnorm = float(np.linalg.norm(r))
    if rnorm > 0 and np.isfinite(inv):
        rho = rnorm * inv / float(np.min(np.maximum(1.0, np.abs(y))))
    else:
        rho = 0.0
    check_residual(rho, r, tol, on_residual, what,
                   "estimated as ‖F‖/σ_min with σ_min from the GMRES Hessenberg matrix")
    if not conv:
        warnings.warn(f"GMRES stopped after {max(iters)} matrix-vector products without reaching "
                      f"its tolerance; the result's error estimate includes the final residual",
                      SimdiffWarning, stacklevel=3)
    # ‖δx_k‖₂ ≤ ‖A⁻¹‖(η‖x_k‖ + ‖δb_k‖ + ‖final residual‖), with ‖A⁻¹‖ ≈ 1/σ_min(H̄)
    colerr = np.array([inv * (partial_err[0] * np.linalg.norm(X[:, k]) +
                              np.linalg.norm(EBq[:, k]) + errs[k]) for k in range(X.shape[1])])
    EX = np.broadcast_to(colerr, X.shape) + OFFSET_FACTOR * rho * np.abs(X)
    if mode == "jvp":
        value, err = X[:, 0], EX[:, 0]
    elif mode == "vjp":
        value, err = vec @ X, np.abs(vec) @ EX
    else:
        value, err = X, EX
    info = Info(error=err, residual=rnorm, newton_step=rho, cond=cond, nfev=ev.nfev,
                nrounds=ev.nrounds, linear_solver="gmres", gmres_iterations=iters,
                method=opts.get("method", "central"), step=opts.get("step"), failures=[],
                partials_error=partial_err[0] / smax if smax else np.nan)
    return value, info
