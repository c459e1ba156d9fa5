"""The one seam through which every simulator evaluation runs.

A derivative call plans a batch X of shape (k, n) and hands it, whole, to an Evaluator:

    batch = evaluator.evaluate(sim, X)      # -> Batch

An Evaluator returns a ``Batch``: the stacked outputs, which rows succeeded, the failures, and
the number of simulator runs it made. Whatever runs the points (in-process, joblib workers, a
dask cluster) lives behind ``evaluate``; the differentiation code never loops over points.

This module holds the in-process ``SerialEvaluator``, the parallel ``Evaluator`` (cache,
retries, time-outs, worker deaths, the cheap-function guard, counting, progress), the output
checks every evaluator shares (``stack_outputs``) and ``resolve_evaluator``, which turns the
``evaluator=``, ``n_jobs=`` and ``backend=`` options of the public functions into an Evaluator.
The transports (worker processes, threads, dask) live in ``simdiff/workers.py``, the disk cache
in ``simdiff/cache.py``, the bar in ``simdiff/progress.py``.
"""

from __future__ import annotations

import cmath
import logging
import math
import os
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from . import workers
from .attrdict import AttrDict
from .cache import DiskCache, as_cache, fingerprint
from .errors import (
    ArgumentError,
    ArgumentTypeError,
    EvaluationTimeout,
    MissingDependencyError,
    OutputError,
    SimulationError,
    require,
)
from .progress import PROGRESS, SHOW_AFTER, Progress
from .simulator import CallableSimulator, Simulator, as_simulator
from .workers import Event, timeout_error

#: Each batch (INFO), each run (DEBUG), each retry and failure (INFO); silent unless the
#: application configures logging (the library adds no handler; ``simdiff -v`` does).
log = logging.getLogger("simdiff.evaluate")

__all__ = [
    "ON_FAILURE",
    "Batch",
    "Evaluator",
    "EvaluatorProtocol",
    "Failure",
    "SerialEvaluator",
    "failure_records",
    "repair_note",
    "resolve_evaluator",
    "stack_outputs",
]

ON_FAILURE = ("raise", "skip")


class Failure(AttrDict):
    """One failure record: the one shape of ``info.failures``, ``Evaluator.failures`` and
    ``SimulationError.failures``.

    A dict whose keys are also attributes; every record has every key (None where it does not
    apply), and ``kind`` says which it is:

    ``kind="evaluation"``
        A point that could not be evaluated: ``index`` (its row in the batch), ``point``,
        ``cause`` (the exception, or a description), ``attempts``, and ``reason`` (the cause
        as text).
    ``kind="repair"``
        A derivative entry some of whose points failed: ``entry`` (its index, or (i, j) for a
        Hessian), ``reason`` (what was done), ``recovered`` (True: rebuilt from the surviving
        points at a lower order; False: NaN).

    ``Failure(index, point, cause, attempts)`` builds an evaluation record, ``repair_note(entry,
    reason, recovered)`` a repair record; ``failure_records`` turns older plain dicts into
    records.
    """

    KINDS = ("evaluation", "repair")

    def __init__(self, index: int | None = None, point: Any = None, cause: Any = None,
                 attempts: int = 1, *, kind: str = "evaluation", entry: Any = None,
                 reason: str | None = None, recovered: bool | None = None, **extra: Any) -> None:
        if kind not in self.KINDS:
            raise ArgumentError(f"kind must be one of {self.KINDS}; got {kind!r}")
        if reason is None and cause is not None:
            reason = _fmt_cause(cause)
        super().__init__(kind=kind, index=index, point=point, cause=cause, attempts=attempts,
                         entry=entry, reason=reason, recovered=recovered, **extra)


    def as_dict(self) -> "Failure":
        """A copy (a record, so a dict too)."""
        return Failure(**self)

    def __reduce__(self):
        return (_failure_from_dict, (dict(self),))

    def __str__(self) -> str:
        if self["kind"] == "repair":
            return f"entry {self['entry']}: {self['reason']}"
        return f"point {self['index']} x={_fmt_point(self['point'])}: {_fmt_cause(self['cause'])}"


def _failure_from_dict(d: dict) -> Failure:
    return Failure(**d)


def repair_note(entry: Any, reason: str, recovered: bool = False, **extra: Any) -> Failure:
    """A ``kind="repair"`` record: derivative entry ``entry`` lost points; ``reason`` says how it
    was handled."""
    return Failure(None, None, None, 0, kind="repair", entry=entry, reason=reason,
                   recovered=bool(recovered), **extra)


def failure_records(items: Any) -> list:
    """``items`` (records or plain dicts: a dict with ``entry`` is a repair note, anything else an
    evaluation failure) as a list of ``Failure`` records."""
    out = []
    for f in items or []:
        if isinstance(f, Failure):
            out.append(f)
        elif isinstance(f, dict):
            d = dict(f)
            if "kind" not in d:
                d["kind"] = "repair" if "entry" in d and "index" not in d else "evaluation"
            if d["kind"] == "repair":
                d.setdefault("attempts", 0)
            out.append(Failure(**d))
        else:
            out.append(Failure(None, None, f))
    return out


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
    #: Unit roundoff of the outputs: 2^-52 for float64, 2^-23 for float32 (what the step rule
    #: and the rounding estimate of a derivative must use).
    eps: float = float(np.finfo(float).eps)


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
    if isinstance(first.cause, EvaluationTimeout):
        exc_cls = type(first.cause)
    err = exc_cls(
        f"simulator {sim!r} failed at {first}{more}",
        point=first.point,
        index=first.index,
        cause=first.cause,
        failures=[f.as_dict() for f in failures],
    )
    # the program's exit code, work dir and output tails, also on the outer error
    for name in ("returncode", "workdir", "stdout_tail", "stderr_tail"):
        value = getattr(first.cause, name, None)
        if value is not None:
            setattr(err, name, value)
    if isinstance(first.cause, BaseException):
        raise err from first.cause
    raise err


def check_output(value: Any, index: int, point: np.ndarray) -> np.ndarray:
    """One raw output as a numeric array of ndim ≤ 1, the Evaluator's own copy (a simulator may
    return the same buffer every call, refilled); OutputError otherwise."""
    try:
        arr = np.array(value)
    except Exception as exc:
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
    """A usable output: finite, or, with several outputs, at least one of them finite (an
    output that is NaN everywhere must not take the others' derivatives with it: the entries
    it enters come out NaN and are named by the derivative functions)."""
    if arr.ndim == 0:  # the common scalar case, without a numpy reduction
        v = arr.item()
        return cmath.isfinite(v) if isinstance(v, complex) else math.isfinite(v)
    fin = np.isfinite(arr)
    return bool(fin.all()) or (arr.size > 1 and bool(fin.any()))


_EPS64 = float(np.finfo(float).eps)


def output_eps(outputs: Sequence[Any], ok: np.ndarray) -> float:
    """Unit roundoff of f's outputs, read off the first successful one: float32 (or complex64)
    outputs carry 2^-23 relative rounding, float16 2^-10; float64, integers and Python floats
    2^-52."""
    if ok.any():
        first = outputs[int(ok.argmax())]
        dt = first.dtype if type(first) is np.ndarray else np.asarray(first).dtype
        if dt.kind in "fc" and dt.itemsize < (8 if dt.kind == "f" else 16):
            return float(np.finfo(dt).eps)
    return _EPS64


def stack_outputs(outputs: Sequence[Any], X: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, bool]:
    """Stack checked outputs into (k, m); rows where ``ok`` is False become NaN.

    Raises OutputError when the shape of the output changes between points, naming both.
    """
    k = len(X)
    if k and ok.all():  # the usual batch: every point returned, one shape (issue 15)
        shapes = {a.shape for a in outputs}
        if len(shapes) == 1 and all(a.dtype.kind != "c" for a in outputs):
            shape = shapes.pop()
            if len(shape) <= 1:
                m = 1 if shape == () else shape[0]
                return np.array(outputs, dtype=float).reshape(k, m), shape == ()
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


def resolve_evaluator(evaluator: Any = None, n_jobs: Any = None, backend: Any = None,
                      **options: Any) -> Any:
    """The Evaluator a call uses: ``evaluator`` if given, else one built from the shorthands.

    ``options`` are further Evaluator keywords (``cache``, ``retries``, ``timeout``,
    ``on_failure``, ``progress``, ``batch_size``); None means not given. Shorthands together
    with ``evaluator`` are ambiguous and refused. With no shorthand and no enclosing
    ``joblib.parallel_config``, the plain SerialEvaluator.
    """
    given = {k: v for k, v in options.items() if v is not None}
    if evaluator is not None:
        if n_jobs is not None or backend is not None or given:
            extra = "".join(f", {k}={v!r}" for k, v in given.items())
            raise ArgumentError(
                f"give either evaluator= or the shorthands n_jobs=/backend=/..., not both "
                f"(got evaluator={evaluator!r}, n_jobs={n_jobs!r}, backend={backend!r}{extra})"
            )
        if not hasattr(evaluator, "evaluate"):
            raise ArgumentTypeError(
                "evaluator must be a simdiff Evaluator (with an evaluate(sim, X) method); "
                f"got {evaluator!r}"
            )
        return evaluator
    if n_jobs in (None, 1) and backend is None and not given and _joblib_context() == (None, None):
        return SerialEvaluator()
    return Evaluator(n_jobs=n_jobs, backend=backend, **given)


# ---------------------------------------------------------------------------------------------
# The parallel Evaluator


class _ArgumentValueTypeError(ArgumentError, ArgumentTypeError):
    """An Evaluator argument of a type that is not allowed (both ValueError and TypeError)."""


_PROCESS_BACKENDS = ("loky", "multiprocessing", "processes")
_THREAD_BACKENDS = ("threading", "threads")
_BACKEND_NAMES = (None, "loky", "multiprocessing", "threading", "sequential", "dask", "ray")


_JOBLIB: list = []


def _joblib_context() -> tuple[Any, Any]:
    """(backend, n_jobs) set by an enclosing ``joblib.parallel_config``; None where unset."""
    if not _JOBLIB:
        if "joblib.parallel" not in sys.modules:
            # no parallel_config can be in force before joblib is imported (and importing it
            # costs 80 ms: the first call of a cheap optimization would pay it)
            return None, None
        try:
            from joblib.parallel import _backend, default_parallel_config
        except ImportError:  # pragma: no cover - joblib is a dependency
            return None, None
        _JOBLIB.extend((_backend, default_parallel_config))  # the from-import costs every call
    _backend, default_parallel_config = _JOBLIB
    cfg = getattr(_backend, "config", None)
    if not cfg:
        return None, None
    backend, n_jobs = cfg.get("backend"), cfg.get("n_jobs")
    if backend is default_parallel_config["backend"]:
        backend = None
    if n_jobs is default_parallel_config["n_jobs"]:
        n_jobs = None
    return backend, n_jobs


def _effective_n_jobs(n_jobs: int | None) -> int:
    """joblib's rule: None -> 1, -1 -> all CPUs, -2 -> all but one, ..."""
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return n_jobs


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_dask_client(obj: Any) -> bool:
    return type(obj).__name__ == "Client" and hasattr(obj, "submit") and hasattr(obj, "scheduler")


class _ExitIntercepted(BaseException):
    """Raised in place of ending the process while a point is evaluated in-process."""


class _ProcessKeptAlive:
    """Turn ``os._exit``, ``os.abort`` and ``os.kill`` of this process into an exception.

    The cheap-function guard evaluates points in the calling process; a simulator that ends its
    process (written to kill a worker) must not take the caller with it. The point is then sent
    to a worker process, where it may die as it intends. (A real segfault cannot be caught.)
    A context manager, entered every batch (issue 15: its stand-ins are made once); nested and
    concurrent entries (threads) share one patch, removed when the last one leaves."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.saved: tuple = ()

    def _exit(self, code: int = 0) -> None:
        raise _ExitIntercepted(f"os._exit({code})")

    def _abort(self) -> None:
        raise _ExitIntercepted("os.abort()")

    def _kill(self, pid: int, sig: int) -> None:
        if pid in (0, os.getpid()) and sig != 0:
            raise _ExitIntercepted(f"os.kill(own pid, {sig})")
        self.saved[2](pid, sig)

    def __enter__(self) -> None:
        with self.lock:
            if self.depth == 0:
                self.saved = (os._exit, os.abort, os.kill)
                os._exit, os.abort, os.kill = self._exit, self._abort, self._kill
            self.depth += 1

    def __exit__(self, *exc: Any) -> bool:
        with self.lock:
            self.depth -= 1
            if self.depth == 0:
                os._exit, os.abort, os.kill = self.saved
        return False


_KEPT_ALIVE = _ProcessKeptAlive()


class Evaluator:
    """Evaluates planned batches in parallel, with a cache, retries, time-outs and progress.

    Parameters
    ----------
    n_jobs : int or None
        Parallel slots, as in joblib: None means 1 unless an enclosing
        ``joblib.parallel_config(n_jobs=...)`` says otherwise; -1 all CPUs, -2 all but one.
    backend : str, distributed.Client or joblib backend, optional
        "loky" (worker processes; the default), "multiprocessing" (the same), "threading",
        "sequential", "dask" (the current ``distributed.Client``; or pass the Client), "ray"
        (through ``ray.util.joblib``), or any registered joblib backend name. None follows
        ``joblib.parallel_config`` and then the simulator's ``prefer`` hint ("threads" selects
        threads, anything else processes).
    batch_size : "auto" or int
        Points per task sent to a worker. "auto": one point for evaluations slower than 2 ms,
        else enough points to make a task of about 10 ms.
    cache : None, path or DiskCache
        A directory where every evaluation is written as it completes (see simdiff/cache.py);
        points found there are not evaluated again.
    retries : int
        How many times a failed point (exception, non-finite output, time-out) is run again.
        A point whose worker process died is resubmitted up to ``retries + 1`` times; after
        that its death is its failure, so a point that always kills its worker ends.
    timeout : float or None
        Seconds one evaluation may take. A late evaluation is stopped (its worker process is
        killed and replaced; the dask worker holding it is ended and its nanny starts another;
        a thread, which cannot be killed, is abandoned and its slot refilled) and counts as a
        failure with cause ``EvaluationTimeout``.
    on_failure : "raise" or "skip"
        "raise": ``SimulationError`` naming point, index and cause once the batch has stopped.
        "skip": the Batch marks failed rows (``ok`` False, values NaN) and lists them.
    progress : None, True or False
        A tqdm bar: None shows it when stderr is a terminal and the batch is expected to take
        more than 2 s; True always; False never.

    Attributes
    ----------
    nfev : int
        Simulator runs made (retries, time-outs and deaths included; cache hits not).
    cache_hits : int
        Points answered by the cache.
    failures : list of Failure
        Every point that ended failed, over all batches.
    log : list of dict
        One entry per run: ``point``, ``value`` (None when it failed), ``seconds``, ``attempt``,
        ``worker`` ("main" in-process), ``status`` ("ok", "error", "non-finite", "timeout",
        "died", "exit-intercepted") and ``error``.

    Notes
    -----
    Where a batch runs. With one slot and no time-out, in this process. Otherwise the first
    evaluation of a simulator not seen before is timed in this process, and the batch goes on
    in-process while the estimate ``r·t`` (r points left, t seconds each) is below the parallel
    estimate ``ceil(r/W)·(t + c)`` (W slots, c the measured dispatch cost per task); a cheap
    function therefore never pays for workers. While workers start (a cold pool), points keep
    being evaluated in-process. With a time-out nothing runs in-process: only a worker can be
    stopped. Workers are kept between calls (simdiff/workers.py). Vectorized simulators are
    called once per batch, in-process (their parallelism is their own; no time-out applies).

    While a point runs in this process on behalf of a parallel Evaluator, ``os._exit``,
    ``os.abort`` and ``os.kill`` of this process raise instead of ending it: a simulator written
    to kill its worker does not take the caller along; that point then runs in a worker only.
    A genuine segmentation fault cannot be intercepted: a simulator that may crash its process
    should be given a ``timeout=`` (which keeps every point in workers).

    The values are those a serial loop computes, bit for bit: the same ``sim.evaluate`` on the
    same float64 (or complex128) rows, results returned by pickle.
    """

    def __init__(
        self,
        n_jobs: int | None = None,
        backend: Any = None,
        batch_size: Any = "auto",
        cache: Any = None,
        retries: int = 0,
        timeout: float | None = None,
        on_failure: str = "raise",
        progress: bool | None = None,
    ) -> None:
        if n_jobs is not None and not _is_int(n_jobs):
            raise _ArgumentValueTypeError(
                f"n_jobs must be None or an int (positive: that many, -1: all CPUs); "
                f"got {type(n_jobs).__name__} {n_jobs!r}"
            )
        if n_jobs is not None and n_jobs == 0:
            raise ArgumentError(
                "n_jobs=0 is not allowed; allowed: None, a positive int, or a negative int "
                "counting back from the number of CPUs (-1: all)"
            )
        self.n_jobs = None if n_jobs is None else int(n_jobs)
        self.backend = self._check_backend(backend)
        if not (batch_size == "auto" if isinstance(batch_size, str) else
                _is_int(batch_size) and batch_size >= 1):
            raise ArgumentError(f"batch_size must be 'auto' or an int >= 1; got {batch_size!r}")
        self.batch_size = batch_size if isinstance(batch_size, str) else int(batch_size)
        if cache is not None and not isinstance(cache, (str, os.PathLike, DiskCache)):
            raise _ArgumentValueTypeError(
                f"cache must be None, a directory path (str or os.PathLike) or a "
                f"simdiff.cache.DiskCache; got {type(cache).__name__} {cache!r}"
            )
        self.cache = as_cache(cache)
        if not _is_int(retries) or retries < 0:
            raise ArgumentError(f"retries must be an int >= 0; got {retries!r}")
        self.retries = int(retries)
        if timeout is not None:
            number = isinstance(timeout, (int, float, np.integer, np.floating))
            number = number and not isinstance(timeout, bool)
            if not number or not (math.isfinite(timeout) and timeout > 0):
                raise ArgumentError(
                    f"timeout must be None or a finite number of seconds > 0; got {timeout!r}"
                )
            timeout = float(timeout)
        self.timeout = timeout
        if on_failure not in ON_FAILURE:
            raise ArgumentError(f"on_failure must be one of {ON_FAILURE}; got {on_failure!r}")
        self.on_failure = on_failure
        if not any(progress is p for p in PROGRESS):
            raise ArgumentError(f"progress must be one of {PROGRESS}; got {progress!r}")
        self.progress = progress
        self.nfev = 0
        self.cache_hits = 0
        self.failures: list[Failure] = []
        self.log: list[dict] = []
        self._seconds: dict[str, float] = {}  # simulator fingerprint -> seconds per evaluation
        self._unsafe: set[str] = set()  # fingerprints that tried to end the process in-process
        self._dask_pools: dict[int, Any] = {}

    def __repr__(self) -> str:
        return (
            f"Evaluator(n_jobs={self.n_jobs!r}, backend={self.backend!r}, "
            f"batch_size={self.batch_size!r}, cache={self.cache!r}, retries={self.retries!r}, "
            f"timeout={self.timeout!r}, on_failure={self.on_failure!r}, progress={self.progress!r})"
        )

    @staticmethod
    def _check_backend(backend: Any) -> Any:
        if backend is None or _is_dask_client(backend):
            return backend
        if isinstance(backend, str):
            known = set(_BACKEND_NAMES[1:]) | set(_PROCESS_BACKENDS) | set(_THREAD_BACKENDS)
            if backend not in known:
                from joblib.parallel import BACKENDS  # (80 ms on first import: only if needed)
            if backend not in known and backend not in BACKENDS:
                allowed = sorted(known | set(BACKENDS))
                raise ArgumentError(
                    f"backend must be None, a distributed.Client, or one of {allowed} "
                    f"(or a joblib backend registered by name); got {backend!r}"
                )
            if backend == "dask":
                require("distributed", "dask")
            return backend
        from joblib.parallel import ParallelBackendBase

        if isinstance(backend, ParallelBackendBase):
            return backend
        raise _ArgumentValueTypeError(
            f"backend must be None, a backend name (str), a distributed.Client or a joblib "
            f"backend instance; got {type(backend).__name__} {backend!r}"
        )

    # -- where a batch runs ------------------------------------------------------------------

    def _pool(self, sim: Simulator) -> Any:
        """The pool for this batch, or None to run it in this process only."""
        if self.backend == "sequential" and self.timeout is None:
            return None  # the SerialEvaluator: no joblib context can move it (below)
        ctx_backend, ctx_n = _joblib_context()
        backend = self.backend if self.backend is not None else ctx_backend
        n_jobs = self.n_jobs if self.n_jobs is not None else ctx_n
        name = backend if isinstance(backend, str) or backend is None else type(backend).__name__
        if _is_dask_client(backend) or name in ("dask", "DaskDistributedBackend"):
            if _is_dask_client(backend):
                client = backend
            elif name == "DaskDistributedBackend":
                client = backend.client
            else:
                from distributed import get_client

                try:
                    client = get_client()
                except ValueError:
                    raise ArgumentError(
                        "backend='dask' needs a running distributed.Client (create one with "
                        "distributed.Client(...) or pass it as backend=client); none was found"
                    ) from None
            slots = None if n_jobs is None or n_jobs < 0 else n_jobs
            key = id(client)
            if key not in self._dask_pools:
                from .dask_pool import DaskPool

                self._dask_pools[key] = DaskPool(client, slots)
            return self._dask_pools[key]
        slots = _effective_n_jobs(n_jobs)
        if name in ("sequential", "SequentialBackend"):
            slots = 1
        if slots == 1 and self.timeout is None:
            return None
        if name in _PROCESS_BACKENDS or name in ("LokyBackend", "MultiprocessingBackend"):
            kind = "processes"
        elif name in _THREAD_BACKENDS or name == "ThreadingBackend":
            kind = "threads"
        elif name is None or name in ("sequential", "SequentialBackend"):
            kind = "threads" if getattr(sim, "prefer", None) == "threads" else "processes"
        else:
            if name == "ray":
                try:
                    from ray.util.joblib import register_ray
                except ImportError as exc:
                    raise MissingDependencyError(
                        f"backend='ray' needs ray: pip install 'ray[default]' ({exc})"
                    ) from exc
                register_ray()
            return workers.shared_pool("joblib", slots, backend)
        if kind == "processes" and os.name == "nt":  # no socket pairs to pass: joblib's loky
            return workers.shared_pool("joblib", slots, "loky")
        return workers.shared_pool(kind, slots)

    def _batch_size(self, t: float | None, remaining: int, slots: int) -> int:
        if self.batch_size != "auto":
            return self.batch_size
        if t is None or t >= 2e-3:
            return 1
        return max(1, min(math.ceil(1e-2 / max(t, 1e-7)), math.ceil(remaining / slots)))

    # -- the batch ---------------------------------------------------------------------------

    def evaluate(self, sim: Any, X: Any) -> Batch:
        """Evaluate ``sim`` at every row of ``X`` (k, n); see the class docstring."""
        sim = as_simulator(sim)
        X = np.asarray(X)
        if not np.iscomplexobj(X):
            X = np.asarray(X, dtype=float)
        if X.ndim != 2:
            raise ArgumentError(f"X must be a 2-D array (k, n) of points; got shape {X.shape}")
        k = len(X)
        # The cache needs the strict fingerprint (it hashes a lambda's captured values); timing
        # memory makes do with the identity, which costs nothing.
        run = _Run(self, sim, X, fingerprint(sim) if self.cache is not None else sim.identity())
        # Repeated rows are evaluated once; cached rows not at all.
        first: dict[bytes, int] = {}
        copies: list[tuple[int, int]] = []
        for i in range(k):
            key = X[i].tobytes()
            if key in first:
                copies.append((i, first[key]))
                continue
            first[key] = i
            if self.cache is not None:
                value = self.cache.get(run.ident, X[i])
                if value is not None:
                    self.cache_hits += 1
                    run.outputs[i] = value
                    run.ok[i] = True
                    continue
            run.queue.append(i)
        run.progress = Progress(len(run.queue), self.progress)
        if log.isEnabledFor(logging.INFO):
            log.info("batch of %d point(s) of %s: %d to run, %d from the cache, %d repeated",
                     k, sim.name or type(sim).__name__, len(run.queue),
                     k - len(run.queue) - len(copies), len(copies))
        try:
            if sim.vectorized:
                run.vectorized()
            else:
                pool = self._pool(sim) if run.queue else None
                if pool is None:
                    run.schedule(None)
                else:
                    with workers.claimed(pool) as mine:
                        run.schedule(mine)
        finally:
            run.progress.close()
        if copies:
            failed = {f.index: f for f in run.failures}
            for i, j in copies:  # a repeated row shares the fate of its first occurrence
                run.outputs[i], run.ok[i] = run.outputs[j], run.ok[j]
                if j in failed:
                    run.failures.append(Failure(i, X[i].copy(), failed[j].cause, failed[j].attempts))
        failures = sorted(run.failures, key=lambda f: f.index) if run.failures else []
        log.info("batch done: %d run(s), %d failed point(s)", run.nfev, len(failures))
        self.failures.extend(failures)
        if failures and self.on_failure == "raise":
            raise_failures(failures, sim)
        values, scalar = stack_outputs(run.outputs, X, run.ok)
        return Batch(values=values, ok=run.ok, failures=failures, nfev=run.nfev, scalar=scalar,
                     eps=output_eps(run.outputs, run.ok))


class SerialEvaluator(Evaluator):
    """Evaluates a batch in this process, point by point (or in one call if vectorized).

    The Evaluator with one slot and backend "sequential" (so no ``joblib.parallel_config``
    moves it elsewhere): no workers, no cache, no time-out.

    Parameters
    ----------
    on_failure : "raise" (default) raises SimulationError at the first failed point;
        "skip" records the failure, marks the row, and goes on.
    """

    def __init__(self, on_failure: str = "raise") -> None:
        super().__init__(n_jobs=1, backend="sequential", on_failure=on_failure)

    def __repr__(self) -> str:
        return f"SerialEvaluator(on_failure={self.on_failure!r})"


#: One evaluation can raise the running time estimate by at most this factor per sample.
GROWTH = 8.0


def _smoothed(old: float, seconds: float) -> float:
    """The running estimate of seconds per evaluation: an exponential average (weight 0.3 on
    the new sample), each sample capped at GROWTH times the estimate, so that one evaluation
    stalled by the OS (a page fault, another process) does not send a cheap f's next batches
    to the workers, while a simulator that is really slow takes over within a few samples."""
    return 0.7 * old + 0.3 * min(seconds, GROWTH * old)


class _Run:
    """The state of one batch: what is queued, tried, done and failed."""

    def __init__(self, ev: Evaluator, sim: Simulator, X: np.ndarray, ident: str) -> None:
        self.ev, self.sim, self.X, self.ident = ev, sim, X, ident
        k = len(X)
        self.outputs: list = [None] * k
        self.ok = np.zeros(k, dtype=bool)
        self.failures: list[Failure] = []
        self.queue: deque[int] = deque()
        self.attempts = [0] * k
        self.deaths = [0] * k
        self.nfev = 0
        self.stop = False
        self.progress: Any = None
        self.slots = 1
        # the Evaluator's timings, and those of the kept pool (shared by every Evaluator using it)
        self.timings: list[dict] = [ev._seconds]
        self.seconds: float | None = ev._seconds.get(ident)  # per evaluation; None: not timed

    # -- bookkeeping -------------------------------------------------------------------------

    def _use_pool_timings(self, pool: Any) -> None:
        self.slots = pool.slots
        self.timings.append(pool.timings)
        if self.seconds is None:
            self.seconds = pool.timings.get(self.ident)

    def _timed(self, seconds: float) -> None:
        old = self.seconds
        self.seconds = new = seconds if old is None else _smoothed(old, seconds)
        for memory in self.timings:
            memory[self.ident] = new

    def _logged(self, i: int, status: str, value: Any, seconds: float, worker: str,
                error: Any = None) -> None:
        self.nfev += 1
        self.ev.nfev += 1
        log.debug("point %d, attempt %d, on %s: %s in %.3g s%s", i, self.attempts[i], worker, status,
                  seconds, f" ({error})" if error is not None else "")
        self.ev.log.append({
            "point": self.X[i].copy(), "value": value, "seconds": seconds,
            "attempt": self.attempts[i], "worker": worker, "status": status, "error": error,
        })

    def _finished(self) -> None:
        if self.progress.mode is False:
            return
        t = self.seconds
        expect = None if t is None else len(self.queue) * t / self.slots
        self.progress.update(1, expect)

    def _fail(self, i: int, cause: Any) -> None:
        if self.attempts[i] <= self.ev.retries and not self.stop:
            log.info("point %d failed (%s); retry %d of %d", i, cause, self.attempts[i], self.ev.retries)
            self.queue.appendleft(i)
            return
        self._final_failure(i, cause)

    def _final_failure(self, i: int, cause: Any) -> None:
        self.failures.append(Failure(i, self.X[i].copy(), cause, self.attempts[i]))
        log.info("point %d failed after %d attempt(s): %s (x = %s)", i, self.attempts[i], cause,
                 _fmt_point(self.X[i]))
        self._finished()
        if self.ev.on_failure == "raise":
            self.stop = True

    # -- what became of a run ----------------------------------------------------------------

    def done(self, i: int, raw: Any, seconds: float, worker: str) -> None:
        """Point i returned ``raw``: accept it (and cache it) or, if not finite, fail it."""
        arr = check_output(raw, i, self.X[i])
        self._timed(seconds)
        if not is_finite_output(arr):
            self._logged(i, "non-finite", arr, seconds, worker)
            self._fail(i, f"non-finite output {arr!r}")
            return
        self._logged(i, "ok", arr, seconds, worker)
        self.outputs[i] = arr
        self.ok[i] = True
        if self.ev.cache is not None:
            self._cache_put(i, arr)
        self._finished()

    def raised(self, i: int, exc: Any, seconds: float, worker: str) -> None:
        self._timed(seconds)
        self._logged(i, "error", None, seconds, worker, exc)
        self._fail(i, exc)

    def handle(self, e: Event) -> None:
        """Account for one Event (simdiff/workers.py) of point ``e.index``."""
        i = e.index
        if e.kind == "ok":
            self.done(i, e.payload, e.seconds, e.worker)
        elif e.kind == "error":
            self.raised(i, e.payload, e.seconds, e.worker)
        elif e.kind == "requeue":  # never started: handed back without blame
            self.attempts[i] -= 1
            if not self.stop:
                self.queue.appendleft(i)
        elif e.kind == "timeout":
            cause = timeout_error(i, e.payload)
            self._logged(i, "timeout", None, e.seconds, e.worker, cause)
            self._fail(i, cause)
        elif e.kind == "died":
            self._logged(i, "died", None, e.seconds, e.worker, e.payload)
            self.deaths[i] += 1
            if self.deaths[i] <= self.ev.retries + 1 and not self.stop:
                self.queue.appendleft(i)
            else:
                tries = self.deaths[i]
                self._final_failure(i, f"{e.payload}; it died in all {tries} attempt(s)")
        else:  # pragma: no cover - a pool bug
            raise AssertionError(f"unknown event {e!r}")

    # -- running -----------------------------------------------------------------------------

    def _inline_wins(self, pool: Any, inline_ok: bool) -> bool:
        """Should the next point run in this process? (Warms the pool when it will pay.)"""
        if pool is None:
            return True
        if not inline_ok:
            return False
        t = self.seconds
        if t is None:
            return True  # time the first evaluation here
        r = len(self.queue)
        serial = r * t
        parallel = math.ceil(r / self.slots) * (t + pool.overhead)
        if 1.25 * parallel >= serial:
            return True
        if pool.is_warm():
            return False
        pool.warm()  # start workers in the background (kept for later calls); go on here meanwhile
        return True

    def _run_inline(self, pool: Any, inline_ok: bool) -> bool:
        """Evaluate queued points in this process while that pays; False if one of them tried
        to end the process (it goes back to the queue, for workers only)."""
        if pool is None:
            return self._run_inline_lean(None, inline_ok)
        with _KEPT_ALIVE:
            return self._run_inline_lean(pool, inline_ok)

    def _run_inline_lean(self, pool: Any, inline_ok: bool) -> bool:
        """The in-process loop (issue 15: the cheap path). Per point the accounting of
        ``done``/``raised`` (attempts, timing, nfev, ``ev.log`` entry, cache, progress, retries
        and failures), with the success branch written out: a finite Python float is taken as
        ``check_output`` takes it (a 0-d float64 array) without its checks; the shared timing
        memories are written once, when the loop ends; the progress bar is consulted only when
        the points left could take SHOW_AFTER. With a pool, a point that tried to end the
        process goes back to the queue (False), and the loop yields to the workers as soon as
        they would be faster (``_inline_wins``)."""
        sim, X, ev = self.sim, self.X, self.ev
        queue, attempts, outputs, ok = self.queue, self.attempts, self.outputs, self.ok
        # a plain callable is called directly (CallableSimulator.evaluate without its frame)
        evaluate = sim.fun if type(sim) is CallableSimulator and not sim.scalar_input else sim.evaluate
        debug = log.isEnabledFor(logging.DEBUG)
        entries = ev.log
        clock = time.perf_counter
        prog = self.progress
        quiet = prog.mode is None and prog.bar is None  # no bar yet, none asked for
        isfinite, asarray, isfinite_all = math.isfinite, np.asarray, np.isfinite
        ndarray, float64, npfloat = np.ndarray, np.dtype(float), np.float64
        cache = ev.cache
        try:
            while queue and not self.stop:
                i = queue.popleft()
                attempts[i] += 1
                xi = X[i]
                t0 = clock()
                try:
                    raw = evaluate(xi)
                except _ExitIntercepted as exc:
                    self._logged(i, "exit-intercepted", None, clock() - t0, "main", str(exc))
                    attempts[i] -= 1
                    queue.appendleft(i)
                    return False
                except (KeyboardInterrupt, SystemExit, OutputError, ArgumentError,
                        ArgumentTypeError):
                    raise
                except Exception as exc:  # noqa: BLE001 - the simulator's failure, recorded
                    self.raised(i, exc, clock() - t0, "main")
                    if pool is not None and not self._inline_wins(pool, inline_ok):
                        break
                    continue
                seconds = clock() - t0
                if (type(raw) is float or type(raw) is npfloat) and isfinite(raw):
                    arr = asarray(raw, dtype=float64)
                elif type(raw) is ndarray and raw.ndim == 1 and raw.dtype == float64 and \
                        isfinite_all(raw).all():
                    arr = raw.copy()  # what check_output returns for it (its own copy: a
                    # simulator may refill one buffer), and is_finite_output accepts
                else:
                    arr = check_output(raw, i, xi)
                    if arr.ndim != 0 or not isinstance(arr.item(), float) or not isfinite(arr.item()):
                        self.done(i, arr, seconds, "main")  # the general branch (arrays, non-finite)
                        if pool is not None and not self._inline_wins(pool, inline_ok):
                            break
                        continue
                old = self.seconds  # _timed (the memories: below); _smoothed written out
                self.seconds = seconds if old is None else \
                    0.7 * old + 0.3 * (seconds if seconds < GROWTH * old else GROWTH * old)
                self.nfev += 1  # _logged
                ev.nfev += 1
                if debug:
                    log.debug("point %d, attempt %d, on %s: %s in %.3g s%s", i, attempts[i], "main",
                              "ok", seconds, "")
                entries.append({"point": xi.copy(), "value": arr, "seconds": seconds,
                                "attempt": attempts[i], "worker": "main", "status": "ok", "error": None})
                outputs[i] = arr
                ok[i] = True
                if cache is not None:
                    self._cache_put(i, arr)
                if quiet and len(queue) * self.seconds <= SHOW_AFTER * self.slots:
                    prog.done += 1  # Progress.update: no bar, none worth opening
                else:
                    self._finished()
                    quiet = prog.mode is None and prog.bar is None
                # _inline_wins, whose test 1.25·⌈r/slots⌉·(t + overhead) ≥ r·t holds for every r
                # while 1.25·(t + overhead) ≥ slots·t: then no call (a cheap f stays here)
                if pool is not None and 1.25 * (self.seconds + pool.overhead) < self.slots * self.seconds \
                        and not self._inline_wins(pool, inline_ok):
                    break
        finally:
            if self.seconds is not None:
                for memory in self.timings:
                    memory[self.ident] = self.seconds
        return True

    def schedule(self, pool: Any) -> None:
        ev = self.ev
        inline_ok = ev.timeout is None and self.ident not in ev._unsafe
        prepared = False
        if pool is not None:
            self._use_pool_timings(pool)
        if self.seconds is not None and self.progress.mode is None:  # a long batch: bar at once
            self.progress.update(0, len(self.queue) * self.seconds / self.slots)
        try:
            while self.queue or (pool is not None and pool.busy()):
                if self.stop:
                    self.queue.clear()
                    if pool is None or not pool.busy():
                        break
                idle_pool = pool is None or not pool.busy()
                if self.queue and idle_pool and self._inline_wins(pool, inline_ok):
                    if not self._run_inline(pool, inline_ok):
                        inline_ok = False  # it would have ended this process: workers only
                        ev._unsafe.add(self.ident)
                    continue
                if not prepared:
                    self._prepare(pool)
                    prepared = True
                bs = min(ev._batch_size(self.seconds, len(self.queue), pool.slots),
                         getattr(pool, "max_batch", len(self.queue) or 1))
                while self.queue and pool.idle() > 0 and not self.stop:
                    items = [self.queue.popleft() for _ in range(min(bs, len(self.queue)))]
                    for i in items:
                        self.attempts[i] += 1
                    pool.submit([(i, self.X[i]) for i in items])
                wait = 0.5 if self.progress.bar is not None else None
                for e in pool.poll(ev.timeout, wait):
                    self.handle(e)
        except BaseException:
            if pool is not None and pool.busy():
                pool.abandon()
            raise

    def _prepare(self, pool: Any) -> None:
        try:
            pool.prepare(self.sim)
        except Exception as exc:
            raise ArgumentTypeError(
                f"simulator {self.sim!r} cannot be sent to {pool.kind} workers: it does not "
                f"pickle ({type(exc).__name__}: {exc}); allowed: a picklable simulator (build "
                "heavy state lazily in evaluate and drop it in __getstate__), or "
                "backend='threading'"
            ) from exc

    def _cache_put(self, i: int, arr: np.ndarray) -> None:
        try:
            self.ev.cache.put(self.ident, self.X[i], arr)
        except OSError as exc:  # a full or read-only disk loses the entry, not the result
            warnings.warn(f"simdiff cache: could not store point {i} in "
                          f"{self.ev.cache.path}: {exc}", RuntimeWarning, stacklevel=2)

    def vectorized(self) -> None:
        """A vectorized simulator: one in-process call on the points left, retried rows again."""
        while self.queue and not self.stop:
            idx = list(self.queue)
            self.queue.clear()
            for i in idx:
                self.attempts[i] += 1
            t0 = time.perf_counter()
            try:
                rows = call_vectorized(self.sim, self.X[idx])
            except (OutputError, KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # noqa: BLE001 - the call failed: every row failed
                dt = (time.perf_counter() - t0) / len(idx)
                for i in idx:
                    self.raised(i, exc, dt, "main")
                continue
            dt = (time.perf_counter() - t0) / len(idx)
            for i, r in zip(idx, rows):
                self.done(i, r, dt, "main")
