"""check_gradient / check_jacobian / simdiff.testing with noise=: a correct gradient of a noisy
simulator passes, a wrong one still fails."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import simdiff as sd
from simdiff.noise import NoiseWarning

N = 8
A = np.linspace(0.5, 1.5, N)
X = np.linspace(-1.0, 1.0, N)


def f0(x):
    return 8.0 + 0.3 * np.sum(np.sin(A * x)) + 0.05 * np.sum(x**2)


def g0(x):
    return 0.3 * A * np.cos(A * x) + 0.1 * x


def noisy(sigma, seed=0):
    rng = np.random.default_rng(seed)
    return lambda x: f0(x) + sigma * rng.standard_normal()


def wrong_entry(x):  # 1 % off in one entry
    g = g0(x)
    g[3] *= 1.01
    return g


@pytest.mark.parametrize("noise", [1e-6, "estimate"])
def test_correct_gradient_of_noisy_f_passes_and_wrong_fails(noise):
    for seed in range(3):
        r = sd.check_gradient(noisy(1e-6, seed), g0, X, noise=noise)
        assert r.passed and r.verdict in ("excellent", "ok"), str(r)
        assert r.noise_tol > 0
        bad = sd.check_gradient(noisy(1e-6, seed), wrong_entry, X, noise=noise)
        assert not bad.passed and bad.verdict == "bug", str(bad)
        assert bad.mismatched[3] and bad.mismatched.sum() == 1
        assert "noise" in bad.summary()


def test_without_noise_the_correct_gradient_of_a_noisy_f_fails():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoiseWarning)
        r = sd.check_gradient(noisy(1e-6), g0, X)
    assert not r.passed and r.noise_tol == 0.0


def test_check_jacobian_with_noise_per_output():
    sig = np.array([1e-8, 1e-5])
    rng = np.random.default_rng(2)

    def f(x):
        return np.array([f0(x), np.sum(np.cos(x))]) + sig * rng.standard_normal(2)

    def jac(x):
        return np.vstack([g0(x), -np.sin(x)])

    assert sd.check_jacobian(f, jac, X, noise=sig).passed

    def jac_bad(x):
        J = jac(x)
        J[1, 2] = -J[1, 2]
        return J

    r = sd.check_jacobian(f, jac_bad, X, noise=sig)
    assert not r.passed and r.mismatched[1, 2]


def test_testing_asserts_take_noise():
    r = sd.testing.assert_gradient(noisy(1e-7, 4), g0, X, noise=1e-7)
    assert r.passed
    with pytest.raises(AssertionError, match="noise"):
        sd.testing.assert_gradient(noisy(1e-7, 4), wrong_entry, X, noise=1e-7)


def test_printed_outputs_check_with_noise_estimate():
    def f(x):
        return float(f"{f0(x):.7g}")

    assert sd.check_gradient(f, g0, X, noise="estimate").passed
    assert not sd.check_gradient(f, wrong_entry, X, noise="estimate").passed
