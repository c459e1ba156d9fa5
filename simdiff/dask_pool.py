"""Evaluations on a dask cluster: tasks submitted through ``distributed.Client``.

``DaskPool`` speaks the pool protocol of simdiff/workers.py. The functions prefixed ``_dask``
run inside the dask worker processes (they import this module there).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from .workers import (
    Event,
    SimStore,
    dumps,
    is_worker_death,
    portable_exception,
    portable_value,
    run_one,
)

__all__ = ["DaskPool"]


_DASK_STORE = SimStore()  # in a dask worker process: the simulators it has unpickled
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
            payload = portable_exception(payload) if kind == "error" else portable_value(payload)
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
        if is_worker_death(exc):
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
