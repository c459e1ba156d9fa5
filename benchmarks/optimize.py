"""simdiff's optimizers beside their peers on the Moré–Garbow–Hillstrom problems, one run.

Problems: ``benchmarks/mgh.py`` (39: the 35 of Moré, Garbow & Hillstrom 1981 at their standard
starting points, four variable-dimension ones at a second size). Budget 100·(n + 1) evaluations.

Data profile (Moré & Wild, "Benchmarking derivative-free optimization algorithms", SIAM J.
Optim. 20, 2009): a solver solves a problem at tolerance τ when one of its first 100·(n + 1)
evaluations has f(x) ≤ f_L + τ·(f(x0) − f_L), i.e. f(x0) − f ≥ (1 − τ)(f(x0) − f_L), with f_L
the smallest f any solver of this run found on the problem (never above the paper's minimum).
"evals" is the number of evaluations a solver needed to get there; "rounds" is simdiff's number
of parallel batches up to that point (a serial peer's rounds are its evaluations).

Scalar solvers (f = Σ r_i²): simdiff.minimize (FD-BFGS), scipy L-BFGS-B with its own forward
differences, scipy BFGS (FD), COBYQA, Nelder–Mead, Py-BOBYQA. Least-squares solvers (the
residual vector): simdiff.least_squares, scipy least_squares (FD "2-point", trf), DFO-LS.
Peers that are not installed are skipped with a note.

Starts: Moré & Wild run every problem from the standard x0 and from 10·x0; both sets are run
and printed, one after the other (``--start 1`` or ``--start 10`` for one of them). f_L is
taken per start set. Run:  python benchmarks/optimize.py [--quick] [--per-problem]
[--start 1|10]  (--quick: the first 12 problems); ``--figures`` instead prints the issue's
other figures (noise, failures, bounds, parallel speed-up, overhead on a cheap f).
"""

from __future__ import annotations

import os

# One BLAS thread unless told otherwise: on small problems BLAS threads only contend (with each
# other and with any other process on the machine) and inflate the short scipy runs several
# times, far more than simdiff's (set OPENBLAS_NUM_THREADS etc. before running to override).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import dataclasses
import statistics
import sys
import time
import warnings

import numpy as np
import scipy.optimize as so

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgh  # noqa: E402

import simdiff as sd  # noqa: E402

TAUS = (1e-3, 1e-5, 1e-7)


class _Stop(Exception):
    pass


class Recorder:
    """Counts evaluations and keeps f of each; stops a peer at the budget."""

    def __init__(self, fun, budget, residual=False, stop=True):
        self.fun, self.budget, self.residual, self.stop = fun, budget, residual, stop
        self.fs: list[float] = []
        self.rounds_at: list[int] = []

    def __call__(self, x):
        if self.stop and len(self.fs) >= self.budget:
            raise _Stop
        out = self.fun(np.asarray(x, dtype=float))
        self.fs.append(float(out @ out) if self.residual else float(out))
        return out


def _sumsq(p):
    def f(x):
        r = p.r(x)
        return float(r @ r)
    return f


def run_simdiff_min(p, B):
    rec = Recorder(_sumsq(p), B, stop=False)
    res = sd.minimize(rec, p.x0, maxfev=B)
    return rec.fs, _rounds_per_eval(res, rec)


def run_simdiff_ls(p, B):
    rec = Recorder(p.r, B, residual=True, stop=False)
    res = sd.least_squares(rec, p.x0, maxfev=B)
    return rec.fs, _rounds_per_eval(res, rec)


def _rounds_per_eval(res, rec):
    """rounds[k] = parallel rounds used by the end of evaluation k (from the history)."""
    rounds = np.zeros(len(rec.fs), dtype=int)
    marks = [(h["nfev"], h["nrounds"]) for h in res.history] + [(res.nfev, res.nrounds)]
    j = 0
    last = 0
    for k in range(len(rec.fs)):
        while j < len(marks) and marks[j][0] < k + 1:
            last = marks[j][1]
            j += 1
        rounds[k] = marks[j][1] if j < len(marks) else res.nrounds
    return rounds


def _scipy(method, **opt):
    def run(p, B):
        rec = Recorder(_sumsq(p), B)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                so.minimize(rec, p.x0, method=method, options=opt(B) if callable(opt) else opt)
            except _Stop:
                pass
        return rec.fs, None
    return run


def run_lbfgsb(p, B):
    return _scipy("L-BFGS-B", maxfun=B)(p, B)


def run_bfgs(p, B):
    return _scipy("BFGS", maxiter=B)(p, B)


def run_nm(p, B):
    return _scipy("Nelder-Mead", maxfev=B)(p, B)


def run_cobyqa(p, B):
    return _scipy("COBYQA", maxfev=B)(p, B)


def run_pybobyqa(p, B):
    import pybobyqa

    rec = Recorder(_sumsq(p), B)
    try:
        pybobyqa.solve(rec, p.x0.copy(), maxfun=B)
    except _Stop:
        pass
    return rec.fs, None


def run_scipy_ls(p, B):
    rec = Recorder(p.r, B, residual=True)
    try:
        so.least_squares(rec, p.x0, max_nfev=B)
    except _Stop:
        pass
    return rec.fs, None


def run_dfols(p, B):
    import dfols

    rec = Recorder(p.r, B, residual=True)
    try:
        dfols.solve(rec, p.x0.copy(), maxfun=B)
    except _Stop:
        pass
    return rec.fs, None


SCALAR = [("simdiff", run_simdiff_min, None), ("L-BFGS-B(FD)", run_lbfgsb, None),
          ("BFGS(FD)", run_bfgs, None), ("COBYQA", run_cobyqa, "cobyqa"),
          ("Nelder-Mead", run_nm, None), ("Py-BOBYQA", run_pybobyqa, "pybobyqa")]
LSQ = [("simdiff.lsq", run_simdiff_ls, None), ("scipy.lsq(FD)", run_scipy_ls, None),
       ("DFO-LS", run_dfols, "dfols")]


def available(solvers):
    out = []
    for name, fn, module in solvers:
        if module is not None:
            try:
                __import__(module)
            except ImportError:
                print(f"note: {name} skipped ({module} is not installed)")
                continue
        out.append((name, fn))
    return out


def first_solved(fs, f0, fL, tau, B):
    target = fL + tau * (f0 - fL)
    for k, f in enumerate(fs[:B]):
        if f <= target:
            return k + 1
    return None


def table(title, solvers, problems, runs, fLs, B_of, ref_name):
    print(f"\n## {title}\n")
    head = "| solver | " + " | ".join(f"solved τ={t:g}" for t in TAUS) + \
        " | median evals (τ=1e-5) | evals ratio vs " + ref_name + " | rounds/evals |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    ref = {}
    stats = {}
    for name, _ in solvers:
        row = []
        for tau in TAUS:
            row.append(sum(first_solved(runs[name][p.name][0], p.f(p.x0), fLs[p.name], tau,
                                        B_of(p)) is not None for p in problems))
        ev = {p.name: first_solved(runs[name][p.name][0], p.f(p.x0), fLs[p.name], 1e-5, B_of(p))
              for p in problems}
        stats[name] = (row, ev)
        if name == ref_name:
            ref = ev
    for name, _ in solvers:
        row, ev = stats[name]
        solved = [v for v in ev.values() if v is not None]
        both = [k for k in ev if ev[k] is not None and ref.get(k) is not None]
        ratio = (statistics.median(ev[k] for k in both) / statistics.median(ref[k] for k in both)
                 if both else float("nan"))
        tot_e = sum(len(runs[name][p.name][0][:B_of(p)]) for p in problems)
        rr = [runs[name][p.name][1] for p in problems]
        if all(r is not None for r in rr):
            tot_r = sum(int(r[min(len(r), B_of(p)) - 1]) if len(r) else 0 for r, p in zip(rr, problems))
            rounds = f"{tot_r / tot_e:.3f}"
        else:
            rounds = "1 (serial)"
        med = statistics.median(solved) if solved else float("nan")
        print(f"| {name} | " + " | ".join(f"{v}/{len(problems)}" for v in row) +
              f" | {med:g} | {ratio:.2f} (on {len(both)} both solve) | {rounds} |")
    return stats


def starts(argv):
    """The start factors asked: ``--start F`` (repeatable), else both of Moré–Wild's, 1 and 10."""
    out = [float(argv[i + 1]) for i, a in enumerate(argv) if a == "--start" and i + 1 < len(argv)]
    return out or [1.0, 10.0]


def started(problems, factor):
    """The problems started from factor·x0 (Moré & Wild 2009 use 1 and 10)."""
    return [p if factor == 1 else dataclasses.replace(p, x0=factor * p.x0) for p in problems]


def main(argv):
    for factor in starts(argv):
        print(f"\n# start {'x0' if factor == 1 else f'{factor:g}·x0'}")
        run_set(argv, started(mgh.PROBLEMS[:12] if "--quick" in argv else mgh.PROBLEMS, factor))


def run_set(argv, problems):
    B_of = lambda p: 100 * (p.n + 1)  # noqa: E731
    scalar, lsq = available(SCALAR), available(LSQ)
    runs: dict = {name: {} for name, _ in scalar + lsq}
    times: dict = {}
    t0 = time.perf_counter()
    for p in problems:
        for name, fn in scalar + lsq:
            t1 = time.perf_counter()
            try:
                runs[name][p.name] = fn(p, B_of(p))
                times.setdefault(name, 0.0)
                times[name] += time.perf_counter() - t1
            except Exception as exc:  # a solver crashing on a problem has solved nothing
                print(f"note: {name} failed on {p.name}: {type(exc).__name__}: {exc}")
                runs[name][p.name] = ([], None)
    fLs = {}
    for p in problems:
        best = min([min(runs[n][p.name][0][:B_of(p)], default=np.inf) for n in runs] + [p.f(p.x0)])
        fLs[p.name] = min(best, p.f(p.x0))
    print(f"# MGH problems: {len(problems)}, budget 100(n+1), f_L = best any solver found "
          f"({time.perf_counter() - t0:.0f} s)")
    print("seconds per solver: " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))
    table("minimize (f = Σ r²)", scalar, problems, runs, fLs, B_of, "L-BFGS-B(FD)")
    table("least squares (r)", lsq, problems, runs, fLs, B_of, "DFO-LS")
    if "--per-problem" in argv:
        print("\n| problem | n | f_L | " + " | ".join(runs) + " |")
        for p in problems:
            cells = []
            for name in runs:
                k = first_solved(runs[name][p.name][0], p.f(p.x0), fLs[p.name], 1e-5, B_of(p))
                cells.append("-" if k is None else str(k))
            print(f"| {p.name} | {p.n} | {fLs[p.name]:.4g} | " + " | ".join(cells) + " |")


class Slow(sd.Simulator):
    """A 20 ms simulator of 8 inputs (it sleeps: a stand-in for waiting on an external code)."""

    name = "slow_quadratic"

    def evaluate(self, x):
        time.sleep(0.02)
        return float(np.sum(np.arange(1, 9) * (x - 1) ** 2) + 0.1 * np.sum(x) ** 2)


def figures():
    """The issue's other figures: noise, failures, bounds, parallel speed-up, cheap overhead."""
    print("\n## other figures\n")
    rng = np.random.default_rng(0)
    d = np.linspace(1, 3, 10)
    true = lambda x: float(np.sum(d * (x - 0.5) ** 2))  # noqa: E731
    noisy = lambda x: true(x) + 1e-6 * rng.standard_normal()  # noqa: E731
    x0 = np.full(10, 3.0)
    r = sd.minimize(noisy, x0, noise="estimate", maxfev=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = so.minimize(noisy, x0, method="L-BFGS-B", options={"maxfun": 2000})
    print(f"- 10-D, additive noise 1e-6: simdiff noise='estimate' true f = {true(r.x):.2e} "
          f"({r.nfev} runs); L-BFGS-B(FD) true f = {true(s.x):.2e} ({s.nfev} runs)")
    rosen = mgh.problem("rosenbrock")

    def failing(x):
        if x[1] > x[0] ** 2 + 0.3:
            raise RuntimeError("diverged")
        return rosen.f(x)
    r = sd.minimize(failing, rosen.x0)
    print(f"- Rosenbrock failing above the valley: x = {np.round(r.x, 8)}, {r.nfailed} failed "
          f"points rejected; L-BFGS-B(FD) would stop at the first failure")
    pts = []

    def rec(x):
        pts.append(np.array(x))
        return rosen.f(x)
    r = sd.minimize(rec, rosen.x0, bounds=([-2, -2], [0.5, 2]))
    P = np.array(pts)
    print(f"- bounds x0 <= 0.5: answer {np.round(r.x, 7)} (exact (0.5, 0.25)), points outside: "
          f"{int(np.sum(P[:, 0] > 0.5))} of {len(P)}")
    reps = 3
    for backend in ("threading", None):
        sd.minimize(Slow(), np.zeros(8), n_jobs=2, backend=backend, maxfev=20)  # warm the pool
        ta, tb = [], []
        for _ in range(reps):  # interleaved, best of reps: the machine is shared
            t = time.perf_counter()
            a = sd.minimize(Slow(), np.zeros(8), maxfev=150)
            ta.append(time.perf_counter() - t)
            t = time.perf_counter()
            b = sd.minimize(Slow(), np.zeros(8), n_jobs=2, backend=backend, maxfev=150)
            tb.append(time.perf_counter() - t)
        print(f"- 20 ms simulator, n = 8, n_jobs=2 ({backend or 'processes'}), wall time best of "
              f"{reps}: {min(ta):.2f} s serial, {min(tb):.2f} s parallel, speed-up "
              f"{min(ta) / min(tb):.2f}, same path "
              f"{np.array_equal(a.x, b.x) and a.nrounds == b.nrounds}, "
              f"{b.nfev} runs in {b.nrounds} rounds")
    er = mgh.problem("extended_rosenbrock_10")
    cs, cl, ws, wl = [], [], [], []
    # interleaved, best of 7, CPU time of this process and wall time. Take it on an idle machine
    # (and OPENBLAS_NUM_THREADS=1): BLAS threads contending with other processes inflate the
    # short L-BFGS-B run far more than simdiff's, and the ratio then reads several times lower.
    for _ in range(7):
        c, t = time.process_time(), time.perf_counter()
        rs = sd.minimize(er.f, er.x0)
        cs.append(time.process_time() - c)
        ws.append(time.perf_counter() - t)
        c, t = time.process_time(), time.perf_counter()
        rl = so.minimize(er.f, er.x0, method="L-BFGS-B")
        cl.append(time.process_time() - c)
        wl.append(time.perf_counter() - t)
    share = _gradient_share(er)
    print(f"- cheap 10-D (extended Rosenbrock), best of 7: CPU simdiff {min(cs) * 1e3:.0f} ms, "
          f"L-BFGS-B(FD) {min(cl) * 1e3:.0f} ms, ratio {min(cs) / min(cl):.2f}; wall "
          f"{min(ws) * 1e3:.0f} / {min(wl) * 1e3:.0f} ms, ratio {min(ws) / min(wl):.2f}; runs "
          f"{rs.nfev} / {rl.nfev}; the gradients' share of minimize's time {share:.0%} (cProfile)")


def _gradient_share(p):
    """Fraction of sd.minimize's time spent computing its gradients (``fdgrad.fd_gradient``,
    which calls the lean lane or ``simdiff.gradient``; cProfile, cumulative)."""
    import cProfile
    import pstats

    sd.minimize(p.f, p.x0)  # warm: the first run pays imports
    pr = cProfile.Profile()
    pr.enable()
    sd.minimize(p.f, p.x0)
    pr.disable()
    st = pstats.Stats(pr)
    total = max(v[3] for v in st.stats.values())
    grad = sum(v[3] for k, v in st.stats.items()
               if k[2] == "fd_gradient" and k[0].endswith("fdgrad.py"))
    return grad / total if total else float("nan")


if __name__ == "__main__":
    if "--figures" in sys.argv:
        figures()
    else:
        main(sys.argv[1:])
