"""simdiff.implicit against closed-form sensitivities: dense, sparse and GMRES paths, fixed
points, argmins, jvp/vjp, evaluation counts, error estimates and refusals."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.optimize import brentq

import simdiff as sd
from simdiff.implicit import ResidualError, SingularJacobianError


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


class Counter:
    """F(y, theta) counting its calls."""

    def __init__(self, F):
        self.F, self.calls = F, 0

    def __call__(self, y, th):
        self.calls += 1
        return self.F(y, th)


# --- closed forms --------------------------------------------------------------------------


def test_linear_F_is_exact():
    rng = np.random.default_rng(0)
    n, p = 6, 3
    A = rng.normal(size=(n, n)) + 4 * np.eye(n)
    C = rng.normal(size=(n, p))
    d = rng.normal(size=n)
    F = lambda y, th: A @ y + C @ th - d  # noqa: E731
    th = rng.normal(size=p)
    y = np.linalg.solve(A, d - C @ th)
    J, info = sd.implicit.jacobian(F, y, th, full_output=True)
    truth = -np.linalg.solve(A, C)
    assert rel(J, truth) < 1e-9
    assert info.nfev == 2 * (n + p) + 1 and info.nrounds <= 2  # [F(y, θ),] [∂F/∂y, ∂F/∂θ]
    assert np.all(info.error >= np.abs(J - truth))


def test_square_root():
    F = Counter(lambda y, th: y**2 - th)
    for t in (0.3, 2.0, 50.0):
        y = np.sqrt(t)
        J = sd.implicit.jacobian(F, y, t)
        assert J.shape == (1, 1)
        assert rel(J[0, 0], 1 / (2 * y)) < 1e-9


def kepler(E, p):
    M, e = p
    return E - e * np.sin(E) - M


def kepler_solution(M, e):
    return brentq(lambda E: E - e * np.sin(E) - M, -50, 50, xtol=1e-15)


@pytest.mark.parametrize("M,e", [(1.2, 0.6), (0.1, 0.95), (4.0, 0.2)])
def test_kepler(M, e):
    E = kepler_solution(M, e)
    d = 1 - e * np.cos(E)
    truth = np.array([[1 / d, np.sin(E) / d]])
    F = Counter(kepler)
    J, info = sd.implicit.jacobian(F, E, [M, e], full_output=True)
    assert rel(J, truth) < 1e-8
    assert F.calls == info.nfev <= 2 * (1 + 2) + 3
    assert np.all(info.error >= np.abs(J - truth))
    assert info.residual < 1e-13 and info.cond >= 1.0


def test_chemical_equilibrium():
    """A + B ⇌ C, K = x/((a-x)(b-x)): x the smaller root of K x² − (K(a+b)+1) x + K a b."""

    def F(x, th):
        K, a, b = th
        return x - K * (a - x) * (b - x)

    K, a, b = 3.0, 1.0, 0.7
    s = K * (a + b) + 1
    x = np.array([(s - np.sqrt(s**2 - 4 * K**2 * a * b)) / (2 * K)])
    Fx = 1 + K * (b - x) + K * (a - x)
    truth = -np.array([-(a - x) * (b - x), -K * (b - x), -K * (a - x)]).T / Fx
    J = sd.implicit.jacobian(F, x, [K, a, b])
    assert rel(J, truth) < 1e-8


def test_ridge_regression_root_form():
    """(XᵀX + λI)w = s·Xᵀt: dw/dλ = −(XᵀX + λI)⁻¹w, dw/ds = (XᵀX + λI)⁻¹Xᵀt."""
    rng = np.random.default_rng(3)
    X, t = rng.normal(size=(30, 5)), rng.normal(size=30)
    G, c = X.T @ X, X.T @ t

    def F(w, th):
        lam, s = th
        return (G + lam * np.eye(5)) @ w - s * c

    lam, s = 0.7, 2.5
    M = G + lam * np.eye(5)
    w = np.linalg.solve(M, s * c)
    truth = np.column_stack([-np.linalg.solve(M, w), np.linalg.solve(M, c)])
    assert rel(sd.implicit.jacobian(F, w, [lam, s]), truth) < 1e-8


# --- Simulators of the stacked vector ------------------------------------------------------


class Springs(sd.Simulator):
    """Two springs in series under a load P: z = [x1, x2, k1, k2, P]."""

    name = "springs"

    def evaluate(self, z):
        x1, x2, k1, k2, P = z
        return np.array([k1 * x1 - k2 * (x2 - x1), k2 * (x2 - x1) - P])


def test_springs_simulator_of_stacked_vector():
    k1, k2, P = 3.0, 5.0, 2.0
    y = np.array([P / k1, P / k1 + P / k2])
    truth = np.array([[-P / k1**2, 0, 1 / k1],
                      [-P / k1**2, -P / k2**2, 1 / k1 + 1 / k2]])
    J, info = sd.implicit.jacobian(Springs(), y, [k1, k2, P], full_output=True)
    assert rel(J, truth) < 1e-8
    assert info.nfev <= 2 * 5 + 3


def test_jvp_vjp_match_jacobian():
    E = kepler_solution(1.2, 0.6)
    th = np.array([1.2, 0.6])
    J = sd.implicit.jacobian(kepler, E, th)
    v = np.array([0.3, -2.0])
    u, info = sd.implicit.jvp(kepler, E, th, v, full_output=True)
    assert rel(u, J @ v) < 1e-8
    assert info.nfev == 2 * (1 + 1) + 1  # [∂F/∂y, ∂F/∂θ·v] in one batch
    g = np.array([1.7])
    assert rel(sd.implicit.vjp(kepler, E, th, g), g @ J) < 1e-8
    # multi-unknown: the springs
    k1, k2, P = 3.0, 5.0, 2.0
    y = np.array([P / k1, P / k1 + P / k2])
    Js = sd.implicit.jacobian(Springs(), y, [k1, k2, P])
    v3, g2 = np.array([1.0, -0.5, 2.0]), np.array([0.4, -1.1])
    assert rel(sd.implicit.jvp(Springs(), y, [k1, k2, P], v3), Js @ v3) < 1e-8
    assert rel(sd.implicit.vjp(Springs(), y, [k1, k2, P], g2), g2 @ Js) < 1e-8


# --- sparse and matrix-free ----------------------------------------------------------------


def bratu(n):
    """2u_i − u_{i−1} − u_{i+1} − h²(λ e^{u_i} + μ sin(π x_i)) = 0, u_0 = u_{n+1} = 0."""
    h = 1.0 / (n + 1)
    x = np.arange(1, n + 1) * h

    def F(u, th):
        lam, mu = th
        r = 2 * u - h**2 * (lam * np.exp(u) + mu * np.sin(np.pi * x))
        r[1:] -= u[:-1]
        r[:-1] -= u[1:]
        return r

    def A(u, th):
        main = 2 - h**2 * th[0] * np.exp(u)
        return sp.diags_array([-np.ones(n - 1), main, -np.ones(n - 1)], offsets=[-1, 0, 1],
                              format="csc")

    def B(u, th):
        return np.column_stack([-h**2 * np.exp(u), -h**2 * np.sin(np.pi * x)])

    return F, A, B


def newton(F, A, y, th, iters=30):
    for _ in range(iters):
        dy = spla.spsolve(A(y, th), -F(y, th))
        y = y + dy
        if np.max(np.abs(dy)) < 1e-15:
            break
    return y


def test_banded_400_with_sparsity_few_evaluations():
    n = 400
    F, A, B = bratu(n)
    th = np.array([1.0, 2.0])
    y = newton(F, A, np.zeros(n), th)
    truth = -spla.spsolve(A(y, th), B(y, th))
    S = sp.diags_array([np.ones(n - 1), np.ones(n), np.ones(n - 1)], offsets=[-1, 0, 1])
    Fc = Counter(F)
    J, info = sd.implicit.jacobian(Fc, y, th, sparsity=S, full_output=True)
    assert rel(J, truth) < 1e-7
    assert Fc.calls == info.nfev <= 20
    assert info.n_groups == 3 and info.linear_solver == "splu"  # (+ 2 θ columns)
    assert np.all(info.error >= np.abs(J - truth))
    # sparse jvp and vjp against the same truth
    v, g = np.array([0.5, -1.0]), np.linspace(0.5, 2.0, n) ** 2
    assert rel(sd.implicit.jvp(F, y, th, v, sparsity=S), truth @ v) < 1e-7
    assert rel(sd.implicit.vjp(F, y, th, g, sparsity=S), g @ truth) < 1e-7


def coupled(n, c=0.1):
    """y_i + c·tanh(y_{i+1} − y_{i−1}) + c·y_i³/3 − θ_0 cos(i) − θ_1 = 0: diagonally dominant."""
    idx = np.arange(n)

    def F(y, th):
        yp = np.roll(y, -1)
        ym = np.roll(y, 1)
        return y + c * np.tanh(yp - ym) + c * y**3 / 3 - th[0] * np.cos(idx) - th[1]

    def Jy(y):
        yp, ym = np.roll(y, -1), np.roll(y, 1)
        s = c / np.cosh(yp - ym) ** 2
        J = np.diag(1 + c * y**2)
        J[idx, (idx + 1) % n] += s
        J[idx, (idx - 1) % n] -= s
        return J

    Jth = np.column_stack([-np.cos(idx), -np.ones(n)])
    return F, Jy, Jth


def solve_dense(F, Jy, y, th):
    for _ in range(50):
        dy = np.linalg.solve(Jy(y), -F(y, th))
        y = y + dy
        if np.max(np.abs(dy)) < 1e-15:
            break
    return y


def test_gmres_agrees_with_lu_and_costs_less_than_dense():
    n = 60
    F, Jy, Jth = coupled(n)
    th = np.array([0.8, 0.3])
    y = solve_dense(F, Jy, np.zeros(n), th)
    truth = -np.linalg.solve(Jy(y), Jth)
    Jg, ig = sd.implicit.jacobian(F, y, th, linear_solver="gmres", full_output=True)
    Jl = sd.implicit.jacobian(F, y, th)
    assert rel(Jg, truth) < 1e-6 and rel(Jl, truth) < 1e-8
    assert rel(Jg, Jl) < 1e-6
    assert ig.nfev < 2 * n  # fewer than a dense ∂F/∂y alone
    assert np.all(ig.error >= np.abs(Jg - truth))
    v = np.array([1.0, -2.0])
    u, iv = sd.implicit.jvp(F, y, th, v, linear_solver="gmres", full_output=True)
    assert rel(u, truth @ v) < 1e-6 and iv.nfev < 2 * n
    g = np.cos(np.arange(n))
    assert rel(sd.implicit.vjp(F, y, th, g, linear_solver="gmres"), g @ truth) < 1e-6


# --- fixed points and argmins --------------------------------------------------------------


def test_fixed_point_lambert():
    """y = exp(−θ y): y = W(θ)/θ, dy/dθ = −y²/(1 + θ y)."""
    from scipy.special import lambertw

    for t in (0.5, 2.0, 7.0):
        y = float(np.real(lambertw(t))) / t
        J = sd.implicit.fixed_point_jacobian(lambda y, th: np.exp(-th * y), y, t)
        assert rel(J[0, 0], -y**2 / (1 + t * y)) < 1e-8


def test_fixed_point_contractive_linear_map_and_pagerank():
    rng = np.random.default_rng(5)
    n = 40
    adj = (rng.random((n, n)) < 0.15).astype(float)
    adj[adj.sum(axis=1) == 0, 0] = 1.0
    P = (adj / adj.sum(axis=1, keepdims=True)).T  # column-stochastic

    def T(x, th):
        return th[0] * P @ x + (1 - th[0]) / n

    a = 0.85
    x = np.linalg.solve(np.eye(n) - a * P, np.full(n, (1 - a) / n))
    truth = np.linalg.solve(np.eye(n) - a * P, P @ x - 1 / n)[:, None]
    J, info = sd.implicit.fixed_point_jacobian(T, x, [a], full_output=True)
    assert rel(J, truth) < 1e-8
    assert info.nfev <= 2 * (n + 1) + 3


def test_argmin_quadratic_p2():
    Q = np.array([[3.0, 1.0], [1.0, 2.0]])
    C = np.array([[1.0, -2.0], [0.5, 1.0]])
    f = lambda y, th: 0.5 * y @ Q @ y - y @ (C @ th) + th @ th  # noqa: E731
    th = np.array([0.4, -1.3])
    y = np.linalg.solve(Q, C @ th)
    J, info = sd.implicit.argmin_jacobian(f, y, th, full_output=True)
    assert rel(J, np.linalg.solve(Q, C)) < 1e-6
    assert info.hessian_min_eigenvalue > 0


def test_argmin_non_quadratic_pendulum():
    """Pendulum under a horizontal force F: V = −mgL cos φ − F L sin φ, φ* = atan(F/mg)."""
    L = 1.3

    def V(phi, th):
        F, mg = th
        return -mg * L * np.cos(phi[0]) - F * L * np.sin(phi[0])

    F, mg = 2.0, 9.81
    phi = np.array([np.arctan2(F, mg)])
    d = mg**2 + F**2
    J = sd.implicit.argmin_jacobian(V, phi, [F, mg])
    assert rel(J, [[mg / d, -F / d]]) < 1e-6


def test_argmin_exp_log():
    """f = exp(y − a) − b y: y* = a + log b, dy/da = 1, dy/db = 1/b."""
    f = lambda y, th: np.exp(y[0] - th[0]) - th[1] * y[0]  # noqa: E731
    a, b = 0.3, 2.5
    J = sd.implicit.argmin_jacobian(f, a + np.log(b), [a, b])
    assert rel(J, [[1.0, 1 / b]]) < 1e-6


def test_argmin_at_a_maximum_warns():
    f = lambda y, th: -((y[0] - th[0]) ** 2)  # noqa: E731
    with pytest.warns(sd.SimdiffWarning, match="not positive definite"):
        J = sd.implicit.argmin_jacobian(f, [0.5], [0.5])
    assert rel(J, [[1.0]]) < 1e-6


# --- options go through ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["forward", "five-point", "complex"])
def test_methods(method):
    E = kepler_solution(1.2, 0.6)
    d = 1 - 0.6 * np.cos(E)
    truth = np.array([[1 / d, np.sin(E) / d]])
    J = sd.implicit.jacobian(kepler, E, [1.2, 0.6], method=method)
    assert rel(J, truth) < (1e-6 if method == "forward" else 1e-9)


def test_adaptive_step_and_vectorized_and_evaluator():
    E = kepler_solution(1.2, 0.6)
    d = 1 - 0.6 * np.cos(E)
    truth = np.array([[1 / d, np.sin(E) / d]])
    assert rel(sd.implicit.jacobian(kepler, E, [1.2, 0.6], step="adaptive"), truth) < 1e-9

    def Fv(Y, TH):  # (k, 1), (k, 2) -> (k, 1)
        return Y - TH[:, 1:2] * np.sin(Y) - TH[:, 0:1]

    assert rel(sd.implicit.jacobian(Fv, E, [1.2, 0.6], vectorized=True), truth) < 1e-8
    ev = sd.SerialEvaluator()
    J, info = sd.implicit.jacobian(kepler, E, [1.2, 0.6], evaluator=ev, full_output=True)
    assert ev.nfev == info.nfev == 7


def test_cache_second_call_runs_nothing(tmp_path):
    E = kepler_solution(1.2, 0.6)
    J1, i1 = sd.implicit.jacobian(kepler, E, [1.2, 0.6], cache=tmp_path, full_output=True)
    J2, i2 = sd.implicit.jacobian(kepler, E, [1.2, 0.6], cache=tmp_path, full_output=True)
    assert i1.nfev == 7 and i2.nfev == 0
    np.testing.assert_array_equal(J1, J2)


def test_step_array_over_stacked_vector():
    E = kepler_solution(1.2, 0.6)
    d = 1 - 0.6 * np.cos(E)
    truth = np.array([[1 / d, np.sin(E) / d]])
    J, info = sd.implicit.jacobian(kepler, E, [1.2, 0.6], step=[1e-6, 2e-6, 3e-6],
                                   full_output=True)
    assert rel(J, truth) < 1e-8
    np.testing.assert_allclose(info.step, [1e-6, 2e-6, 3e-6], rtol=1e-3)
    assert rel(sd.implicit.jvp(kepler, E, [1.2, 0.6], [1.0, 1.0], step=[1e-6, 2e-6, 3e-6]),
               truth @ [1.0, 1.0]) < 1e-8


# --- refusals -------------------------------------------------------------------------------


def test_residual_too_large_is_refused_or_warned():
    F = lambda y, th: y**2 - th  # noqa: E731
    with pytest.raises(ResidualError, match=r"tol = 1e-06") as exc:
        sd.implicit.jacobian(F, 1.001, 1.0, on_residual="raise")
    assert "‖F(y, θ)‖ = 0.002" in str(exc.value) and "xtol" in str(exc.value)
    with pytest.warns(sd.SimdiffWarning, match="does not solve"):
        J, info = sd.implicit.jacobian(F, 1.001, 1.0, on_residual="warn", full_output=True)
    assert info.newton_step == pytest.approx(0.001, rel=0.01)
    # the error estimate includes the offset of y from y*
    assert info.error[0, 0] >= abs(J[0, 0] - 0.5)
    # a looser tol accepts it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sd.implicit.jacobian(F, 1.001, 1.0, tol=1e-2)
    # default "auto": a solver stopped a little early is warned about, a non-solution refused
    with pytest.warns(sd.SimdiffWarning, match="ρ = 1e-05"):
        J = sd.implicit.jacobian(F, 1 + 1e-5, 1.0)
    assert rel(J[0, 0], 0.5) < 2e-5
    with pytest.raises(ResidualError, match="on_residual='warn'"):
        sd.implicit.jacobian(F, 1.5, 1.0)
    with pytest.raises(ResidualError):
        sd.implicit.vjp(F, 1.5, 1.0, [1.0], linear_solver="gmres")
    with pytest.raises(ResidualError):
        sd.implicit.argmin_jacobian(lambda y, th: (y[0] - th[0]) ** 2, [1.01], [1.0])
    with pytest.warns(sd.SimdiffWarning, match="does not solve"):
        sd.implicit.argmin_jacobian(lambda y, th: (y[0] - th[0]) ** 2, [1.0 + 1e-5], [1.0])


def test_singular_dFdy_is_refused():
    F = lambda y, th: np.array([y[0] + y[1] - th[0], 2 * y[0] + 2 * y[1] - 2 * th[0]])  # noqa: E731
    with pytest.raises(SingularJacobianError, match="∂F/∂y is singular"):
        sd.implicit.jacobian(F, [0.5, 0.5], [1.0])
    with pytest.raises(SingularJacobianError):  # y² = θ at θ = 0: dy/dθ infinite
        sd.implicit.jacobian(lambda y, th: y**2 - th, 0.0, 0.0)
    n = 30
    S = sp.eye(n)
    with pytest.raises(SingularJacobianError):
        sd.implicit.jacobian(lambda y, th: np.r_[y[:-1] - th[0], 0.0 * y[-1]], np.full(n, 1.0),
                             [1.0], sparsity=S)


def test_shape_errors_name_the_argument():
    with pytest.raises(sd.ArgumentError, match="F must return one residual per unknown, 2"):
        sd.implicit.jacobian(lambda y, th: y[:1] - th, [1.0, 1.0], [1.0])
    with pytest.raises(sd.ArgumentError, match="v must have shape"):
        sd.implicit.jvp(kepler, 1.0, [1.0, 0.5], [1.0])
    with pytest.raises(sd.ArgumentError, match="g must have shape"):
        sd.implicit.vjp(kepler, 1.0, [1.0, 0.5], [1.0, 2.0])
    with pytest.raises(sd.ArgumentError, match="theta must be 1-D"):
        sd.implicit.jacobian(kepler, 1.0, [[1.0, 0.5]])
    with pytest.raises(sd.ArgumentError, match="sparsity must have shape"):
        sd.implicit.jacobian(kepler, 1.0, [1.0, 0.5], sparsity=np.ones((2, 2), bool))
    with pytest.raises(sd.ArgumentError, match="linear_solver"):
        sd.implicit.jacobian(kepler, 1.0, [1.0, 0.5], linear_solver="qr")
    with pytest.raises(sd.ArgumentError, match="unknown option stepp"):
        sd.implicit.jacobian(kepler, 1.0, [1.0, 0.5], stepp=1e-3)
    with pytest.raises(sd.ArgumentTypeError, match="F must be a callable"):
        sd.implicit.jacobian(3.0, 1.0, [1.0, 0.5])
    with pytest.raises(sd.ArgumentError, match="y must be finite"):
        sd.implicit.jacobian(kepler, np.nan, [1.0, 0.5])


def test_gmres_reuses_products_across_right_hand_sides():
    n = 50
    F, A, B = bratu(n)
    th = np.array([1.0, 2.0])
    y = newton(F, A, np.zeros(n), th)
    truth = -spla.spsolve(A(y, th), B(y, th))
    J, info = sd.implicit.jacobian(F, y, th, linear_solver="gmres", full_output=True)
    assert rel(J, truth) < 1e-6
    # the second column (both right-hand sides are smooth) is fitted from the first's products
    assert info.gmres_iterations[1] < info.gmres_iterations[0] / 2
    assert info.nfev < 2 * n


def test_bounds_on_the_stacked_vector():
    E = kepler_solution(1.2, 0.6)
    d = 1 - 0.6 * np.cos(E)
    truth = np.array([[1 / d, np.sin(E) / d]])
    box = ([-10, 1.2, 0.0], [10, 5, 0.6])  # M at its lower bound, e at its upper bound
    seen = []

    def F(E_, p):
        seen.append(p.copy())
        return kepler(E_, p)

    J = sd.implicit.jacobian(F, E, [1.2, 0.6], bounds=box)
    assert rel(J, truth) < 1e-8
    assert all(p[0] >= 1.2 and p[1] <= 0.6 for p in seen)
    for ls in ("lu", "gmres"):  # v = (1, 1) points out of the box both ways: column by column
        u = sd.implicit.jvp(F, E, [1.2, 0.6], [1.0, 1.0], bounds=box, linear_solver=ls)
        assert rel(u, truth @ [1.0, 1.0]) < 1e-8
    assert all(p[0] >= 1.2 and p[1] <= 0.6 for p in seen)


def test_gmres_banded_fewer_runs_than_dense():
    n = 200
    F, A, B = bratu(n)
    th = np.array([1.0, 2.0])
    y = newton(F, A, np.zeros(n), th)
    truth = -spla.spsolve(A(y, th), B(y, th))
    v = np.array([1.0, -0.5])
    u, info = sd.implicit.jvp(F, y, th, v, linear_solver="gmres", full_output=True)
    assert rel(u, truth @ v) < 1e-6
    assert info.nfev < 2 * n  # a dense ∂F/∂y alone would take 2n
    assert np.all(info.error >= np.abs(u - truth @ v))


def test_noise_option_goes_through_and_is_counted():
    rng = np.random.default_rng(7)

    def noisy(E_, p):
        return kepler(E_, p) + 1e-9 * rng.standard_normal()

    E = kepler_solution(1.2, 0.6)
    d = 1 - 0.6 * np.cos(E)
    truth = np.array([[1 / d, np.sin(E) / d]])
    J, info = sd.implicit.jacobian(noisy, E, [1.2, 0.6], noise=1e-9, on_residual="warn",
                                   full_output=True)
    assert rel(J, truth) < 1e-4
    assert np.all(info.error >= np.abs(J - truth))
