"""The Simulator base class, and the wrapping of plain callables into one.

A Simulator maps a float64 array ``x`` of shape (n,) to a float or an array of shape (m,).
Everything simdiff differentiates is turned into a Simulator first (``as_simulator``), so the
Evaluator sees one interface whatever the user passed.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any, Callable, Sequence

import numpy as np

from .errors import ArgumentTypeError

__all__ = ["Simulator", "CallableSimulator", "as_simulator"]


class Simulator(ABC):
    """Base class of simulator adapters.

    Subclasses set ``name`` (the name ``simdiff.load`` takes), write a one-line class docstring
    (the description ``simdiff.available`` shows), take their configuration as constructor
    keywords, and implement ``evaluate``.

    Optional attributes (class or instance):

    ``inputs``, ``outputs``
        Names of the entries of x and of the output.
    ``bounds``
        ``(lower, upper)``, used when a derivative call passes no ``bounds``.
    ``vectorized``
        ``evaluate`` accepts an array (k, n) and returns (k,) or (k, m).
    ``complex_safe``
        True: complex-step differentiation is allowed; False: it is refused; None: unknown
        (allowed, at the user's risk).
    ``prefer``
        "threads" for adapters that wait on an external process, "processes" for in-process
        engines; a soft hint to the Evaluator.
    ``scales``
        None, or an array (n,) of the inputs' typical magnitudes: the default ``scale`` of the
        derivative functions (an input in SI units, a capacitance of 1e-6 F, gets steps of its
        own size).

    ``cache_ignore``
        Names of instance attributes that cannot change a value (where runs happen, how long
        they may take): left out of the cache key (``simdiff.cache.fingerprint``), so a run
        resumed with another work directory still finds its entries.

    ``quantize(X)`` returns the values the simulator actually uses for the points X (identity
    here); an adapter that writes its inputs as text with limited digits returns what the
    program reads back, and the derivative functions take their differences between those.

    ``evaluate`` is abstract: a subclass without it cannot be instantiated (TypeError naming
    the class), rather than failing at its first evaluation.

    A simulator must survive pickling to a worker process: build heavy state (a compiled
    engine model, a library handle) lazily in ``evaluate`` and drop it in ``__getstate__``.
    """

    name: str = ""
    inputs: Sequence[str] | None = None
    outputs: Sequence[str] | None = None
    bounds: Any = None
    vectorized: bool = False
    complex_safe: bool | None = None
    prefer: str | None = None
    scales: Any = None
    cache_ignore: tuple = ()

    @abstractmethod
    def evaluate(self, x: np.ndarray) -> Any:
        """Return f(x): a float or an array of shape (m,)."""

    def quantize(self, X: Any) -> Any:
        """The points X ((n,) or (k, n)) as the simulator will actually use them.

        The base class returns X itself (the same object: nothing is rounded). An adapter that
        passes its inputs through a lossy channel (a deck printed with ``{E:.6e}``, a
        single-precision engine) returns the values on the far side, so that a finite
        difference divides by the step the simulator saw, not the one planned
        (``simdiff.simulator.written_plan``).
        """
        return X

    def __call__(self, x: Any) -> Any:
        arr = np.asarray(x)
        if not np.iscomplexobj(arr):
            arr = np.asarray(arr, dtype=float)
        return self.evaluate(arr)

    def config(self) -> dict[str, Any]:
        """The configuration: the constructor's keywords and their current values.

        Used for the identity of cache entries and for error messages; an adapter whose
        constructor arguments are not stored as same-named attributes should override it.
        """
        out: dict[str, Any] = {}
        try:
            params = inspect.signature(type(self).__init__).parameters
        except (TypeError, ValueError):  # pragma: no cover - builtins
            return out
        for pname, p in params.items():
            if pname == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if hasattr(self, pname):
                out[pname] = getattr(self, pname)
        return out

    def identity(self) -> str:
        """A stable text naming this simulator and its configuration (for cache keys)."""
        cls = type(self)
        return f"{cls.__module__}.{cls.__qualname__}:{self.name}:{_stable_repr(self.config())}"

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({cfg})"


class CallableSimulator(Simulator):
    """A plain Python callable seen as a Simulator."""

    name = "callable"

    def __init__(
        self,
        fun: Callable[..., Any],
        vectorized: bool = False,
        scalar_input: bool = False,
        complex_safe: bool | None = None,
    ) -> None:
        if not callable(fun):
            raise ArgumentTypeError(
                f"f must be a callable or a simdiff.Simulator; got {type(fun).__name__} {fun!r}"
            )
        self.fun = fun
        self.vectorized = bool(vectorized)
        # derivative() passes f a float (or a (k,) array when vectorized), not an array (1,).
        self.scalar_input = bool(scalar_input)
        self.complex_safe = complex_safe

    def evaluate(self, x: np.ndarray) -> Any:
        if self.scalar_input:
            if self.vectorized and x.ndim == 2:
                return self.fun(x[:, 0])
            return self.fun(x[0])
        return self.fun(x)

    def identity(self) -> str:
        fun = self.fun
        name = getattr(fun, "__qualname__", None)  # (repr only when there is none: it costs)
        fid = f"{getattr(fun, '__module__', '?')}.{name if name is not None else repr(fun)}"
        return f"callable:{fid}:{self.vectorized}:{self.scalar_input}"

    def __repr__(self) -> str:
        return f"CallableSimulator({getattr(self.fun, '__name__', self.fun)!r})"


def as_simulator(
    f: Any, *, vectorized: bool | None = None, scalar_input: bool = False
) -> Simulator:
    """Return ``f`` as a Simulator: a Simulator unchanged, a callable wrapped.

    ``vectorized`` given explicitly overrides the simulator's own flag only for callables;
    a Simulator that declares itself vectorized keeps that.
    """
    if isinstance(f, Simulator):
        if vectorized and not f.vectorized:
            raise ArgumentTypeError(
                f"vectorized=True was given, but simulator {f!r} does not declare "
                "vectorized = True; allowed: leave vectorized unset for this simulator"
            )
        return f
    return CallableSimulator(f, vectorized=bool(vectorized), scalar_input=scalar_input)


def _stable_repr(obj: Any) -> str:
    """repr with sorted dict keys and arrays written by their bytes, stable across runs."""
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{k!r}: {_stable_repr(obj[k])}" for k in sorted(obj, key=str)) + "}"
    if isinstance(obj, (list, tuple)):
        inner = ", ".join(_stable_repr(v) for v in obj)
        return f"[{inner}]" if isinstance(obj, list) else f"({inner})"
    if isinstance(obj, np.ndarray):
        return f"ndarray({obj.dtype.str},{obj.shape},{obj.tobytes().hex()})"
    if callable(obj) and hasattr(obj, "__qualname__"):
        return f"{getattr(obj, '__module__', '?')}.{obj.__qualname__}"
    return repr(obj)


def written_plan(sim: Simulator, plan: Any) -> Any:
    """Make a derivative plan use the points the simulator actually reads (``sim.quantize``).

    Rule. A planned node x + t·h·u that the simulator reads as q(x + t·h·u) (a deck printed
    with ``{E:.6e}`` rounds it to 7 digits) sits at the realized offset
    t' = (q(x + t·h·u) − q(x))·u / h from the point q(x) the program reads for x. Each
    entry's weights become the Fornberg weights of its realized offsets t' (B. Fornberg,
    "Generation of finite difference formulas on arbitrarily spaced grids", Math. Comp. 51
    (1988)), its order and truncation coefficient those of the realized nodes (the first
    non-vanishing moment Σ w·t'^(p+d)/(p+d)!), so the derivative is that of f at q(x) from
    the values actually computed; an embedded lower-order estimate is re-weighted the same
    way. With ``quantize`` the identity (the base class), the plan is returned untouched.

    Changes ``plan`` in place (points, x, each term's offsets and weights) and returns it.
    Raises ArgumentError when the rounding makes two nodes of an entry coincide (a step below
    the resolution of the written values), naming the coordinate and the smallest usable step.
    """
    quantize = getattr(sim, "quantize", None)
    P = plan.points
    if quantize is None or plan.complex_step or not len(P):
        return plan
    Q = quantize(P)
    if Q is P:
        return plan
    Q = np.asarray(Q, dtype=float)
    if Q.shape != P.shape:
        raise ArgumentTypeError(
            f"simulator {sim!r}: quantize returned shape {Q.shape} for points of shape {P.shape}; "
            "it must return an array of the same shape"
        )
    if np.array_equal(Q, P):
        return plan
    from .errors import ArgumentError
    from .stencils import fornberg_weights

    x = np.asarray(plan.x, dtype=float)
    xq = np.asarray(quantize(x[None, :]), dtype=float)[0]
    for term in plan.terms:
        if term.kind == "fixed" or not len(term.rows) or term.h == 0:
            continue
        planned = P[term.rows] - x
        far = int(np.argmax(np.linalg.norm(planned, axis=1)))
        # the entry's unit direction (e_j, or v/|v|), signed as its planned offsets are (the
        # offsets may have been realized before: this keeps the rewrite idempotent)
        u = planned[far] / np.linalg.norm(planned[far]) * np.sign(term.offsets[far])
        t = (Q[term.rows] - xq) @ u / term.h
        if np.array_equal(t, term.offsets):
            continue
        if len(np.unique(t)) < len(t):
            j = int(np.argmax(np.abs(u)))
            raise ArgumentError(
                f"step: the values simulator {sim!r} writes round the points of the derivative "
                f"along x[{j}] onto each other (planned offsets {term.offsets.tolist()} x h = "
                f"{term.h:.3g} became {(t * term.h).tolist()}); allowed: a step well above the "
                "resolution of the written numbers (step=, rel_step=, a larger scale), or a "
                "format with more digits"
            )
        w = np.asarray(fornberg_weights(list(t), term.deriv), dtype=float)
        order, coef = _leading_error(w, t, term.deriv, term.order)
        if term.low_weights is not None:
            nominal = np.asarray(term.offsets)
            keep = np.abs(nominal) < np.abs(nominal).max()
            low = np.zeros(len(t))
            if keep.sum() >= term.deriv + 1:
                low[keep] = fornberg_weights(list(t[keep]), term.deriv)
                term.low_weights = low
            else:
                term.low_weights = None
        term.offsets, term.weights = t, w
        term.order, term.error_coef = order, coef
    plan.points = Q
    plan.x = xq
    return plan


def _leading_error(w: np.ndarray, t: np.ndarray, d: int, nominal: int) -> tuple[int, float]:
    """Order p and coefficient C of the leading truncation term C·h^p·f^(p+d) of weights w on
    nodes t: the first moment Σ w·t^(p+d)/(p+d)! that does not vanish (to rounding)."""
    from math import factorial

    size = float(np.sum(np.abs(w) * np.abs(t) ** d))  # scale of the moments
    for p in range(1, len(t) + 2):
        c = float(np.sum(w * t ** (p + d))) / factorial(p + d)
        if abs(c) > 1e-12 * size:
            return p, c
    return nominal, 0.0


def warn_if_rounded(sim: Simulator, x: np.ndarray, caller: str, stacklevel: int = 3) -> None:
    """A SimdiffWarning when ``sim`` reads rounded values of the points it is given
    (``quantize`` changes a point of many digits near x) and ``caller`` cannot take that into
    account (it differentiates at the planned offsets: ``step="adaptive"``, Hessians)."""
    if type(sim).quantize is Simulator.quantize:
        return
    x = np.asarray(x, dtype=float)
    probe = x * (1.0 + 2.0**-21) + 2.0**-23  # numbers with many digits near x
    try:
        q = np.asarray(sim.quantize(probe[None, :]), dtype=float)[0]
    except Exception:  # noqa: BLE001 - a quantize that fails will fail again, loudly, later
        return
    moved = np.flatnonzero(q != probe)
    if not len(moved):
        return
    import warnings

    from .errors import SimdiffWarning

    j = int(moved[0])
    names = getattr(sim, "inputs", None)
    name = names[j] if names is not None and len(names) == len(x) else f"x[{j}]"
    warnings.warn(
        f"simdiff.{caller}: simulator {sim!r} rounds the values it is given ({name} = "
        f"{float(probe[j])!r} is read as {float(q[j])!r}); {caller} takes its differences at "
        "the planned offsets, so neither its result nor its error estimate accounts for that "
        "rounding. Use a fixed step (step=None or a float, any method but 'complex'), which "
        "differentiates between the values actually read, or write the inputs with more digits.",
        SimdiffWarning,
        stacklevel=stacklevel,
    )
