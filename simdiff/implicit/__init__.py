"""Implicit differentiation: dy*/dθ of the solution of F(y, θ) = 0, from F alone.

A solver returns y*(θ) with F(y*(θ), θ) = 0 (an equilibrium, a steady state, a fixed point, an
argmin). By the implicit function theorem, where A = ∂F/∂y is invertible,

    A · dy*/dθ = −B,        B = ∂F/∂θ,

so the sensitivities need F at the solution only, never the solver's iterations
(finite differences through the solver cost 2p solver runs and inherit its tolerance as noise).
F is anything that can be evaluated: ``F(y, theta) -> (n,)``, or a ``simdiff.Simulator`` of
the stacked vector z = [y, θ] (n + p entries).

Rules
-----
Partials. A and B come from ``simdiff.jacobian`` of F over y and over θ, so every derivative
option works (method, order, step, rel_step, scale, bounds, noise where the installed version
has it, vectorized, n_jobs/backend/evaluator, cache/timeout/retries/on_failure), and each runs
as one batch of the Evaluator. Per-coordinate options (step, rel_step, scale arrays, bounds)
refer to z = [y, θ].

* ``jacobian``, ``vjp`` (linear_solver="lu"): [A, B] in ONE batch of 2(n + p) points plus
  the point itself (simdiff's central batch holds it; F(y, θ) is read from it, else evaluated
  alone): 2(n + p) + 1 evaluations (central; five-point 4(n + p) + 1).
* ``jvp`` ("lu"): [A, B·v] in one batch (the residual along θ + t·s·v/‖v‖, s = max(1,
  max|θ_j| moved), the scale of ``simdiff.jvp``): 2(n + 1) + 1.
* ``sparsity=S`` (the pattern of A, (n, n), or of [A, B], (n, n + p), whose first n columns
  are used): A by column groups (Curtis–Powell–Reid colouring, ``simdiff.sparsity``) in the
  same batch as B, 2·(groups + p) + 1 evaluations (a tridiagonal A with p = 2: 3 groups, 11
  evaluations at any n), solved by SuperLU (``scipy.sparse.linalg.splu``).
* ``linear_solver="gmres"``: A is never formed. Each product A·v is a directional derivative
  of F (the derivative along t of F(z + t·u·s_t) at exact nodes t = ±h, 2 evaluations central),
  inside a full GMRES (``_linalg.gmres``); right-hand sides −B (2p) or −B·v (2). GMRES stops at
  ‖r‖ ≤ max(gmres_rtol, 10η)‖b‖, η the relative error of the products; a further right-hand
  side starts from the least-squares fit over every earlier product (often needing none).
  Cost: 2p + 2·Σ(iterations) + 1 for the Jacobian, 2 + 2·iterations + 1 for a jvp.

The residual's root. F − F(y, θ) vanishes at the point, so it changes sign across every central
stencil, which simdiff's error model reads as a root of unknown length scale inside the stencil
(and settles with wider stencils: twice the evaluations). The values handed to simdiff are
shifted by F(y, θ) and lifted by one constant per output (``_core.Counted``,
``_curvature.py``): the derivatives are unchanged, no value changes sign, and the error of each
central difference is computed from its own points with the point itself as third node
(rounding, and a truncation term from the measured second difference), with the rounding floor
ε·Σ_j|∂F_i/∂z_j||z_j|/h of a residual computed from terms much larger than its value.

VJP rule. gᵀ·dy*/dθ = −λᵀB with Aᵀλ = g (the transposed system). With "lu" (dense or sparse)
the factors of A solve Aᵀλ = g directly. Finite differences give A·v, never Aᵀ·v, so with
"gmres" the VJP is built in forward mode: when p < n, the p columns of dy*/dθ by p GMRES
solves and then gᵀ·(dy*/dθ); when p ≥ n, A is formed densely (2n evaluations in the stacked
batch) and the transposed system is solved by LU.

Refusals.
* y: the Newton correction δy = A⁻¹F(y, θ) measures how far y is from y*; the derivative at
  y differs from the one at y* by about ρ·|dy*/dθ|, ρ = max_j |δy_j| / max(1, |y_j|). When
  ρ > ``tol`` (default 1e-6): ``on_residual="auto"`` (default) issues a ``SimdiffWarning``
  while ρ ≤ √tol (a solver that stopped a little early: the result is good to about ρ) and
  refuses y beyond (``ResidualError``: y is not a solution); "raise" refuses any ρ > tol,
  "warn" never refuses. Both name ‖F‖, ρ, tol and what to do.
  (GMRES: ρ ≈ ‖F‖₂/σ_min/min_j max(1, |y_j|), σ_min from the Arnoldi Hessenberg matrix.)
* A: refused (``SingularJacobianError``) when κ₁(A)·δ ≥ 1, δ = max(‖δA‖₁/‖A‖₁, nε) the
  relative finite-difference error of A (its ``info.error``): below 1 every A + δA of that
  size is nonsingular; at 1 or above a perturbation of that size may make A singular, so no
  digit of the result is determined.
* F returning other than n values, and θ, v, g, sparsity of the wrong shape: ArgumentError
  naming the argument and the shape allowed.

Error estimate (``full_output=True``: ``info.error``, the shape of the result). First-order
perturbation of AX = −B: |δX| ≤ |A⁻¹|(|δA||X| + |δB|) componentwise for a dense A (|δA|, |δB|
the error estimates of the partials, above); for a sparse one the largest entry of that bound per
column, ‖|A⁻¹|(|δA||X_k| + |δB_k|)‖_∞ = ‖diag(·)A⁻ᵀ‖₁ by the block 1-norm estimator (the
forward-error bound of LAPACK's xGERFS), ‖A⁻¹‖₂(η‖x‖ + ‖δb‖ + ‖r_GMRES‖) for GMRES; plus the
LU rounding and 2ρ·|X| for the offset of y. The info also holds ``residual`` (‖F(y, θ)‖₂ at the
y given), ``newton_step`` (ρ), ``cond`` (κ₁ of A; GMRES: σ_max/σ_min of the Hessenberg
matrix, a lower estimate), ``nfev``, ``nrounds`` (batches), ``linear_solver``, ``method``,
``step``, ``failures``, ``partials_error`` (δ), and ``n_groups`` (sparsity) or
``gmres_iterations``.

Special forms: ``fixed_point_jacobian`` (y* = T(y*, θ): F = T − y), ``argmin_jacobian``
(y* = argmin_y f(y, θ): F = ∇_y f, so A = ∂²f/∂y², B = ∂²f/∂y∂θ, from ``simdiff.hessian`` of
f over z, 2(n + p)² + 1 evaluations, plus the gradient ∇_y f (2n) for the residual check).
``root(solver, F)`` keeps the solver's answer per θ and differentiates without re-running it.

References: Krantz & Parks, *The Implicit Function Theorem* (2002); Blondel et al., "Efficient
and modular implicit differentiation", NeurIPS 2022 (the JAXopt rules); Higham, *Accuracy and
Stability of Numerical Algorithms*, 2nd ed. (2002), §7 (perturbation bounds), §15 (condition
estimation); Saad & Schultz, SIAM J. Sci. Stat. Comput. 7 (1986) (GMRES).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .. import differentiate as _d
from .. import hessians as _h
from ..differentiate import Info
from ..errors import ArgumentError, ArgumentTypeError, SimdiffWarning
from ..simulator import Simulator, as_simulator
from ._core import (ResidualError, SingularJacobianError, as_vector, derivative_options,
                    evaluator_for, finish, fitted, implicit, section_options)
from ._linalg import Dense
from ._residual import FixedPointResidual, Section, Stacked
from ._root import Root, root

__all__ = ["jacobian", "jvp", "vjp", "fixed_point_jacobian", "argmin_jacobian", "root", "Root",
           "ResidualError", "SingularJacobianError"]


def residual_simulator(F: Any, n: int, vectorized: Any = None, name: str = "F") -> Simulator:
    """F as a Simulator of z = [y, θ]: a Simulator unchanged, a callable F(y, theta) wrapped."""
    if isinstance(F, Simulator):
        return as_simulator(F, vectorized=vectorized)
    if not callable(F):
        raise ArgumentTypeError(
            f"{name} must be a callable {name}(y, theta) or a simdiff.Simulator of the stacked "
            f"vector [y, θ]; got {type(F).__name__} {F!r}")
    return Stacked(F, n, vectorized=bool(vectorized))


def _points(y: Any, theta: Any) -> tuple[np.ndarray, np.ndarray]:
    return as_vector(y, "y"), as_vector(theta, "theta")


def _run(sim, y, theta, mode, vec, kw, what="F"):
    ev = evaluator_for(kw.pop("evaluator", None), kw.pop("n_jobs", None), kw.pop("backend", None),
                       kw.pop("cache", None), kw.pop("timeout", None), kw.pop("retries", None),
                       kw.pop("on_failure", None))
    full = kw.pop("full_output", False)
    own = {k: kw.pop(k) for k in ("linear_solver", "sparsity", "tol", "on_residual",
                                  "gmres_rtol", "maxiter") if k in kw}
    value, info = implicit(sim, y, theta, mode=mode, vec=vec, ev=ev, opts=kw, what=what, **own)
    return (value, info) if full else value


def jacobian(F: Any, y: Any, theta: Any, *, vectorized: bool | None = None, **options: Any):
    """dy*/dθ, shape (n, p), at a solution y of F(y, θ) = 0.

    Parameters
    ----------
    F : callable F(y, theta) -> (n,), or a Simulator of z = [y, θ] -> (n,).
    y : (n,) the solution (a float for n = 1); theta : (p,) (a float for p = 1).
    linear_solver : "lu" (default; dense, or sparse with ``sparsity``) or "gmres".
    sparsity : None, or the nonzero pattern of ∂F/∂y (n, n), or of ∂F/∂[y, θ] (n, n + p).
    tol : the relative accuracy asked (default 1e-6), checked against y's Newton correction ρ.
    on_residual : "auto" (default: warn for tol < ρ ≤ √tol, ResidualError beyond), "raise"
        (ResidualError for ρ > tol) or "warn" (SimdiffWarning only).
    gmres_rtol, maxiter : GMRES relative residual (default 1e-10) and products per solve (n).
    full_output : return ``(J, info)``.
    vectorized : F takes Y (k, n) and Θ (k, p) (a Simulator: (k, n + p)) and returns (k, n).
    **options : the derivative options of ``simdiff.jacobian`` for the partials (method,
        order, step, rel_step, bounds, ...), and n_jobs, backend, evaluator, cache, timeout,
        retries, on_failure.
    """
    y, theta = _points(y, theta)
    return _run(residual_simulator(F, y.shape[0], vectorized), y, theta, "jacobian", None, options)


def jvp(F: Any, y: Any, theta: Any, v: Any, *, vectorized: bool | None = None, **options: Any):
    """dy*/dθ · v, shape (n,): one batch [∂F/∂y, ∂F/∂θ·v] (2(n + 1) + 1 evaluations central),
    or GMRES with 2 evaluations per product. Options as for ``jacobian``."""
    y, theta = _points(y, theta)
    v = fitted(v, theta.shape[0], "v", "one entry per parameter, like theta")
    return _run(residual_simulator(F, y.shape[0], vectorized), y, theta, "jvp", v, options)


def vjp(F: Any, y: Any, theta: Any, g: Any, *, vectorized: bool | None = None, **options: Any):
    """gᵀ · dy*/dθ, shape (p,): −λᵀ∂F/∂θ with (∂F/∂y)ᵀλ = g (see the VJP rule in the module
    docstring). Options as for ``jacobian``."""
    y, theta = _points(y, theta)
    g = fitted(g, y.shape[0], "g", "one entry per unknown, like y")
    return _run(residual_simulator(F, y.shape[0], vectorized), y, theta, "vjp", g, options)


def _fixed(T, n, vectorized):
    return FixedPointResidual(residual_simulator(T, n, vectorized, "T"), n)


def fixed_point_jacobian(T: Any, y: Any, theta: Any, *, vectorized: bool | None = None,
                         **options: Any):
    """dy*/dθ at a fixed point y* = T(y*, θ), shape (n, p): the implicit derivative of
    F = T − y, so ∂F/∂y = ∂T/∂y − I (its FD error is that of ∂T/∂y). Options as for
    ``jacobian``; T as F there (a callable T(y, theta) or a Simulator of [y, θ])."""
    y, theta = _points(y, theta)
    return _run(_fixed(T, y.shape[0], vectorized), y, theta, "jacobian", None, options,
                what="T - y")


def argmin_jacobian(f: Any, y: Any, theta: Any, *, vectorized: bool | None = None,
                    tol: float = 1e-6, on_residual: str = "auto", full_output: bool = False,
                    n_jobs=None, backend=None, evaluator=None, cache=None, timeout=None,
                    retries=None, on_failure=None, **options: Any):
    """dy*/dθ at y* = argmin_y f(y, θ), shape (n, p), from second differences of f.

    The stationarity ∇_y f(y*, θ) = 0 differentiated: H_yy·dy*/dθ = −H_yθ, with the blocks
    of the Hessian of f over z = [y, θ] from ``simdiff.hessian`` (central second differences,
    2(n + p)² + 1 evaluations in one batch; ``step="adaptive"`` for Richardson). The residual
    check uses ∇_y f from ``simdiff.jacobian`` over y (2n evaluations): the Newton step
    H_yy⁻¹∇_y f against ``tol``. A stationary point that is not a minimum (H_yy not positive
    definite) gives a SimdiffWarning; its derivative is still that of the stationary point.

    f : callable f(y, theta) -> float, or a Simulator of [y, θ]. **options: those of
    ``simdiff.hessian`` (step, rel_step, bounds, method="central").
    """
    y, theta = _points(y, theta)
    n, p = y.shape[0], theta.shape[0]
    sim = residual_simulator(f, n, vectorized, "f")
    ev = evaluator_for(evaluator, n_jobs, backend, cache, timeout, retries, on_failure)
    if "linear_solver" in options or "sparsity" in options:
        bad = "linear_solver" if "linear_solver" in options else "sparsity"
        if not (bad == "linear_solver" and options[bad] == "lu"):
            raise ArgumentError(f"argmin_jacobian: {bad}={options[bad]!r} is not supported; the "
                                "Hessian blocks are dense (allowed: linear_solver='lu')")
        options.pop("linear_solver")
    from ._core import _options

    _options("lu", tol, on_residual)
    z = np.concatenate([y, theta])
    o = derivative_options(options, _h.hessian, "argmin_jacobian")
    H, hinfo = _h.hessian(sim, z, evaluator=ev, full_output=True, **o)
    if not np.all(np.isfinite(H)):
        raise ArgumentError("argmin_jacobian: f could not be evaluated at every point of the "
                            "Hessian stencil (see info.failures of simdiff.hessian)")
    idx = np.arange(n)
    go = derivative_options(section_options({k: v for k, v in options.items()
                                             if k in ("step", "rel_step", "bounds")}, z, idx),
                            _d.jacobian, "argmin_jacobian")
    with warnings.catch_warnings():  # ∇_y f ≈ 0 at a minimum: "not resolved" is expected
        warnings.simplefilter("ignore", SimdiffWarning)
        gy, ginfo = _d.jacobian(Section(sim, z, idx), y, evaluator=ev, full_output=True, **go)
    if gy.shape[0] != 1:
        raise ArgumentError(f"f must return a single float (the objective); f returned "
                            f"{gy.shape[0]} values")
    grad, gerr = gy[0], np.abs(ginfo.error[0])
    E = np.abs(hinfo.error)
    A, EA, B, EB = H[:n, :n], E[:n, :n], H[:n, n:], E[:n, n:]
    fact = Dense(A)
    relA = float(np.linalg.norm(EA, 1)) / fact.norm1 if fact.norm1 else np.inf
    # the gradient's own finite-difference error is no evidence of a residual
    r = np.sign(grad) * np.maximum(np.abs(grad) - gerr, 0.0)
    X, EX, rho, cond = finish(fact, A, EA, relA, B, EB, r, y, "jacobian", None, tol,
                              on_residual, "∇_y f", "∂²f/∂y²")
    lam = np.linalg.eigvalsh((A + A.T) / 2)
    if lam[0] <= 0:
        warnings.warn(f"argmin_jacobian: ∂²f/∂y² is not positive definite (smallest eigenvalue "
                      f"{lam[0]:.3g}): y is a stationary point of f, not a minimum; the result "
                      f"is the derivative of that stationary point", SimdiffWarning, stacklevel=2)
    if not full_output:
        return X
    info = Info(error=EX, residual=float(np.linalg.norm(grad)), newton_step=rho, cond=cond,
                nfev=ev.nfev, nrounds=ev.nrounds, linear_solver="lu", method="central",
                step=hinfo.step, failures=hinfo.failures, partials_error=relA,
                hessian_min_eigenvalue=float(lam[0]))
    return X, info
