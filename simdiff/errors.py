"""Every error simdiff raises on purpose.

::

    SimdiffError
    ├── ArgumentError          (also ValueError)   an argument has a value that is not allowed
    │   └── BoundsError                            bounds inconsistent, or x outside them
    ├── ArgumentTypeError      (also TypeError)    an argument has a type that is not allowed
    ├── OutputError            (also ValueError)   a simulator returned non-numeric output, or
    │                                              output whose shape changed between points
    ├── SimulationError        (also RuntimeError) an evaluation failed; names point, index, cause
    │   └── EvaluationTimeout                      an evaluation ran past its time-out
    ├── PluginError                                the plugin host could not do what was asked
    │   ├── UnknownAdapterError (also LookupError) no adapter has that name
    │   ├── DuplicateAdapterError                  two plugins register the same adapter name
    │   └── ConfigError         (also TypeError)   an adapter was given a configuration it lacks
    └── MissingDependencyError (also ImportError)  an optional extra is not installed

Warnings: ``SimdiffWarning`` (a UserWarning) says that a result came back but is not what
was asked for in full: an entry simdiff could not resolve (noise, a kink, a domain edge, a
step it could not place), an entry rebuilt from fewer points, a point that failed. It names
the entries; ``info`` holds the details.

Catch ``SimdiffError`` to catch them all; catch ``ValueError`` or ``TypeError`` where the
built-in meaning fits.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "SimdiffWarning",
    "SimdiffError",
    "ArgumentError",
    "BoundsError",
    "ArgumentTypeError",
    "OutputError",
    "SimulationError",
    "EvaluationTimeout",
    "PluginError",
    "UnknownAdapterError",
    "DuplicateAdapterError",
    "ConfigError",
    "MissingDependencyError",
]


class SimdiffWarning(UserWarning):
    """A result came back, but some of its entries are not resolved as asked; it names them."""


class SimdiffError(Exception):
    """Base class of every error simdiff raises on purpose."""


class ArgumentError(SimdiffError, ValueError):
    """An argument has a value that is not allowed."""


class BoundsError(ArgumentError):
    """Bounds are inconsistent (lower > upper, wrong shape) or the point lies outside them."""


class ArgumentTypeError(SimdiffError, TypeError):
    """An argument has a type that is not allowed."""


class OutputError(SimdiffError, ValueError):
    """A simulator returned non-numeric output, or output whose shape changed between points."""


class SimulationError(SimdiffError, RuntimeError):
    """An evaluation of a simulator failed.

    Attributes
    ----------
    point : ndarray or None
        The input at which the simulator failed.
    index : int or None
        The position of that point in its batch.
    cause : BaseException or str or None
        The exception raised, or a description (exit code and stderr tail of an executable).
    failures : list
        Every failure of the batch, when more than one point failed.
    returncode : int or None
        The exit code of an external program (negative: killed by that signal; None: no
        program, or it timed out).
    workdir : str or None
        The kept work directory of the failed run (its input files, ``simdiff-stdout.txt``
        and ``simdiff-stderr.txt``); None when nothing was kept.
    stdout_tail, stderr_tail : str or None
        The last lines the program wrote to stdout and stderr.

    The four program attributes are set by the ``subprocess`` adapter; the error a derivative
    call raises copies them from its cause, so ``err.returncode`` works on either.
    """

    returncode: int | None = None
    workdir: str | None = None
    stdout_tail: str | None = None
    stderr_tail: str | None = None

    def __init__(
        self,
        message: str,
        *,
        point: Any = None,
        index: int | None = None,
        cause: Any = None,
        failures: list | None = None,
        returncode: int | None = None,
        workdir: str | None = None,
        stdout_tail: str | None = None,
        stderr_tail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.point = point
        self.index = index
        self.cause = cause
        self.failures = list(failures or [])
        for name, value in (("returncode", returncode), ("workdir", workdir),
                            ("stdout_tail", stdout_tail), ("stderr_tail", stderr_tail)):
            if value is None and isinstance(cause, SimulationError):
                value = getattr(cause, name, None)
            if value is not None:
                setattr(self, name, value)


class EvaluationTimeout(SimulationError):
    """An evaluation ran longer than its time-out and was stopped."""


class PluginError(SimdiffError):
    """The plugin host could not do what was asked."""


class UnknownAdapterError(PluginError, LookupError):
    """No registered adapter has the requested name."""


class DuplicateAdapterError(PluginError):
    """Two plugins register adapters under the same name."""


class ConfigError(PluginError, TypeError):
    """An adapter was given a configuration key or value it does not accept."""


class MissingDependencyError(SimdiffError, ImportError):
    """An optional dependency is missing; the message says which extra to install."""


def require(module: str, extra: str) -> Any:
    """Import an optional dependency, or raise MissingDependencyError naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{module!r} is needed here but is not installed: "
            f'pip install "simdiff[{extra}]" ({exc})'
        ) from exc
