"""Pools of threads in this process, and any joblib backend driven from threads.

``ThreadPool`` serves simulators that wait on an external process (``prefer = "threads"``);
``JoblibPool`` sends each point through a registered joblib backend (ray, or any other). Both
speak the pool protocol of simdiff/workers.py.
"""

from __future__ import annotations

import pickle
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from .workers import (
    Event,
    dumps,
    is_worker_death,
    portable_exception,
    portable_value,
    run_one,
)

__all__ = ["JoblibPool", "ThreadPool"]


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
                if not is_worker_death(exc):
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
    payload = portable_exception(payload) if kind == "error" else portable_value(payload)
    return kind, payload, seconds
