"""``projectile`` and ``pendulum`` against closed forms, values and derivatives.

Derivatives are taken with sd.jacobian (central differences): they can match the closed form
only if the ODE solution is smooth in the parameters far below the difference step.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.special import ellipk

import simdiff as sd

G = 9.81


def drag_free(v, th, h=0.0, g=G):
    """range, max_height, flight_time of a drag-free throw from height h."""
    vz = v * np.sin(th)
    t = (vz + np.sqrt(vz ** 2 + 2 * g * h)) / g
    return np.array([v * np.cos(th) * t, h + vz ** 2 / (2 * g), t])


def drag_free_jac(v, th, g=G):
    """d(range, max_height, flight_time)/d(speed, angle) from the ground: v² sin 2θ / g etc."""
    return np.array([
        [2 * v * np.sin(2 * th) / g, 2 * v ** 2 * np.cos(2 * th) / g],
        [v * np.sin(th) ** 2 / g, v ** 2 * np.sin(th) * np.cos(th) / g],
        [2 * np.sin(th) / g, 2 * v * np.cos(th) / g],
    ])


@pytest.mark.parametrize("v, th", [(20.0, 0.6), (5.0, 0.2), (50.0, 1.3), (12.0, np.pi / 4)])
def test_projectile_without_drag_matches_the_closed_form(v, th):
    sim = sd.load("projectile")
    np.testing.assert_allclose(sim([v, th, 0.0]), drag_free(v, th), rtol=1e-11)
    J = sd.jacobian(sim, [v, th, 0.0])
    assert J.shape == (3, 3)
    np.testing.assert_allclose(J[:, :2], drag_free_jac(v, th), rtol=1e-6, atol=1e-9 * v)


def test_projectile_range_derivatives_to_1e_6_and_an_honest_error_estimate():
    sim = sd.load("projectile", outputs=["range"])
    g, info = sd.gradient(sim, [20.0, 0.6, 0.0], full_output=True)
    exact = drag_free_jac(20.0, 0.6)[0]
    rel = np.abs(g[:2] / exact - 1)
    assert rel.max() < 1e-6, rel
    assert np.all(np.abs(g[:2] - exact) <= 10 * info.error[:2] + 1e-12)
    assert g[2] < 0, "drag shortens the range"


def test_projectile_from_a_height():
    sim = sd.load("projectile", height=10.0, g=1.62)
    np.testing.assert_allclose(sim([7.0, 0.4, 0.0]), drag_free(7.0, 0.4, 10.0, g=1.62), rtol=1e-11)


def test_vertical_throw_with_drag_matches_its_closed_form():
    """Straight up against quadratic drag: H = ln(1 + k v²/g) / (2k), dH/dv = v / (g + k v²)."""
    k, v = 0.05, 20.0
    sim = sd.load("projectile", outputs=["max_height"])
    H = np.log1p(k * v * v / G) / (2 * k)
    assert sim([v, np.pi / 2, k])[0] == pytest.approx(H, rel=1e-10)
    dH_dk = -np.log1p(k * v * v / G) / (2 * k * k) + v * v / G / (2 * k * (1 + k * v * v / G))
    g = sd.gradient(sim, [v, np.pi / 2, k])
    np.testing.assert_allclose(g[[0, 2]], [v / (G + k * v * v), dH_dk], rtol=1e-6)


def test_projectile_configuration():
    assert sd.load("projectile", outputs=["flight_time", "range"])([20.0, 0.6, 0.0]).shape == (2,)
    with pytest.raises(sd.ConfigError, match="'distance'.*allowed"):
        sd.load("projectile", outputs=["distance"])
    with pytest.raises(sd.ConfigError, match="height must be a finite number >= 0"):
        sd.load("projectile", height=-1.0)
    with pytest.raises(sd.SimulationError, match="speed must be > 0"):
        sd.load("projectile")([0.0, 0.5, 0.0])


@pytest.mark.parametrize("adapter, cfg, message", [
    ("projectile", {"g": "abc"}, "g must be a finite number > 0 (m/s^2); got 'abc'"),
    ("projectile", {"g": float("inf")}, "g must be a finite number > 0 (m/s^2); got inf"),
    ("projectile", {"height": None}, "height must be a finite number >= 0 (m); got None"),
    ("projectile", {"rtol": -1e-9}, "rtol must be a finite number > 0; got -1e-09"),
    ("pendulum", {"T": "x"}, "T must be a finite number > 0 (s); got 'x'"),
    ("pendulum", {"frequency": "fast"}, "frequency must be a finite number (rad/s); got 'fast'"),
    ("pendulum", {"omega0": [1.0]}, "omega0 must be a finite number (rad/s); got [1.0]"),
])
def test_configuration_values_of_the_wrong_kind_are_config_errors(adapter, cfg, message):
    """From the CLI, --set g=abc arrives as the string 'abc': a ConfigError naming the key, the
    value and what is allowed, not a TypeError from deep inside."""
    with pytest.raises(sd.ConfigError) as err:
        sd.load(adapter, **cfg)
    assert str(err.value) == message


def linear_pendulum(x, T=10.0, g=G, W=1.0, omega0=0.0):
    """θ(T), ω(T) of θ'' + cθ' + (g/L)θ = A cos(Wt), θ(0) = θ0, ω(0) = omega0 (underdamped).

    Written with numpy only, so that complex-step differentiation gives its exact derivatives.
    """
    L, c, A, th0 = x
    w2 = g / L
    D = (w2 - W ** 2) ** 2 + (c * W) ** 2
    P, Q = A * (w2 - W ** 2) / D, A * c * W / D  # particular solution P cos Wt + Q sin Wt
    wd = np.sqrt(w2 - c * c / 4)
    C1 = th0 - P
    C2 = (omega0 - Q * W + c / 2 * C1) / wd
    e, co, si = np.exp(-c * T / 2), np.cos(wd * T), np.sin(wd * T)
    theta = e * (C1 * co + C2 * si) + P * np.cos(W * T) + Q * np.sin(W * T)
    omega = e * (-c / 2 * (C1 * co + C2 * si) - C1 * wd * si + C2 * wd * co) \
        - P * W * np.sin(W * T) + Q * W * np.cos(W * T)
    return np.array([theta, omega])


def complex_step_jacobian(f, x, h=1e-30):
    x = np.asarray(x, dtype=complex)
    return np.array([np.imag(f(x + 1j * h * e)) / h for e in np.eye(len(x))]).T


@pytest.mark.parametrize("x", [[1.0, 0.1, 1e-4, 1e-4], [2.5, 0.3, -2e-4, 5e-5]])
def test_pendulum_at_small_angles_matches_the_linearized_solution(x):
    """At amplitudes ~1e-4 rad, sin θ = θ to a relative 1e-9: values and all four
    derivatives (length, damping, drive, theta0) agree with the linear closed form."""
    sim = sd.load("pendulum")
    scale = np.abs(linear_pendulum(x))
    np.testing.assert_allclose(sim(x), linear_pendulum(x), rtol=0, atol=1e-6 * scale.max())
    J = sd.jacobian(sim, x)
    exact = complex_step_jacobian(linear_pendulum, x)
    np.testing.assert_allclose(J, exact, rtol=2e-6, atol=1e-6 * np.abs(exact).max())


def test_pendulum_is_nonlinear_its_period_grows_with_amplitude():
    """Undamped, undriven, from rest at θ0: after one exact period 4·sqrt(L/g)·K(sin²(θ0/2))
    it is back at θ0 with ω = 0, while the linear period would be far off."""
    th0, L = 2.0, 1.3
    period = 4 * np.sqrt(L / G) * ellipk(np.sin(th0 / 2) ** 2)
    sim = sd.load("pendulum", T=period)
    np.testing.assert_allclose(sim([L, 0.0, 0.0, th0]), [th0, 0.0], atol=1e-8)
    linear = sd.load("pendulum", T=2 * np.pi * np.sqrt(L / G))
    assert abs(linear([L, 0.0, 0.0, th0])[0] - th0) > 0.1


def test_physics_models_pickle():
    for name, x in [("projectile", [20.0, 0.6, 0.1]), ("pendulum", [1.0, 0.1, 0.5, 0.2])]:
        sim = sd.load(name)
        assert pickle.loads(pickle.dumps(sim))(x).tolist() == sim(x).tolist()
