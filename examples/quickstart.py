"""A first Jacobian and gradients with error estimates, from Python.

1. The README's first command from Python: the Jacobian of the built-in ``projectile`` adapter
   (range, maximum height and flight time by launch speed, angle and drag) at
   speed=20, angle=0.6, drag=0.05, with an error estimate for every entry and the number of
   simulator runs it took — what ``simdiff jacobian projectile --at speed=20,angle=0.6,drag=0.05``
   prints. Without drag the range has the closed form v²·sin(2θ)/g; the script compares.
2. A plain Python function, the Rosenbrock function, by every method. It is written with numpy
   operations only (no ``float(...)``), so it accepts complex x and the complex step applies.

Run:  python examples/quickstart.py      (about a second)
"""

import numpy as np

import simdiff as sd


def rosenbrock(x):
    """Σ 100 (x_{i+1} − x_i²)² + (1 − x_i)²; complex-safe (complex x gives complex f)."""
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def rosenbrock_grad(x):
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return g


def table(title, value, error, rows, cols):
    print(f"\n{title}")
    print(" " * 12 + "".join(f"{c:>26}" for c in cols))
    for i, r in enumerate(rows):
        cells = "".join(f"{value[i, j]:>14.8g} ± {error[i, j]:<9.1e}" for j in range(len(cols)))
        print(f"{r:<12}{cells}")


def main():
    sim = sd.load("projectile")
    J, info = sd.jacobian(sim, [20.0, 0.6, 0.05], full_output=True)
    table(f"Jacobian of projectile at speed=20, angle=0.6, drag=0.05 ({info.nfev} runs)",
          J, info.error, sim.outputs, sim.inputs)

    v, th, g = 20.0, 0.6, 9.81
    J0 = sd.jacobian(sim, [v, th, 0.0])
    exact = np.array([2 * v * np.sin(2 * th) / g, 2 * v * v * np.cos(2 * th) / g])
    print(f"\nwithout drag, d range/d(speed, angle) = {J0[0, :2]}; closed form {exact}; "
          f"max rel. difference {np.max(np.abs(J0[0, :2] / exact - 1)):.1e}")

    x = np.array([-1.2, 1.0, 0.8])
    exact = rosenbrock_grad(x)
    print(f"\ngradient of rosenbrock at {x}; exact {exact}")
    for method in ("forward", "central", "five-point", "complex"):
        g, info = sd.gradient(rosenbrock, x, method=method, full_output=True)
        err = np.abs(g - exact)
        covered = int(np.sum(info.error >= err))
        print(f"  {method:<11} {info.nfev:>2} evaluations   max rel. error "
              f"{np.max(err / np.abs(exact)):.1e}   info.error covers {covered} of {len(x)} entries")
    print("  (a forward difference's error estimate models f'' from f and f', which Rosenbrock's\n"
          "   curved valley outruns; central measures f'' with f(x), five-point and\n"
          "   step='adaptive' measure the truncation itself)")


if __name__ == "__main__":
    main()
