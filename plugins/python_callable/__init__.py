"""Adapter ``python``: a Python callable named by an import string ``"package.module:function"``.

Naming the callable (rather than passing the object) lets a worker process re-import it by
name, so a simulator built from the CLI or a config file pickles to any worker.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

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
        self.function = function
        self.vectorized = bool(vectorized)
        self.kwargs = dict(kwargs or {})
        self.inputs = list(inputs) if inputs is not None else None
        self.outputs = list(outputs) if outputs is not None else None
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
