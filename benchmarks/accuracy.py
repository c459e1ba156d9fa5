"""Accuracy of the finite-difference gradient: simdiff beside scipy and numdifftools.

Same functions, same points, same process. For each: the max relative error
‖g − g*‖∞ / ‖g*‖∞ against the analytic gradient g*, and the evaluations per coordinate.

Table 2 (``adaptive_table``): step="adaptive" beside numdifftools ``Gradient`` (default),
``scipy.differentiate.jacobian`` (through a vectorizing wrapper that counts every column it
is given) and scipy's '3-point', with the coverage of each error estimate (the share of
entries whose true error lies below it) and its median sharpness (estimate / true error).
Table 3 (``estimate_table``): coverage and sharpness of info.error for every method.
Table 4 (``hessian_table``): simdiff.hessian (default and adaptive) beside numdifftools
``Hessian`` and ``scipy.differentiate.hessian``: error and evaluations.

An entry counts as covered when |error| ≤ estimate + 2ε·‖g*‖∞ (the precision of the float64
analytic gradient itself); sharpness is taken over the entries whose error exceeds that floor.

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


EPS = np.finfo(float).eps


def coverage(err, est, floor):
    """(share of entries with err ≤ est + floor, median est/err where err > floor)."""
    err, est = np.asarray(err, float).ravel(), np.asarray(est, float).ravel()
    cov = float(np.mean(err <= est + floor))
    seen = err > floor
    sharp = float(np.median(est[seen] / err[seen])) if seen.any() else float("nan")
    return cov, sharp


def vectorized(f, counter):
    """f for scipy.differentiate: x of shape (n, ...) -> f over the trailing shape, counted."""
    def fv(X):
        X = np.asarray(X)
        flat = X.reshape(X.shape[0], -1)
        counter.n += flat.shape[1]
        return np.array([counter.f(flat[:, i]) for i in range(flat.shape[1])]).reshape(X.shape[1:])
    return fv


def adaptive_runs(f, x):
    """(label, gradient, error estimate or None, evaluations) for table 2."""
    import numdifftools as nd
    from scipy.differentiate import jacobian as sp_jacobian
    from scipy.optimize._numdiff import approx_derivative

    out = []
    c = Counted(f)
    g, info = sd.gradient(c, x, step="adaptive", full_output=True)
    out.append(("simdiff adaptive", g, info.error, c.n))
    c = Counted(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = nd.Gradient(c, full_output=True)(x)
    out.append(("numdifftools Gradient", r.estimate, np.ravel(r.error_estimate), c.n))
    c = Counted(f)
    res = sp_jacobian(vectorized(f, c), x)
    out.append(("scipy.differentiate", res.df, res.error, c.n))
    c = Counted(f)
    out.append(("scipy 3-point", approx_derivative(c, x, method="3-point"), None, c.n))
    return out


def adaptive_table() -> dict:
    """Table 2: the adaptive step beside the adaptive peers."""
    acc: dict = {}
    print()
    print("Table 2. step='adaptive' beside the peers: max rel err, evaluations per coordinate, "
          "coverage and median sharpness of the error estimate")
    head = (f"{'function':<20}{'n':>4}  {'method':<22}{'max rel err':>12}{'ev/coord':>9}"
            f"{'coverage':>10}{'sharpness':>11}")
    print(head)
    print("-" * len(head))
    for name, f, grad, x in problems():
        true = grad(x)
        floor = 2 * EPS * np.max(np.abs(true))
        for label, g, est, k in adaptive_runs(f, x):
            e = rel_err(g, true)
            cov, sharp = coverage(np.abs(g - true), est, floor) if est is not None else (None, None)
            a = acc.setdefault(label, {"worst": 0.0, "ev": [], "err": [], "est": [], "floor": []})
            a["worst"] = max(a["worst"], e)
            a["ev"].append(k / len(x))
            if est is not None:
                a["err"].extend(np.abs(g - true)), a["est"].extend(est)
                a["floor"].extend(np.full(len(x), floor))
            cs = f"{cov:>10.2f}{sharp:>11.3g}" if est is not None else f"{'—':>10}{'—':>11}"
            print(f"{name:<20}{len(x):>4}  {label:<22}{e:>12.2e}{k / len(x):>9.2f}{cs}")
    print()
    print(f"{'over all functions':<26}{'worst rel err':>14}{'mean ev/coord':>15}{'coverage':>10}"
          f"{'sharpness':>11}")
    summary = {}
    for label, a in acc.items():
        if a["err"]:
            cov, sharp = coverage(a["err"], a["est"], np.array(a["floor"]))
            cs = f"{cov:>10.3f}{sharp:>11.3g}"
        else:
            cov = sharp = None
            cs = f"{'—':>10}{'—':>11}"
        summary[label] = {"worst": a["worst"], "ev": float(np.mean(a["ev"])), "coverage": cov,
                          "sharpness": sharp}
        print(f"  {label:<24}{a['worst']:>14.2e}{np.mean(a['ev']):>15.2f}{cs}")
    return summary


def estimate_table() -> dict:
    """Table 3: how honest info.error is for every method, over all functions."""
    print()
    print("Table 3. info.error of every method over all functions: coverage (≥ 0.95 wanted) and "
          "median sharpness (≤ 10 wanted)")
    out = {}
    for method, step in [("central", None), ("forward", None), ("backward", None),
                         ("five-point", None), ("complex", None), ("central", "adaptive")]:
        errs, ests, floors = [], [], []
        for _, f, grad, x in problems():
            true = grad(x)
            g, info = sd.gradient(f, x, method=method, step=step, full_output=True)
            errs.extend(np.abs(g - true)), ests.extend(info.error)
            floors.extend(np.full(len(x), 2 * EPS * np.max(np.abs(true))))
        cov, sharp = coverage(errs, ests, np.array(floors))
        label = method + (" adaptive" if step else "")
        out[label] = (cov, sharp)
        sh = f"{sharp:.3g}" if np.isfinite(sharp) else "— (every error below the float64 truth's precision)"
        print(f"  {label:<20} coverage {cov:.3f}   median sharpness {sh}   ({len(errs)} entries)")
    return out


def _hess_problems():
    rng = np.random.default_rng(7)

    def rosen_h(x):
        n = len(x)
        H = np.zeros((n, n))
        for i in range(n - 1):
            H[i, i] += 1200 * x[i] ** 2 - 400 * x[i + 1] + 2
            H[i + 1, i + 1] += 200
            H[i, i + 1] = H[i + 1, i] = -400 * x[i]
        return H

    def lse_h(x):
        p = np.exp(x - np.max(x))
        p /= p.sum()
        return np.diag(p) - np.outer(p, p)

    return [
        ("rosenbrock", lambda x: np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2),
         rosen_h, rng.uniform(-1.5, 1.5, 10)),
        ("log-sum-exp", lambda x: np.log(np.sum(np.exp(x))), lse_h, rng.normal(size=10)),
        ("exp(sin)", lambda x: np.sum(np.exp(np.sin(x))),
         lambda x: np.diag((np.cos(x) ** 2 - np.sin(x)) * np.exp(np.sin(x))), rng.uniform(-3, 3, 5)),
        ("rational", lambda x: np.sum(1.0 / (1.0 + x**2)),
         lambda x: np.diag((6 * x**2 - 2) / (1 + x**2) ** 3), rng.normal(scale=2.0, size=8)),
        ("quartic", lambda x: np.sum(x**4 / 4.0 - x**2) + 0.5 * np.sum(x) ** 2,
         lambda x: np.diag(3 * x**2 - 2) + 1.0, rng.uniform(-2, 2, 6)),
    ]


def hessian_table() -> dict:
    """Table 4: Hessians beside numdifftools Hessian and scipy.differentiate.hessian."""
    import numdifftools as nd
    from scipy.differentiate import hessian as sp_hessian

    print()
    print("Table 4. Hessian: max rel err ‖H − H*‖max / ‖H*‖max and evaluations")
    head = (f"{'function':<14}{'n':>4}  {'simdiff':>10}{'evals':>7}  {'adaptive':>10}{'evals':>7}"
            f"  {'numdifftools':>13}{'evals':>7}  {'scipy.diff':>11}{'evals':>7}")
    print(head)
    print("-" * len(head))
    rows = []
    est = {None: ([], [], []), "adaptive": ([], [], [])}
    for name, f, H, x in _hess_problems():
        t = H(x)
        scale = np.max(np.abs(t))
        res = []
        for step in (None, "adaptive"):
            c = Counted(f)
            Hn, info = sd.hessian(c, x, step=step, full_output=True)
            res.append((float(np.max(np.abs(Hn - t)) / scale), c.n))
            est[step][0].extend(np.abs(Hn - t).ravel()), est[step][1].extend(info.error.ravel())
            est[step][2].extend(np.full(t.size, 4 * EPS * scale))
        c = Counted(f)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Hn = nd.Hessian(c)(x)
        res.append((float(np.max(np.abs(Hn - t)) / scale), c.n))
        c = Counted(f)
        Hn = sp_hessian(vectorized(f, c), x).ddf
        res.append((float(np.max(np.abs(Hn - t)) / scale), c.n))
        rows.append((name, len(x), res))
        cells = "".join(f"{e:>12.2e}{k:>7}  " if i else f"{e:>10.2e}{k:>7}  " for i, (e, k) in enumerate(res))
        print(f"{name:<14}{len(x):>4}  {cells}")
    for step, (e, s_, fl) in est.items():
        cov, sharp = coverage(e, s_, np.array(fl))
        print(f"  info.error of hessian(step={step!r}): coverage {cov:.3f}, median sharpness "
              f"{sharp:.3g} ({len(e)} entries)")
    return {"rows": rows}


if __name__ == "__main__":
    main()
    adaptive_table()
    estimate_table()
    hessian_table()
