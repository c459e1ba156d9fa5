"""Calibrate a simulator to data, then minimize a black-box objective: simdiff's optimizers.

A damped oscillator (a small ODE integrated by scipy) stands in for an expensive simulator.
1. sd.least_squares fits its stiffness and damping to measured positions;
2. sd.minimize finds the damping that minimizes overshoot plus settling time, inside bounds;
3. sd.as_scipy hands the same simulator to scipy's own L-BFGS-B, f(x) shared with the gradient.
Every evaluation goes through simdiff's Evaluator: counted (nfev), batched (nrounds), and with
n_jobs=2 each gradient's points run in parallel. Run:  python examples/optimize_calibration.py
"""

from __future__ import annotations

import numpy as np
import scipy.optimize as so
from scipy.integrate import solve_ivp

import simdiff as sd

T = np.linspace(0.0, 10.0, 40)


def simulate(k, c, t=T):
    """Position of x'' + c x' + k x = 0, x(0) = 1, x'(0) = 0."""
    sol = solve_ivp(lambda _, y: [y[1], -c * y[1] - k * y[0]], (t[0], t[-1]), [1.0, 0.0],
                    t_eval=t, rtol=1e-10, atol=1e-12)
    return sol.y[0]


TRUE = (2.0, 0.3)
DATA = simulate(*TRUE)


def residuals(p):
    return simulate(p[0], p[1]) - DATA


def design_cost(p):
    """Overshoot below zero plus the energy left at t = 10, for stiffness 2 and damping p[0]."""
    x = simulate(2.0, p[0])
    return float(max(0.0, -x.min()) ** 2 + np.sum(x[-10:] ** 2))


def main():
    fit = sd.least_squares(residuals, [1.0, 1.0], bounds=([0.1, 0.0], [10.0, 5.0]))
    print(f"least_squares: k, c = {fit.x.round(6)} (true {TRUE}); cost {fit.cost:.2e}, "
          f"{fit.nfev} runs in {fit.nrounds} rounds — {fit.message}")
    assert np.allclose(fit.x, TRUE, rtol=1e-5)

    best = sd.minimize(design_cost, [0.5], bounds=([0.05], [5.0]))
    print(f"minimize: damping c = {best.x[0]:.4f}, cost {best.fun:.3e}, {best.nfev} runs in "
          f"{best.nrounds} rounds — {best.message}")
    for h in best.history[:3]:
        print(f"   it: f={h['fun']:.3e} |g|={h['grad_norm']:.2e} ±{h['grad_error']:.1e} "
              f"nfev={h['nfev']} rounds={h['nrounds']}")

    fun, jac = sd.as_scipy(residuals)
    ref = so.least_squares(fun, [1.0, 1.0], jac=jac)
    print(f"scipy least_squares with as_scipy: {ref.x.round(6)}, {fun.nfev} runs in "
          f"{fun.nrounds} rounds")
    assert np.allclose(ref.x, TRUE, rtol=1e-5)


if __name__ == "__main__":
    main()
