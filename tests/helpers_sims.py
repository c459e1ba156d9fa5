"""Simulators for the Evaluator tests, in an importable module so worker processes can load them.

Each misbehaves in one known way. State that must survive across processes (how often a point
was tried, how many evaluations ran) lives in files under a directory the test gives.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

import simdiff as sd


def quad(x):
    """f(x) = sum(x**2) + sum(x)**3 / 3, a plain function with known gradient."""
    return float(np.sum(x**2) + np.sum(x) ** 3 / 3.0)


def quad_c(x):
    """sum(x**2) + sum(x)**3 / 3, complex-safe (complex x gives complex output)."""
    return np.sum(x**2) + np.sum(x) ** 3 / 3.0


def quad_grad(x):
    return 2 * x + np.sum(x) ** 2


def vec3(x):
    """R^n -> R^3 with inexact floating-point arithmetic (bit-equality means something)."""
    weighted = np.sum(x * np.arange(1, x.size + 1)) / 7.0
    return np.array([np.sin(x).sum(), np.exp(x[0]) * np.cos(x[-1]), weighted])


def _tick(directory: str, name: str) -> int:
    """Append one line to directory/name and return how many lines it now has; an exclusive
    lock makes append-and-count one step when several processes tick at once."""
    import fcntl

    Path(directory).mkdir(parents=True, exist_ok=True)
    with open(Path(directory) / name, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write("x\n")
        fh.flush()
        fh.seek(0)
        return sum(1 for _ in fh)


def _point_name(x) -> str:
    return np.asarray(x).tobytes().hex()[:40]


class Busy(sd.Simulator):
    """A CPU-bound quadratic that spins for `seconds` (pure Python loop)."""

    name = "busy"

    def __init__(self, seconds: float = 0.03) -> None:
        self.seconds = seconds

    def evaluate(self, x):
        end = time.perf_counter() + self.seconds
        acc = 0.0
        while time.perf_counter() < end:
            for j in range(200):
                acc += j * 1e-12
        return float(np.sum(x**2)) + 0.0 * acc


class Counting(sd.Simulator):
    """vec3, writing one line per evaluation to directory/'evals' (counted across processes)."""

    name = "counting"

    def __init__(self, directory: str, scale: float = 1.0) -> None:
        self.directory = directory
        self.scale = scale

    def evaluate(self, x):
        _tick(self.directory, "evals")
        return self.scale * vec3(x)


class ExitAtK(sd.Simulator):
    """Counts evaluations in directory/'evals'; the k-th ends the run: os._exit(17) of its own
    process (how="self"), or, in a simdiff worker, SIGKILL of the process that started it
    (how="parent")."""

    name = "exit_at_k"

    def __init__(self, directory: str, k: int, how: str = "self", sleep: float = 0.0) -> None:
        self.directory = directory
        self.k = k
        self.how = how
        self.sleep = sleep

    def evaluate(self, x):
        time.sleep(self.sleep)
        if _tick(self.directory, "evals") == self.k:
            if self.how == "parent" and os.environ.get("SIMDIFF_WORKER"):
                import signal

                os.kill(os.getppid(), signal.SIGKILL)
            os._exit(17)
        return vec3(x)


class Flaky(sd.Simulator):
    """Raises on the first `fails` attempts at every point, then returns quad(x)."""

    name = "flaky"

    def __init__(self, directory: str, fails: int = 1) -> None:
        self.directory = directory
        self.fails = fails

    def evaluate(self, x):
        if _tick(self.directory, _point_name(x)) <= self.fails:
            raise RuntimeError("flaky failure")
        return quad(x)


class RaiseAt(sd.Simulator):
    """quad(x), but where x[0] > threshold: raises ValueError (output="raise") or returns NaN
    (output="nan")."""

    name = "raise_at"

    def __init__(self, threshold: float, output: str = "raise") -> None:
        self.threshold = threshold
        self.output = output

    def evaluate(self, x):
        if x[0] <= self.threshold:
            return quad(x)
        if self.output == "nan":
            return float("nan")
        raise ValueError(f"bad region x[0]={x[0]!r}")


def NaNAt(threshold: float) -> RaiseAt:
    """quad(x), but NaN where x[0] > threshold."""
    return RaiseAt(threshold, output="nan")


class DieAt(sd.Simulator):
    """quad(x), but its process dies (os._exit) where x[0] > threshold: the first `times`
    times at that point (counted in directory), or always when times is None."""

    name = "die_at"

    def __init__(self, threshold: float, directory: str, times: int | None = None,
                 how: str = "exit", sleep: float = 0.02) -> None:
        self.threshold = threshold
        self.directory = directory
        self.times = times
        self.how = how
        self.sleep = sleep

    def evaluate(self, x):
        if x[0] > self.threshold:
            n = _tick(self.directory, _point_name(x))
            if self.times is None or n <= self.times:
                if self.how == "segv":
                    import ctypes

                    ctypes.string_at(0)  # a real segmentation fault
                os._exit(3)
        time.sleep(self.sleep)  # by default slow enough that a pool is worth it
        return quad(x)


class SleepAt(sd.Simulator):
    """quad(x) after `base` seconds; where x[0] > threshold it sleeps `hang` seconds instead."""

    name = "sleep_at"

    def __init__(self, threshold: float, hang: float = 30.0, base: float = 0.0) -> None:
        self.threshold = threshold
        self.hang = hang
        self.base = base

    def evaluate(self, x):
        time.sleep(self.hang if x[0] > self.threshold else self.base)
        return quad(x)


class Pid(sd.Simulator):
    """Returns its process id (to see where evaluations ran) as a float, plus sum(x)."""

    name = "pid"
    prefer = None

    def __init__(self, seconds: float = 0.02) -> None:
        self.seconds = seconds

    def evaluate(self, x):
        time.sleep(self.seconds)
        return np.array([float(os.getpid()), float(np.sum(x))])


class KillableRosen(sd.Simulator):
    """Rosenbrock (f, or its residuals 10·(x₁ − x₀²), 1 − x₀) that dies like a killed job at
    call ``kill_at``; its counters are not part of its cache key."""

    cache_ignore = ("calls", "kill_at")

    def __init__(self, kill_at=None, residuals=False):
        self.calls, self.kill_at, self.residuals = 0, kill_at, residuals

    def evaluate(self, x):
        self.calls += 1
        if self.kill_at is not None and self.calls == self.kill_at:
            raise KeyboardInterrupt("killed")
        r = np.array([10 * (x[1] - x[0] ** 2), 1 - x[0]])
        return r if self.residuals else float(r @ r)
