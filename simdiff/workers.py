"""Where evaluations run: pools of worker processes, threads, or a dask cluster.

Every pool speaks the same small protocol to the Evaluator (simdiff/evaluate.py), which owns the
policy (cache, retries, which point goes next); a pool only carries points out and events back:

    pool.prepare(sim)          before a batch: the simulator, serialized once
    pool.idle()                how many slots can take a task now
    pool.submit(items)         items = [(index, x), ...] to one idle slot
    pool.poll(timeout, wait)   -> [Event, ...]; enforces the per-evaluation time-out
    pool.busy()                tasks in flight
    pool.abandon()             forget what is in flight (kill the processes that hold it)

An ``Event`` says what became of one point: ``ok`` (raw value), ``error`` (the exception),
``died`` (its worker died while evaluating it), ``timeout`` (it ran past the time-out; its worker
was killed), ``requeue`` (it was waiting in a worker that died because of another point: it was
never started and is handed back without blame).

Pools
-----
``ProcessPool``
    Worker processes started with ``python -c`` (no re-import of the caller's ``__main__``) and
    each connected by its own socket pair, so the Evaluator knows which point every worker holds.
    A worker that dies (segfault, ``os._exit``) loses only its current point; one that runs past
    the time-out is killed and replaced. Results stream back one point at a time. The pools are
    kept for the life of the process (``shared_pool``), so consecutive gradients reuse warm
    workers: this registry is the one piece of module state besides the plugin manager.
``ThreadPool`` (simdiff/thread_pool.py)
    Threads, for simulators that wait on an external process (``prefer = "threads"``). A thread
    cannot be killed: a timed-out evaluation is abandoned (its result is discarded) and its slot
    gets a fresh thread.
``DaskPool`` (simdiff/dask_pool.py)
    ``distributed.Client.submit``, one point a task, each pinned to a worker thread that is free,
    so a task starts at once and the pool knows which worker holds which point. A time-out
    (measured by the worker's clock) ends the worker that holds the point, through
    ``Client.run`` on its event loop, and its nanny starts a new one; a worker that dies or
    leaves the cluster costs only its point. joblib's own dask backend is not used: there a task
    that kills its worker hangs the call, and joblib's ``timeout=`` aborts the whole call
    instead of one task.
``JoblibPool`` (simdiff/thread_pool.py)
    Any other registered joblib backend (ray: ``ray.util.joblib.register_ray``), one point per
    ``joblib.Parallel`` call from a slot thread; a time-out abandons the task as threads do.
    After a worker death (which such a backend does not attribute) the batch goes on one point
    at a time, so that blame stays exact.

A pool serves one batch at a time (``claimed``): a batch started meanwhile from another thread
gets a private twin of the pool.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_connections
from typing import Any

import numpy as np

from .errors import EvaluationTimeout

__all__ = [
    "Event",
    "ProcessPool",
    "RemoteError",
    "claimed",
    "shared_pool",
    "shutdown_pools",
]


@dataclass
class Event:
    """What became of one point; see the module docstring for the kinds."""

    kind: str  # "ok" | "error" | "died" | "timeout" | "requeue"
    index: int
    payload: Any = None  # value, exception, cause text, or the time-out in seconds
    seconds: float = 0.0
    worker: str = ""


class RemoteError(RuntimeError):
    """An exception from a worker that could not be sent back as itself; carries its text."""


# ---------------------------------------------------------------------------------------------
# Evaluation of items, shared by every worker kind


_PROTOCOL = pickle.HIGHEST_PROTOCOL


def dumps(obj: Any) -> bytes:
    import cloudpickle

    return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def portable_exception(exc: BaseException) -> BaseException:
    """``exc`` if it survives a pickle round trip, else a RemoteError with its text."""
    try:
        pickle.loads(dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - anything unpicklable is sent as text
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return RemoteError(f"{type(exc).__name__}: {exc}\n{tb}")


def portable_value(value: Any) -> Any:
    if isinstance(value, (float, int, complex, np.generic)) or (
        isinstance(value, np.ndarray) and value.dtype.kind in "biufc"
    ):
        return value
    try:
        pickle.loads(dumps(value))
        return value
    except Exception:  # noqa: BLE001 - the Evaluator's output check names the bad type
        return f"<unpicklable {type(value).__name__} output: {value!r:.200}>"


def run_one(sim: Any, x: np.ndarray) -> tuple[str, Any, float]:
    """Evaluate one point: ("ok", raw value, seconds) or ("error", exception, seconds)."""
    t0 = time.perf_counter()
    try:
        value = sim.evaluate(x)
    except Exception as exc:  # noqa: BLE001 - the simulator's failure, reported
        return "error", exc, time.perf_counter() - t0
    return "ok", value, time.perf_counter() - t0


class SimStore:
    """The simulators a worker has unpickled, by digest (the few most recent)."""

    SIZE = 4

    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self.sims: OrderedDict[str, Any] = OrderedDict()

    def get(self, digest: str, blob: bytes | None) -> Any:
        if digest in self.sims:
            self.sims.move_to_end(digest)
            return self.sims[digest]
        if blob is None:
            raise RemoteError(f"simulator {digest[:12]} was never sent to this worker")
        sim = pickle.loads(blob)
        self.sims[digest] = sim
        while len(self.sims) > self.size:
            self.sims.popitem(last=False)
        return sim


# ---------------------------------------------------------------------------------------------
# Worker processes


def serve(fd: int) -> None:
    """The loop of a worker process: receive tasks on socket ``fd``, stream results back."""
    conn = Connection(fd)
    os.environ["SIMDIFF_WORKER"] = "1"  # a simulator may ask where it runs
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the caller, which stops us

    def send(msg: tuple) -> None:
        try:
            blob = pickle.dumps(msg, _PROTOCOL)
        except Exception:  # noqa: BLE001 - e.g. an exception class defined in a function
            blob = dumps(msg)
        conn.send_bytes(blob)

    try:
        send(("hello", os.getpid()))
        _serve_tasks(conn, send)
    except OSError:  # the caller is gone (it closed the socket or died): so are we
        return


def _serve_tasks(conn: Connection, send) -> None:
    store = SimStore()
    while True:
        try:
            msg = pickle.loads(conn.recv_bytes())
        except EOFError:
            return
        if msg[0] == "stop":
            return
        _, digest, blob, items = msg
        try:
            sim = store.get(digest, blob)
        except Exception as exc:  # noqa: BLE001 - e.g. the simulator's module does not import
            for idx, _x in items:
                send(("error", idx, portable_exception(exc), 0.0))
            continue
        if blob is not None:
            send(("loaded",))
        for idx, x in items:
            kind, payload, seconds = run_one(sim, x)
            payload = portable_exception(payload) if kind == "error" else portable_value(payload)
            send((kind, idx, payload, seconds))


def signal_name(code: int) -> str:
    """The name of the signal behind a negative exit code (-11 -> "SIGSEGV")."""
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _exit_text(code: int | None) -> str:
    if code is None:
        return "worker process died"
    if code < 0:
        return f"worker process died (killed by {signal_name(code)})"
    return f"worker process died (exit code {code})"


class _Proc:
    """One worker process and what it holds."""

    def __init__(self, slot: int) -> None:
        parent, child = socket.socketpair()
        env = dict(os.environ)
        path = [p for p in sys.path if p] + [os.getcwd()]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
        code = "import sys; from simdiff.workers import serve; serve(int(sys.argv[1]))"
        self.started = time.perf_counter()
        self.popen = subprocess.Popen(
            [sys.executable, "-c", code, str(child.fileno())],
            pass_fds=[child.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        child.close()
        self.conn = Connection(parent.detach())
        self.slot = slot
        self.name = f"process-{slot}"
        self.ready = False
        self.digests: OrderedDict[str, None] = OrderedDict()  # mirrors the worker's SimStore
        self.items: deque = deque()  # (index, x) sent and not yet returned, in order
        self.clock = 0.0  # when the current point started (valid once ready)

    def kill(self) -> int | None:
        try:
            self.popen.kill()
        except OSError:
            pass
        try:
            self.conn.close()
        except OSError:
            pass
        try:
            return self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
            return None


class ProcessPool:
    """``slots`` worker processes, started on first use and replaced when one dies."""

    kind = "processes"
    #: time to dispatch one task and get its answer, beyond the evaluation itself (estimate,
    #: refined from measurements)
    overhead = 4e-4

    def __init__(self, slots: int) -> None:
        self.slots = int(slots)
        self.procs: dict[int, _Proc] = {}
        self.timings: dict[str, float] = {}  # simulator fingerprint -> seconds per evaluation
        self.lock = threading.Lock()  # held by the batch using the pool (see claimed)
        self.spawn_estimate = 0.5
        self._pending: list[Event] = []  # events found outside poll, handed out by the next one
        self._digest = ""
        self._blob = b""

    def __repr__(self) -> str:
        return f"ProcessPool(slots={self.slots}, alive={len(self.procs)})"

    def twin(self) -> ProcessPool:
        return ProcessPool(self.slots)

    def startup_cost(self) -> float:
        """Seconds until all slots could be working (0 when the workers are up)."""
        return 0.0 if len(self.procs) == self.slots else self.spawn_estimate

    def warm(self) -> None:
        """Start missing workers now, without waiting for them."""
        for s in range(self.slots):
            if s not in self.procs:
                self.procs[s] = _Proc(s)

    def is_warm(self) -> bool:
        """True once a worker has started (reads pending greetings, never blocks)."""
        for proc in list(self.procs.values()):
            if not proc.ready and not proc.items:
                try:
                    while proc.conn.poll():
                        msg = pickle.loads(proc.conn.recv_bytes())
                        if msg[0] == "hello":
                            self._greet(proc, msg[1])
                except (EOFError, OSError):  # it died while starting: start another next time
                    proc.kill()
                    self.procs.pop(proc.slot, None)
        return any(p.ready for p in self.procs.values())

    def _greet(self, proc: _Proc, pid: int) -> None:
        now = time.perf_counter()
        proc.ready = True
        proc.name = f"process-{pid}"
        proc.clock = now
        self.spawn_estimate = 0.5 * (self.spawn_estimate + (now - proc.started))

    def prepare(self, sim: Any) -> None:
        self._blob = dumps(sim)
        self._digest = hashlib.sha256(self._blob).hexdigest()

    def idle(self) -> int:
        return self.slots - sum(1 for p in self.procs.values() if p.items)

    def busy(self) -> int:
        return sum(1 for p in self.procs.values() if p.items) + len(self._pending)

    def submit(self, items: Sequence[tuple[int, np.ndarray]]) -> None:
        self.warm()
        proc = next(p for p in self.procs.values() if not p.items)
        blob = None if self._digest in proc.digests else self._blob
        try:
            proc.conn.send_bytes(pickle.dumps(("run", self._digest, blob, list(items)), _PROTOCOL))
        except OSError:  # it died while idle: nobody's fault; the points come back at once
            proc.kill()
            self.procs.pop(proc.slot, None)
            self._pending.extend(Event("requeue", i, None, 0.0, proc.name) for i, _ in items)
            return
        proc.items.extend(items)
        if proc.ready:
            proc.clock = time.perf_counter()
        proc.digests[self._digest] = None
        proc.digests.move_to_end(self._digest)
        while len(proc.digests) > SimStore.SIZE:
            proc.digests.popitem(last=False)

    def poll(self, timeout: float | None, wait: float | None = None) -> list[Event]:
        events, self._pending = self._pending, []
        if events:
            wait = 0.0
        now = time.perf_counter()
        busy = [p for p in self.procs.values() if p.items]
        if not busy:
            return events
        deadlines = [p.clock + timeout for p in busy if timeout is not None and p.ready]
        limit = wait
        if deadlines:
            left = max(0.0, min(deadlines) - now)
            limit = left if limit is None else min(limit, left)
        ready = wait_connections([p.conn for p in busy], timeout=limit)
        for proc in busy:
            if proc.conn in ready:
                self._read(proc, events)
        now = time.perf_counter()
        for proc in list(self.procs.values()):
            if timeout is not None and proc.items and proc.ready and now - proc.clock > timeout:
                self._lose(proc, events, "timeout", timeout)
        return events

    def _read(self, proc: _Proc, events: list[Event]) -> None:
        while True:
            try:
                if not proc.conn.poll():
                    return
                msg = pickle.loads(proc.conn.recv_bytes())
            except (EOFError, OSError):
                self._lose(proc, events, "died", None)
                return
            now = time.perf_counter()
            kind = msg[0]
            if kind == "hello":
                self._greet(proc, msg[1])
            elif kind == "loaded":
                proc.clock = now
            else:
                _, idx, payload, seconds = msg
                sent = proc.clock
                if proc.items and proc.items[0][0] == idx:
                    proc.items.popleft()
                proc.clock = now
                self.overhead = 0.8 * self.overhead + 0.2 * max(now - sent - seconds, 1e-5)
                events.append(Event(kind, idx, payload, seconds, proc.name))

    def _lose(self, proc: _Proc, events: list[Event], how: str, timeout: float | None) -> None:
        """Kill ``proc``: its current point is 'died' or 'timeout', the rest 'requeue'."""
        code = proc.kill()
        self.procs.pop(proc.slot, None)
        items = list(proc.items)
        proc.items.clear()
        if not items:
            return
        now = time.perf_counter()
        (idx, _x), rest = items[0], items[1:]
        if how == "timeout":
            events.append(Event("timeout", idx, timeout, now - proc.clock, proc.name))
        elif not proc.ready:
            cause = _exit_text(code).replace("died", "failed to start") + " (its stderr says why)"
            events.append(Event("died", idx, cause, now - proc.started, proc.name))
        else:
            events.append(Event("died", idx, _exit_text(code), now - proc.clock, proc.name))
        events.extend(Event("requeue", i, None, 0.0, proc.name) for i, _ in rest)

    def abandon(self) -> None:
        """Kill the workers that hold points (they are restarted on the next submit)."""
        self._pending.clear()
        for proc in [p for p in self.procs.values() if p.items]:
            proc.kill()
            self.procs.pop(proc.slot, None)

    def close(self) -> None:
        for proc in list(self.procs.values()):
            try:
                proc.conn.send_bytes(pickle.dumps(("stop",)))
            except OSError:
                pass
        for proc in list(self.procs.values()):
            try:
                proc.popen.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
            try:
                proc.conn.close()
            except OSError:
                pass
        self.procs.clear()


def is_worker_death(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    deaths = {"TerminatedWorkerError", "BrokenProcessPool", "KilledWorker", "WorkerCrashedError"}
    return bool(names & deaths)


# ---------------------------------------------------------------------------------------------
# The registry of kept pools


_POOLS: dict[tuple, Any] = {}
_POOLS_LOCK = threading.Lock()


def shared_pool(kind: str, slots: int, backend: str | None = None) -> Any:
    """The process-wide pool of this kind and size, created on first use and kept warm."""
    key = (kind, int(slots), backend)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            if kind == "processes":
                pool = ProcessPool(slots)
            else:
                from .thread_pool import JoblibPool, ThreadPool

                pool = ThreadPool(slots) if kind == "threads" else JoblibPool(slots, backend or "")
            _POOLS[key] = pool
        return pool


@contextlib.contextmanager
def claimed(pool: Any):
    """Use ``pool`` for one batch; if another thread's batch holds it, a private twin instead.

    A pool serves one batch at a time (its events belong to that batch). Two threads that
    differentiate at once therefore do not share workers: the second gets a pool of its own,
    closed when its batch ends (it still learns from and adds to the shared timings).
    """
    if pool.lock.acquire(blocking=False):
        try:
            yield pool
        finally:
            pool.lock.release()
        return
    twin = pool.twin()
    twin.timings = pool.timings
    try:
        yield twin
    finally:
        twin.close()


def shutdown_pools() -> None:
    """Stop every kept worker process and thread (runs at interpreter exit)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        with contextlib.suppress(Exception):  # best effort at exit
            pool.close()


atexit.register(shutdown_pools)


def timeout_error(index: int, seconds: float) -> EvaluationTimeout:
    """The cause recorded for an evaluation stopped at its time-out."""
    return EvaluationTimeout(
        f"evaluation of point {index} ran longer than timeout={seconds!r} s and was stopped "
        "(its worker was killed and replaced)",
        index=index,
    )
