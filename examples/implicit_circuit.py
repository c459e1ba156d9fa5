"""Sensitivities of a nonlinear circuit's operating point, by implicit differentiation.

A source V feeds node 1 through R1; a diode D1 joins node 1 to node 2; node 2 goes to ground
through R2 in parallel with a second diode D2. The operating point (v1, v2) solves Kirchhoff's
current law F(v, θ) = 0, found by ``scipy.optimize.root``; θ = (V, R1, R2, ln Is) in volts,
kilo-ohms and the log of the diodes' saturation current (mA).

dv*/dθ three ways:
* ``sd.implicit.jacobian`` at the solver's answer: 2(2 + 4) + 1 = 13 evaluations of F, no
  further solver run;
* finite differences through the solver (``sd.jacobian`` of θ ↦ solver(θ)): 8 solver runs,
  each re-converging to its tolerance, whose noise the differences amplify;
* the reference: the implicit function theorem with the analytic partials (the diode law
  differentiated by hand) at the solution polished by Newton's method.
Then the chain rule: the gradient of the power the source delivers, V·(V − v1)/R1, with
respect to θ from ``solve.vjp`` (no solver run), against finite differences through the solver.

Run: ``python examples/implicit_circuit.py``.
"""

import numpy as np
from scipy.optimize import root as scipy_root

import simdiff as sd

VT = 0.02585  # thermal voltage at 300 K, volts


def kcl(v, theta):
    """Currents (mA) leaving nodes 1 and 2; zero at the operating point."""
    V, R1, R2, log_is = theta
    i_s = np.exp(log_is)
    i_d1 = i_s * np.expm1((v[0] - v[1]) / VT)
    i_d2 = i_s * np.expm1(v[1] / VT)
    return np.array([(v[0] - V) / R1 + i_d1,
                     -i_d1 + v[1] / R2 + i_d2])


def analytic_partials(v, theta):
    """∂F/∂v and ∂F/∂θ by hand."""
    V, R1, R2, log_is = theta
    i_s = np.exp(log_is)
    g1 = i_s * np.exp((v[0] - v[1]) / VT) / VT
    g2 = i_s * np.exp(v[1] / VT) / VT
    d1, d2 = i_s * np.expm1((v[0] - v[1]) / VT), i_s * np.expm1(v[1] / VT)
    A = np.array([[1 / R1 + g1, -g1], [-g1, g1 + 1 / R2 + g2]])
    B = np.array([[-1 / R1, -(v[0] - V) / R1**2, 0.0, d1],
                  [0.0, 0.0, -v[1] / R2**2, d2 - d1]])
    return A, B


def reference(theta):
    v = make_solver(1e-14)(theta)
    for _ in range(3):
        v = v - np.linalg.solve(analytic_partials(v, theta)[0], kcl(v, theta))
    A, B = analytic_partials(v, theta)
    return -np.linalg.solve(A, B)


def make_solver(tol):
    def solver(theta):
        sol = scipy_root(kcl, np.array([0.6 * theta[0], 0.3 * theta[0]]), args=(theta,),
                         method="hybr", tol=tol)
        return sol.x
    return solver


def main():
    theta = np.array([5.0, 1.0, 2.2, np.log(1e-9)])  # 5 V, 1 kΩ, 2.2 kΩ, Is = 1e-9 mA
    names = ["V", "R1", "R2", "ln Is"]

    ref = reference(theta)

    solve = sd.implicit.root(make_solver(1e-8), kcl)
    v = solve(theta)
    J, info = solve.jacobian(theta, full_output=True)
    print(f"operating point v1 = {v[0]:.6f} V, v2 = {v[1]:.6f} V "
          f"(residual ‖F‖ = {info.residual:.1e} mA, Newton step ρ = {info.newton_step:.1e})")
    print(f"implicit: {info.nfev} evaluations of F in {info.nrounds} batches, solver runs: "
          f"{solve.nsolves}, cond(∂F/∂v) ≈ {info.cond:.2g}")

    fd_solve = sd.implicit.root(make_solver(1e-8), kcl)
    J_fd = sd.jacobian(fd_solve, theta)
    print(f"FD through the solver (tol 1e-8): {fd_solve.nsolves} solver runs\n")

    print(f"{'':>10}" + "".join(f"{'dv' + str(i + 1) + '/d' + n:>16}" for n in names for i in range(2)))
    for label, M in (("reference", ref), ("implicit", J), ("FD solver", J_fd)):
        print(f"{label:>10}" + "".join(f"{M[i, j]:>16.8g}" for j in range(4) for i in range(2)))
    err_imp = np.max(np.abs(J - ref)) / np.max(np.abs(ref))
    err_fd = np.max(np.abs(J_fd - ref)) / np.max(np.abs(ref))
    est = np.max(info.error) / np.max(np.abs(ref))
    print(f"\nrelative error: implicit {err_imp:.1e} (its estimate {est:.1e}), "
          f"FD through the solver {err_fd:.1e}")

    # chain rule: d(power)/dθ, power = V·(V − v1)/R1 (mW), through the operating point
    def power_direct(v_, th):
        return th[0] * (th[0] - v_[0]) / th[1]

    p_v = np.array([-theta[0] / theta[1], 0.0])  # ∂power/∂v
    p_th = np.array([(2 * theta[0] - v[0]) / theta[1],
                     -theta[0] * (theta[0] - v[0]) / theta[1] ** 2, 0.0, 0.0])  # ∂power/∂θ
    grad_imp = p_th + solve.vjp(theta, p_v)
    grad_fd = sd.gradient(lambda th: power_direct(solve(th), th), theta)
    print(f"d(power)/dθ implicit (vjp): {np.array2string(grad_imp, precision=8)}")
    print(f"d(power)/dθ FD via solver : {np.array2string(grad_fd, precision=8)}")
    print(f"solver runs so far: {solve.nsolves} (1 for the operating point + 8 for the FD gradient)")
    assert err_imp < 1e-6 and err_imp <= err_fd
    assert np.allclose(grad_imp, grad_fd, rtol=1e-4, atol=1e-8)


if __name__ == "__main__":
    main()
