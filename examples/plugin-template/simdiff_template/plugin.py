"""The plugin module named by the entry point: adapter classes and the hook returning them."""

from __future__ import annotations

import numpy as np

import simdiff as sd


class Rosenbrock(sd.Simulator):
    """Rosenbrock's banana function (a - x)^2 + b (y - x^2)^2 (template adapter)."""

    # The name simdiff.load() takes; unique among all installed adapters.
    name = "rosenbrock"
    # Names of the entries of x and of the output (the CLI's --at names and table rows).
    inputs = ("x", "y")
    outputs = ("f",)
    # Optional hints: see simdiff.Simulator. An adapter that waits on an external program
    # sets prefer = "threads"; one that computes in-process, "processes".
    complex_safe = True
    prefer = "processes"

    def __init__(self, a: float = 1.0, b: float = 100.0) -> None:
        # The configuration is the constructor's keywords, stored under the same names (so that
        # Simulator.config() and cache keys see them). simdiff.load("rosenbrock", b=10) checks
        # the keys against this signature. Keep heavy state (a compiled model, a library
        # handle) out of __init__: build it lazily in evaluate() and drop it in __getstate__,
        # so that the simulator pickles to worker processes.
        self.a = float(a)
        self.b = float(b)

    def evaluate(self, x: np.ndarray) -> float:
        """f(x): x is a float64 array (n,) (complex with method="complex")."""
        return (self.a - x[0]) ** 2 + self.b * (x[1] - x[0] ** 2) ** 2


@sd.hookimpl
def simdiff_adapters() -> list[type[sd.Simulator]]:
    """The adapters of this plugin."""
    return [Rosenbrock]
