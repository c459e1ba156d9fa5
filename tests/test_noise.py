"""noise_level (ECnoise) against known noise, and the noise helpers, against their formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

import simdiff as sd
from simdiff.noise import (NoiseEstimate, curvature_model, decimal_quantum, noise_level,
                           noise_optimal_step, resolve_noise)


def smooth(x):
    x = np.atleast_1d(x)
    return 8.0 + 0.3 * np.sin(x).sum() + 0.1 * np.exp(x[0] * x[-1])


def noisy(sigma, seed):
    rng = np.random.default_rng(seed)
    return lambda x: smooth(x) + sigma * rng.standard_normal()


def printed(digits):
    return lambda x: float(f"{smooth(x):.{digits}g}")


class CountingEvaluator(sd.SerialEvaluator):
    def __init__(self):
        super().__init__()
        self.batches = []

    def evaluate(self, sim, X):
        self.batches.append(len(X))
        return super().evaluate(sim, X)


@pytest.mark.parametrize("sigma", [1e-11, 1e-8, 1e-6, 1e-3])
def test_gaussian_noise_within_factor_2_in_90_percent_of_seeds(sigma):
    x = np.linspace(0.3, 1.2, 5)
    ratios, nfev = [], []
    for seed in range(30):
        est = noise_level(noisy(sigma, seed), x, seed=seed)
        ratios.append(float(est.level[0]) / sigma)
        nfev.append(est.nfev)
        assert est.status == "ok"
    ratios = np.array(ratios)
    assert np.mean((ratios > 0.5) & (ratios < 2.0)) >= 0.9, ratios
    assert np.all((ratios > 1 / 3.5) & (ratios < 3.5)), ratios
    assert max(nfev) <= 12


@pytest.mark.parametrize("digits", [6, 7, 8])
def test_printed_digits_give_the_quantization_noise(digits):
    # rounding to q = one unit of the last printed digit: uniform error of std q/sqrt(12)
    for seed in range(8):
        x = np.random.default_rng(seed).uniform(0.2, 1.5, 3)
        v = smooth(x)
        q = 10.0 ** (math.floor(math.log10(abs(v))) - digits + 1)
        est = noise_level(printed(digits), x, seed=seed)
        assert est.status.startswith("ok")
        assert 0.5 < est.level[0] / (q / math.sqrt(12)) < 2.0, (est, q)


def test_smooth_function_is_at_rounding_level():
    est = noise_level(smooth, np.array([0.4, 0.9]))
    assert est.status == "ok"
    assert est.level[0] < 50 * np.finfo(float).eps * 8.0
    assert est.relative[0] == pytest.approx(est.level[0] / abs(smooth(np.array([0.4, 0.9]))))


def test_constant_function_says_spacing_too_small_and_retries():
    ev = CountingEvaluator()
    est = noise_level(lambda x: 3.0, [1.0, 2.0], evaluator=ev)
    assert est.status.startswith("spacing too small")
    assert len(ev.batches) > 1 and all(b == 12 for b in ev.batches)  # one batch per spacing
    assert est.nfev == sum(ev.batches)
    assert est.level[0] == 0.0


def test_trend_dominated_spacing_is_retried_smaller():
    sigma = 1e-9
    f = noisy(sigma, 3)
    est = noise_level(lambda x: f(x) + 0.0 * x[0], np.array([0.5]), h=0.5)
    assert "too large" in est.status and est.status.startswith("ok")
    assert est.h < 0.5
    assert 0.3 < est.level[0] / sigma < 3


def test_one_batch_when_the_first_spacing_works():
    ev = CountingEvaluator()
    est = noise_level(noisy(1e-6, 0), np.ones(4), evaluator=ev)
    assert ev.batches == [12] and est.nfev == 12


def test_vector_output_levels_per_output():
    rng = np.random.default_rng(5)
    sig = np.array([1e-9, 1e-5, 1e-3])

    def f(x):
        base = np.array([smooth(x), 2.0 + np.cos(x).sum(), 50.0 * x[0]])
        return base + sig * rng.standard_normal(3)

    est = noise_level(f, np.array([0.2, 0.7]), seed=1)
    assert est.level.shape == (3,)
    assert np.all(est.level / sig > 0.25) and np.all(est.level / sig < 4), est
    with pytest.raises(sd.ArgumentTypeError):
        float(est)


def test_scalar_estimate_float_and_repr():
    est = noise_level(lambda t: math.sin(t) + 1e-6 * np.sin(1e9 * t), 0.3)
    assert isinstance(est, NoiseEstimate)
    assert float(est) == est.level[0]
    r = repr(est)
    assert "level=" in r and "status='ok'" in r and "nfev=12" in r


def test_bad_input_names_the_argument():
    with pytest.raises(sd.ArgumentError, match="x"):
        noise_level(smooth, [1.0, np.nan])
    with pytest.raises(sd.ArgumentError, match="x"):
        noise_level(smooth, np.inf)
    with pytest.raises(sd.ArgumentError, match="nf"):
        noise_level(smooth, [1.0], nf=2)
    with pytest.raises(sd.ArgumentError, match="h"):
        noise_level(smooth, [1.0], h=-1.0)
    with pytest.raises(sd.ArgumentError, match="direction"):
        noise_level(smooth, [1.0, 2.0], direction=[0.0, 0.0])


def test_resolve_noise():
    assert resolve_noise(None, 3) is None
    assert np.array_equal(resolve_noise(1e-6, 3), np.full(3, 1e-6))
    assert np.array_equal(resolve_noise([1.0, 2.0], 2), [1.0, 2.0])
    est = noise_level(noisy(1e-6, 1), np.ones(2))
    assert np.array_equal(resolve_noise(est, 1), est.level)
    for bad in (-1.0, np.nan, np.inf, "loud", [1.0, 2.0, 3.0], [[1.0]], True, object()):
        with pytest.raises(sd.ArgumentError, match="noise"):
            resolve_noise(bad, 2)


def test_noise_optimal_step_formulas():
    eps, mu = 1e-6, 2.0
    assert noise_optimal_step(eps, mu, "central") == pytest.approx((3 * eps / mu) ** (1 / 3))
    assert noise_optimal_step(eps, mu, "forward") == pytest.approx(8 ** 0.25 * math.sqrt(eps / mu))
    assert noise_optimal_step(eps, mu, "backward") == pytest.approx(8 ** 0.25 * math.sqrt(eps / mu))
    assert noise_optimal_step(eps, mu, "five-point") == pytest.approx((11.25 * eps / mu) ** 0.2)
    # second central difference: minimum of 4·eps/h² + mu·h²/12
    assert noise_optimal_step(eps, mu, "central", deriv=2) == pytest.approx((48 * eps / mu) ** 0.25)
    # mu = 0 falls back to a curvature of 1000·eps, never an infinite step
    h0 = noise_optimal_step(eps, 0.0, "central")
    assert np.isfinite(h0) and h0 == pytest.approx((3 / 1000) ** (1 / 3))
    assert curvature_model(0.0, 1e-6) == pytest.approx(1e-3)
    assert curvature_model(-8.0, 1e-6) == pytest.approx(8.0)


def test_central_step_minimizes_the_error_model():
    eps, mu = 1e-7, 3.0
    h = float(noise_optimal_step(eps, mu, "central"))
    model = lambda t: eps / t + mu * t**2 / 6
    assert model(h) <= min(model(0.8 * h), model(1.25 * h))


def test_decimal_quantum():
    q, d = decimal_quantum(np.array([8.7311, 1.28815, 1200.0, 0.000123, 0.1 + 0.2]))
    assert q[0] == pytest.approx(1e-4) and d[0] == 5
    assert q[1] == pytest.approx(1e-5) and d[1] == 6
    assert q[2] == pytest.approx(100.0) and d[2] == 2
    assert q[3] == pytest.approx(1e-6) and d[3] == 3
    assert d[4] == 17
