"""Parallel evaluation: simdiff's Evaluator beside scipy's approx_derivative, one table.

Rows:
1. A CPU-bound simulator (a fixed pure-Python/numpy busy loop calibrated to about 30 ms an
   evaluation), central gradient with n = 16 (32 evaluations): serial, n_jobs=2 cold (no
   worker running yet: the first call pays for starting them) and warm (the kept workers of
   earlier calls), as a speed-up over serial and as a fraction of the ideal 2.0; scipy's
   ``approx_derivative(workers=2)`` (a multiprocessing pool per call) and with a kept pool's
   ``map`` beside it.
2. A cheap function (sum of squares, about a microsecond) with n_jobs=2 against scipy's serial
   ``approx_derivative``: the cheap-function guard keeps it in-process. simdiff serial is shown
   too, since planning and error estimates cost the same with or without workers.
3. The overhead per evaluation of a do-nothing simulator on a dask LocalCluster
   (processes=True, 2 workers), forced onto the cluster with ``timeout=``: the batch's wall
   time per point (throughput) and one point's round trip (latency); the kept local worker
   processes beside it.

Timings: median of ``REPEAT`` rounds in which all the CPU-bound runs alternate (best of many
for the cheap rows); speed-ups are medians of per-round ratios. The kept ``Pool.map`` row is
the machine's ceiling at the time: other processes on a small machine take their share of the
cores from every parallel row alike. The busy row is load-proof: the share of the two workers'
wall time spent evaluating (what dispatch, waiting and imbalance leave). Same process, same
points. Run:  python benchmarks/parallel.py
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import time
import timeit

import numpy as np
from scipy.optimize._numdiff import approx_derivative

import simdiff as sd
from simdiff import workers

N = 16
REPEAT = 7


class BusyLoop(sd.Simulator):
    """A fixed amount of CPU work (a pure-Python loop), then a smooth function of x."""

    name = "busy_loop"

    def __init__(self, iterations: int = 100_000) -> None:
        self.iterations = iterations

    def evaluate(self, x):
        acc = 0.0
        for j in range(self.iterations):
            acc += (j % 7) * 1e-9
        return float(np.sum(np.sin(x) * x) + 0.0 * acc)


def cheap(x):
    return float(np.sum(x**2))


def noop(x):
    return 0.0


def calibrate(seconds: float = 0.03) -> BusyLoop:
    probe = BusyLoop(20_000)
    t = min(timeit.repeat(lambda: probe.evaluate(np.zeros(N)), number=3, repeat=3)) / 3
    return BusyLoop(max(1000, int(20_000 * seconds / t)))


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_time(fn, repeat: int = REPEAT) -> float:
    return statistics.median(timed(fn) for _ in range(repeat))


def best_per_call(fn, number: int = 200, repeat: int = 5) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def _speedup(serial: float, parallel: float) -> tuple[float, float]:
    """(speed-up, fraction of the ideal 2.0)"""
    return serial / parallel, serial / parallel / 2


def expensive_rows(x: np.ndarray) -> list[tuple]:
    sim = calibrate()
    per_eval = median_time(lambda: sim.evaluate(x), repeat=7)
    workers.shutdown_pools()  # cold: no worker process is running
    cold = timed(lambda: sd.gradient(sim, x, n_jobs=2))
    assert sd.gradient(sim, x, n_jobs=2).tobytes() == sd.gradient(sim, x).tobytes(), "not bit-equal"
    # The runs alternate, round after round, so that all of them see the same machine (load
    # from other processes comes and goes). Times are medians over the rounds; speed-ups are
    # medians of each round's own ratio (a serial run and the parallel run right after it).
    busy: list[float] = []

    def warm_run() -> None:
        ev = sd.Evaluator(n_jobs=2)
        t0 = time.perf_counter()
        sd.gradient(sim, x, evaluator=ev)
        busy.append(sum(e["seconds"] for e in ev.log) / (2 * (time.perf_counter() - t0)))

    runs = {
        "serial": lambda: sd.gradient(sim, x),
        "warm": warm_run,
        "scipy_serial": lambda: approx_derivative(sim, x, method="3-point"),
        "scipy_w2": lambda: approx_derivative(sim, x, method="3-point", workers=2),
    }
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(sim, [x, x])  # start the pool
        runs["scipy_kept"] = lambda: approx_derivative(sim, x, method="3-point", workers=pool.map)
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(REPEAT):
            for k, fn in runs.items():
                times[k].append(timed(fn))
    med = {k: statistics.median(v) for k, v in times.items()}

    def paired(base: str, other: str) -> tuple[float, float]:
        r = statistics.median(b / o for b, o in zip(times[base], times[other]))
        return r, r / 2

    serial, warm = med["serial"], med["warm"]
    scipy_serial = med["scipy_serial"]
    head = f"CPU-bound simulator, {per_eval * 1e3:.1f} ms/eval, central gradient n={N} (32 evals)"
    return [
        (head, None, None, None),
        ("simdiff serial", serial, 1.0, None),
        ("simdiff n_jobs=2 cold (starts workers)", cold, *_speedup(serial, cold)),
        ("simdiff n_jobs=2 warm (kept workers)", warm, *paired("serial", "warm")),
        ("  its workers' busy time / (2 x wall time), warm", None, None,
         statistics.median(busy)),
        ("scipy approx_derivative serial", scipy_serial, 1.0, None),
        ("scipy approx_derivative(workers=2)", med["scipy_w2"],
         *paired("scipy_serial", "scipy_w2")),
        ("scipy workers=Pool(2).map, kept", med["scipy_kept"],
         *paired("scipy_serial", "scipy_kept")),
    ]


def cheap_rows(x: np.ndarray) -> list[tuple]:
    scipy_serial = best_per_call(lambda: approx_derivative(cheap, x, method="3-point"))
    sd_serial = best_per_call(lambda: sd.gradient(cheap, x))
    sd_two = best_per_call(lambda: sd.gradient(cheap, x, n_jobs=2))
    # the evaluation step alone (the 32 planned points), without planning and assembly
    X = x + np.vstack([np.eye(N), -np.eye(N)]) * 1e-5
    sim = sd.as_simulator(cheap)
    ev_serial = best_per_call(lambda: sd.SerialEvaluator().evaluate(sim, X))
    ev_two = best_per_call(lambda: sd.Evaluator(n_jobs=2).evaluate(sim, X))
    return [
        (f"cheap function (sum of squares), central gradient n={N}", None, None, None),
        ("scipy approx_derivative serial", scipy_serial, 1.0, None),
        ("simdiff serial", sd_serial, sd_serial / scipy_serial, None),
        ("simdiff n_jobs=2 (cheap guard: in-process)", sd_two, sd_two / scipy_serial, None),
        ("  its 32 evaluations alone: SerialEvaluator", ev_serial, ev_serial / scipy_serial, None),
        ("  its 32 evaluations alone: Evaluator(n_jobs=2)", ev_two, ev_two / scipy_serial, None),
    ]


def overhead_rows() -> list[tuple]:
    rows = [("overhead per evaluation of a do-nothing simulator (k=64 batch; 1-point round trip)",
             None, None, None)]
    X = np.random.default_rng(0).normal(size=(64, N))
    local = sd.Evaluator(n_jobs=2, timeout=600)
    local.evaluate(noop, X[:4])  # warm
    rows.append(("kept local worker processes, per eval in a batch",
                 median_time(lambda: local.evaluate(noop, X)) / len(X), None, None))
    rows.append(("kept local worker processes, one point's round trip",
                 median_time(lambda: local.evaluate(noop, X[:1]), repeat=21), None, None))
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - the dask extra is missing
        rows.append(("dask: not installed (pip install 'simdiff[dask]')", None, None, None))
        return rows
    with LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        ev = sd.Evaluator(backend=client, timeout=600)
        ev.evaluate(noop, X[:4])  # warm
        rows.append(("dask LocalCluster, per eval in a batch",
                     median_time(lambda: ev.evaluate(noop, X)) / len(X), None, None))
        rows.append(("dask LocalCluster, one point's round trip",
                     median_time(lambda: ev.evaluate(noop, X[:1]), repeat=21), None, None))
    return rows


def fmt_seconds(t: float) -> str:
    if t >= 0.1:
        return f"{t:8.3f} s "
    if t >= 1e-4:
        return f"{t * 1e3:8.3f} ms"
    return f"{t * 1e6:8.1f} us"


def print_table(rows: list[tuple]) -> None:
    head = f"{'':<58}{'time':>11}  {'ratio':>7}  {'of ideal 2.0':>12}"
    print(head)
    print("-" * len(head))
    for label, t, ratio, frac in rows:
        if t is None and frac is None:
            print(label)
            continue
        if t is None:
            print(f"  {label:<56}{'':>11}  {'':>7}  {frac:12.2f}")
            continue
        r = f"{ratio:7.2f}" if ratio is not None else " " * 7
        f = f"{frac:12.2f}" if frac is not None else ""
        print(f"  {label:<56}{fmt_seconds(t)}  {r}  {f}")
    print()
    print("ratio: speed-up over the serial run of the same library (CPU-bound rows; target "
          ">= 1.85 warm); time / scipy serial (cheap rows; target <= 1.5 for n_jobs=2)")


def main() -> None:
    x = np.linspace(-1.0, 1.0, N)
    load = os.getloadavg()
    rows = expensive_rows(x) + cheap_rows(x) + overhead_rows()
    load = ", ".join(f"{v:.2f}" for v in load)
    print(f"python {sys.version.split()[0]}, {multiprocessing.cpu_count()} CPUs, "
          f"load average before the run {load}")
    print_table(rows)


if __name__ == "__main__":
    main()
