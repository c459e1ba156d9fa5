"""Accuracy of the finite-difference gradient: simdiff beside scipy and numdifftools.

Same functions, same points, same process. For each: the max relative error
‖g − g*‖∞ / ‖g*‖∞ against the analytic gradient g*, and the evaluations per coordinate.

Run:  python benchmarks/accuracy.py
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import simdiff as sd  # noqa: E402
from problems import Counted, problems  # noqa: E402


def rel_err(g, true):
    return float(np.max(np.abs(np.asarray(g) - true)) / np.max(np.abs(true)))


def run_simdiff(f, x, method):
    c = Counted(f)
    g = sd.gradient(c, x, method=method)
    return g, c.n


def run_scipy(f, x, method):
    from scipy.optimize._numdiff import approx_derivative

    c = Counted(f)
    g = approx_derivative(c, x, method=method)
    return g, c.n


def run_numdifftools(f, x):
    import numdifftools as nd

    c = Counted(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = nd.Gradient(c)(x)
    return g, c.n


PAIRS = [  # (label, runner, peer label, peer runner): same evaluation budget per pair
    ("simdiff forward", lambda f, x: run_simdiff(f, x, "forward"),
     "scipy 2-point", lambda f, x: run_scipy(f, x, "2-point")),
    ("simdiff central", lambda f, x: run_simdiff(f, x, "central"),
     "scipy 3-point", lambda f, x: run_scipy(f, x, "3-point")),
    ("simdiff complex", lambda f, x: run_simdiff(f, x, "complex"),
     "scipy cs", lambda f, x: run_scipy(f, x, "cs")),
    ("simdiff five-point", lambda f, x: run_simdiff(f, x, "five-point"),
     "numdifftools Gradient", run_numdifftools),
]


def main() -> dict:
    rows = []
    worst = {}
    for name, f, grad, x in problems():
        true = grad(x)
        n = len(x)
        for label, run, plabel, prun in PAIRS:
            g, k = run(f, x)
            pg, pk = prun(f, x)
            e, pe = rel_err(g, true), rel_err(pg, true)
            rows.append((name, n, label, e, k / n, plabel, pe, pk / n, e / pe if pe > 0 else np.inf))
            worst[label] = max(worst.get(label, 0.0), e)
            worst[plabel] = max(worst.get(plabel, 0.0), pe)
    head = (f"{'function':<20}{'n':>4}  {'simdiff':<20}{'max rel err':>12}{'ev/coord':>9}  "
            f"{'peer':<22}{'max rel err':>12}{'ev/coord':>9}{'err ratio':>11}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r[0]:<20}{r[1]:>4}  {r[2]:<20}{r[3]:>12.2e}{r[4]:>9.2f}  {r[5]:<22}{r[6]:>12.2e}"
              f"{r[7]:>9.2f}{r[8]:>11.2g}")
    print()
    print("worst case over the functions (max rel err):")
    for label, plabel in [(p[0], p[2]) for p in PAIRS]:
        print(f"  {label:<20}{worst[label]:>10.2e}   {plabel:<22}{worst[plabel]:>10.2e}"
              f"   ratio {worst[label] / worst[plabel]:.2g}")
    return {"rows": rows, "worst": worst}


if __name__ == "__main__":
    main()
