"""The residuals implicit differentiation evaluates, as Simulators of the stacked vector.

Every evaluation goes through an Evaluator, which takes Simulators; these wrappers turn what
the user gave (a callable ``F(y, theta)``, a map ``T(y, theta)`` whose fixed point is sought,
a Simulator of ``z = [y, θ]``) into a Simulator of z, and restrict one to a subset of its
inputs (``Section``) or to directions (``Along``). They are small module-level classes, so they
pickle to worker processes whenever the function they hold does; their ``identity`` carries the
fingerprint of that function (``simdiff.cache.fingerprint``), so cache entries of two different
residuals never mix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..simulator import Simulator, as_simulator

__all__ = ["Stacked", "FixedPointResidual", "Section", "Along", "Line"]


def _fp(sim: Simulator) -> str:
    """The fingerprint of ``sim`` (hashing a closure's captured values costs milliseconds:
    kept on the object, whose function does not change)."""
    from ..cache import fingerprint

    cached = getattr(sim, "_implicit_fp", None)
    if cached is not None:
        return cached
    fp = fingerprint(sim)
    try:
        sim._implicit_fp = fp
    except AttributeError:  # pragma: no cover - slotted simulators
        pass
    return fp


def _digest(*arrays: np.ndarray) -> str:
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
        h.update(str(np.shape(a)).encode())
    return h.hexdigest()[:16]


class Stacked(Simulator):
    """F(y, theta) of a callable seen as a Simulator of z = [y, θ] (y = z[:n])."""

    name = "implicit-residual"

    def __init__(self, fun: Any, n: int, vectorized: bool = False) -> None:
        self.fun = fun
        self.n = int(n)
        self.vectorized = bool(vectorized)
        self.complex_safe = None

    def evaluate(self, z: np.ndarray) -> Any:
        if z.ndim == 2:
            return self.fun(z[:, : self.n], z[:, self.n:])
        return self.fun(z[: self.n], z[self.n:])

    def identity(self) -> str:
        if getattr(self, "_ident", None) is None:
            self._ident = f"implicit.stacked:{self.n}:{self.vectorized}:{_fp(as_simulator(self.fun))}"
        return self._ident

    def __repr__(self) -> str:
        return f"{getattr(self.fun, '__name__', repr(self.fun))}(y, theta)"


class FixedPointResidual(Simulator):
    """F(z) = T(z) − y: the residual whose root is the fixed point y* = T(y*, θ)."""

    name = "implicit-fixed-point"

    def __init__(self, T: Simulator, n: int) -> None:
        self.T = T
        self.n = int(n)
        self.vectorized = bool(T.vectorized)
        self.complex_safe = T.complex_safe

    def evaluate(self, z: np.ndarray) -> Any:
        t = np.asarray(self.T.evaluate(z))
        if z.ndim == 2:
            if t.shape[:1] != (len(z),) or t.size != len(z) * self.n:
                return t  # a wrong shape is reported by the caller's length check
            return t.reshape(len(z), self.n) - z[:, : self.n]
        if t.size != self.n:
            return t
        return t.reshape(self.n) - z[: self.n]

    def identity(self) -> str:
        return f"implicit.fixed-point:{self.n}:{_fp(self.T)}"

    def __repr__(self) -> str:
        return f"T={self.T!r}"


class Section(Simulator):
    """x ↦ sim(z0 with z0[idx] = x): the simulator along some of its inputs only."""

    name = "implicit-section"

    def __init__(self, sim: Simulator, z0: np.ndarray, idx: np.ndarray) -> None:
        self.sim = sim
        self.z0 = np.asarray(z0, dtype=float)
        self.idx = np.asarray(idx, dtype=int)
        self.vectorized = bool(sim.vectorized)
        self.complex_safe = sim.complex_safe

    def _full(self, x: np.ndarray) -> np.ndarray:
        dtype = complex if np.iscomplexobj(x) else float
        if x.ndim == 2:
            Z = np.tile(self.z0.astype(dtype), (len(x), 1))
            Z[:, self.idx] = x
            return Z
        z = self.z0.astype(dtype)
        z[self.idx] = x
        return z

    def evaluate(self, x: np.ndarray) -> Any:
        return self.sim.evaluate(self._full(x))

    def identity(self) -> str:
        return f"implicit.section:{_digest(self.z0, self.idx)}:{_fp(self.sim)}"

    def __repr__(self) -> str:
        return repr(self.sim)


class Along(Simulator):
    """w = [y', t] ↦ sim([y', θ0 + W t]): the residual over y and along directions W (p, q)
    of θ. Its Jacobian at [y, 0] is [∂F/∂y, ∂F/∂θ·W] in one batch."""

    name = "implicit-along"

    def __init__(self, sim: Simulator, theta0: np.ndarray, W: np.ndarray, n: int) -> None:
        self.sim = sim
        self.theta0 = np.asarray(theta0, dtype=float)
        self.W = np.asarray(W, dtype=float)
        self.n = int(n)
        self.vectorized = bool(sim.vectorized)
        self.complex_safe = sim.complex_safe

    def evaluate(self, w: np.ndarray) -> Any:
        n = self.n
        if w.ndim == 2:
            th = self.theta0[None, :] + w[:, n:] @ self.W.T
            return self.sim.evaluate(np.hstack([w[:, :n], th]))
        return self.sim.evaluate(np.concatenate([w[:n], self.theta0 + self.W @ w[n:]]))

    def identity(self) -> str:
        return f"implicit.along:{self.n}:{_digest(self.theta0, self.W)}:{_fp(self.sim)}"

    def __repr__(self) -> str:
        return repr(self.sim)


class Line(Simulator):
    """t ↦ sim(z0 + W t), W (N, q): the simulator along q directions from z0."""

    name = "implicit-line"

    def __init__(self, sim: Simulator, z0: np.ndarray, W: np.ndarray) -> None:
        self.sim = sim
        self.z0 = np.asarray(z0, dtype=float)
        self.W = np.asarray(W, dtype=float)
        self.vectorized = bool(sim.vectorized)
        self.complex_safe = sim.complex_safe

    def evaluate(self, t: np.ndarray) -> Any:
        if t.ndim == 2:
            return self.sim.evaluate(self.z0[None, :] + t @ self.W.T)
        return self.sim.evaluate(self.z0 + self.W @ t)

    def identity(self) -> str:
        return f"implicit.line:{_digest(self.z0, self.W)}:{_fp(self.sim)}"

    def __repr__(self) -> str:
        return repr(self.sim)
