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
``ThreadPool``
    Threads, for simulators that wait on an external process (``prefer = "threads"``). A thread
    cannot be killed: a timed-out evaluation is abandoned (its result is discarded) and its slot
    gets a fresh thread.
``DaskPool``
    ``distributed.Client.submit``, one point a task, each pinned to a worker thread that is free,
    so a task starts at once and the pool knows which worker holds which point. A time-out
    (measured by the worker's clock) ends the worker that holds the point, through
    ``Client.run`` on its event loop, and its nanny starts a new one; a worker that dies or
    leaves the cluster costs only its point. joblib's own dask backend is not used: there a task
    that kills its worker hangs the call, and joblib's ``timeout=`` aborts the whole call
    instead of one task.
``JoblibPool``
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
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_connections
from typing import Any

import numpy as np

from .errors import EvaluationTimeout

__all__ = [
    "DaskPool",
    "Event",
    "JoblibPool",
    "ProcessPool",
    "RemoteError",
    "ThreadPool",
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


def _portable_exception(exc: BaseException) -> BaseException:
    """``exc`` if it survives a pickle round trip, else a RemoteError with its text."""
    try:
        pickle.loads(dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - anything unpicklable is sent as text
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return RemoteError(f"{type(exc).__name__}: {exc}\n{tb}")


def _portable_value(value: Any) -> Any:
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


class _SimStore:
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
    store = _SimStore()
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
                send(("error", idx, _portable_exception(exc), 0.0))
            continue
        if blob is not None:
            send(("loaded",))
        for idx, x in items:
            kind, payload, seconds = run_one(sim, x)
            payload = _portable_exception(payload) if kind == "error" else _portable_value(payload)
            send((kind, idx, payload, seconds))


def _exit_text(code: int | None) -> str:
    if code is None:
        return "worker process died"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker process died (killed by {name})"
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
        self.digests: OrderedDict[str, None] = OrderedDict()  # mirrors the worker's _SimStore
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
        while len(proc.digests) > _SimStore.SIZE:
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


# ---------------------------------------------------------------------------------------------
# Threads (and any joblib backend driven from threads)


class _Slot:
    def __init__(self, pool: ThreadPool, slot: int) -> None:
        import queue

        self.slot = slot
        self.generation = 0
        self.inbox: queue.Queue = queue.Queue()
        self.items: deque = deque()
        self.clock = 0.0
        self.name = f"thread-{slot}"
        self._start(pool)

    def _start(self, pool: ThreadPool) -> None:
        import queue

        self.inbox = queue.Queue()
        gen = self.generation
        t = threading.Thread(
            target=pool._thread_loop, args=(self, gen, self.inbox), daemon=True,
            name=f"simdiff-{self.name}-{gen}",
        )
        t.start()

    def retire(self, pool: ThreadPool) -> None:
        """Abandon the running thread (it finishes alone, unheard) and start a fresh one."""
        self.inbox.put(None)
        self.generation += 1
        self.items.clear()
        self._start(pool)


class ThreadPool:
    """``slots`` threads in this process; each evaluates the items it is given in order."""

    kind = "threads"
    overhead = 5e-5

    def __init__(self, slots: int) -> None:
        import queue

        self.slots = int(slots)
        self.events: queue.Queue = queue.Queue()
        self._slots: list[_Slot] = []
        self._sim: Any = None
        self.timings: dict[str, float] = {}
        self.lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(slots={self.slots})"

    def twin(self) -> ThreadPool:
        return ThreadPool(self.slots)

    def startup_cost(self) -> float:
        return 0.0

    def is_warm(self) -> bool:
        return True

    def warm(self) -> None:
        while len(self._slots) < self.slots:
            self._slots.append(_Slot(self, len(self._slots)))

    def prepare(self, sim: Any) -> None:
        self._sim = sim

    def idle(self) -> int:
        return self.slots - self.busy()

    def busy(self) -> int:
        return sum(1 for s in self._slots if s.items)

    def submit(self, items: Sequence[tuple[int, np.ndarray]]) -> None:
        self.warm()
        slot = next(s for s in self._slots if not s.items)
        slot.items.extend(items)
        slot.clock = time.perf_counter()
        slot.inbox.put((self._sim, list(items)))

    def _run_items(self, sim: Any, items: list, report) -> None:
        for idx, x in items:
            kind, payload, seconds = run_one(sim, x)
            if not report(kind, idx, payload, seconds):
                return  # this thread was abandoned after a time-out: stop

    def _thread_loop(self, slot: _Slot, gen: int, inbox) -> None:
        def report(kind, idx, payload, seconds, worker=None) -> bool:
            self.events.put((slot, gen, kind, idx, payload, seconds, worker))
            return slot.generation == gen

        while True:
            task = inbox.get()
            if task is None or slot.generation != gen:
                return
            sim, items = task
            try:
                self._run_items(sim, items, report)
            except BaseException as exc:  # noqa: BLE001 - never let a slot thread die silently
                for idx, _x in items:
                    report("error", idx, exc, 0.0)

    def poll(self, timeout: float | None, wait: float | None = None) -> list[Event]:
        import queue

        events: list[Event] = []
        if not self.busy():
            return events
        now = time.perf_counter()
        limit = wait
        if timeout is not None:
            left = max(0.0, min(s.clock + timeout for s in self._slots if s.items) - now)
            limit = left if limit is None else min(limit, left)
        block = True
        while True:
            try:
                msg = self.events.get(block=block, timeout=limit if block else None)
            except queue.Empty:
                break
            block = False
            slot, gen, kind, idx, payload, seconds, worker = msg
            if gen != slot.generation:
                continue  # the answer of an abandoned evaluation
            if slot.items and slot.items[0][0] == idx:
                slot.items.popleft()
            slot.clock = time.perf_counter()
            events.append(Event(kind, idx, payload, seconds, worker or slot.name))
        if timeout is not None:
            now = time.perf_counter()
            for slot in self._slots:
                if slot.items and now - slot.clock > timeout:
                    (idx, _x), rest = slot.items[0], list(slot.items)[1:]
                    events.append(Event("timeout", idx, timeout, now - slot.clock, slot.name))
                    events.extend(Event("requeue", i, None, 0.0, slot.name) for i, _ in rest)
                    slot.retire(self)
        return events

    def abandon(self) -> None:
        for slot in self._slots:
            if slot.items:
                slot.retire(self)

    def close(self) -> None:
        for slot in self._slots:
            slot.inbox.put(None)
        self._slots.clear()


def _is_worker_death(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    deaths = {"TerminatedWorkerError", "BrokenProcessPool", "KilledWorker", "WorkerCrashedError"}
    return bool(names & deaths)


class JoblibPool(ThreadPool):
    """A joblib backend by name (ray, or any registered one), driven from ``slots`` threads.

    Each point is one ``joblib.Parallel`` call. Such a backend does not say which task killed a
    worker (loky fails every task in flight), so the first death of a batch blames nobody: the
    points in flight go back to the queue and the rest of the batch runs one point at a time,
    where a death names its point exactly.
    """

    kind = "joblib"
    overhead = 2e-3

    def __init__(self, slots: int, backend: Any) -> None:
        super().__init__(slots)
        self.backend = backend
        self.solo = False

    def twin(self) -> JoblibPool:
        return JoblibPool(self.slots, self.backend)

    def prepare(self, sim: Any) -> None:
        super().prepare(sim)
        self.solo = False

    def idle(self) -> int:
        if self.solo:  # one point in flight at a time
            return 1 if self.busy() == 0 else 0
        return super().idle()

    def _run_items(self, sim: Any, items: list, report) -> None:
        blob = dumps(sim)
        for idx, x in items:
            event = self._run_point(blob, idx, x)
            if not report(*event):
                return

    def _run_point(self, blob: bytes, idx: int, x: np.ndarray) -> tuple:
        """(kind, index, payload, seconds) of one point sent through the joblib backend."""
        import joblib

        for attempt in (1, 2):
            try:
                with joblib.parallel_config(backend=self.backend, n_jobs=self.slots):
                    ((kind, payload, seconds),) = joblib.Parallel()(
                        [joblib.delayed(_run_blob)(blob, x)]
                    )
                return kind, idx, payload, seconds
            except Exception as exc:  # noqa: BLE001 - the transport failed, not the simulator
                if not _is_worker_death(exc):
                    return "error", idx, exc, 0.0
                if not self.solo:
                    self.solo = True  # who killed the worker is unknown: nobody is blamed
                    return "requeue", idx, None, 0.0
                if attempt == 2:  # alone, on a fresh executor, and it died again: this point
                    return "died", idx, f"worker died ({type(exc).__name__}: {exc})", 0.0
                # alone: the executor may still be broken from an earlier death; once more
        raise AssertionError("unreachable")  # pragma: no cover


def _run_blob(blob: bytes, x: np.ndarray) -> tuple[str, Any, float]:
    kind, payload, seconds = run_one(pickle.loads(blob), x)
    payload = _portable_exception(payload) if kind == "error" else _portable_value(payload)
    return kind, payload, seconds


# ---------------------------------------------------------------------------------------------
# dask.distributed


_DASK_STORE = _SimStore()  # in a dask worker process: the simulators it has unpickled
_DASK_STARTED: dict[str, float] = {}  # in a dask worker process: token -> when its point began


async def _end_process() -> None:  # pragma: no cover - runs in a dask worker, which it ends
    os._exit(1)


def _dask_elapsed(tokens: list) -> dict:
    """In a dask worker: how long each of these tasks' current point has been running."""
    now = time.monotonic()
    return {t: now - _DASK_STARTED[t] for t in tokens if t in _DASK_STARTED}


def _dask_task(token: str, digest: str, blob: bytes, items: list) -> list:
    """Run in a dask worker: evaluate items, return [(kind, index, payload, seconds, worker)]."""
    from distributed import get_worker

    try:
        worker = get_worker().address
    except ValueError:  # pragma: no cover - run outside a worker
        worker = "dask"
    out = []
    try:
        _DASK_STARTED[token] = time.monotonic()
        sim = _DASK_STORE.get(digest, blob)
        for idx, x in items:
            _DASK_STARTED[token] = time.monotonic()
            kind, payload, seconds = run_one(sim, x)
            payload = _portable_exception(payload) if kind == "error" else _portable_value(payload)
            out.append((kind, idx, payload, seconds, worker))
    finally:
        _DASK_STARTED.pop(token, None)
    return out


class DaskPool:
    """Tasks on a ``distributed.Client``, each pinned to a worker with a free thread.

    Pinning (``workers=[address]``, no other workers allowed) is what makes failures exact: the
    pool knows which worker runs which point, a task never waits in a queue behind another (so
    its clock starts when it is submitted), and when a worker dies or is ended for a time-out,
    no other point is blamed. A worker that leaves the cluster while it holds a point (it died;
    its nanny starts a new one under a new address) is noticed by the membership check each
    poll makes, and its point is reported ``died``. A worker with several threads that dies
    while it holds several points does not say which one killed it: those points go back to the
    queue unblamed, and for the rest of the batch each worker holds one point at a time.
    """

    kind = "dask"
    overhead = 5e-3
    max_batch = 1  # a task's points come back together: one point a task keeps blame exact
    CHECK_EVERY = 0.25  # seconds between membership checks while waiting

    def __init__(self, client: Any, slots: int | None = None) -> None:
        self.client = client
        self._slots = slots
        self.futures: dict[Any, tuple[list, float, str]] = {}
        self.timings: dict[str, float] = {}
        self.lock = threading.Lock()
        self.threads: dict[str, int] = {}
        self.cap: int | None = None  # points per worker at once; None: one per thread
        self._checked = 0.0
        self._digest = ""
        self._blob = b""

    def __repr__(self) -> str:
        return f"DaskPool({self.client!r}, slots={self._slots})"

    def twin(self) -> DaskPool:
        return DaskPool(self.client, self._slots)

    def _members(self) -> dict[str, int]:
        self._checked = time.perf_counter()
        with contextlib.suppress(Exception):  # the scheduler did not answer: keep the last view
            self.threads = dict(self.client.nthreads())
        return self.threads

    @property
    def slots(self) -> int:
        n = sum(self.threads.values()) if self.threads else sum(self._members().values())
        n = max(1, n)
        return min(n, self._slots) if self._slots else n

    def startup_cost(self) -> float:
        return 0.0

    def is_warm(self) -> bool:
        return True

    def warm(self) -> None:
        pass

    def prepare(self, sim: Any) -> None:
        self._blob = dumps(sim)
        self._digest = hashlib.sha256(self._blob).hexdigest()
        self.cap = None
        self._members()

    def _free_worker(self) -> str | None:
        used: dict[str, int] = {}
        for _items, _t0, w in self.futures.values():
            used[w] = used.get(w, 0) + 1
        for w, n in sorted(self.threads.items()):
            if used.get(w, 0) < (n if self.cap is None else min(n, self.cap)):
                return w
        return None

    def idle(self) -> int:
        if len(self.futures) >= self.slots:
            return 0
        if self._free_worker() is None:
            self._members()  # a restarted worker may have joined under a new address
        return 1 if self._free_worker() is not None else 0

    def busy(self) -> int:
        return len(self.futures)

    def submit(self, items: Sequence[tuple[int, np.ndarray]]) -> None:
        items = list(items)
        worker = self._free_worker()
        token = f"simdiff-{uuid.uuid4().hex}"
        fut = self.client.submit(_dask_task, token, self._digest, self._blob, items, key=token,
                                 pure=False, workers=[worker], allow_other_workers=False)
        self.futures[fut] = (items, time.perf_counter(), worker)

    def poll(self, timeout: float | None, wait: float | None = None) -> list[Event]:
        from distributed import wait as dask_wait

        events: list[Event] = []
        if not self.futures:
            return events
        now = time.perf_counter()
        limit = self.CHECK_EVERY if wait is None else min(wait, self.CHECK_EVERY)
        if timeout is not None:
            first = min(t0 + timeout * len(it) for it, t0, _w in self.futures.values())
            limit = min(limit, max(0.0, first - now))
        try:
            done, _ = dask_wait(list(self.futures), timeout=limit, return_when="FIRST_COMPLETED")
        except Exception:  # noqa: BLE001 - distributed raises its TimeoutError on expiry
            done = [f for f in self.futures if f.done()]
        sharers = Counter(w for _it, _t0, w in self.futures.values())  # points held per worker
        finished = [f for f in done if f.status == "finished"]
        results: dict = {}
        if finished:
            try:  # one round trip for all the results at hand
                results = dict(zip(finished, self.client.gather(finished)))
            except Exception:  # noqa: BLE001 - one went wrong meanwhile: collect one by one
                results = {}
        for fut in done:
            items, t0, worker = self.futures.pop(fut)
            if fut in results:
                events.extend(Event(k, i, p, s, w) for k, i, p, s, w in results[fut])
            else:
                events.extend(self._collect(fut, items, t0, worker, sharers[worker]))
        if not self.futures or time.perf_counter() - self._checked < self.CHECK_EVERY:
            return self._expire(events, timeout)
        members = self._members()
        gone = [f for f, (_it, _t0, w) in self.futures.items() if w not in members]
        if gone:
            self.client.cancel(gone, force=True)
        for fut in gone:
            items, t0, worker = self.futures.pop(fut)
            cause = f"dask worker {worker} left the cluster while evaluating this point (it died)"
            events.extend(self._died(items, t0, worker, cause, sharers[worker]))
        return self._expire(events, timeout)

    def _died(self, items: list, t0: float, worker: str, cause: str, sharers: int) -> list[Event]:
        """The worker of this task died: blame its point if it held no other."""
        self.threads.pop(worker, None)  # not to be given another point: it is gone
        if sharers > 1:
            self.cap = 1  # from now on a death names its point
            return [Event("requeue", i, None, 0.0, worker) for i, _ in items]
        return [Event("died", items[0][0], cause, time.perf_counter() - t0, worker)] + [
            Event("requeue", i, None, 0.0, worker) for i, _ in items[1:]
        ]

    def _expire(self, events: list[Event], timeout: float | None) -> list[Event]:
        """Add a 'timeout' event for each task running longer than ``timeout``."""
        if timeout is not None and self.futures:
            now = time.perf_counter()
            late = [f for f, (it, t0, _w) in self.futures.items() if now - t0 > timeout * len(it)]
            late = self._really_late(late, timeout)
            if late:
                holders = self._end_holders(late)
                others = [f for f, (_it, _t0, w) in self.futures.items()
                          if w in holders and f not in late]
                if others:  # ended with the hung point's worker, through no fault of theirs
                    self.client.cancel(others, force=True)
                for fut in others:
                    items, _t0, worker = self.futures.pop(fut)
                    events.extend(Event("requeue", i, None, 0.0, worker) for i, _ in items)
            for fut in late:
                items, t0, worker = self.futures.pop(fut)
                events.append(Event("timeout", items[0][0], timeout, now - t0, worker))
                events.extend(Event("requeue", i, None, 0.0, worker) for i, _ in items[1:])
        return events

    def _collect(self, fut: Any, items: list, t0: float, worker: str,
                 sharers: int) -> list[Event]:
        if fut.status == "finished":
            return [Event(k, i, p, s, w) for k, i, p, s, w in fut.result()]
        if fut.status == "cancelled":
            return [Event("requeue", i) for i, _ in items]
        try:
            exc = fut.exception()
        except Exception as e:  # noqa: BLE001 - e.g. the future was lost with the cluster
            exc = e
        if _is_worker_death(exc):
            cause = f"dask worker {worker} died while evaluating this point ({type(exc).__name__})"
            return self._died(items, t0, worker, cause, sharers)
        seconds = time.perf_counter() - t0
        return [Event("error", i, exc, seconds, worker) for i, _ in items]

    def _really_late(self, late: list, timeout: float) -> list:
        """Of the futures past their deadline counted from submission, those whose point has
        been running longer than ``timeout`` by the worker's own clock; the clocks of the others
        (still being shipped, or waiting for their simulator to load) are moved to their start."""
        if not late:
            return late
        holders = sorted({self.futures[f][2] for f in late})
        try:
            running = self.client.run(_dask_elapsed, [f.key for f in late], workers=holders)
        except Exception:  # noqa: BLE001 - a worker that cannot answer is treated as hung
            return late
        elapsed = {k: v for per_worker in running.values() for k, v in per_worker.items()}
        now = time.perf_counter()
        really = []
        for fut in late:
            items, _t0, worker = self.futures[fut]
            if fut.done():
                continue  # finished meanwhile: collected at the next poll
            if fut.key in elapsed and elapsed[fut.key] >= timeout:
                really.append(fut)
            else:
                self.futures[fut] = (items, now - elapsed.get(fut.key, 0.0), worker)
        return really

    def _end_holders(self, futures: list) -> set[str]:
        """End the dask worker processes that run ``futures`` (hung evaluations).

        The futures are cancelled first; then each holder ends itself (``os._exit`` through
        ``Client.run``, which runs on the worker's event loop even while its thread is stuck) and
        its nanny starts a fresh worker. A graceful ``restart_workers`` would first wait seconds
        for the stuck thread.
        """
        holders = sorted({self.futures[f][2] for f in futures})
        self.client.cancel(futures, force=True)
        with contextlib.suppress(Exception):  # best effort: the time-out is already recorded
            self.client.run(_end_process, workers=holders, wait=False)
        for w in holders:
            self.threads.pop(w, None)
        return set(holders)

    def abandon(self) -> None:
        if self.futures:
            self.client.cancel(list(self.futures), force=True)
        self.futures.clear()

    def close(self) -> None:
        self.abandon()


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
            elif kind == "threads":
                pool = ThreadPool(slots)
            else:
                pool = JoblibPool(slots, backend or "")
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
