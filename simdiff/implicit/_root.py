"""``root(solver, F)``: a solver's answer kept per θ, differentiated implicitly.

``solve = root(solver, F)`` is a Simulator θ -> y*(θ): ``solve(theta)`` runs the solver once per
distinct θ (keyed by the bytes of the float64 θ) and keeps its answer; ``solve.jacobian(theta)``,
``solve.jvp(theta, v)`` and ``solve.vjp(theta, g)`` reuse it (running the solver only for a θ not
seen yet) and differentiate F there (``simdiff.implicit``). Being a Simulator, ``solve`` goes
anywhere a simulator goes: ``sd.gradient(lambda th: loss(solve(th)), theta)`` differentiates
through the solver by finite differences (2p solver runs); the chain rule
``solve.vjp(theta, ∇loss(y*))`` gives the same gradient from F alone.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, SimdiffWarning
from ..simulator import Simulator

__all__ = ["Root", "root"]

KINDS = ("root", "fixed_point", "argmin")


class Root(Simulator):
    """θ -> y*(θ) by a solver, with implicit derivatives (see the module docstring).

    Parameters
    ----------
    solver : callable solver(theta) -> y (n,), or an object with ``.x`` (an
        ``OptimizeResult``; ``success`` False gives a SimdiffWarning).
    F : the residual F(y, theta) (kind "root"), the map T(y, theta) (kind "fixed_point") or
        the objective f(y, theta) (kind "argmin"); a callable or a Simulator of [y, θ].
    kind : "root" (default), "fixed_point" or "argmin".
    **options : defaults for every derivative call (linear_solver, sparsity, tol, method, …).

    Attributes
    ----------
    nsolves : solver runs made.  answers : {θ bytes: y*} kept.
    """

    name = "implicit-root"

    def __init__(self, solver: Any, F: Any, kind: str = "root", **options: Any) -> None:
        if not callable(solver):
            raise ArgumentTypeError(f"solver must be callable solver(theta) -> y; got {solver!r}")
        if not (callable(F) or isinstance(F, Simulator)):
            raise ArgumentTypeError(f"F must be a callable F(y, theta) or a Simulator; got {F!r}")
        if kind not in KINDS:
            raise ArgumentError(f"kind must be one of {KINDS}; got {kind!r}")
        self.solver, self.F, self.kind, self.options = solver, F, kind, dict(options)
        self.nsolves = 0
        self.answers: dict[bytes, np.ndarray] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def config(self) -> dict:
        return {"solver": self.solver, "F": self.F, "kind": self.kind}

    def identity(self) -> str:
        from ..cache import fingerprint
        from ..simulator import as_simulator

        return (f"implicit.root:{self.kind}:{fingerprint(as_simulator(self.solver))}:"
                f"{fingerprint(as_simulator(self.F))}")

    @staticmethod
    def _theta(theta: Any) -> np.ndarray:
        from ._core import as_vector

        return as_vector(theta, "theta")

    def solve(self, theta: Any) -> np.ndarray:
        """y*(θ): the solver's answer, computed once per θ."""
        th = self._theta(theta)
        key = th.tobytes()
        with self._lock:
            if key in self.answers:
                return self.answers[key].copy()
        out = self.solver(th.copy())
        if hasattr(out, "x") and not isinstance(out, np.ndarray):
            if getattr(out, "success", True) is False:
                warnings.warn(f"root: the solver reports no success at theta={th!r}: "
                              f"{getattr(out, 'message', '')}", SimdiffWarning, stacklevel=3)
            out = out.x
        y = np.atleast_1d(np.asarray(out, dtype=float)).copy()
        if y.ndim != 1:
            raise ArgumentError(f"solver must return y of shape (n,); got shape {y.shape}")
        with self._lock:
            self.nsolves += 1
            self.answers[key] = y
        return y.copy()

    def evaluate(self, theta: np.ndarray) -> np.ndarray:
        return self.solve(theta)

    def _call(self, which: str, theta: Any, extra: tuple, options: dict):
        from . import argmin_jacobian, fixed_point_jacobian, jacobian, jvp, vjp

        th = self._theta(theta)
        y = self.solve(th)
        opts = {**self.options, **options}
        if self.kind == "root":
            fn = {"jacobian": jacobian, "jvp": jvp, "vjp": vjp}[which]
            return fn(self.F, y, th, *extra, **opts)
        fn = argmin_jacobian if self.kind == "argmin" else fixed_point_jacobian
        full = opts.pop("full_output", False)
        J, info = fn(self.F, y, th, full_output=True, **opts)
        if which == "jacobian":
            value, err = J, info.error
        elif which == "jvp":
            v = _fit(extra[0], th.shape[0], "v")
            value, err = J @ v, info.error @ np.abs(v)
        else:
            g = _fit(extra[0], y.shape[0], "g")
            value, err = g @ J, np.abs(g) @ info.error
        if not full:
            return value
        info.error = err
        return value, info

    def jacobian(self, theta: Any, **options: Any):
        """dy*/dθ at the solver's answer for θ (runs the solver only for a new θ)."""
        return self._call("jacobian", theta, (), options)

    def jvp(self, theta: Any, v: Any, **options: Any):
        """dy*/dθ · v at the solver's answer for θ."""
        return self._call("jvp", theta, (v,), options)

    def vjp(self, theta: Any, g: Any, **options: Any):
        """gᵀ · dy*/dθ at the solver's answer for θ."""
        return self._call("vjp", theta, (g,), options)

    def __repr__(self) -> str:
        return f"root({getattr(self.solver, '__name__', self.solver)!r}, kind={self.kind!r})"


def _fit(x: Any, size: int, name: str) -> np.ndarray:
    from ._core import fitted

    return fitted(x, size, name, f"{size} entries")


def root(solver: Any, F: Any, kind: str = "root", **options: Any) -> Root:
    """``Root(solver, F, kind, **options)``: see ``Root``."""
    return Root(solver, F, kind=kind, **options)
