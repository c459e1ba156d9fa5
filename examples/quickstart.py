"""A first gradient and Jacobian with error estimates, on plain Python functions.

Run:  python examples/quickstart.py
"""

import numpy as np

import simdiff as sd


def rosenbrock(x):
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def pendulum_energy(x):
    """Outputs: kinetic, potential and total energy of a pendulum (length, angle, speed)."""
    length, angle, omega = x
    kinetic = 0.5 * (length * omega) ** 2
    potential = 9.81 * length * (1 - np.cos(angle))
    return np.array([kinetic, potential, kinetic + potential])


def table(title, value, error, rows, cols):
    print(f"\n{title}")
    print(" " * 12 + "".join(f"{c:>26}" for c in cols))
    for i, r in enumerate(rows):
        cells = "".join(f"{value[i, j]:>14.8g} ± {error[i, j]:<9.1e}" for j in range(len(cols)))
        print(f"{r:<12}{cells}")


def main():
    x = np.array([-1.2, 1.0, 0.8])
    for method in ("forward", "central", "five-point", "complex"):
        g, info = sd.gradient(rosenbrock, x, method=method, full_output=True)
        table(f"gradient of rosenbrock, method={method}, {info.nfev} evaluations",
              g[None, :], info.error[None, :], ["f"], [f"x[{j}]" for j in range(3)])
    J, info = sd.jacobian(pendulum_energy, [1.5, 0.3, 2.0], method="five-point", full_output=True)
    table(f"Jacobian of pendulum_energy (five-point, {info.nfev} evaluations)", J, info.error,
          ["kinetic", "potential", "total"], ["length", "angle", "omega"])


if __name__ == "__main__":
    main()
