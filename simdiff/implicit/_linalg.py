"""The linear algebra of implicit differentiation: factorizations of ∂F/∂y, their condition,
and a GMRES whose matrix–vector products are directional derivatives.

Dense: LU with partial pivoting (LAPACK getrf through ``scipy.linalg.lu_factor``); the
1-norm condition number κ₁ = ‖A‖₁‖A⁻¹‖₁ from LAPACK gecon (Hager–Higham estimator).
Sparse: SuperLU (``scipy.sparse.linalg.splu``, COLAMD ordering); κ₁ from
``scipy.sparse.linalg.onenormest`` of A and of the operator A⁻¹ (solves on the factors).
GMRES: Saad & Schultz (1986), full (no restart), modified Gram–Schmidt Arnoldi with one
reorthogonalization pass, Givens rotations for the least-squares residual; x₀ = 0.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

__all__ = ["Dense", "Sparse", "gmres", "GMRESResult"]

EPS = np.finfo(float).eps
#: Dense systems up to this size are solved one right-hand side at a time (see Dense.solve).
SMALL = 300


class Dense:
    """LU of a dense square A: solve (A or Aᵀ), κ₁, |A⁻¹| for componentwise error bounds."""

    kind = "lu"

    def __init__(self, A: np.ndarray) -> None:
        import scipy.linalg as sla

        self.A = np.asarray(A, dtype=float)
        self.n = self.A.shape[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an exactly singular A: rcond = 0 below says it
            self.lu = sla.lu_factor(self.A, check_finite=False)
        self.norm1 = float(np.linalg.norm(self.A, 1))
        gecon, self._getrs = sla.get_lapack_funcs(("gecon", "getrs"), (self.lu[0],))
        if self.norm1 == 0.0 or not np.all(np.isfinite(self.lu[0])):
            self.rcond = 0.0
        else:
            rc, info = gecon(self.lu[0], self.norm1, norm="1")
            self.rcond = float(rc) if info == 0 else 0.0
        if np.any(np.diag(self.lu[0]) == 0):
            self.rcond = 0.0
        self._inv = None

    @property
    def cond(self) -> float:
        return np.inf if self.rcond == 0.0 else 1.0 / self.rcond

    def solve(self, b: np.ndarray, trans: bool = False) -> np.ndarray:
        # LAPACK getrs directly: scipy's lu_solve wrapper costs ~50 µs a call, more than the
        # solve itself at the sizes met here
        # with several right-hand sides OpenBLAS hands the triangular solves to its threads,
        # which costs milliseconds on a busy machine even for 2 × 2 systems: small systems are
        # solved one column at a time (single-threaded, about 1 µs each)
        b = np.asarray(b, dtype=float)
        t = 1 if trans else 0
        if b.ndim == 2 and self.n <= SMALL:
            out = np.empty_like(b)
            for k in range(b.shape[1]):
                out[:, k] = self._getrs(self.lu[0], self.lu[1], b[:, k], trans=t)[0]
            return out
        return self._getrs(self.lu[0], self.lu[1], b, trans=t)[0]

    @property
    def inv(self) -> np.ndarray:
        if self._inv is None:
            self._inv = self.solve(np.eye(self.n))
        return self._inv

    def abs_inv_times(self, R: np.ndarray) -> np.ndarray:
        """|A⁻¹|·R (R ≥ 0): the componentwise first-order error bound."""
        return np.abs(self.inv) @ R

    def inv_norm_inf(self) -> float:
        return float(np.max(np.sum(np.abs(self.inv), axis=1)))


class Sparse:
    """SuperLU of a sparse square A; κ₁ and ‖A⁻¹‖_∞ by the block 1-norm estimator."""

    kind = "splu"

    def __init__(self, A) -> None:
        import scipy.sparse.linalg as spla

        self.A = A.tocsc()
        self.n = self.A.shape[0]
        try:
            self.lu = spla.splu(self.A)
            self.singular = False
        except RuntimeError:  # "Factor is exactly singular"
            self.lu, self.singular = None, True
        self.norm1 = float(spla.onenormest(self.A)) if self.A.nnz else 0.0
        self._cond = None

    def solve(self, b: np.ndarray, trans: bool = False) -> np.ndarray:
        return self.lu.solve(np.asarray(b, dtype=float), trans="T" if trans else "N")

    def _inv_op(self, transpose: bool):
        import scipy.sparse.linalg as spla

        return spla.LinearOperator(
            (self.n, self.n), dtype=float,
            matvec=lambda b: self.solve(np.ravel(b), trans=transpose),
            rmatvec=lambda b: self.solve(np.ravel(b), trans=not transpose),
            matmat=lambda B: self.solve(B, trans=transpose),
            rmatmat=lambda B: self.solve(B, trans=not transpose))

    @property
    def cond(self) -> float:
        import scipy.sparse.linalg as spla

        if self.singular or self.norm1 == 0.0:
            return np.inf
        if self._cond is None:
            self._cond = self.norm1 * float(spla.onenormest(self._inv_op(False)))
        return self._cond

    def inv_norm_inf(self) -> float:
        import scipy.sparse.linalg as spla

        return float(spla.onenormest(self._inv_op(True)))  # ‖A⁻¹‖_∞ = ‖A⁻ᵀ‖₁

    def abs_inv_max(self, r: np.ndarray) -> float:
        """max_i (|A⁻¹|·r)_i for r ≥ 0, without A⁻¹: ‖|A⁻¹|r‖_∞ = ‖A⁻¹·diag(r)‖_∞
        = ‖diag(r)·A⁻ᵀ‖₁, estimated by the block 1-norm estimator (the forward-error bound of
        LAPACK's xGERFS; Higham 2002, §15.2)."""
        import scipy.sparse.linalg as spla

        r = np.asarray(r, dtype=float)
        if not np.any(r):
            return 0.0
        op = spla.LinearOperator(
            (self.n, self.n), dtype=float,
            matvec=lambda b: r * self.solve(np.ravel(b), trans=True),
            rmatvec=lambda b: self.solve(r * np.ravel(b)),
            matmat=lambda B: r[:, None] * self.solve(B, trans=True),
            rmatmat=lambda B: self.solve(r[:, None] * B))
        return float(spla.onenormest(op))


def _back(R: np.ndarray, g: np.ndarray) -> np.ndarray:
    """R⁻¹g for upper triangular R (LAPACK trtrs: O(k²))."""
    import scipy.linalg as sla

    return sla.solve_triangular(R, g, check_finite=False)


class GMRESResult:
    """x, the iterations, the final relative residual, the largest relative error of the
    matrix–vector products, and the extreme singular values of the Arnoldi Hessenberg matrix
    (σ_min(H̄) ≥ σ_min(A): 1/σ_min(H̄) is a lower estimate of ‖A⁻¹‖₂ that is sharp once the
    Krylov space holds the solution)."""

    def __init__(self, x, iterations, relres, eta, smin, smax, converged):
        self.x, self.iterations, self.relres, self.eta = x, iterations, relres, eta
        self.smin, self.smax, self.converged = smin, smax, converged


def gmres(matvec: Callable[[np.ndarray], tuple[np.ndarray, float]], b: np.ndarray,
          rtol: float, maxiter: int) -> GMRESResult:
    """Solve A x = b with products ``matvec(v) -> (A v, abs. error estimate of A v)``.

    Stops when ‖b − A x‖ ≤ max(rtol·‖b‖, 10·η·‖x‖), η the largest error of the products of
    unit vectors seen (a residual below that only fits their noise), after ``maxiter``
    products, or at a breakdown (H[k+1, k] = 0: the Krylov space is invariant, x exact).
    """
    n = b.shape[0]
    beta = float(np.linalg.norm(b))
    if beta == 0.0:
        return GMRESResult(np.zeros(n), 0, 0.0, 0.0, np.nan, np.nan, True)
    m = max(1, min(maxiter, n))
    V = np.zeros((m + 1, n))
    H = np.zeros((m + 1, m))
    R = np.zeros((m + 1, m))
    cs, sn = np.zeros(m), np.zeros(m)
    g = np.zeros(m + 1)
    g[0] = beta
    V[0] = b / beta
    eta = 0.0
    k = 0
    res = beta
    for k in range(m):
        w, err = matvec(V[k])
        eta = max(eta, float(err))  # V[k] has norm 1
        for _ in range(2):  # MGS with one reorthogonalization
            for i in range(k + 1):
                c = float(V[i] @ w)
                H[i, k] += c
                w = w - c * V[i]
        H[k + 1, k] = float(np.linalg.norm(w))
        col = H[: k + 2, k].copy()
        for i in range(k):
            col[i], col[i + 1] = cs[i] * col[i] + sn[i] * col[i + 1], -sn[i] * col[i] + cs[i] * col[i + 1]
        r = float(np.hypot(col[k], col[k + 1]))
        cs[k], sn[k] = (1.0, 0.0) if r == 0 else (col[k] / r, col[k + 1] / r)
        col[k], col[k + 1] = r, 0.0
        R[: k + 2, k] = col
        g[k], g[k + 1] = cs[k] * g[k], -sn[k] * g[k]
        res = abs(g[k + 1])
        scale_A = max(float(np.max(np.abs(H[: k + 2, : k + 1]))), 1e-300)
        # products with absolute error η·‖v‖ make the residual of x = V c uncertain by about
        # η‖c‖ = η‖x‖: below 10·η‖x‖ further iterations only fit the products' noise
        # (the attainable accuracy of inexact Krylov methods, Simoncini & Szyld, SIAM J. Sci.
        # Comput. 25 (2003))
        with np.errstate(divide="ignore", invalid="ignore"):
            c = _back(R[: k + 1, : k + 1], g[: k + 1]) if R[k, k] != 0 else g[: k + 1]
        xnorm = float(np.linalg.norm(c))
        if res <= max(rtol * beta, 10 * eta * xnorm) or H[k + 1, k] <= EPS * scale_A:
            break
        V[k + 1] = w / H[k + 1, k]
    kk = k + 1
    Rk = R[:kk, :kk]
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.linalg.lstsq(Rk, g[:kk], rcond=None)[0]
    x = V[:kk].T @ c
    s = np.linalg.svd(H[: kk + 1, :kk], compute_uv=False)
    smax = float(s[0])
    smin = float(s[-1])
    scale_A = max(smax, 1e-300)
    converged = res <= max(rtol * beta, 10 * eta * float(np.linalg.norm(x))) * 1.0000001 \
        or H[kk, kk - 1] <= EPS * scale_A
    return GMRESResult(x, kk, res / beta, eta / scale_A, smin, smax, bool(converged))


class KrylovMemory:
    """Every product (v, A·v) made so far, so that a further right-hand side starts from the
    best combination of them (no evaluations) before GMRES extends the space."""

    def __init__(self, matvec: Callable[[np.ndarray], tuple[np.ndarray, float]]) -> None:
        self._matvec = matvec
        self.eta = 0.0  # the largest error of a product, per unit ‖v‖
        self.V: list[np.ndarray] = []
        self.AV: list[np.ndarray] = []

    def matvec(self, v: np.ndarray) -> tuple[np.ndarray, float]:
        Av, err = self._matvec(v)
        self.eta = max(self.eta, float(err) / max(float(np.linalg.norm(v)), 1e-300))
        self.V.append(np.array(v, dtype=float))
        self.AV.append(np.array(Av, dtype=float))
        return Av, err

    def best(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x = V·c with c = argmin ‖b − (AV)·c‖, and the residual b − (AV)·c."""
        if not self.V:
            return np.zeros_like(b), b.copy()
        V, AV = np.array(self.V).T, np.array(self.AV).T
        c = np.linalg.lstsq(AV, b, rcond=None)[0]
        return V @ c, b - AV @ c


def gmres_recycled(mem: KrylovMemory, b: np.ndarray, rtol: float, maxiter: int,
                   eta_rel: float = 0.0) -> GMRESResult:
    """GMRES for A x = b over the union of the earlier products and a new Krylov space.

    x₀ = V c (c the least-squares fit of b by the earlier A·v); if ‖b − A x₀‖ already meets the
    stopping rule of ``gmres`` no product is made; otherwise GMRES runs on the residual and the
    answer is the least-squares fit over all products, old and new (never worse than either;
    "recycling" of Krylov information, Parks et al., SIAM J. Sci. Comput. 28 (2006), in its
    simplest form: a Galerkin-free minimal-residual seed)."""
    beta = float(np.linalg.norm(b))
    if beta == 0.0:
        return GMRESResult(np.zeros_like(b), 0, 0.0, 0.0, np.nan, np.nan, True)
    x0, r0 = mem.best(b)
    rn = float(np.linalg.norm(r0))
    if mem.V and rn <= max(rtol * beta, 10 * mem.eta * float(np.linalg.norm(x0))):
        return GMRESResult(x0, 0, rn / beta, eta_rel, np.nan, np.nan, True)
    res = gmres(mem.matvec, r0, rtol * beta / rn, maxiter)
    x, r = mem.best(b)
    relres = float(np.linalg.norm(r)) / beta
    conv = res.converged or relres * beta <= max(rtol * beta, 10 * mem.eta *
                                                 float(np.linalg.norm(x))) * 1.0000001
    return GMRESResult(x, res.iterations, relres, res.eta, res.smin, res.smax, bool(conv))
