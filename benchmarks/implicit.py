"""Implicit differentiation vs finite differences through the solver.

Each problem has a solver y*(θ) with its own tolerance (scipy.optimize.root, brentq, a
fixed-point iteration, scipy.optimize.minimize) and a closed-form (or analytically assembled)
dy*/dθ. Three ways to get dy*/dθ at θ:

* implicit: ``simdiff.implicit`` at the solver's answer (one solver run), from the residual F
  (or the map T, or the objective f) alone: error, residual evaluations (F calls), batches;
* FD central: ``simdiff.jacobian`` of θ ↦ solver(θ) (the ``root`` object is a Simulator):
  2p solver runs, every one re-iterating to its tolerance;
* FD forward: ``scipy.optimize.approx_fprime`` of the solver (step √ε): p + 1 solver runs.

Error = max |J − truth| / max |truth|. "F calls" for FD counts the residual evaluations the
solver made inside its runs. Ratios: error of FD central / error of implicit, and F calls of
FD central / F calls of implicit (cost), wall time of FD central / implicit (the implicit time
includes its one solver run). Run: ``python benchmarks/implicit.py``.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.optimize import approx_fprime, brentq, minimize, minimize_scalar
from scipy.optimize import root as scipy_root
from scipy.special import lambertw

import simdiff as sd


class Counted:
    """A function counting its calls (F calls of the solver and of simdiff together)."""

    def __init__(self, f):
        self.f, self.calls = f, 0

    def __call__(self, *a):
        self.calls += 1
        return self.f(*a)


def problems():
    out = []

    # ridge regression in root form: (XᵀX + λI) w − s·Xᵀt = 0, θ = (λ, s)
    rng = np.random.default_rng(3)
    X, t = rng.normal(size=(40, 8)), rng.normal(size=40)
    G, c = X.T @ X, X.T @ t

    def ridge_F(w, th):
        return (G + th[0] * np.eye(8)) @ w - th[1] * c

    def ridge_truth(th):
        M = G + th[0] * np.eye(8)
        w = np.linalg.solve(M, th[1] * c)
        return np.column_stack([-np.linalg.solve(M, w), np.linalg.solve(M, c)])

    out.append(dict(name="ridge dw/d(λ, s)", kind="root", F=ridge_F, theta=[0.7, 2.5],
                    solver=lambda F: lambda th: scipy_root(F, np.zeros(8), args=(th,)).x,
                    tol="hybr 1.5e-8", truth=ridge_truth))

    # scalar cubic y³ + a y − b = 0
    def cubic_F(y, th):
        return y**3 + th[0] * y - th[1]

    def cubic_truth(th):
        y = brentq(lambda y: y**3 + th[0] * y - th[1], -10, 10, xtol=1e-15)
        d = 3 * y**2 + th[0]
        return np.array([[-y / d, 1 / d]])

    out.append(dict(name="cubic root", kind="root", F=cubic_F, theta=[1.5, 2.0],
                    solver=lambda F: lambda th: np.array([brentq(lambda y: F(np.array([y]), th)[0],
                                                                 -10, 10)]),
                    tol="brentq 2e-12", truth=cubic_truth))

    # Lambert fixed point y = exp(−θ y)
    def lam_T(y, th):
        return np.exp(-th[0] * y)

    def lam_solver(T):
        def run(th):
            y = np.array([0.5])
            for _ in range(10000):
                y_new = T(y, th)
                if abs(y_new[0] - y[0]) < 1e-10:
                    return y_new
                y = y_new
            return y
        return run

    def lam_truth(th):
        y = float(np.real(lambertw(th[0]))) / th[0]
        return np.array([[-y**2 / (1 + th[0] * y)]])

    out.append(dict(name="Lambert fixed point", kind="fixed_point", F=lam_T, theta=[0.8],
                    solver=lam_solver, tol="iterate 1e-10", truth=lam_truth))

    # PageRank, 40 nodes, dx/dα
    rng = np.random.default_rng(5)
    N = 40
    adj = (rng.random((N, N)) < 0.15).astype(float)
    adj[adj.sum(axis=1) == 0, 0] = 1.0
    P = (adj / adj.sum(axis=1, keepdims=True)).T

    def pr_T(x, th):
        return th[0] * P @ x + (1 - th[0]) / N

    def pr_solver(T):
        def run(th):
            x = np.full(N, 1.0 / N)
            for _ in range(10000):
                x_new = T(x, th)
                if np.max(np.abs(x_new - x)) < 1e-10:
                    return x_new
                x = x_new
            return x
        return run

    def pr_truth(th):
        M = np.eye(N) - th[0] * P
        x = np.linalg.solve(M, np.full(N, (1 - th[0]) / N))
        return np.linalg.solve(M, P @ x - 1 / N)[:, None]

    out.append(dict(name="PageRank dx/dα (40)", kind="fixed_point", F=pr_T, theta=[0.85],
                    solver=pr_solver, tol="power 1e-10", truth=pr_truth))

    # pendulum equilibrium under a horizontal force (argmin of the potential)
    L = 1.3

    def pend_f(phi, th):
        return -th[1] * L * np.cos(phi[0]) - th[0] * L * np.sin(phi[0])

    def pend_truth(th):
        d = th[0] ** 2 + th[1] ** 2
        return np.array([[th[1] / d, -th[0] / d]])

    out.append(dict(name="pendulum angle (argmin)", kind="argmin", F=pend_f, theta=[2.0, 9.81],
                    solver=lambda f: lambda th: np.array([minimize_scalar(
                        lambda p: f(np.array([p]), th), bracket=(-1, 1)).x]),
                    tol="brent 1.5e-8", truth=pend_truth))

    # quadratic argmin, p = 2
    Q = np.array([[3.0, 1.0], [1.0, 2.0]])
    C = np.array([[1.0, -2.0], [0.5, 1.0]])

    def quad_f(y, th):
        return 0.5 * y @ Q @ y - y @ (C @ th)

    out.append(dict(name="quadratic argmin p=2", kind="argmin", F=quad_f, theta=[0.4, -1.3],
                    solver=lambda f: lambda th: minimize(f, np.zeros(2), args=(th,),
                                                         method="BFGS").x,
                    tol="BFGS gtol 1e-5", truth=lambda th: np.linalg.solve(Q, C)))

    # two springs in series, a Simulator of [x1, x2, k1, k2, P]
    class Springs(sd.Simulator):
        name = "springs"

        def evaluate(self, z):
            x1, x2, k1, k2, P_ = z
            return np.array([k1 * x1 - k2 * (x2 - x1), k2 * (x2 - x1) - P_])

    springs = Springs()

    def springs_truth(th):
        k1, k2, P_ = th
        return np.array([[-P_ / k1**2, 0, 1 / k1], [-P_ / k1**2, -P_ / k2**2, 1 / k1 + 1 / k2]])

    out.append(dict(name="springs (Simulator)", kind="root", F=springs, theta=[3.0, 5.0, 2.0],
                    solver=lambda F: lambda th: scipy_root(
                        lambda y: F(np.concatenate([y, th])), np.zeros(2)).x,
                    tol="hybr 1.5e-8", truth=springs_truth))

    # Bratu, 400 unknowns, tridiagonal: sparsity
    n = 400
    h = 1.0 / (n + 1)
    xg = np.arange(1, n + 1) * h

    def bratu_F(u, th):
        r = 2 * u - h**2 * (th[0] * np.exp(u) + th[1] * np.sin(np.pi * xg))
        r[1:] -= u[:-1]
        r[:-1] -= u[1:]
        return r

    def bratu_A(u, th):
        return sp.diags_array([-np.ones(n - 1), 2 - h**2 * th[0] * np.exp(u), -np.ones(n - 1)],
                              offsets=[-1, 0, 1], format="csc")

    def bratu_solver(F):
        def run(th):
            return scipy_root(F, np.zeros(n), args=(th,), method="krylov",
                              options={"fatol": 1e-10}).x
        return run

    def bratu_truth(th):
        u = np.zeros(n)
        for _ in range(30):
            u = u - spla.spsolve(bratu_A(u, th), bratu_F(u, th))
        B = np.column_stack([-h**2 * np.exp(u), -h**2 * np.sin(np.pi * xg)])
        return -spla.spsolve(bratu_A(u, th), B)

    S = sp.diags_array([np.ones(n - 1), np.ones(n), np.ones(n - 1)], offsets=[-1, 0, 1])
    out.append(dict(name="Bratu 400 tridiagonal", kind="root", F=bratu_F, theta=[1.0, 2.0],
                    solver=bratu_solver, tol="krylov fatol 1e-10", truth=bratu_truth,
                    options=dict(sparsity=S, on_residual="warn")))
    out.append(dict(name="Bratu 400 (gmres)", kind="root", F=bratu_F, theta=[1.0, 2.0],
                    solver=bratu_solver, tol="krylov fatol 1e-10", truth=bratu_truth,
                    options=dict(linear_solver="gmres", on_residual="warn")))

    # a nonlinear 3×3 system, scipy.optimize.root default tolerance
    def sys_F(y, th):
        return np.array([3 * y[0] - np.cos(y[1] * y[2]) - th[0],
                         y[0] ** 2 - 81 * (y[1] + 0.1) ** 2 + np.sin(y[2]) + th[1],
                         np.exp(-y[0] * y[1]) + 20 * y[2] + (10 * np.pi - 3) / 3])

    def sys_J(y):
        return np.array([[3, y[2] * np.sin(y[1] * y[2]), y[1] * np.sin(y[1] * y[2])],
                         [2 * y[0], -162 * (y[1] + 0.1), np.cos(y[2])],
                         [-y[1] * np.exp(-y[0] * y[1]), -y[0] * np.exp(-y[0] * y[1]), 20]])

    def sys_truth(th):
        y = scipy_root(sys_F, np.array([0.5, 0.0, -0.5]), args=(th,), tol=1e-14).x
        for _ in range(3):
            y = y - np.linalg.solve(sys_J(y), sys_F(y, th))
        return -np.linalg.solve(sys_J(y), np.array([[-1.0, 0], [0, 1], [0, 0]]))

    out.append(dict(name="3x3 system (scipy root)", kind="root", F=sys_F, theta=[0.5, 1.06],
                    solver=lambda F: lambda th: scipy_root(F, np.array([0.5, 0.0, -0.5]),
                                                           args=(th,)).x,
                    tol="hybr 1.5e-8", truth=sys_truth))

    # Kepler's equation, GMRES row: a 60-unknown diagonally dominant system
    def cpl_F(y, th):
        yp, ym = np.roll(y, -1), np.roll(y, 1)
        k = np.arange(len(y))
        return y + 0.1 * np.tanh(yp - ym) + 0.1 * y**3 / 3 - th[0] * np.cos(k) - th[1]

    def cpl_truth(th):
        m = 60
        k = np.arange(m)
        y = scipy_root(cpl_F, np.zeros(m), args=(th,), tol=1e-14).x
        yp, ym = np.roll(y, -1), np.roll(y, 1)
        s = 0.1 / np.cosh(yp - ym) ** 2
        J = np.diag(1 + 0.1 * y**2)
        J[k, (k + 1) % m] += s
        J[k, (k - 1) % m] -= s
        return -np.linalg.solve(J, np.column_stack([-np.cos(k), -np.ones(m)]))

    for ls in ("lu", "gmres"):
        out.append(dict(name=f"coupled 60 ({ls})", kind="root", F=cpl_F, theta=[0.8, 0.3],
                        solver=lambda F: lambda th: scipy_root(F, np.zeros(60), args=(th,)).x,
                        tol="hybr 1.5e-8", truth=cpl_truth,
                        options=dict(linear_solver=ls, on_residual="warn")))
    return out


def _err(J, T):
    return float(np.max(np.abs(np.asarray(J) - T)) / np.max(np.abs(T)))


def run_problem(pb):
    th = np.asarray(pb["theta"], float)
    truth = pb["truth"](th)
    F = pb["F"]
    Fc = F if isinstance(F, sd.Simulator) else Counted(F)
    counter = (lambda: Fc.calls) if not isinstance(F, sd.Simulator) else None
    if isinstance(F, sd.Simulator):  # count the Simulator's evaluations
        base = F

        class CountedSim(type(base)):
            calls = 0

            def evaluate(self, z):
                CountedSim.calls += 1
                return base.evaluate(z)

        Fc = CountedSim()
        counter = lambda: CountedSim.calls  # noqa: E731
    solver = pb["solver"](Fc)
    opts = pb.get("options", {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # implicit: one solver run, then F alone
        solve = sd.implicit.root(solver, Fc, kind=pb["kind"], **opts)
        c0 = counter()
        t0 = time.perf_counter()
        solve(th)
        c1 = counter()
        J, info = solve.jacobian(th, full_output=True)
        t_imp = time.perf_counter() - t0
        imp = dict(err=_err(J, truth), est=float(np.max(info.error) / np.max(np.abs(truth))),
                   F=counter() - c1, solverF=c1 - c0, rounds=info.nrounds, runs=solve.nsolves,
                   time=t_imp)
        # FD central through the solver (simdiff.jacobian of the Root simulator)
        fd_root = sd.implicit.root(solver, Fc, kind=pb["kind"])
        c0 = counter()
        t0 = time.perf_counter()
        Jfd = sd.jacobian(fd_root, th)
        fd = dict(err=_err(Jfd, truth), runs=fd_root.nsolves, F=counter() - c0,
                  time=time.perf_counter() - t0)
        # FD forward (scipy.optimize.approx_fprime)
        runs = [0]

        def y_of(t):
            runs[0] += 1
            return solver(t)

        c0 = counter()
        t0 = time.perf_counter()
        Jfw = approx_fprime(th, y_of)
        fw = dict(err=_err(np.reshape(Jfw, truth.shape), truth), runs=runs[0], F=counter() - c0,
                  time=time.perf_counter() - t0)
    return imp, fd, fw


def main():
    # warm-up: the first call pays for imports (scipy.linalg, LAPACK), not for the method
    sd.implicit.jacobian(lambda y, th: y**2 - th, 2.0, 4.0)
    rows = []
    for pb in problems():
        imp, fd, fw = run_problem(pb)
        n, p = pb["truth"](np.asarray(pb["theta"], float)).shape
        rows.append((pb["name"], n, p, pb["tol"], imp, fd, fw))
    head = (f"{'problem':<26}{'n':>4}{'p':>3} {'solver tol':<19}| {'implicit err':>12} {'est':>8} "
            f"{'F':>5} {'rnd':>4} {'ms':>7} | {'FD-c err':>9} {'runs':>4} {'F':>6} {'ms':>7} | "
            f"{'FD-fw err':>9} {'runs':>4} | {'err FD/imp':>10} {'F FD/imp':>8} {'t FD/imp':>8}")
    print(head)
    print("-" * len(head))
    for name, n, p, tol, imp, fd, fw in rows:
        print(f"{name:<26}{n:>4}{p:>3} {tol:<19}| {imp['err']:>12.2e} {imp['est']:>8.1e} "
              f"{imp['F']:>5d} {imp['rounds']:>4d} {1e3 * imp['time']:>7.1f} | {fd['err']:>9.2e} "
              f"{fd['runs']:>4d} {fd['F']:>6d} {1e3 * fd['time']:>7.1f} | {fw['err']:>9.2e} "
              f"{fw['runs']:>4d} | {fd['err'] / max(imp['err'], 1e-16):>10.1e} "
              f"{fd['F'] / max(imp['F'], 1):>8.1f} {fd['time'] / imp['time']:>8.2f}")
    print("\nimplicit: one solver run (not counted in F) + F evaluations for the partials; "
          "'est' = info.error relative to max|truth|; FD-c: simdiff.jacobian through the "
          "solver (2p runs); FD-fw: scipy approx_fprime (p+1 runs). err ratio uses max(err, 1e-16); "
          "ms: wall time, the implicit one including its solver run.")


if __name__ == "__main__":
    main()
