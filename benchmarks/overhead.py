"""Per-call overhead of simdiff against scipy, for cheap functions (issue 15).

Every row times simdiff and its scipy peer side by side in this process, alternating, and
keeps the best of several rounds (the least disturbed by other load on the machine):

* ``gradient`` of a cheap f: R^n -> R, central, n = 4, 16, 64, serially and with n_jobs=2
  (the cheap-function guard keeps the evaluations in this process), against
  ``scipy.optimize.approx_derivative(method="3-point")``;
* ``jacobian`` of f: R^16 -> R^m (m = 8, 64) against the same;
* ``hessian`` of a cheap f (n = 4, 8) against a 3-point ``approx_derivative`` of scipy's own
  finite-difference gradient (what one does with scipy alone);
* ``jvp`` along a direction against the central difference (f(x + h·v) − f(x − h·v))/(2h);
* ``minimize`` of four cheap 10-D functions (``cheap_10d``) against
  ``scipy.optimize.minimize(method="L-BFGS-B")`` with scipy's own finite differences.

Then a per-stage profile of ``gradient`` (cProfile, aggregated over many calls): argument
checks, plan, evaluate, assemble and estimate, noise detection, second looks and the rest.

Run: ``python benchmarks/overhead.py`` (about a minute; ``--quick`` for fewer rounds).
"""

from __future__ import annotations

import os

# One BLAS thread unless told otherwise: on small problems BLAS threads only contend (with each
# other and with any other process on the machine) and inflate the short scipy runs several
# times, far more than simdiff's (set OPENBLAS_NUM_THREADS etc. before running to override).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import cProfile
import pstats
import sys
import time
import warnings

import numpy as np
from scipy.optimize import minimize as sp_minimize
from scipy.optimize._numdiff import approx_derivative

import simdiff as sd

QUICK = "--quick" in sys.argv
ROUNDS = 7 if QUICK else 21


def cheap(x):
    return float(np.sum(x**2) + np.sin(x[0]))


def cheap_vec(m):
    a = np.linspace(0.5, 1.5, m)

    def f(x):
        return np.sin(a * np.sum(x)) + a * x[0] ** 2
    return f


def rosen10(x):
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def best_pair(fa, fb, budget=0.02, rounds=ROUNDS):
    """Best-of-rounds seconds per call of fa and fb, interleaved (one batch each per round),
    each batch sized to take about ``budget`` seconds. Timed with the process's CPU time
    (``time.process_time``: every thread of this process, none of the other processes on a
    shared machine) and with the wall clock; returns (cpu_a, cpu_b, wall_a, wall_b)."""
    fa(), fb()
    t = time.perf_counter(); fa(); ta = time.perf_counter() - t
    t = time.perf_counter(); fb(); tb = time.perf_counter() - t
    ka = max(1, int(budget / max(ta, 1e-6)))
    kb = max(1, int(budget / max(tb, 1e-6)))
    best = [np.inf] * 4
    for _ in range(rounds):
        for j, (fn, k) in enumerate(((fa, ka), (fb, kb))):
            c, w = time.process_time(), time.perf_counter()
            for _ in range(k):
                fn()
            best[j] = min(best[j], (time.process_time() - c) / k)
            best[2 + j] = min(best[2 + j], (time.perf_counter() - w) / k)
    return tuple(best)


def fmt(sec):
    return f"{sec * 1e6:9.0f} µs" if sec < 0.1 else f"{sec * 1e3:9.1f} ms"


MINIMIZE_RUNS: list = []  # (function, simdiff nfev, L-BFGS-B nfev), filled by rows()


def rows():
    out = []
    for n in (4, 16, 64):
        x = np.linspace(0.1, 1.0, n)
        for jobs in (None, 2):
            kw = {} if jobs is None else {"n_jobs": jobs}
            t = best_pair(lambda: sd.gradient(cheap, x, **kw),
                             lambda: approx_derivative(cheap, x, method="3-point"))
            out.append((f"gradient n={n}" + (" n_jobs=2" if jobs else ""), "approx_derivative 3-point", t))
    for m in (8, 64):
        f = cheap_vec(m)
        x = np.linspace(0.1, 1.0, 16)
        t = best_pair(lambda: sd.jacobian(f, x), lambda: approx_derivative(f, x, method="3-point"))
        out.append((f"jacobian n=16 m={m}", "approx_derivative 3-point", t))
    for n in (4, 8):
        x = np.linspace(0.1, 1.0, n)

        def sp_hess():
            return approx_derivative(lambda z: approx_derivative(cheap, z, method="3-point"), x,
                                     method="3-point")
        t = best_pair(lambda: sd.hessian(cheap, x), sp_hess)
        out.append((f"hessian n={n}", "3-point of 3-point gradient", t))
    x = np.linspace(0.1, 1.0, 16)
    v = np.linspace(-1.0, 1.0, 16)
    f = cheap_vec(8)

    def sp_jvp():
        h = np.finfo(float).eps ** (1 / 3) * max(1.0, np.linalg.norm(x)) / np.linalg.norm(v)
        return (f(x + h * v) - f(x - h * v)) / (2 * h)
    t = best_pair(lambda: sd.jvp(f, x, v), sp_jvp)
    out.append(("jvp n=16 m=8", "central difference by hand", t))
    if hasattr(sd, "minimize"):
        for name, f, x0 in cheap_10d():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = best_pair(lambda: sd.minimize(f, x0),
                              lambda: sp_minimize(f, x0, method="L-BFGS-B"),
                              budget=0.1, rounds=max(3, ROUNDS // 3))
            out.append((f"minimize {name}", "scipy L-BFGS-B", t))
            MINIMIZE_RUNS.append((name, sd.minimize(f, x0).nfev,
                                  sp_minimize(f, x0, method="L-BFGS-B").nfev))
    return out


def cheap_10d():
    """The cheap 10-D functions ``minimize`` is timed on: (name, f, x0).

    Chained Rosenbrock (scipy's ``rosen``) from (-1.2, 1, ...), the MGH extended Rosenbrock
    (independent pairs) from the same start, a convex quadratic (condition number 23) from 0,
    a sphere with a sine term from (0.1 ... 1), the sphere from ones, Σ log cosh(x_j − 0.5)
    from 2, Σ (e^x_j − x_j) from 1, Trid (minimum up to x_j = 30) from 0, Styblinski–Tang
    from 0 and a diagonal quadratic of condition 100 from ones: a few µs to 20 µs per
    evaluation, so the per-iteration bookkeeping, not f, is what is compared."""
    x0 = np.tile([-1.2, 1.0], 5)
    rng = np.random.default_rng(1)
    q = rng.standard_normal((10, 10))
    a, b = q @ q.T + np.eye(10), rng.standard_normal(10)
    diag = np.logspace(0, 2, 10)

    def ext_rosen(x):
        r = np.empty(10)
        r[0::2] = 10 * (x[1::2] - x[0::2] ** 2)
        r[1::2] = 1 - x[0::2]
        return float(r @ r)
    return [("rosenbrock", rosen10, x0), ("ext. rosenbrock", ext_rosen, x0),
            ("quadratic", lambda x: float(0.5 * x @ a @ x - b @ x), np.zeros(10)),
            ("sphere+sin", cheap, np.linspace(0.1, 1.0, 10)),
            ("sphere", lambda x: float(x @ x), np.ones(10)),
            ("log-cosh", lambda x: float(np.sum(np.log(np.cosh(x - 0.5)))), np.full(10, 2.0)),
            ("exp-sum", lambda x: float(np.sum(np.exp(x) - x)), np.ones(10)),
            ("trid", lambda x: float(np.sum((x - 1) ** 2) - np.sum(x[1:] * x[:-1])), np.zeros(10)),
            ("styblinski-tang", lambda x: float(0.5 * np.sum(x**4 - 16 * x**2 + 5 * x)), np.zeros(10)),
            ("diagonal cond 100", lambda x: float(x @ (diag * x)), np.ones(10))]


STAGES = [  # (stage, [(file, function, "cum" or "own")]): the time of those functions
    ("argument checks", [("differentiate.py", "as_point", "cum"), ("differentiate.py", "_prepare", "cum"),
                         ("noise.py", "setup_noise", "cum"), ("steps.py", "base_steps", "cum")]),
    ("plan (steps, points)", [("lean.py", "two_point", "own"), ("refine.py", "term", "cum"),
                              ("plan.py", "array", "cum"), ("fastpath.py", "partial_terms", "cum")]),
    ("evaluate", [("evaluate.py", "evaluate", "cum")]),
    ("assemble + estimate", [("lean.py", "_assemble", "own"), ("lean.py", "_assemble_scalar", "own"),
                             ("plan.py", "assemble", "cum")]),
    ("noise detection", [("lean.py", "_quantized", "cum"), ("lean.py", "_spread", "cum"),
                         ("noise.py", "noise_error", "cum")]),
    ("second looks, warnings", [("fastpath.py", "look_candidates", "cum"), ("lean.py", "_reference", "cum"),
                                ("refine.py", "warn_unresolved", "cum"), ("refine.py", "_variation", "cum")]),
]


def stage_profile(n=16, calls=300):
    """Seconds per call of each stage of ``sd.gradient(cheap, x)`` (the lean lane when it
    applies, simdiff/lean.py; the general path's functions otherwise), from cProfile's
    cumulative ("cum") or own ("own") times."""
    x = np.linspace(0.1, 1.0, n)
    for _ in range(20):
        sd.gradient(cheap, x)
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(calls):
        sd.gradient(cheap, x)
    pr.disable()
    st = pstats.Stats(pr).stats
    total = max(v[3] for (fn, _, name), v in st.items() if name == "gradient"
                and fn.endswith("differentiate.py"))
    fcost = sum(v[3] for (fn, _, name), v in st.items() if fn == __file__ and name == "cheap")
    rows_ = []
    for stage, keys in STAGES:
        t = 0.0
        for (fn, _, name), v in st.items():
            for f, nm, how in keys:
                if fn.endswith(f) and name == nm:
                    t += v[3] if how == "cum" else v[2]
        rows_.append((stage, t))
    rows_.insert(3, ("  of which f itself", fcost))
    rows_.append(("other (jacobian, _partials, Info)", total - sum(t for s, t in rows_ if not s.startswith("  "))))
    return total / calls, [(s, t / calls, t / total) for s, t in rows_]


def main():
    print(f"simdiff {getattr(sd, '__version__', '')} per-call overhead, best of {ROUNDS} rounds "
          "(side by side, this process;\n"
          "cpu = time.process_time, robust to other processes' load; wall = perf_counter)\n")
    print(f"{'case':<26} {'simdiff cpu':>12} {'peer cpu':>12} {'ratio':>6} {'wall ratio':>10}  peer")
    for name, peer, (a, b, wa, wb) in rows():
        print(f"{name:<26} {fmt(a):>12} {fmt(b):>12} {a / b:6.2f} {wa / wb:10.2f}  {peer}")
    if MINIMIZE_RUNS:
        print("\nminimize, simulator runs:  " + ", ".join(
            f"{name} {a} ({b})" for name, a, b in MINIMIZE_RUNS) + "  (L-BFGS-B's in brackets)")
    per, prof = stage_profile()
    print(f"\nper-stage profile of sd.gradient(cheap, x), n = 16 (cProfile, inflates Python "
          f"calls; {per * 1e6:.0f} µs per call under the profiler):")
    for s, t, share in prof:
        print(f"  {s:<38} {t * 1e6:9.1f} µs  {100 * share:5.1f} %")


if __name__ == "__main__":
    main()
