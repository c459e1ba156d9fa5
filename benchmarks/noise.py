"""Noise: simdiff's estimate of it, and derivatives of noisy and printed outputs, against peers.

Run: ``python benchmarks/noise.py`` (from the repository root; about a minute).

Table 1 — the noise level. f(x) = 8 + 0.3·Σ sin(a_j x_j) + 0.05·Σ x_j² (n = 8, |f| ≈ 8) with
known noise: additive Gaussian σ from 1e-11 to 1e-3, multiplicative (σ = δ·|f|), outputs
printed with 6, 7 and 8 significant digits as legacy programs print them (σ = q/√12 for the
quantum q of the last digit), and float32 arithmetic (σ = spacing/√12). For each, over 10
seeds (random points for the printed cases): the factor estimate/truth (median and worst,
worst = farthest from 1 either way) of ``simdiff.noise_level`` and of a plain difference-table
estimate (std of the first differences/√2 on the same 12 points at the same spacing), and
simdiff's evaluations.

Table 2 — gradients. The same f and noise, n = 8: relative error ‖g − g*‖/‖g*‖, evaluations
and honesty (the share of entries whose error estimate is at least the true error; scipy gives
none) for simdiff at default steps, simdiff with noise="estimate", simdiff step="adaptive",
scipy.optimize.approx_derivative (3-point) and numdifftools.Gradient (its error_estimate).
The ratio column is the best peer's error over simdiff noise="estimate"'s.

Table 3 — a real program, when ngspice is installed: a voltage divider, V(2) = V·R2/(R1+R2),
printed by ngspice with 7 significant digits; gradient in (R1, R2) against the closed form.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import simdiff as sd  # noqa: E402
from simdiff.noise import NoiseWarning  # noqa: E402

N = 8
A = np.linspace(0.5, 1.5, N)
X0 = np.linspace(-1.0, 1.0, N)
SEEDS = 10


def f0(x):
    return 8.0 + 0.3 * np.sum(np.sin(A * x)) + 0.05 * np.sum(x**2)


def g0(x):
    return 0.3 * A * np.cos(A * x) + 0.1 * x


def quantum(v, digits):
    return 10.0 ** (math.floor(math.log10(abs(v))) - digits + 1)


def make_case(kind, level, seed):
    """(f, x, true σ at x) for a noise kind."""
    rng = np.random.default_rng(seed)
    x = X0 if kind in ("additive", "multiplicative") else X0 + rng.uniform(-0.3, 0.3, N)
    if kind == "additive":
        return (lambda z: f0(z) + level * rng.standard_normal()), x, level
    if kind == "multiplicative":
        return (lambda z: f0(z) * (1 + level * rng.standard_normal())), x, level * abs(f0(x))
    if kind == "printed":
        d = int(level)
        return (lambda z: float(f"{f0(z):.{d}g}")), x, quantum(f0(x), d) / math.sqrt(12)
    if kind == "float32":
        def f32(z):
            z = z.astype(np.float32)
            a = A.astype(np.float32)
            return float(np.float32(8) + np.float32(0.3) * np.sum(np.sin(a * z))
                         + np.float32(0.05) * np.sum(z * z))
        return f32, x, float(np.spacing(np.float32(f0(x)))) / math.sqrt(12)
    raise ValueError(kind)


CASES = ([("additive", s) for s in (1e-11, 1e-9, 1e-7, 1e-5, 1e-3)]
         + [("multiplicative", 1e-7), ("printed", 6), ("printed", 7), ("printed", 8),
            ("float32", 0)])


def plain_table(f, x, h_rel=1e-6, nf=12, seed=0):
    """The textbook estimate: std of first differences / √2 along a random direction."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(x.size)
    u *= np.maximum(1.0, np.abs(x)) / np.linalg.norm(u)
    vals = np.array([f(x + (i - nf // 2) * h_rel * u) for i in range(nf)])
    return float(np.std(np.diff(vals), ddof=1) / math.sqrt(2))


def worst_factor(r):
    r = np.asarray(r, dtype=float)
    dev = np.where(r > 0, np.abs(np.log(np.where(r > 0, r, 1.0))), np.inf)
    return float(r[int(np.argmax(dev))])


def fmt_factor(v):
    return "0" if v == 0 else f"{v:.2f}" if 0.01 <= v < 100 else f"{v:.1e}"


def table_noise_level():
    print("Table 1: noise level, factor estimate/truth over", SEEDS, "seeds (median, worst)")
    head = f"{'case':<22}{'truth σ':>10}  {'simdiff med':>11} {'worst':>8} {'nfev':>5}  " \
           f"{'plain med':>10} {'worst':>8}  {'worst ratio plain/simdiff':>25}"
    print(head)
    print("-" * len(head))
    for kind, level in CASES:
        fs, fp, nfevs, truths = [], [], [], []
        for seed in range(SEEDS):
            f, x, sigma = make_case(kind, level, seed)
            est = sd.noise_level(f, x, seed=seed)
            fs.append(float(est.level[0]) / sigma)
            nfevs.append(est.nfev)
            truths.append(sigma)
            f, x, sigma = make_case(kind, level, seed)
            fp.append(plain_table(f, x, seed=seed) / sigma)
        ws, wp = worst_factor(fs), worst_factor(fp)
        ratio = abs(math.log(wp)) / max(abs(math.log(ws)), 1e-12) if wp > 0 and ws > 0 else float("inf")
        name = f"{kind} {level:g}" if kind != "printed" else f"printed {level} digits"
        print(f"{name:<22}{np.median(truths):>10.2e}  {fmt_factor(np.median(fs)):>11} "
              f"{fmt_factor(ws):>8} {max(nfevs):>5}  {fmt_factor(np.median(fp)):>10} {fmt_factor(wp):>8}  "
              f"{ratio:>25.1f}")
    print("(worst ratio: |log worst factor| of the plain table over simdiff's)")
    print()


def _scipy(f, x):
    from scipy.optimize._numdiff import approx_derivative  # scipy's own FD (not public)

    count = [0]

    def fc(z):
        count[0] += 1
        return f(z)

    g = approx_derivative(fc, x, method="3-point")
    return g, None, count[0]


def _numdifftools(f, x):
    try:
        import numdifftools as nd
    except ImportError:  # pragma: no cover
        return None
    count = [0]

    def fc(z):
        count[0] += 1
        return f(z)

    res = nd.Gradient(fc, full_output=True)(x)
    if hasattr(res, "estimate"):  # numdifftools >= 0.11: an EstimateResult
        g, err = res.estimate, res.error_estimate
    else:
        g, info = res
        err = info.error_estimate
    return np.asarray(g, dtype=float).ravel(), np.asarray(err, dtype=float).ravel(), count[0]


def _simdiff(**opts):
    def run(f, x):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoiseWarning)
            warnings.simplefilter("ignore", getattr(sd, "SimdiffWarning", NoiseWarning))
            g, info = sd.gradient(f, x, full_output=True, **opts)
        return g, np.asarray(info.error), info.nfev
    return run


METHODS = [("simdiff default", _simdiff()), ("simdiff noise=est", _simdiff(noise="estimate")),
           ("simdiff adaptive", _simdiff(step="adaptive")), ("scipy 3-point", _scipy),
           ("numdifftools", _numdifftools)]


def table_gradients(seeds=5):
    print(f"Table 2: gradients (n = {N}), median over {seeds} seeds: relative error, evaluations, "
          "honesty (share of entries with error estimate ≥ true error)")
    cases = [("additive", 1e-9), ("additive", 1e-6), ("multiplicative", 1e-7), ("printed", 6),
             ("printed", 7), ("printed", 8), ("float32", 0)]
    head = f"{'case':<18}" + "".join(f"{m:>27}" for m, _ in METHODS) + f"{'peer/noise=est':>16}"
    print(head)
    print("-" * len(head))
    summary = {}
    for kind, level in cases:
        cells, errs = [], {}
        for name, run in METHODS:
            e_rel, nfev, honest = [], [], []
            for seed in range(seeds):
                f, x, _ = make_case(kind, level, seed)
                out = run(f, x)
                if out is None:
                    break
                g, E, k = out
                err = np.abs(g - g0(x))
                e_rel.append(np.linalg.norm(err) / np.linalg.norm(g0(x)))
                nfev.append(k)
                if E is not None:
                    honest.append(np.mean(E >= err))
            if not e_rel:
                cells.append(f"{'n/a':>27}")
                continue
            errs[name] = float(np.median(e_rel))
            hon = f"{np.mean(honest):4.0%}" if honest else " n/a"
            cells.append(f"{np.median(e_rel):>12.1e} {int(np.median(nfev)):>5} {hon:>7}  ")
            summary[(kind, level, name)] = (float(np.median(e_rel)), honest and float(np.mean(honest)))
        peers = [errs[m] for m in ("scipy 3-point", "numdifftools") if m in errs]
        ratio = min(peers) / errs["simdiff noise=est"] if peers and errs.get("simdiff noise=est") else float("nan")
        name = f"{kind} {level:g}" if kind != "printed" else f"printed {level} dig."
        print(f"{name:<18}" + "".join(cells) + f"{ratio:>16.1f}")
    print("(cells: relative error, evaluations, honesty)")
    print()
    return summary


DECK = """divider
V1 1 0 DC 5
R1 1 2 {R1}
R2 2 0 {R2}
.control
op
print v(2)
.endc
.end
"""


def table_ngspice():
    if shutil.which("ngspice") is None:
        print("Table 3: skipped (ngspice is not installed)")
        return
    sim = sd.load("subprocess", command=["sh", "-c", "ngspice -b div.cir; exit 0"],
                  inputs=["R1", "R2"], files={"div.cir": DECK}, parse={"regex": r"v\(2\) = (\S+)"})
    x = np.array([1000.0, 2000.0])
    g_true = np.array([-5 * 2000 / 3000**2, 5 * 1000 / 3000**2])
    print("Table 3: ngspice voltage divider (7 printed digits), gradient in (R1, R2), closed form "
          f"{g_true}")
    head = f"{'method':<30}{'max rel. error':>15}{'honest':>8}{'nfev':>6}{'seconds':>9}"
    print(head)
    print("-" * len(head))
    runs = [("simdiff central (default)", dict()), ("simdiff forward", dict(method="forward")),
            ("simdiff five-point", dict(method="five-point")),
            ("simdiff adaptive", dict(step="adaptive")),
            ("simdiff noise=est, central", dict(noise="estimate")),
            ("simdiff noise=est, five-point", dict(noise="estimate", method="five-point"))]
    for name, opts in runs:
        t = time.time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoiseWarning)
            g, info = sd.gradient(sim, x, full_output=True, n_jobs=2, **opts)
        err = np.abs(g - g_true)
        print(f"{name:<30}{np.max(err / np.abs(g_true)):>15.1e}{np.mean(info.error >= err):>8.0%}"
              f"{info.nfev:>6}{time.time() - t:>9.1f}")
    for name, run in METHODS[3:]:
        t = time.time()
        out = run(lambda z: float(np.ravel(sim(z))[0]), x)
        if out is None:
            continue
        g, E, k = out
        err = np.abs(g - g_true)
        hon = f"{np.mean(E >= err):.0%}" if E is not None else "n/a"
        print(f"{name:<30}{np.max(err / np.abs(g_true)):>15.1e}{hon:>8}{k:>6}{time.time() - t:>9.1f}")
    print()


def figures():
    """The issue's figures, measured."""
    print("Figures of issue 10:")
    worst = 1.0
    for lv in (1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3):
        for seed in range(SEEDS):
            f, x, s = make_case("additive", lv, seed)
            r = float(sd.noise_level(f, x, seed=seed).level[0]) / s
            worst = max(worst, r, 1 / r)
    print(f"  noise_level, additive 1e-11..1e-3, {SEEDS} seeds each: worst factor {worst:.2f} (target ≤ 3)")
    worst = 1.0
    for d in (6, 7, 8):
        for seed in range(SEEDS):
            f, x, s = make_case("printed", d, seed)
            r = float(sd.noise_level(f, x, seed=seed).level[0]) / s
            worst = max(worst, r, 1 / r)
    print(f"  noise_level, printed 6/7/8 digits: worst factor {worst:.2f} (target ≤ 4)")
    errs, nfevs, cover = [], [], []
    for seed in range(SEEDS):
        f, x, _ = make_case("additive", 1e-6, seed)
        g, info = sd.gradient(f, x, noise="estimate", full_output=True)
        err = np.abs(g - g0(x))
        errs.append(err.max())
        nfevs.append(info.nfev)
        cover.append(np.mean(info.error >= err))
    print(f"  σ = 1e-6, |f| ≈ 8, n = 8, noise='estimate': max |error| {max(errs):.1e} (target ≤ 3e-4), "
          f"evaluations ≤ {max(nfevs)} (2n + 12 = {2 * N + 12}), info.error covers {np.mean(cover):.0%}")
    rel = []
    for seed in range(SEEDS):
        f, x, _ = make_case("printed", 6, seed)
        g = sd.gradient(f, x, noise="estimate")
        rel.append(np.linalg.norm(g - g0(x)) / np.linalg.norm(g0(x)))
    print(f"  6-digit outputs, noise='estimate': worst relative error {max(rel):.1e} (target ≤ 1e-3)")
    print()


if __name__ == "__main__":
    t0 = time.time()
    figures()
    table_noise_level()
    table_gradients()
    table_ngspice()
    print(f"total {time.time() - t0:.0f} s")
