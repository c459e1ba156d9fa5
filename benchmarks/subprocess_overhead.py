"""What ``timeout=`` costs a run of the ``subprocess`` adapter, beside plain ``subprocess.run``.

A program that sleeps a fixed time (``sleep 0.02``, ``sleep 0.05``; and ``true``) is run

1. by ``subprocess.run`` without a time-out (the floor: fork, exec, one blocking ``waitpid``);
2. by ``subprocess.run(timeout=60)``: CPython's ``Popen.wait(timeout)`` polls with sleeps that
   double from 1 ms up to 50 ms, so a run ends up to one poll interval late (the behaviour the
   adapter had: issue 13 measured 10-30 ms per run);
3. by the adapter without a time-out, and 4. with ``timeout=60`` (a pidfd waited on with
   ``select``: no polling).

Each cell is the median wall time of ``REPEAT`` runs in milliseconds, then the difference to
row 1 (the adapter rows also write a deck, make and remove a work dir and parse stdout). The
column that matters: adapter ``timeout=60`` minus adapter without time-out (the issue asks for
at most 5 ms). Run:  python benchmarks/subprocess_overhead.py
"""

from __future__ import annotations

import statistics
import subprocess
import time

import numpy as np

import simdiff as sd

REPEAT = 15
PROGRAMS = {"true": ["true"], "sleep 0.02": ["sleep", "0.02"], "sleep 0.05": ["sleep", "0.05"]}


def median_ms(fn) -> float:
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> None:
    x = np.array([1.0])
    rows = []
    for label, argv in PROGRAMS.items():
        # the program prints nothing: parse a constant from a file the deck writes
        plain = sd.load("subprocess", command=argv, inputs=["a"], files={"out.txt": "{a}"},
                        parse={"file": "out.txt"})
        timed = sd.load("subprocess", command=argv, inputs=["a"], files={"out.txt": "{a}"},
                        parse={"file": "out.txt"}, timeout=60)
        base = median_ms(lambda: subprocess.run(argv))
        run_to = median_ms(lambda: subprocess.run(argv, timeout=60))
        ad = median_ms(lambda: plain(x))
        ad_to = median_ms(lambda: timed(x))
        rows.append((label, base, run_to, ad, ad_to))
    head = ("program", "run", "run(timeout)", "+", "adapter", "adapter(timeout)", "+ vs adapter")
    print(" | ".join(f"{h:>16}" for h in head))
    for label, base, run_to, ad, ad_to in rows:
        cells = (label, f"{base:.2f}", f"{run_to:.2f}", f"{run_to - base:+.2f}", f"{ad:.2f}",
                 f"{ad_to:.2f}", f"{ad_to - ad:+.2f}")
        print(" | ".join(f"{c:>16}" for c in cells))
    print("\nms, median of", REPEAT, "runs; '+' columns: what the time-out adds")


if __name__ == "__main__":
    main()
