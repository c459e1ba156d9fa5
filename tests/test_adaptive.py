"""step="adaptive": accuracy against analytic derivatives, evaluation budget, one batch per
round, bounds, one-sided searches, failures, and the options it refuses."""

import numpy as np
import pytest

import simdiff as sd
from simdiff.evaluate import SerialEvaluator

# Functions with widely different scales and fast-growing high derivatives: (f, f', x).
HARD = [
    (np.exp, np.exp, 0.5),
    (np.exp, np.exp, 20.0),                                    # exp at large |x|: scale 1, not x
    (lambda x: 1e8 * np.exp(x), lambda x: 1e8 * np.exp(x), 0.3),
    (lambda x: 1e-8 * np.sin(x), lambda x: 1e-8 * np.cos(x), 2.0),
    (lambda x: np.exp(10 * x), lambda x: 10 * np.exp(10 * x), 0.1),      # derivatives grow 10^k
    (lambda x: np.sin(30 * x), lambda x: 30 * np.cos(30 * x), 0.4),      # short length scale
    (np.log, lambda x: 1 / x, 0.3),
    (np.log, lambda x: 1 / x, 1e3),                             # long length scale
    (np.sqrt, lambda x: 0.5 / np.sqrt(x), 1e4),
    (lambda x: 1 / (1 + x * x), lambda x: -2 * x / (1 + x * x) ** 2, 0.7),
    (lambda x: x**5 - 3 * x**3 + x, lambda x: 5 * x**4 - 9 * x**2 + 1, 1.7),
    (np.tanh, lambda x: 1 / np.cosh(x) ** 2, -1.5),
    (lambda x: np.exp(x / 1e4), lambda x: np.exp(x / 1e4) / 1e4, 3e4),
]


class Recording(SerialEvaluator):
    """A SerialEvaluator that records each batch it is given."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.batches = []

    def evaluate(self, sim, X):
        self.batches.append(np.array(X))
        return super().evaluate(sim, X)


@pytest.mark.parametrize("f, df, x", HARD)
def test_adaptive_reaches_1e_13_relative(f, df, x):
    v, info = sd.derivative(f, x, step="adaptive", full_output=True)
    t = df(x)
    assert abs(v - t) <= 1e-13 * abs(t)
    assert abs(v - t) <= info.error + 4 * np.finfo(float).eps * abs(t)


def test_rounding_limited_function_stays_near_its_floor():
    # log at 1e6: |f| / (|f'|·x) = log x ≈ 14 amplifies rounding; the floor is about 1e-13.
    v, info = sd.derivative(np.log, 1e6, step="adaptive", full_output=True)
    assert abs(v * 1e6 - 1.0) <= 3e-13
    assert abs(v - 1e-6) <= info.error


def test_adaptive_beats_the_optimal_fixed_step():
    for f, df, x in HARD:
        fixed = abs(sd.derivative(f, x) - df(x))
        adaptive = abs(sd.derivative(f, x, step="adaptive") - df(x))
        assert adaptive <= max(fixed / 20, 1e-15 * abs(df(x)))


def test_gradient_budget_and_one_batch_per_round():
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, 10)
    f = lambda v: np.sum(np.exp(np.sin(v))) + v[0] * v[1]  # noqa: E731
    g_true = np.cos(x) * np.exp(np.sin(x))
    g_true[0] += x[1]
    g_true[1] += x[0]
    ev = Recording()
    g, info = sd.gradient(f, x, step="adaptive", evaluator=ev, full_output=True)
    assert np.max(np.abs(g - g_true)) <= 1e-13 * np.max(np.abs(g_true))
    assert info.nfev == sum(len(b) for b in ev.batches)
    assert info.nfev <= 12 * len(x)  # 6 per coordinate in the first round, 2 per refinement
    assert len(ev.batches) <= 7  # one batch per round, every coordinate in it
    assert len(ev.batches[0]) == 6 * len(x)  # the first round: 3 pairs for every coordinate


def test_jacobian_of_vector_function():
    def f(x):
        return np.array([np.sin(x[0]) * x[1], np.exp(x[1]) + x[2] ** 3, np.log1p(x[0] ** 2) * x[2]])

    x = np.array([0.4, -0.3, 1.7])
    J_true = np.array([
        [np.cos(x[0]) * x[1], np.sin(x[0]), 0.0],
        [0.0, np.exp(x[1]), 3 * x[2] ** 2],
        [2 * x[0] / (1 + x[0] ** 2) * x[2], 0.0, np.log1p(x[0] ** 2)],
    ])
    J, info = sd.jacobian(f, x, step="adaptive", full_output=True)
    assert J.shape == info.error.shape == (3, 3)
    assert np.max(np.abs(J - J_true)) <= 1e-13 * np.max(np.abs(J_true))
    assert np.all(np.abs(J - J_true) <= info.error + 1e-15)


def test_jvp_adaptive():
    f = lambda x: np.array([np.sin(x[0]) * x[1], x[0] ** 2 * np.exp(x[1])])  # noqa: E731
    x, v = np.array([1.0, 2.0]), np.array([0.5, -1.5])
    J = np.array([[np.cos(1.0) * 2.0, np.sin(1.0)], [2 * np.exp(2.0), np.exp(2.0)]])
    out, info = sd.jvp(f, x, v, step="adaptive", full_output=True)
    assert np.max(np.abs(out - J @ v)) <= 1e-13 * np.max(np.abs(J @ v))
    assert np.all(np.abs(out - J @ v) <= info.error + 1e-15)


@pytest.mark.parametrize("method", ["forward", "backward"])
def test_one_sided_search(method):
    v, info = sd.derivative(np.exp, 1.0, method=method, step="adaptive", full_output=True)
    assert abs(v - np.e) <= 1e-11
    assert abs(v - np.e) <= info.error
    assert info.schemes[0].startswith(f"adaptive {method}")


def test_bounds_are_never_crossed_and_force_one_sided():
    x = np.array([0.0, 0.5, 1.0])
    lo, hi = np.array([0.0, 0.0, 0.999]), np.array([1.0, 1.0, 1.0])
    points = []

    def f(v):
        points.append(v.copy())
        return np.sum(np.exp(v) * np.arange(1, 4))

    g, info = sd.gradient(f, x, step="adaptive", bounds=(lo, hi), full_output=True)
    P = np.array(points)
    assert np.all(P >= lo) and np.all(P <= hi)
    assert np.max(np.abs(g - np.exp(x) * np.arange(1, 4))) <= 1e-9
    assert info.schemes[0].startswith("adaptive forward")
    assert info.schemes[1].startswith("adaptive central")
    assert info.schemes[2].startswith("adaptive backward")


def test_fixed_coordinate_is_zero():
    x = np.array([0.3, 0.7])
    g, info = sd.gradient(lambda v: np.sum(np.sin(v)), x, step="adaptive",
                          bounds=([0.3, 0.0], [0.3, 1.0]), full_output=True)
    assert g[0] == 0.0 and info.fixed == [0]
    assert abs(g[1] - np.cos(0.7)) <= 1e-13


def test_domain_edge_inside_the_first_stencil_is_retried_closer():
    # log(x) at 0.05: the first stencil reaches x - 0.0625 < 0, where log is NaN.
    def log(v):
        with np.errstate(invalid="ignore"):
            return np.log(v)

    v, info = sd.derivative(log, 0.05, step="adaptive", full_output=True)
    assert abs(v - 20.0) <= 1e-11 * 20
    assert abs(v - 20.0) <= info.error


def test_failures_skipped_with_skip_evaluator():
    def f(v):
        if v[0] < 0.02:
            raise ValueError("outside the domain")
        return np.log(v[0])

    g, info = sd.gradient(f, [0.05], step="adaptive",
                          evaluator=SerialEvaluator(on_failure="skip"), full_output=True)
    assert abs(g[0] - 20.0) <= 1e-10
    assert info.failures  # the failed points are reported


def test_complex_with_adaptive_keeps_the_complex_step():
    v, info = sd.derivative(np.sin, 0.3, method="complex", step="adaptive", full_output=True)
    assert info.nfev == 1 and abs(v - np.cos(0.3)) <= 1e-15


@pytest.mark.parametrize("kw, match", [
    ({"order": 4}, "order"),
    ({"rel_step": 1e-3}, "rel_step"),
])
def test_refused_combinations(kw, match):
    with pytest.raises(sd.ArgumentError, match=match):
        sd.derivative(np.sin, 0.3, step="adaptive", **kw)


def test_unknown_step_string():
    with pytest.raises(sd.ArgumentError, match="adaptive"):
        sd.gradient(np.sum, [1.0, 2.0], step="auto")


def test_same_call_same_points():
    ev1, ev2 = Recording(), Recording()
    f = lambda v: np.sum(np.cos(3 * v))  # noqa: E731
    sd.gradient(f, [0.2, 1.4], step="adaptive", evaluator=ev1)
    sd.gradient(f, [0.2, 1.4], step="adaptive", evaluator=ev2)
    assert len(ev1.batches) == len(ev2.batches)
    assert all(np.array_equal(a, b) for a, b in zip(ev1.batches, ev2.batches))


def test_direction_without_room_is_fixed():
    # x sits in a corner of the box and v points out of it both ways: no stencil fits.
    out, info = sd.jvp(np.sin, np.array([0.5, 1.0]), np.array([1.0, 2.0]), step="adaptive",
                       bounds=([0.5, 0.0], [1.0, 1.0]), full_output=True)
    assert np.all(out == 0) and info.schemes == ["fixed"] and info.fixed == [0]


def test_domain_edge_far_inside_the_scaled_stencil():
    # log(x - c) with the singularity 0.3 from x = 1e5: the first stencil (h ~ 2^-6·x) reaches
    # 200 000× past it; the retries jump 16×, 256×, ... closer and find the domain.
    c = 1e5 - 0.3

    def f(v):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.log(v - c)

    v, info = sd.derivative(f, 1e5, step="adaptive", full_output=True)
    t = 1 / (1e5 - c)
    assert abs(v - t) <= 1e-9 * abs(t)
    assert abs(v - t) <= info.error


def test_rounding_bound_sum_doubles_its_level():
    # A 32-term sum: |f| ≈ 40 against partials ≈ 2, so the first level's rounding is
    # ≈ 3e-13 relative; completing the level of twice the step halves it.
    rng = np.random.default_rng(5)
    x = rng.uniform(-4, 4, 32)
    f = lambda v: np.sum(np.exp(np.sin(v)))  # noqa: E731
    t = np.cos(x) * np.exp(np.sin(x))
    g, info = sd.gradient(f, x, step="adaptive", full_output=True)
    assert np.max(np.abs(g - t)) <= 3e-13 * np.max(np.abs(t))
    assert np.all(np.abs(g - t) <= info.error + 2 * np.finfo(float).eps * np.max(np.abs(t)))
    assert any("6.0" in s or "order 12" in s for s in info.schemes)  # some level was doubled
    assert info.nfev <= 15 * len(x)  # 8, + 4 to double, + 2 per further move


def test_polynomial_of_degree_4_costs_6_per_coordinate():
    # Central order 4 is exact on quartics, so the 3 pairs of the first round certify the
    # order-6 estimate at once: the level's 4th pair is never asked for.
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, 12)
    f = lambda v: np.sum(v**4 / 4 - v**2) + 0.5 * np.sum(v) ** 2  # noqa: E731
    t = x**3 - 2 * x + np.sum(x)
    ev = Recording()
    g, info = sd.gradient(f, x, step="adaptive", evaluator=ev, full_output=True)
    assert np.max(np.abs(g - t)) <= 1e-13 * np.max(np.abs(t))
    assert info.nfev == 6 * len(x) and len(ev.batches) == 1
