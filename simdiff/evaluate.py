"""The one seam through which every simulator evaluation runs.

A derivative call plans a batch X of shape (k, n) and hands it, whole, to an Evaluator:

    batch = evaluator.evaluate(sim, X)      # -> Batch

An Evaluator returns a ``Batch``: the stacked outputs, which rows succeeded, the failures, and
the number of simulator runs it made. Whatever runs the points (in-process, joblib workers, a
dask cluster) lives behind ``evaluate``; the differentiation code never loops over points.

This module holds the in-process ``SerialEvaluator``, the output checks every evaluator shares
(``stack_outputs``) and ``resolve_evaluator``, which turns the ``evaluator=``, ``n_jobs=`` and
``backend=`` options of the public functions into an Evaluator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from .errors import ArgumentError, ArgumentTypeError, OutputError, SimulationError
from .simulator import Simulator

__all__ = [
    "Batch",
    "Failure",
    "EvaluatorProtocol",
    "SerialEvaluator",
    "stack_outputs",
    "resolve_evaluator",
    "ON_FAILURE",
]

ON_FAILURE = ("raise", "skip")


@dataclass
class Failure:
    """One point that could not be evaluated."""

    index: int
    point: np.ndarray
    cause: Any
    attempts: int = 1

    def as_dict(self) -> dict:
        return {"index": self.index, "point": self.point, "cause": self.cause, "attempts": self.attempts}

    def __str__(self) -> str:
        return f"point {self.index} x={_fmt_point(self.point)}: {_fmt_cause(self.cause)}"


@dataclass
class Batch:
    """The outcome of evaluating a planned batch.

    values : ndarray (k, m), float64 or complex128; rows of failed points are NaN.
    ok : ndarray (k,) of bool; False where the point failed.
    failures : list of Failure, in index order.
    nfev : simulator runs made for this batch (retries included, cache hits excluded).
    scalar : True when the simulator returned scalars (m == 1).
    """

    values: np.ndarray
    ok: np.ndarray
    failures: list = field(default_factory=list)
    nfev: int = 0
    scalar: bool = True


class EvaluatorProtocol(Protocol):
    """What the differentiation code needs of an Evaluator."""

    on_failure: str

    def evaluate(self, sim: Simulator, X: np.ndarray) -> Batch: ...


def _fmt_point(x: np.ndarray) -> str:
    return np.array2string(np.asarray(x), precision=17, separator=", ", threshold=12)


def _fmt_cause(cause: Any) -> str:
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    return str(cause)


def raise_failures(failures: Sequence[Failure], sim: Simulator) -> None:
    """Raise SimulationError for the first failure, carrying all of them."""
    first = failures[0]
    more = f" ({len(failures) - 1} more point(s) failed too)" if len(failures) > 1 else ""
    exc_cls = SimulationError
    if type(first.cause).__name__ == "EvaluationTimeout" and isinstance(first.cause, SimulationError):
        exc_cls = type(first.cause)
    err = exc_cls(
        f"simulator {sim!r} failed at {first}{more}",
        point=first.point,
        index=first.index,
        cause=first.cause,
        failures=[f.as_dict() for f in failures],
    )
    if isinstance(first.cause, BaseException):
        raise err from first.cause
    raise err


def check_output(value: Any, index: int, point: np.ndarray) -> np.ndarray:
    """One raw output as a numeric array of ndim ≤ 1; OutputError otherwise."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is the user's output
        raise OutputError(
            f"f returned output that is not numeric at point {index} x={_fmt_point(point)}: "
            f"{type(value).__name__} ({exc}); allowed: a float or a 1-D array of floats"
        ) from exc
    if arr.dtype.kind not in "biufc":
        raise OutputError(
            f"f returned non-numeric output at point {index} x={_fmt_point(point)}: "
            f"{value!r} of type {type(value).__name__}; allowed: a float or a 1-D array of floats"
        )
    if arr.ndim > 1:
        if arr.size == max(arr.shape):
            arr = arr.reshape(-1)
        else:
            raise OutputError(
                f"f returned an array of shape {arr.shape} at point {index} "
                f"x={_fmt_point(point)}; allowed: a float or a 1-D array (m,)"
            )
    return arr


def is_finite_output(arr: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(arr)))


def stack_outputs(outputs: Sequence[Any], X: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, bool]:
    """Stack checked outputs into (k, m); rows where ``ok`` is False become NaN.

    Raises OutputError when the shape of the output changes between points, naming both.
    """
    k = len(X)
    first = None
    shape = None
    complex_out = False
    for i in range(k):
        if not ok[i]:
            continue
        arr = outputs[i]
        if shape is None:
            shape, first = arr.shape, i
        elif arr.shape != shape:
            raise OutputError(
                f"the shape of f's output changed between points: shape {shape} at point "
                f"{first} x={_fmt_point(X[first])} but {arr.shape} at point {i} "
                f"x={_fmt_point(X[i])}; f must return the same shape at every point"
            )
        complex_out = complex_out or arr.dtype.kind == "c"
    if shape is None:
        return np.full((k, 1), np.nan), True
    m = 1 if shape == () else shape[0]
    values = np.full((k, m), np.nan, dtype=complex if complex_out else float)
    for i in range(k):
        if ok[i]:
            values[i] = np.reshape(outputs[i], (m,))
    return values, shape == ()


def call_vectorized(sim: Simulator, X: np.ndarray) -> list:
    """Evaluate a vectorized simulator on X (k, n) in one call; the rows of its output."""
    out = sim.evaluate(X)
    arr = np.asarray(out)
    if arr.dtype.kind not in "biufc":
        raise OutputError(
            f"vectorized f returned non-numeric output {type(out).__name__}; "
            "allowed: an array (k,) or (k, m) of floats"
        )
    if arr.ndim == 0 or arr.shape[0] != len(X):
        raise OutputError(
            f"vectorized f was given {len(X)} points (an array of shape {X.shape}) and returned "
            f"shape {arr.shape}; allowed: ({len(X)},) or ({len(X)}, m)"
        )
    return [arr[i] for i in range(len(X))]


class SerialEvaluator:
    """Evaluates a batch in this process, point by point (or in one call if vectorized).

    Parameters
    ----------
    on_failure : "raise" (default) raises SimulationError at the first failed point;
        "skip" records the failure, marks the row, and goes on.
    """

    def __init__(self, on_failure: str = "raise") -> None:
        if on_failure not in ON_FAILURE:
            raise ArgumentError(f"on_failure must be one of {ON_FAILURE}; got {on_failure!r}")
        self.on_failure = on_failure
        self.nfev = 0
        self.cache_hits = 0
        self.failures: list[Failure] = []
        self.log: list[dict] = []

    def evaluate(self, sim: Simulator, X: np.ndarray) -> Batch:
        X = np.asarray(X)
        k = len(X)
        outputs: list = [None] * k
        ok = np.zeros(k, dtype=bool)
        failures: list[Failure] = []
        nfev0 = self.nfev
        if sim.vectorized and k:
            t0 = time.perf_counter()
            rows = call_vectorized(sim, X)
            self.nfev += k
            dt = (time.perf_counter() - t0) / k
            for i, r in enumerate(rows):
                self._accept(i, X[i], r, outputs, ok, failures, dt)
        else:
            for i in range(k):
                t0 = time.perf_counter()
                try:
                    r = sim.evaluate(X[i])
                except (KeyboardInterrupt, SystemExit):
                    raise
                except (OutputError, ArgumentError, ArgumentTypeError):
                    raise
                except Exception as exc:  # noqa: BLE001 - the simulator's failure, recorded
                    self.nfev += 1
                    failures.append(Failure(i, X[i].copy(), exc))
                    if self.on_failure == "raise":
                        break
                    continue
                self.nfev += 1
                self._accept(i, X[i], r, outputs, ok, failures, time.perf_counter() - t0)
                if failures and self.on_failure == "raise":
                    break
        self.failures.extend(failures)
        if failures and self.on_failure == "raise":
            raise_failures(failures, sim)
        values, scalar = stack_outputs(outputs, X, ok)
        return Batch(values=values, ok=ok, failures=failures, nfev=self.nfev - nfev0, scalar=scalar)

    def _accept(self, i, x, raw, outputs, ok, failures, seconds) -> None:
        arr = check_output(raw, i, x)
        self.log.append({"point": x.copy(), "value": arr, "seconds": seconds, "attempt": 1, "worker": "main"})
        if not is_finite_output(arr):
            failures.append(Failure(i, x.copy(), f"non-finite output {arr!r}"))
            return
        outputs[i] = arr
        ok[i] = True


def resolve_evaluator(evaluator: Any = None, n_jobs: Any = None, backend: Any = None) -> Any:
    """The Evaluator a call uses: ``evaluator`` if given, else one built from the shorthands.

    ``n_jobs``/``backend`` together with ``evaluator`` is ambiguous and refused.
    """
    if evaluator is not None:
        if n_jobs is not None or backend is not None:
            raise ArgumentError(
                f"give either evaluator= or the shorthands n_jobs=/backend=, not both "
                f"(got evaluator={evaluator!r}, n_jobs={n_jobs!r}, backend={backend!r})"
            )
        if not hasattr(evaluator, "evaluate"):
            raise ArgumentTypeError(
                f"evaluator must be a simdiff Evaluator (with an evaluate(sim, X) method); got {evaluator!r}"
            )
        return evaluator
    if n_jobs in (None, 1) and backend is None:
        return SerialEvaluator()
    try:
        from .parallel import Evaluator  # the joblib Evaluator (issue: parallel evaluation)
    except ImportError:
        raise ArgumentError(
            f"n_jobs={n_jobs!r}, backend={backend!r}: parallel evaluation is not available in this build"
        ) from None
    return Evaluator(n_jobs=n_jobs, backend=backend)
