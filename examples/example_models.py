"""Small models the run files of this directory use (``function = "example_models:..."``).

The run files put their own directory on the import path, so ``simdiff run examples/check.toml``
finds this module from anywhere. Run as a script, it checks its own derivatives.

Run:  python examples/example_models.py
"""

import numpy as np


def loss(x):
    """A smooth loss of three parameters: log(1 + exp(x0·x1)) + sin(x2)·x0²."""
    return float(np.logaddexp(0.0, x[0] * x[1]) + np.sin(x[2]) * x[0] ** 2)


def loss_grad(x):
    """The analytical gradient of ``loss``."""
    s = 1.0 / (1.0 + np.exp(-x[0] * x[1]))
    return np.array([s * x[1] + 2 * np.sin(x[2]) * x[0], s * x[0], np.cos(x[2]) * x[0] ** 2])


def rosen_residuals(x):
    """Residuals r(x) of Rosenbrock's function, ½‖r‖² = ½((10(y − x²))² + (1 − x)²); minimum at (1, 1)."""
    return np.array([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


def printed(x):
    """A legacy code's output: exp(x0)·cos(x1) printed with 7 significant digits (noise ~1e-7 relative)."""
    return float(f"{np.exp(x[0]) * np.cos(x[1]):.7g}")


if __name__ == "__main__":
    import simdiff as sd

    r = sd.check_gradient(loss, loss_grad, [0.5, -1.0, 0.3])
    print(f"loss_grad: {r.verdict} (relative error {r.relative_error:.1e})")
    J = sd.jacobian(rosen_residuals, [-1.2, 1.0])
    print(f"jacobian of rosen_residuals at (-1.2, 1):\n{J}")
