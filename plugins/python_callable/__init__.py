"""Adapter ``python``: a Python callable named by an import string ``"package.module:function"``.

Naming the callable (rather than passing the object) lets a worker process re-import it by
name, so a simulator built from the CLI or a config file pickles to any worker.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from simdiff.errors import ConfigError
from simdiff.host import hookimpl
from simdiff.simulator import Simulator

__all__ = ["PythonCallable", "resolve_import_string", "simdiff_adapters"]


def resolve_import_string(target: str, key: str = "function") -> Any:
    """Import ``"package.module:attr.sub"`` and return the attribute; ConfigError if it fails."""
    if not isinstance(target, str) or target.count(":") != 1:
        raise ConfigError(
            f"{key} must be an import string 'package.module:function'; got {target!r}"
        )
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{key}={target!r}: cannot import module {module_name!r} ({exc})") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(
                f"{key}={target!r}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    if not callable(obj):
        raise ConfigError(f"{key}={target!r} names {type(obj).__name__} {obj!r}, not a callable")
    return obj


def _names(value: Any, key: str) -> list[str] | None:
    """None, or a list of names (one name may come as a plain string)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping) or not isinstance(value, Sequence):
        raise ConfigError(f"{key} must be a list of names such as ['x', 'y']; got {value!r}")
    return [str(v) for v in value]


class PythonCallable(Simulator):
    """A Python function named by an import string 'package.module:function'."""

    name = "python"

    def __init__(
        self,
        function: str,
        vectorized: bool = False,
        kwargs: dict | None = None,
        inputs: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
        bounds: Any = None,
        complex_safe: bool | None = None,
    ) -> None:
        """
        Parameters
        ----------
        function : "package.module:function" (a module beside you imports too), f(x, **kwargs).
        vectorized : the function takes a batch (k, n) and returns (k,) or (k, m).
        kwargs : {name: value} passed to the function on every call.
        inputs : names of the entries of x (the CLI's --at names).
        outputs : names of the outputs.
        bounds : (lower, upper) for the derivative calls.
        complex_safe : true if the function accepts complex x (method="complex").
        """
        self.function = function
        for key, flag in (("vectorized", vectorized), ("complex_safe", complex_safe)):
            if not (isinstance(flag, (bool, np.bool_)) or (flag is None and key == "complex_safe")):
                raise ConfigError(f"{key} must be true or false; got {flag!r}")
        self.vectorized = bool(vectorized)
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise ConfigError(f"kwargs must be {{name: value}} passed to the function; got {kwargs!r}")
        self.kwargs = dict(kwargs or {})
        self.inputs = _names(inputs, "inputs")
        self.outputs = _names(outputs, "outputs")
        self.bounds = bounds
        self.complex_safe = complex_safe
        self._fun = resolve_import_string(function)  # fail at configuration, not in a worker

    def evaluate(self, x):
        if self._fun is None:
            self._fun = resolve_import_string(self.function)
        return self._fun(x, **self.kwargs)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_fun"] = None  # re-imported by name in the worker
        return state


@hookimpl
def simdiff_adapters() -> list[type[Simulator]]:
    return [PythonCallable]
