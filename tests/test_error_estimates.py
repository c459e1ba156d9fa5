"""info.error is honest: it bounds the true error in ≥ 95 % of entries, for every method, and
overestimates it by no more than about 10× (median), on a zoo of functions with known
derivatives (exp, trig, log, roots, rationals, polynomials, short and long length scales,
values scaled by 1e±8, |x| up to 1e6, and sums of many terms)."""

import numpy as np
import pytest

import simdiff as sd

EPS = np.finfo(float).eps

# (name, f, f', points)
ZOO_1D = [
    ("exp", np.exp, np.exp, [-3.0, 0.5, 4.0, 20.0]),
    ("1e8 exp", lambda x: 1e8 * np.exp(x), lambda x: 1e8 * np.exp(x), [0.3]),
    ("1e-8 sin", lambda x: 1e-8 * np.sin(x), lambda x: 1e-8 * np.cos(x), [0.7, 2.0]),
    ("sin", np.sin, np.cos, [0.3, 1.2, 2.5, -4.0]),
    ("cos", np.cos, lambda x: -np.sin(x), [0.1, 1.0, 3.0]),
    ("log", np.log, lambda x: 1 / x, [0.3, 2.0, 1e3, 1e6]),
    ("sqrt", np.sqrt, lambda x: 0.5 / np.sqrt(x), [0.5, 1e4]),
    ("rational", lambda x: 1 / (1 + x * x), lambda x: -2 * x / (1 + x * x) ** 2, [0.2, 0.7, 3.0]),
    ("rational 2", lambda x: (x**2 - 1) / (x**3 + 2),
     lambda x: (2 * x * (x**3 + 2) - 3 * x**2 * (x**2 - 1)) / (x**3 + 2) ** 2, [0.5, 2.0]),
    ("poly5", lambda x: x**5 - 3 * x**3 + x, lambda x: 5 * x**4 - 9 * x**2 + 1, [0.4, 1.7, -2.2]),
    ("poly2", lambda x: 3 * x * x + 2 * x + 1, lambda x: 6 * x + 2, [0.5, -7.0]),
    ("exp(10x)", lambda x: np.exp(10 * x), lambda x: 10 * np.exp(10 * x), [0.1, -0.3]),
    ("tanh", np.tanh, lambda x: 1 / np.cosh(x) ** 2, [0.5, -1.5]),
    ("atan", np.arctan, lambda x: 1 / (1 + x * x), [0.3, 5.0]),
    ("exp(sin)", lambda x: np.exp(np.sin(x)), lambda x: np.cos(x) * np.exp(np.sin(x)), [0.8, -2.0]),
    ("x log x", lambda x: x * np.log(x), lambda x: np.log(x) + 1, [3e4]),
    ("exp(x/1e4)", lambda x: np.exp(x / 1e4), lambda x: np.exp(x / 1e4) / 1e4, [3e4]),
    ("gauss", lambda x: np.exp(-x * x), lambda x: -2 * x * np.exp(-x * x), [0.5, 1.5]),
    ("x^-2", lambda x: x**-2.0, lambda x: -2 * x**-3.0, [1.5, 40.0]),
]

RNG = np.random.default_rng(5)
ZOO_ND = [
    ("exp-sin sum", lambda x: np.sum(np.exp(np.sin(x))), lambda x: np.cos(x) * np.exp(np.sin(x)),
     RNG.uniform(-3, 3, 6)),
    ("rational sum", lambda x: np.sum(1.0 / (1.0 + x**2)), lambda x: -2 * x / (1 + x**2) ** 2,
     RNG.normal(scale=2.0, size=12)),
    ("log-sum-exp", lambda x: np.log(np.sum(np.exp(x))), lambda x: np.exp(x) / np.sum(np.exp(x)),
     RNG.normal(size=10)),
    ("quartic", lambda x: np.sum(x**4 / 4.0 - x**2) + 0.5 * np.sum(x) ** 2,
     lambda x: x**3 - 2 * x + np.sum(x), RNG.uniform(-2, 2, 12)),
    ("x log x / 1000", lambda x: np.sum(np.log(x) * x / 1000.0), lambda x: (np.log(x) + 1) / 1000,
     RNG.uniform(1e3, 1e5, 6)),
]


def entries(method, step=None):
    """(true error, estimate, floor) for every entry of the zoo.

    The floor 2ε·max|g| is the precision of the float64 analytic derivative itself."""
    errs, ests, floors = [], [], []
    opts = {} if step is None else {"step": step}
    for _, f, df, xs in ZOO_1D:
        for x in xs:
            v, info = sd.derivative(f, x, method=method, full_output=True, **opts)
            t = df(x)
            errs.append(abs(v - t)), ests.append(info.error), floors.append(2 * EPS * abs(t))
    for _, f, g, x in ZOO_ND:
        v, info = sd.gradient(f, x, method=method, full_output=True, **opts)
        t = g(x)
        errs.extend(np.abs(v - t)), ests.extend(info.error)
        floors.extend(np.full(len(x), 2 * EPS * np.max(np.abs(t))))
    return np.array(errs), np.array(ests), np.array(floors)


@pytest.mark.parametrize("method, step", [
    ("central", None), ("forward", None), ("backward", None), ("five-point", None),
    ("complex", None), ("central", "adaptive"), ("forward", "adaptive"),
])
def test_estimates_cover_and_are_sharp(method, step):
    err, est, floor = entries(method, step)
    assert np.all(np.isfinite(est)) and np.all(est >= 0)
    covered = err <= est + floor
    assert covered.mean() >= 0.95, f"coverage {covered.mean():.3f}"
    resolved = err > floor  # entries whose true error the float64 truth can see
    ratio = est[resolved] / err[resolved]
    assert np.median(ratio) <= 10.0, f"median overestimate {np.median(ratio):.3g}"


def test_estimate_grows_with_a_too_large_step():
    # A step far past the optimum: the estimate must follow the truncation error up.
    for h in (1e-3, 1e-2, 1e-1):
        v, info = sd.derivative(np.exp, 1.0, step=h, full_output=True)
        err = abs(v - np.e)
        assert err <= info.error <= 30 * err


def test_estimate_grows_with_a_too_small_step():
    # Far below the optimum rounding dominates: ε·Σ|w||F|/h must cover it.
    for h in (1e-10, 1e-12):
        v, info = sd.derivative(np.exp, 1.0, step=h, full_output=True)
        assert abs(v - np.e) <= info.error
        assert info.error >= 0.99 * EPS * np.e / h


def test_embedded_estimate_uses_measured_growth():
    # exp(10x): derivatives grow 10× per order; the five-point estimate measures that from
    # its embedded central difference instead of assuming the unit scale.
    f = lambda x: np.exp(10 * x)  # noqa: E731
    v, info = sd.derivative(f, 0.1, method="five-point", step=1e-2, full_output=True)
    err = abs(v - 10 * np.e)
    assert err <= info.error <= 20 * err


def test_five_point_covers_branch_points_near_x():
    # sqrt and log near 0 (x < 1, so the step is scaled by 1 while f's length scale is x):
    # their Taylor coefficients grow factorially; geometric growth from the embedded central
    # difference left the five-point estimate 2x below the error for every such sqrt point.
    xs = np.geomspace(0.01, 0.3, 12)
    for f, df in [(np.sqrt, lambda x: 0.5 / np.sqrt(x)), (lambda x: 1e3 * np.sqrt(x), lambda x: 5e2 / np.sqrt(x)),
                  (np.log, lambda x: 1 / x)]:
        for x in xs:
            v, info = sd.derivative(f, x, method="five-point", full_output=True)
            err = abs(v - df(x))
            assert err <= info.error + 2 * EPS * abs(df(x)), (x, err, info.error)
            assert info.error <= 60 * max(err, 2 * EPS * abs(df(x)))


@pytest.mark.parametrize("method", ["central", "forward", "backward"])
@pytest.mark.parametrize("f, x, t", [
    (np.sin, 0.0, 1.0), (np.tanh, 0.0, 1.0), (lambda x: x**3 - x, 1.0, 2.0),
    (lambda x: 5.0 * x, 0.0, 5.0),
])
def test_two_point_estimate_at_a_root_of_f(method, f, x, t):
    # A root inside the stencil made |F| tiny, so the length model collapsed to 4h and the
    # estimate was 7 % (central) to 90 % (forward) of f' for an error of 1e-11 or less.
    v, info = sd.derivative(f, x, method=method, full_output=True)
    assert abs(v - t) <= info.error + 2 * EPS * abs(t)
    assert info.error <= (1e-8 if method == "central" else 1e-6) * abs(t)
