"""noise= on the derivative functions: noise-optimal steps, the noise term in info.error, and
the detection of noise nobody announced."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import simdiff as sd
from simdiff.noise import NOISE_FACTOR, NoiseWarning, noise_optimal_step

N = 8
A = np.linspace(0.5, 1.5, N)


def f0(x):
    return 8.0 + 0.3 * np.sum(np.sin(A * x)) + 0.05 * np.sum(x**2)


def g0(x):
    return 0.3 * A * np.cos(A * x) + 0.1 * x


def noisy(sigma, seed):
    rng = np.random.default_rng(seed)
    return lambda x: f0(x) + sigma * rng.standard_normal()


X = np.linspace(-1.0, 1.0, N)


def test_given_level_gives_noise_optimal_central_steps_and_honest_errors():
    sigma = 1e-6
    covered, worst = [], 0.0
    for seed in range(10):
        g, info = sd.gradient(noisy(sigma, seed), X, noise=sigma, full_output=True)
        err = np.abs(g - g0(X))
        worst = max(worst, err.max())
        covered.append(info.error >= err)
        assert np.array_equal(info.noise, [sigma])
        assert info.nfev == 2 * N + 1  # f(x) once for the curvature model
    # Moré & Wild: h = (3 eps / mu)^(1/3) with mu = |f(x)| on the unit scale
    h = noise_optimal_step(sigma, abs(f0(X)), "central")
    np.testing.assert_allclose(info.step, h * np.maximum(1, np.abs(X)), rtol=1e-6)
    # the theory's bound per entry: 3σ/(√2 h) (3 standard deviations of the noise part) plus
    # the truncation |f'''| h²/6, |f'''| ≤ 0.3·max(A)³
    bound = 3 * sigma / (math.sqrt(2) * h) + 0.3 * A.max() ** 3 * h**2 / 6
    assert worst <= bound
    assert bound < 4e-4
    assert np.mean(covered) >= 0.95


def test_default_steps_on_the_same_noise_are_far_off_and_warned():
    with pytest.warns(NoiseWarning, match="noise="):
        g, info = sd.gradient(noisy(1e-6, 0), X, full_output=True)
    err = np.abs(g - g0(X))
    assert err.max() > 1e-2  # what the issue reports: ~0.2 at default steps
    assert np.mean(info.error >= err) >= 0.75  # the error grew to match


def test_estimate_mode_costs_at_most_2n_plus_12_and_is_accurate():
    for seed in range(5):
        g, info = sd.gradient(noisy(1e-6, seed), X, noise="estimate", full_output=True)
        err = np.abs(g - g0(X))
        assert info.nfev <= 2 * N + 12
        assert err.max() <= 3e-4
        assert np.mean(info.error >= err) >= 7 / 8
        assert 1 / 3 < info.noise[0] / 1e-6 < 3
        assert info.noise_estimate.status.startswith("ok")


def test_forward_difference_steps_and_error_term():
    sigma = 1e-7
    g, info = sd.gradient(noisy(sigma, 1), X, method="forward", noise=sigma, full_output=True)
    h = 8 ** 0.25 * math.sqrt(sigma / abs(f0(X)))
    np.testing.assert_allclose(info.step, h * np.maximum(1, np.abs(X)), rtol=1e-6)
    # the noise term NOISE_FACTOR·σ·sqrt(2)/h is part of every entry's error
    assert np.all(info.error >= NOISE_FACTOR * sigma * math.sqrt(2) / info.step)
    assert info.nfev == N + 1  # f(x) evaluated once, reused as the stencil's centre
    assert np.all(np.abs(g - g0(X)) <= info.error)


def test_explicit_step_is_kept_and_the_noise_term_added():
    sigma = 1e-5
    g, info = sd.gradient(noisy(sigma, 2), X, step=1e-3, noise=sigma, full_output=True)
    np.testing.assert_allclose(info.step, 1e-3, rtol=1e-9)
    assert np.all(info.error >= NOISE_FACTOR * sigma * math.sqrt(0.5) / 1e-3 * 0.999)


def test_vector_outputs_with_different_noise_per_output():
    sig = np.array([1e-9, 1e-4])
    rng = np.random.default_rng(3)

    a = A[:3]

    def f(x):
        base = np.array([8.0 + 0.3 * np.sum(np.sin(a * x)), 3.0 + np.sum(np.cos(x))])
        return base + sig * rng.standard_normal(2)

    x3 = X[:3]
    J, info = sd.jacobian(f, x3, noise=sig, full_output=True)
    J0 = np.vstack([0.3 * a * np.cos(a * x3), -np.sin(x3)])
    err = np.abs(J - J0)
    assert np.all(err <= info.error)
    # the noisier output decides the step (largest of the per-output steps)
    h = noise_optimal_step(1e-4, 3.0 + np.sum(np.cos(x3)), "central")
    np.testing.assert_allclose(info.step, h * np.maximum(1, np.abs(x3)), rtol=1e-3)  # f(x) is noisy


def test_derivative_jvp_hessian_take_noise():
    rng = np.random.default_rng(4)
    d, info = sd.derivative(lambda t: math.exp(t) + 1e-8 * rng.standard_normal(), 0.5,
                            noise="estimate", full_output=True)
    assert abs(d - math.exp(0.5)) <= info.error and info.error < 1e-3
    v = np.ones(N) / math.sqrt(N)
    out, info = sd.jvp(noisy(1e-6, 5), X, v, noise=1e-6, full_output=True)
    assert abs(out - g0(X) @ v) <= info.error  # a float-valued f: a float (issue 14)

    rng2 = np.random.default_rng(6)

    def h3(x):
        return 8 + np.sum(np.sin(x)) + 0.5 * x[0] * x[1] + 1e-6 * rng2.standard_normal()

    x3 = np.array([0.3, 0.7, 1.1])
    Ht = np.diag(-np.sin(x3))
    Ht[0, 1] = Ht[1, 0] = 0.5
    H, info = sd.hessian(h3, x3, noise=1e-6, full_output=True)
    assert np.all(np.abs(H - Ht) <= info.error)
    assert np.abs(H - Ht).max() < 5e-3
    assert info.nfev <= 2 * 3**2 + 1 + 2 * 3  # the scheme, plus the wide pairs of hessians.py


@pytest.mark.parametrize("bad", [-1e-6, np.nan, np.inf, "loud", [1e-6, 2e-6]])
def test_bad_noise_is_refused_naming_noise(bad):
    calls = []

    def f(x):
        calls.append(1)
        return float(np.sum(x))

    with pytest.raises(sd.ArgumentError, match="noise"):
        sd.gradient(f, np.ones(3), noise=bad)
    if not isinstance(bad, list):  # the length is known only after f(x)
        assert calls == []


def test_printed_six_digits_gradient_within_1e_minus_3_relative():
    def f(x):
        return float(f"{f0(x):.6g}")

    g, info = sd.gradient(f, X, noise="estimate", full_output=True)
    rel = np.linalg.norm(g - g0(X)) / np.linalg.norm(g0(X))
    assert rel <= 1e-3
    assert np.all(np.abs(g - g0(X)) <= info.error)


def test_forward_difference_of_equal_printed_values_is_never_a_confident_zero():
    def f(x):
        return float(f"{8.0 + 1e-4 * x[0] + np.sin(x[1]):.8g}")

    with pytest.warns(NoiseWarning, match="quantized"):
        g, info = sd.gradient(f, np.array([0.3, 0.2]), method="forward", full_output=True)
    # f(x + h e_0) prints as f(x): the difference is 0, its error must cover the truth 1e-4
    assert g[0] == 0.0
    assert info.error[0] >= 1e-4
    assert abs(g[1] - math.cos(0.2)) <= info.error[1]


def test_equal_printed_values_that_are_short_binary_fractions_still_get_the_probe():
    # f prints 1 at every point of the forward stencil at x = 0: 1.0 is also what exact
    # arithmetic gives, but a value that takes ONE value everywhere goes to the probe, which
    # prints short again (a printed output), never a confident 0 ± 1.5e-8
    f = lambda x: float(f"{1.0 + np.sum(np.arange(1, 4) * x):.6g}")  # noqa: E731
    with pytest.warns(NoiseWarning, match="quantized"):
        g, info = sd.gradient(f, np.zeros(3), method="forward", full_output=True)
    assert np.all(np.abs(g - np.arange(1, 4)) <= info.error)
    # a flat f (1 + Σx³ at 0: f(x + h) == f(x) in float64) is probed too, and stays exact
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g, info = sd.gradient(lambda x: float(1 + np.sum(x ** 3)), np.zeros(3), method="forward",
                              full_output=True)
    assert np.all(g == 0) and info.nfev == 5


def test_smooth_functions_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoiseWarning)
        for method in ("central", "forward", "five-point"):
            sd.gradient(f0, X, method=method)
            sd.jacobian(lambda x: np.array([np.sin(x).sum(), np.prod(x), x[0] ** 2]),
                        np.array([0.0, 1.0, 2.0]), method=method)
            sd.gradient(lambda x: np.sum(x**2), np.array([1.0, 2.0, 3.0]), method=method)


@pytest.mark.parametrize("method", ["central", "forward", "five-point"])
@pytest.mark.parametrize("digits", [6, 8])
def test_printed_outputs_keep_every_method_honest(method, digits):
    def f(x):
        return float(f"{f0(x):.{digits}g}")

    for step in (None, "adaptive"):
        with pytest.warns(NoiseWarning):
            g, info = sd.gradient(f, X, method=method, step=step, full_output=True)
        err = np.abs(g - g0(X))
        assert np.mean(info.error >= err) >= 7 / 8, (step, err, info.error)


@pytest.mark.parametrize("method", ["central", "five-point"])
def test_adaptive_stays_honest_on_random_noise(method):
    covered = []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        with pytest.warns(NoiseWarning, match="noisy"):
            g, info = sd.gradient(lambda x: f0(x) + 1e-6 * rng.standard_normal(), X,
                                  method=method, step="adaptive", full_output=True)
        covered.append(info.error >= np.abs(g - g0(X)))
    assert np.mean(covered) >= 0.9


def test_one_sided_runs_show_their_noise():
    # the points a one-sided adaptive search evaluates: f(x) and x + t·h·e_j, t = 1..6
    # (the search itself is slow on noise, so its points are built here directly)
    from simdiff.noise import adaptive_noise_error, noise_context

    rng = np.random.default_rng(0)
    x, h, sigma = X[:4], 2.0**-8, 1e-6
    pts = [x] + [x + t * h * np.eye(4)[j] for j in range(4) for t in range(1, 7)]
    P = np.array(pts)
    F = np.array([[f0(np.r_[p, X[4:]]) + sigma * rng.standard_normal()] for p in P])
    D = g0(X)[:4, None]
    E = np.full((4, 1), 1e-12)
    with noise_context(None), pytest.warns(NoiseWarning, match="noisy"):
        E2 = adaptive_noise_error(x, P, F, np.ones(len(P), bool), D, E, np.full(4, h), one_sided=True)
    # 3σ·‖w‖₂/h with the order-3 forward weights' ‖w‖₂·h = 3.8
    np.testing.assert_allclose(E2[:, 0] / (3 * 3.8 * sigma / h), 1.0, rtol=0.7)
    F0 = np.array([[f0(np.r_[p, X[4:]])] for p in P])  # the same without noise: no floor
    with noise_context(None), warnings.catch_warnings():
        warnings.simplefilter("error", NoiseWarning)
        assert np.array_equal(adaptive_noise_error(x, P, F0, np.ones(len(P), bool), D, E,
                                                   np.full(4, h), one_sided=True), E)


def test_detection_leaves_fast_varying_smooth_functions_alone():
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoiseWarning)
        for scale in (1e-8, 1e8):
            for method in ("central", "forward", "five-point"):
                for step in (None, "adaptive") if method != "forward" or scale == 1e8 else (None,):
                    x = np.array([0.157, 0.3, 0.9, 1.2])
                    sd.gradient(lambda z: scale * np.sum(np.sin(10 * z)), x, method=method, step=step)
                    sd.gradient(lambda z: scale * np.sum(np.arange(1, 5) * z**2), np.zeros(4),
                                method=method, step=step)


def test_sparse_jacobian_takes_noise_and_wrong_lengths_are_refused():
    rng = np.random.default_rng(7)
    n = 6

    def f(x):  # tridiagonal Jacobian
        y = x**2
        y[1:] += x[:-1]
        return y + 1e-6 * rng.standard_normal(n)

    x = np.linspace(0.5, 1.5, n)
    S = np.eye(n, dtype=bool) | np.eye(n, k=-1, dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the pattern check takes the noise too: no false alarm
        J, info = sd.jacobian(f, x, sparsity=S, noise=1e-6, full_output=True)
    Jt = np.diag(2 * x) + np.eye(n, k=-1)
    assert np.all(np.abs(J - Jt)[S] <= info.error[S])
    assert np.array_equal(info.noise, np.full(n, 1e-6))
    with pytest.raises(sd.ArgumentError, match="noise"):
        sd.jacobian(f, x, noise=[1e-6, 1e-6], step=1e-3)
    with pytest.raises(sd.ArgumentError, match="noise"):
        sd.jacobian(f, x, noise=[1e-6, 1e-6])


def test_zero_valued_minimum_is_not_taken_for_noise():
    # Rosenbrock near (1, ..., 1): f ~ 1e-11 while f'' ~ 800, so the midpoints of the central
    # pairs differ across inputs by h^2 f''/2 ~ 1e-8, far beyond what |f| and |f'| allow a
    # curvature; the pairs at 2h show the spread for what it is (no NoiseWarning, a sharp error)
    def rosen(x):
        return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))

    def rosen_der(x):
        d = np.zeros_like(x)
        d[1:-1] = 200 * (x[1:-1] - x[:-2] ** 2) - 400 * (x[2:] - x[1:-1] ** 2) * x[1:-1] \
            - 2 * (1 - x[1:-1])
        d[0] = -400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0])
        d[-1] = 200 * (x[-1] - x[-2] ** 2)
        return d

    x = 1.0 + 1e-6 * np.arange(10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither a NoiseWarning nor an unresolved entry
        g, info = sd.gradient(rosen, x, full_output=True)
    err = np.abs(g - rosen_der(x))
    assert np.all(info.error >= err) and info.error.max() < 1e-9
    assert info.nfev == 4 * 10 + 1  # the pairs at 2h: 2n more runs


def test_noise_at_a_zero_valued_minimum_is_still_found():
    rng = np.random.default_rng(3)

    def f(x):
        return float(np.sum((x - 1.0) ** 2) + 1e-8 * rng.standard_normal())

    x = 1.0 + 1e-6 * np.arange(8)
    with pytest.warns(NoiseWarning):
        g, info = sd.gradient(f, x, full_output=True)
    err = np.abs(g - 2 * (x - 1.0))
    assert np.mean(info.error >= err) >= 7 / 8
