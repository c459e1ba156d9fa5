"""Functions with known derivatives, shared by the tests."""

import numpy as np


def vec_f(x):
    return np.array([np.sin(x[0]) * x[1], np.exp(x[1]) + x[2] ** 3, np.log1p(x[0] ** 2) * x[2]])


def vec_jac(x):
    return np.array([
        [np.cos(x[0]) * x[1], np.sin(x[0]), 0.0],
        [0.0, np.exp(x[1]), 3 * x[2] ** 2],
        [2 * x[0] / (1 + x[0] ** 2) * x[2], 0.0, np.log1p(x[0] ** 2)],
    ])


SCALAR = [
    # (name, f, grad)
    ("exp-sin", lambda x: np.sum(np.exp(np.sin(x))), lambda x: np.cos(x) * np.exp(np.sin(x))),
    ("rosenbrock",
     lambda x: np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2),
     lambda x: np.concatenate([-400 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1]), [0.0]])
     + np.concatenate([[0.0], 200 * (x[1:] - x[:-1] ** 2)])),
    ("rational", lambda x: np.sum(1.0 / (1.0 + x ** 2)), lambda x: -2 * x / (1 + x ** 2) ** 2),
    ("log-sum-exp", lambda x: np.log(np.sum(np.exp(x))), lambda x: np.exp(x) / np.sum(np.exp(x))),
]
