"""The Moré–Garbow–Hillstrom test problems, as residual vectors.

J. J. Moré, B. S. Garbow, K. E. Hillstrom, "Testing unconstrained optimization software",
ACM Trans. Math. Softw. 7 (1981) 17–41: problems 1–35, each a residual r: R^n -> R^m with
f(x) = Σ r_i(x)², a standard starting point x0 and the minimum value the paper reports
(``fstar``; where it lists a local and a global value, the smallest). Variable-dimension
problems are instantiated at the sizes the Moré–Wild (2009) benchmark uses; four of them twice
more, 39 problems in all. Written from the paper's formulas; the data vectors are the paper's.

``PROBLEMS`` lists them; each ``Problem`` has ``name, n, m, x0, fstar``, ``r(x)`` (residuals)
and ``f(x)`` (the sum of squares).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["Problem", "PROBLEMS", "problem"]


@dataclass(frozen=True)
class Problem:
    name: str
    n: int
    m: int
    r: Callable[[np.ndarray], np.ndarray]
    x0: np.ndarray
    fstar: float

    def f(self, x: np.ndarray) -> float:
        r = self.r(np.asarray(x, dtype=float))
        return float(r @ r)

    def __repr__(self) -> str:
        return f"Problem({self.name!r}, n={self.n}, m={self.m})"


def rosenbrock(x):
    return np.array([10 * (x[1] - x[0] ** 2), 1 - x[0]])


def freudenstein_roth(x):
    return np.array([-13 + x[0] + ((5 - x[1]) * x[1] - 2) * x[1],
                     -29 + x[0] + ((x[1] + 1) * x[1] - 14) * x[1]])


def powell_badly_scaled(x):
    return np.array([1e4 * x[0] * x[1] - 1, math.exp(-x[0]) + math.exp(-x[1]) - 1.0001])


def brown_badly_scaled(x):
    return np.array([x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2])


def beale(x):
    y = np.array([1.5, 2.25, 2.625])
    i = np.arange(1, 4)
    return y - x[0] * (1 - x[1] ** i)


def jennrich_sampson(x, m=10):
    i = np.arange(1, m + 1)
    return 2 + 2 * i - (np.exp(i * x[0]) + np.exp(i * x[1]))


def helical_valley(x):
    theta = math.atan(x[1] / x[0]) / (2 * math.pi) if x[0] != 0 else 0.25 * math.copysign(1, x[1])
    if x[0] < 0:
        theta += 0.5
    return np.array([10 * (x[2] - 10 * theta), 10 * (math.hypot(x[0], x[1]) - 1), x[2]])


_BARD_Y = np.array([0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96,
                    1.34, 2.10, 4.39])


def bard(x):
    u = np.arange(1, 16.0)
    v = 16 - u
    w = np.minimum(u, v)
    return _BARD_Y - (x[0] + u / (v * x[1] + w * x[2]))


_GAUSS_Y = np.array([0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989, 0.3521,
                     0.2420, 0.1295, 0.0540, 0.0175, 0.0044, 0.0009])


def gaussian(x):
    t = (8 - np.arange(1, 16.0)) / 2
    return x[0] * np.exp(-x[1] * (t - x[2]) ** 2 / 2) - _GAUSS_Y


_MEYER_Y = np.array([34780, 28610, 23650, 19630, 16370, 13720, 11540, 9744, 8261, 7030, 6005,
                     5147, 4427, 3820, 3307, 2872], dtype=float)


def meyer(x):
    t = 45 + 5 * np.arange(1, 17.0)
    return x[0] * np.exp(x[1] / (t + x[2])) - _MEYER_Y


def gulf(x, m=10):
    t = np.arange(1, m + 1) / 100
    y = 25 + (-50 * np.log(t)) ** (2 / 3)
    return np.exp(-np.abs(y - x[1]) ** x[2] / x[0]) - t


def box3d(x, m=10):
    t = 0.1 * np.arange(1, m + 1)
    return np.exp(-t * x[0]) - np.exp(-t * x[1]) - x[2] * (np.exp(-t) - np.exp(-10 * t))


def powell_singular(x):
    out = np.empty_like(x)
    for k in range(0, len(x), 4):
        a, b, c, d = x[k:k + 4]
        out[k:k + 4] = [a + 10 * b, math.sqrt(5) * (c - d), (b - 2 * c) ** 2,
                        math.sqrt(10) * (a - d) ** 2]
    return out


def wood(x):
    return np.array([10 * (x[1] - x[0] ** 2), 1 - x[0], math.sqrt(90) * (x[3] - x[2] ** 2),
                     1 - x[2], math.sqrt(10) * (x[1] + x[3] - 2), (x[1] - x[3]) / math.sqrt(10)])


_KO_Y = np.array([0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323,
                  0.0235, 0.0246])
_KO_U = np.array([4, 2, 1, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625])


def kowalik_osborne(x):
    u = _KO_U
    return _KO_Y - x[0] * (u ** 2 + u * x[1]) / (u ** 2 + u * x[2] + x[3])


def brown_dennis(x, m=20):
    t = np.arange(1, m + 1) / 5
    return (x[0] + t * x[1] - np.exp(t)) ** 2 + (x[2] + x[3] * np.sin(t) - np.cos(t)) ** 2


_OSB1_Y = np.array([0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751,
                    0.718, 0.685, 0.658, 0.628, 0.603, 0.580, 0.558, 0.538, 0.522, 0.506, 0.490,
                    0.478, 0.467, 0.457, 0.448, 0.438, 0.431, 0.424, 0.420, 0.414, 0.411, 0.406])


def osborne1(x):
    t = 10 * np.arange(33.0)
    return _OSB1_Y - (x[0] + x[1] * np.exp(-t * x[3]) + x[2] * np.exp(-t * x[4]))


def biggs_exp6(x, m=13):
    t = 0.1 * np.arange(1, m + 1)
    y = np.exp(-t) - 5 * np.exp(-10 * t) + 3 * np.exp(-4 * t)
    return x[2] * np.exp(-t * x[0]) - x[3] * np.exp(-t * x[1]) + x[5] * np.exp(-t * x[4]) - y


_OSB2_Y = np.array([
    1.366, 1.191, 1.112, 1.013, 0.991, 0.885, 0.831, 0.847, 0.786, 0.725, 0.746, 0.679, 0.608,
    0.655, 0.616, 0.606, 0.602, 0.626, 0.651, 0.724, 0.649, 0.649, 0.694, 0.644, 0.624, 0.661,
    0.612, 0.558, 0.533, 0.495, 0.500, 0.423, 0.395, 0.375, 0.372, 0.391, 0.396, 0.405, 0.428,
    0.429, 0.523, 0.562, 0.607, 0.653, 0.672, 0.708, 0.633, 0.668, 0.645, 0.632, 0.591, 0.559,
    0.597, 0.625, 0.739, 0.710, 0.729, 0.720, 0.636, 0.581, 0.428, 0.292, 0.162, 0.098, 0.054])


def osborne2(x):
    t = np.arange(65.0) / 10
    return _OSB2_Y - (x[0] * np.exp(-t * x[4]) + x[1] * np.exp(-(t - x[8]) ** 2 * x[5])
                      + x[2] * np.exp(-(t - x[9]) ** 2 * x[6])
                      + x[3] * np.exp(-(t - x[10]) ** 2 * x[7]))


def watson(x):
    n = len(x)
    t = np.arange(1, 30) / 29
    j = np.arange(n)
    s1 = (j[1:] * x[1:] * t[:, None] ** (j[1:] - 1)).sum(axis=1)
    s2 = (x * t[:, None] ** j).sum(axis=1)
    return np.concatenate([s1 - s2 ** 2 - 1, [x[0], x[1] - x[0] ** 2 - 1]])


def extended_rosenbrock(x):
    out = np.empty_like(x)
    out[0::2] = 10 * (x[1::2] - x[0::2] ** 2)
    out[1::2] = 1 - x[0::2]
    return out


def penalty1(x):
    return np.concatenate([math.sqrt(1e-5) * (x - 1), [x @ x - 0.25]])


def penalty2(x):
    n = len(x)
    a = math.sqrt(1e-5)
    i = np.arange(2, n + 1)
    y = np.exp(i / 10) + np.exp((i - 1) / 10)
    mid = a * (np.exp(x[1:] / 10) + np.exp(x[:-1] / 10) - y)
    tail = a * (np.exp(x[1:] / 10) - math.exp(-0.1))
    last = np.sum((n - np.arange(n)) * x ** 2) - 1
    return np.concatenate([[x[0] - 0.2], mid, tail, [last]])


def variably_dimensioned(x):
    j = np.arange(1, len(x) + 1)
    s = float(j @ (x - 1))
    return np.concatenate([x - 1, [s, s ** 2]])


def trigonometric(x):
    n = len(x)
    i = np.arange(1, n + 1)
    return n - np.sum(np.cos(x)) + i * (1 - np.cos(x)) - np.sin(x)


def brown_almost_linear(x):
    n = len(x)
    out = x + np.sum(x) - (n + 1)
    out[-1] = np.prod(x) - 1
    return out


def discrete_boundary_value(x):
    n = len(x)
    h = 1 / (n + 1)
    t = np.arange(1, n + 1) * h
    xp = np.concatenate([[0.0], x, [0.0]])
    return 2 * x - xp[:-2] - xp[2:] + h ** 2 * (x + t + 1) ** 3 / 2


def discrete_integral_equation(x):
    n = len(x)
    h = 1 / (n + 1)
    t = np.arange(1, n + 1) * h
    c = (x + t + 1) ** 3
    a = np.cumsum(t * c)                        # Σ_{j ≤ i} t_j c_j
    b = np.cumsum(((1 - t) * c)[::-1])[::-1]    # Σ_{j ≥ i} (1 - t_j) c_j
    b = np.concatenate([b[1:], [0.0]])          # Σ_{j > i}
    return x + h * ((1 - t) * a + t * b) / 2


def broyden_tridiagonal(x):
    xp = np.concatenate([[0.0], x, [0.0]])
    return (3 - 2 * x) * x - xp[:-2] - 2 * xp[2:] + 1


def broyden_banded(x, ml=5, mu=1):
    n = len(x)
    out = x * (2 + 5 * x ** 2) + 1
    for i in range(n):
        lo, hi = max(0, i - ml), min(n - 1, i + mu)
        js = [j for j in range(lo, hi + 1) if j != i]
        out[i] -= sum(x[j] * (1 + x[j]) for j in js)
    return out


def linear_full_rank(x, m):
    n = len(x)
    s = np.sum(x)
    out = np.full(m, -2 * s / m - 1)
    out[:n] += x
    return out


def linear_rank1(x, m):
    j = np.arange(1, len(x) + 1)
    return np.arange(1, m + 1) * float(j @ x) - 1


def linear_rank1_zero(x, m):
    n = len(x)
    j = np.arange(2, n)
    s = float(j @ x[1:n - 1])
    out = np.arange(0, m) * s - 1  # (i − 1)·s − 1 for i = 1..m
    out[0] = -1
    out[-1] = -1
    return out


def chebyquad(x, m=None):
    n = len(x)
    m = n if m is None else m
    out = np.zeros(m)
    y = 2 * x - 1
    t0, t1 = np.ones(n), y
    for i in range(1, m + 1):
        ti = t1 if i == 1 else 2 * y * t1 - t0
        if i > 1:
            t0, t1 = t1, ti
        out[i - 1] = np.mean(ti) + (1 / (i * i - 1) if i % 2 == 0 else 0.0)
    return out


def _p(name, r, x0, fstar, m=None):
    x0 = np.asarray(x0, dtype=float)
    m = len(r(x0)) if m is None else m
    return Problem(name, len(x0), m, r, x0, float(fstar))


def _make() -> list:
    P = []
    P.append(_p("rosenbrock", rosenbrock, [-1.2, 1], 0))
    P.append(_p("freudenstein_roth", freudenstein_roth, [0.5, -2], 0))
    P.append(_p("powell_badly_scaled", powell_badly_scaled, [0, 1], 0))
    P.append(_p("brown_badly_scaled", brown_badly_scaled, [1, 1], 0))
    P.append(_p("beale", beale, [1, 1], 0))
    P.append(_p("jennrich_sampson", jennrich_sampson, [0.3, 0.4], 124.362))
    P.append(_p("helical_valley", helical_valley, [-1, 0, 0], 0))
    P.append(_p("bard", bard, [1, 1, 1], 8.21487e-3))
    P.append(_p("gaussian", gaussian, [0.4, 1, 0], 1.12793e-8))
    P.append(_p("meyer", meyer, [0.02, 4000, 250], 87.9458))
    P.append(_p("gulf", gulf, [5, 2.5, 0.15], 0))
    P.append(_p("box3d", box3d, [0, 10, 20], 0))
    P.append(_p("powell_singular", powell_singular, [3, -1, 0, 1], 0))
    P.append(_p("wood", wood, [-3, -1, -3, -1], 0))
    P.append(_p("kowalik_osborne", kowalik_osborne, [0.25, 0.39, 0.415, 0.39], 3.07505e-4))
    P.append(_p("brown_dennis", brown_dennis, [25, 5, -5, -1], 85822.2))
    P.append(_p("osborne1", osborne1, [0.5, 1.5, -1, 0.01, 0.02], 5.46489e-5))
    P.append(_p("biggs_exp6", biggs_exp6, [1, 2, 1, 1, 1, 1], 0))
    P.append(_p("osborne2", osborne2, [1.3, 0.65, 0.65, 0.7, 0.6, 3, 5, 7, 2, 4.5, 5.5], 4.01377e-2))
    P.append(_p("watson_6", watson, np.zeros(6), 2.28767e-3))
    P.append(_p("extended_rosenbrock_10", extended_rosenbrock, np.tile([-1.2, 1], 5), 0))
    P.append(_p("extended_powell_8", powell_singular, np.tile([3, -1, 0, 1], 2), 0))
    P.append(_p("penalty1_4", penalty1, np.arange(1, 5), 2.24997e-5))
    P.append(_p("penalty2_4", penalty2, np.full(4, 0.5), 9.37629e-6))
    P.append(_p("variably_dimensioned_8", variably_dimensioned, 1 - np.arange(1, 9) / 8, 0))
    P.append(_p("trigonometric_10", trigonometric, np.full(10, 0.1), 0))
    P.append(_p("brown_almost_linear_10", brown_almost_linear, np.full(10, 0.5), 0))
    t = np.arange(1, 11) / 11
    P.append(_p("discrete_boundary_value_10", discrete_boundary_value, t * (t - 1), 0))
    P.append(_p("discrete_integral_10", discrete_integral_equation, t * (t - 1), 0))
    P.append(_p("broyden_tridiagonal_10", broyden_tridiagonal, -np.ones(10), 0))
    P.append(_p("broyden_banded_10", broyden_banded, -np.ones(10), 0))
    P.append(_p("linear_full_rank_10", lambda x: linear_full_rank(x, 20), np.ones(10), 10))
    P.append(_p("linear_rank1_10", lambda x: linear_rank1(x, 20), np.ones(10),
                20 * 19 / (2 * 41)))
    P.append(_p("linear_rank1_zero_10", lambda x: linear_rank1_zero(x, 20), np.ones(10),
                (400 + 60 - 6) / (2 * 37)))
    P.append(_p("chebyquad_8", chebyquad, np.arange(1, 9) / 9, 3.51687e-3))
    # second sizes of variable-dimension problems (Moré–Wild 2009 use several)
    P.append(_p("watson_9", watson, np.zeros(9), 1.39976e-6))
    P.append(_p("penalty1_10", penalty1, np.arange(1, 11), 7.08765e-5))
    P.append(_p("penalty2_10", penalty2, np.full(10, 0.5), 2.93660e-4))
    P.append(_p("chebyquad_6", chebyquad, np.arange(1, 7) / 7, 0))
    return P


PROBLEMS = _make()


def problem(name: str) -> Problem:
    for p in PROBLEMS:
        if p.name == name:
            return p
    raise KeyError(f"no MGH problem {name!r}; have {[p.name for p in PROBLEMS]}")
