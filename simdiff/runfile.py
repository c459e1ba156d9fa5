"""Run files: a study described in TOML, run by ``simdiff run STUDY.toml``.

::

    adapter = "projectile"          # an adapter name (simdiff adapters)
    task = "gradient"               # gradient, jacobian, hessian, derivative, jvp, check, noise,
                                    # minimize, least-squares, sweep
    plot = "sweep.png"              # optional: the task's figure (sweep, minimize, least-squares)

    [config]                        # the adapter's configuration (its constructor keywords)
    outputs = ["range"]

    [at]                            # the point by input name (the start for the optimizers);
    speed = 20.0                    # or at = [20.0, 0.6, 0.0] in input order
    angle = 0.6
    drag = 0.0

    [options]                       # the task's options, named as in Python
    step = "adaptive"
    bounds = { speed = [10, 30] }   # per input [lower, upper]
    n_jobs = 2

An unknown key or table is refused with its name and the closest allowed one (exit status 2),
as is an option the task does not take. Relative paths (``plot``, ``cache``, a ``grad`` file)
are taken from the run file's directory, and modules beside the run file import
(``function = "mymodel:f"``). Python 3.11+ reads TOML with ``tomllib``; 3.10 with ``tomli``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import cli_options as co
from .cli_options import UsageError, suggest

__all__ = ["Study", "load_study", "run_study", "run_file", "TOP_KEYS", "TABLES"]

TOP_KEYS = ("adapter", "task", "plot", "description")
TABLES = ("config", "at", "options")


def _toml():
    if sys.version_info >= (3, 11):
        import tomllib
        return tomllib
    try:
        import tomli
    except ImportError:  # pragma: no cover - a dependency on 3.10
        from .errors import MissingDependencyError

        raise MissingDependencyError("reading run files on Python 3.10 needs tomli; pip install tomli") from None
    return tomli


@dataclass
class Study:
    """A parsed run file."""

    path: str
    adapter: str
    task: str
    config: dict = field(default_factory=dict)
    at: Any = None
    options: dict = field(default_factory=dict)
    plot: str | None = None
    description: str = ""

    @property
    def directory(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))


def _where(path: str) -> str:
    return os.path.basename(path)


def load_study(path: Any) -> Study:
    """Read and check the run file at ``path`` (UsageError naming what is wrong)."""
    path = os.fspath(path)
    name = _where(path)
    try:
        with open(path, "rb") as fh:
            data = _toml().load(fh)
    except FileNotFoundError:
        raise UsageError(f"run file {path!r} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"run file {path!r} is a directory; give a .toml file") from None
    except ValueError as exc:  # tomllib.TOMLDecodeError
        raise UsageError(f"{name}: not valid TOML: {exc}") from None
    for key, value in data.items():
        if key in TABLES:
            if key == "at" and isinstance(value, list):
                continue
            if not isinstance(value, dict):
                raise UsageError(f"{name}: {key!r} must be a table [{key}]; got {value!r}")
        elif key not in TOP_KEYS:
            what = "table" if isinstance(value, dict) else "key"
            raise UsageError(f"{name}: unknown {what} {key!r}{suggest(key, TOP_KEYS + TABLES)}; allowed: "
                             f"{', '.join(TOP_KEYS)} and the tables [{'], ['.join(TABLES)}]")
    for key in ("adapter", "task"):
        if key not in data:
            raise UsageError(f"{name}: missing {key!r}; a run file names at least adapter = \"...\" "
                             f"and task = \"...\" (one of {', '.join(co.TASK_OPTIONS)})")
        if not isinstance(data[key], str):
            raise UsageError(f"{name}: {key} must be a string; got {data[key]!r}")
    task = data["task"]
    if task not in co.TASK_OPTIONS:
        raise UsageError(f"{name}: unknown task {task!r}{suggest(task, list(co.TASK_OPTIONS))}; "
                         f"allowed: {', '.join(co.TASK_OPTIONS)}")
    options = dict(data.get("options", {}))
    allowed = co.COMMON_OPTIONS + co.TASK_OPTIONS[task]
    for key in options:
        if key not in allowed:
            other = [t for t, opts in co.TASK_OPTIONS.items() if key in opts]
            elsewhere = f" (it is an option of {', '.join(other)})" if other else ""
            raise UsageError(f"{name}: unknown option {key!r} in [options] for task {task!r}"
                             f"{suggest(key, allowed)}{elsewhere}; allowed: {', '.join(allowed)}")
    if "at" not in data:
        raise UsageError(f"{name}: missing the table [at], the point by input name "
                         "(the start for minimize and least-squares)")
    plot = data.get("plot")
    if plot is not None and not isinstance(plot, str):
        raise UsageError(f"{name}: plot must be a file name; got {plot!r}")
    return Study(path=path, adapter=data["adapter"], task=task, config=dict(data.get("config", {})),
                 at=data["at"], options=options, plot=plot, description=str(data.get("description", "")))


def _point(study: Study, inputs: Any) -> tuple[np.ndarray, list[str]]:
    at = study.at
    option = f"{_where(study.path)} [at]"
    if isinstance(at, list):
        return co.parse_at([repr(float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool)
                            else str(v) for v in at], inputs, option)
    items = []
    for key, value in at.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{option}: {key} = {value!r} is not a number")
        items.append(f"{key}={float(value)!r}")
    return co.parse_at([",".join(items)] if items else [], inputs, option)


def _in_dir(directory: str, value: Any) -> Any:
    if isinstance(value, str) and value and not os.path.isabs(value):
        return os.path.join(directory, value)
    return value


def run_study(study: Study, plot: str | None = None):
    """Perform the study; returns the task's ``Outcome`` (its document names the run file)."""
    from .cli import _load
    from .cli_tasks import check_plot_available, run_task

    directory = study.directory
    if directory not in sys.path:
        sys.path.insert(0, directory)
    plot = plot or (_in_dir(directory, study.plot) if study.plot else None)
    if plot:
        check_plot_available()
    options = dict(study.options)
    if "cache" in options:
        options["cache"] = _in_dir(directory, options["cache"])
    grad = options.get("grad")
    if isinstance(grad, str) and grad.partition(":")[0].endswith(".py"):
        options["grad"] = _in_dir(directory, grad)
    sim = _load(study.adapter, study.config)
    x, names = _point(study, sim.inputs)
    outcome = run_task(study.task, sim, x, names, options, adapter=study.adapter, config=study.config)
    outcome.document["file"] = study.path
    if study.description:
        outcome.document["description"] = study.description
    outcome.document.setdefault("plot", None)
    outcome.plot_path = plot
    return outcome


def run_file(path: Any, plot: str | None = None):
    """``load_study`` then ``run_study``."""
    return run_study(load_study(path), plot=plot)
