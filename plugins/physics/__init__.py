"""Adapters ``projectile`` and ``pendulum``: small physics models on ``scipy.integrate.solve_ivp``.

They need nothing beyond scipy, so they are the embedded default simulators of the examples and
the CLI. Both integrate with DOP853 at rtol = atol ~ 1e-12: a finite difference with step h
divides the solver's noise ε by h, so ε must stay far below the derivative's accuracy times h
(for central differences h ~ 6e-6·|x|, so ε ~ 1e-12 gives ~1e-7 relative in the derivative).
Without drag the projectile's trajectory is a quadratic in t, which an order-8 Runge–Kutta
step and its dense output reproduce exactly, so its outputs are smooth to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from simdiff.errors import ConfigError, SimulationError
from simdiff.host import hookimpl
from simdiff.simulator import Simulator

__all__ = ["Pendulum", "Projectile", "simdiff_adapters"]


def _select_outputs(outputs: Sequence[str] | str | None, allowed: Sequence[str]) -> list[str]:
    """``outputs`` checked against ``allowed`` (None: all of them, in their order)."""
    if outputs is None:
        return list(allowed)
    chosen = [outputs] if isinstance(outputs, str) else list(outputs)
    bad = [o for o in chosen if o not in allowed]
    if bad or not chosen:
        raise ConfigError(
            f"outputs={outputs!r}: {', '.join(map(repr, bad)) or 'empty'} not allowed; "
            f"allowed: a non-empty subset of {list(allowed)}"
        )
    return chosen


def _number(value: object, key: str, rule: str = "finite", unit: str = "") -> float:
    """``value`` as a finite float obeying ``rule`` ("finite", "> 0" or ">= 0"); ConfigError
    naming the key, the value and what is allowed otherwise."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        v = math.nan
    ok = math.isfinite(v) and not isinstance(value, bool)
    ok = ok and (rule == "finite" or (v > 0 if rule == "> 0" else v >= 0))
    if not ok:
        what = "a finite number" if rule == "finite" else f"a finite number {rule}"
        raise ConfigError(f"{key} must be {what}{f' ({unit})' if unit else ''}; got {value!r}")
    return v


class _ODEModel(Simulator):
    """Shared configuration of the solve_ivp models (not registered itself)."""

    all_outputs: tuple[str, ...] = ()
    complex_safe = False
    prefer = "processes"

    def _solve(self, rhs, t_end, y0, events=None):
        from scipy.integrate import solve_ivp  # here: keeps `simdiff adapters` fast

        sol = solve_ivp(
            rhs, (0.0, t_end), y0, method="DOP853", rtol=self.rtol, atol=self.atol, events=events
        )
        if sol.status < 0:
            raise SimulationError(f"{self.name}: solve_ivp failed: {sol.message}")
        return sol

    def _pick(self, values: dict[str, float]) -> np.ndarray:
        return np.array([values[o] for o in self.outputs], dtype=float)


class Projectile(_ODEModel):
    """Point mass thrown over flat ground with quadratic drag, a = -g z - k|v|v."""

    name = "projectile"
    inputs = ("speed", "angle", "drag")
    all_outputs = ("range", "max_height", "flight_time")

    def __init__(
        self,
        g: float = 9.81,
        height: float = 0.0,
        outputs: Sequence[str] | None = None,
        rtol: float = 1e-12,
        atol: float = 1e-12,
    ) -> None:
        """
        Parameters
        ----------
        g : gravitational acceleration [m/s^2], > 0.
        height : launch height above the ground [m], >= 0.
        outputs : a subset of ("range" [m], "max_height" [m], "flight_time" [s]).
        rtol, atol : solve_ivp tolerances.

        Inputs x = (speed [m/s], angle [rad] above the horizon, drag k [1/m]). Without drag
        and from the ground, range = v^2 sin(2θ)/g, max_height = (v sin θ)^2/(2g) and
        flight_time = 2 v sin θ / g.
        """
        self.g = _number(g, "g", "> 0", "m/s^2")
        self.height = _number(height, "height", ">= 0", "m")
        self.rtol, self.atol = _number(rtol, "rtol", "> 0"), _number(atol, "atol", "> 0")
        self.outputs = _select_outputs(outputs, self.all_outputs)

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        speed, angle, k = (float(v) for v in x)
        g = self.g
        if not speed > 0:
            raise SimulationError(f"projectile: speed must be > 0 m/s; got {speed!r}")

        def rhs(t, y):
            s = math.hypot(y[2], y[3])
            return [y[2], y[3], -k * s * y[2], -g - k * s * y[3]]

        def landing(t, y):
            return y[1]

        def apex(t, y):
            return y[3]

        landing.terminal, landing.direction = True, -1
        apex.direction = -1
        vz = speed * math.sin(angle)
        # drag-free flight time; the landing event stops the integration long before t_end
        t_free = (vz + math.sqrt(vz * vz + 2 * g * self.height)) / g
        y0 = [0.0, self.height, speed * math.cos(angle), vz]
        sol = self._solve(rhs, 100.0 * t_free + 10.0, y0, events=(landing, apex))
        if not len(sol.t_events[0]):
            raise SimulationError(f"projectile never landed for speed={speed!r}, angle={angle!r}, drag={k!r}")
        land = sol.y_events[0][0]
        tops = [y[1] for y in sol.y_events[1]]
        return self._pick(
            {"range": land[0], "max_height": max([self.height, *tops]), "flight_time": sol.t_events[0][0]}
        )


class Pendulum(_ODEModel):
    """Damped, driven pendulum θ'' = -(g/L) sin θ - c θ' + A cos(Ω t); θ and ω at time T."""

    name = "pendulum"
    inputs = ("length", "damping", "drive", "theta0")
    all_outputs = ("theta", "omega")

    def __init__(
        self,
        T: float = 10.0,
        g: float = 9.81,
        frequency: float = 1.0,
        omega0: float = 0.0,
        outputs: Sequence[str] | None = None,
        rtol: float = 1e-12,
        atol: float = 1e-14,
    ) -> None:
        """
        Parameters
        ----------
        T : final time [s], > 0.
        g : gravitational acceleration [m/s^2].
        frequency : angular frequency Ω of the drive [rad/s].
        omega0 : initial angular velocity [rad/s].
        outputs : a subset of ("theta" [rad], "omega" [rad/s]), read at t = T.
        rtol, atol : solve_ivp tolerances.

        Inputs x = (length L [m], damping c [1/s], drive amplitude A [rad/s^2], theta0 [rad]).
        For small angles, θ'' + c θ' + (g/L) θ = A cos(Ω t) has a closed-form solution.
        """
        self.T = _number(T, "T", "> 0", "s")
        self.g = _number(g, "g", unit="m/s^2")
        self.frequency = _number(frequency, "frequency", unit="rad/s")
        self.omega0 = _number(omega0, "omega0", unit="rad/s")
        self.rtol, self.atol = _number(rtol, "rtol", "> 0"), _number(atol, "atol", "> 0")
        self.outputs = _select_outputs(outputs, self.all_outputs)

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        length, c, drive, theta0 = (float(v) for v in x)
        if not length > 0:
            raise SimulationError(f"pendulum: length must be > 0 m; got {length!r}")
        w2, freq = self.g / length, self.frequency

        def rhs(t, y):
            return [y[1], -w2 * math.sin(y[0]) - c * y[1] + drive * math.cos(freq * t)]

        sol = self._solve(rhs, self.T, [theta0, self.omega0])
        return self._pick({"theta": sol.y[0, -1], "omega": sol.y[1, -1]})


@hookimpl
def simdiff_adapters() -> list[type[Simulator]]:
    return [Projectile, Pendulum]
