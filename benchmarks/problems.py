"""Smooth test functions with analytic gradients, shared by the benchmarks.

Each problem is (name, f, grad, x0): f is complex-safe numpy code, so the complex step applies.
"""

from __future__ import annotations

import numpy as np


def _rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def _rosen_grad(x):
    g = np.zeros_like(x)
    g[:-1] += -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return g


def _lse(x):
    return np.log(np.sum(np.exp(x)))


def _lse_grad(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


def _expsin(x):
    return np.sum(np.exp(np.sin(x)))


def _expsin_grad(x):
    return np.cos(x) * np.exp(np.sin(x))


def _rational(x):
    return np.sum(1.0 / (1.0 + x**2))


def _rational_grad(x):
    return -2 * x / (1 + x**2) ** 2


def _logs(x):
    return np.sum(np.log(x) * x / 1000.0)


def _logs_grad(x):
    return (np.log(x) + 1.0) / 1000.0


def _trig(x):
    return np.prod(np.cos(x / 3.0)) + np.sum(x[:-1] * x[1:])


def _trig_grad(x):
    c = np.cos(x / 3.0)
    g = np.zeros_like(x)
    for j in range(len(x)):
        g[j] = -np.sin(x[j] / 3.0) / 3.0 * np.prod(np.delete(c, j))
    g[:-1] += x[1:]
    g[1:] += x[:-1]
    return g


def _quartic(x):
    return np.sum(x**4 / 4.0 - x**2) + 0.5 * np.sum(x) ** 2


def _quartic_grad(x):
    return x**3 - 2 * x + np.sum(x)


def problems():
    rng = np.random.default_rng(2026)
    return [
        ("rosenbrock", _rosen, _rosen_grad, rng.uniform(-1.5, 1.5, 10)),
        ("log-sum-exp", _lse, _lse_grad, rng.normal(size=20)),
        ("exp(sin)", _expsin, _expsin_grad, rng.uniform(-3, 3, 3)),
        ("rational", _rational, _rational_grad, rng.normal(scale=2.0, size=30)),
        ("x log x, |x|~1e4", _logs, _logs_grad, rng.uniform(1e3, 1e5, 8)),
        ("cos-product+chain", _trig, _trig_grad, rng.uniform(-2, 2, 5)),
        ("quartic, n=50", _quartic, _quartic_grad, rng.uniform(-2, 2, 50)),
    ]


class Counted:
    """Wraps f and counts its calls (each call is one evaluation here)."""

    def __init__(self, f):
        self.f = f
        self.n = 0

    def __call__(self, x):
        self.n += 1
        return self.f(x)
