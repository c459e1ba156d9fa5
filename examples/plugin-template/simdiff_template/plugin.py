"""The plugin module named by the entry point: adapter classes and the hook returning them."""

from __future__ import annotations

import numpy as np

import simdiff as sd


class Rosenbrock(sd.Simulator):
    """Rosenbrock's banana function (a - x)^2 + b (y - x^2)^2 (template adapter)."""

    # The name simdiff.load() takes; unique among all installed adapters (an adapter that takes
    # a built-in's name is skipped with a warning).
    name = "rosenbrock"
    # Names of the entries of x and of the output (the CLI's --at names and table rows).
    inputs = ("x", "y")
    outputs = ("f",)
    # Optional hints: see simdiff.Simulator. An adapter that waits on an external program
    # sets prefer = "threads"; one that computes in-process, "processes".
    complex_safe = True
    prefer = "processes"

    def __init__(self, a: float = 1.0, b: float = 100.0, limit: float = 1e6) -> None:
        """
        Parameters
        ----------
        a : the x coordinate of the minimum (a, a^2).
        b : the steepness of the valley walls, >= 0.
        limit : inputs with |value| above it are refused (the model's range of validity).
        """
        # The configuration is the constructor's keywords, stored under the same names (so that
        # Simulator.config() and cache keys see them). simdiff.load("rosenbrock", b=10) checks
        # the keys against this signature; check the values here and refuse bad ones with a
        # ConfigError naming the key, the value and what is allowed.
        if not b >= 0:
            raise sd.ConfigError(f"b must be >= 0; got {b!r}")
        self.a = float(a)
        self.b = float(b)
        self.limit = float(limit)
        # Heavy state (a compiled model, a library handle) is built lazily in evaluate() and
        # dropped in __getstate__, so that the simulator pickles to worker processes.
        self._engine = None

    def _build_engine(self):
        """Stands for loading a model or opening a library: done once per process."""
        return {"a": self.a, "b": self.b}

    def evaluate(self, x: np.ndarray) -> float:
        """f(x): x is a float64 array (n,) (complex with method="complex")."""
        bad = [n for n, v in zip(self.inputs, x) if abs(v) > self.limit]
        if bad:
            # A point the simulator cannot compute: raise SimulationError saying why. simdiff
            # names the point and its index; the Evaluator retries or skips it as asked.
            raise sd.SimulationError(f"rosenbrock: |{bad[0]}| > limit {self.limit:g}; got x = {x!r}")
        if self._engine is None:
            self._engine = self._build_engine()
        a, b = self._engine["a"], self._engine["b"]
        return (a - x[0]) ** 2 + b * (x[1] - x[0] ** 2) ** 2

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_engine"] = None  # rebuilt in the worker by the first evaluate()
        return state


@sd.hookimpl
def simdiff_adapters() -> list[type[sd.Simulator]]:
    """The adapters of this plugin."""
    return [Rosenbrock]
