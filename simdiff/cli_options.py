"""Reading the options of the ``simdiff`` command and of run files into library arguments.

The command line gives text (``--bounds speed=10:30``), a run file gives TOML values
(``bounds = {speed = [10, 30]}``); both arrive here as Python values keyed by the option's
Python name and leave as the keyword arguments of the library call, checked against the
simulator's input names. Every mistake is a ``UsageError`` (exit status 2) whose one line names
the option, the value given and the form that is allowed.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import numpy as np

from .errors import SimdiffError
from .simulator import Simulator

__all__ = [
    "COMMON_OPTIONS",
    "TASK_OPTIONS",
    "UsageError",
    "Selected",
    "import_function",
    "parse_at",
    "parse_set",
    "split_commas",
    "suggest",
]


class UsageError(SimdiffError):
    """A mistake on the command line or in a run file (exit status 2)."""


class UserCodeError(SimdiffError):
    """A function the user named (``--grad``) raised (exit status 1)."""


#: Options every task takes (Python names; the command line spells ``_`` as ``-``).
COMMON_OPTIONS = ("method", "order", "step", "rel_step", "scale", "bounds", "noise", "n_jobs",
                  "backend", "cache", "timeout", "retries", "on_failure", "progress", "output")
#: Options of one task beyond the common ones.
TASK_OPTIONS: dict[str, tuple[str, ...]] = {
    "derivative": (),
    "gradient": (),
    "jacobian": (),
    "hessian": (),
    "jvp": ("v",),
    "check": ("grad", "tol", "points", "seed", "spread", "strict"),
    "noise": (),
    "minimize": ("maxfev",),
    "least-squares": ("maxfev",),
    "sweep": ("input", "direction", "steps", "true"),
}
#: How the command line spells an option (for messages).
FLAGS = {"n_jobs": "--jobs", "v": "--v", "grad": "--grad"}

EVALUATOR_OPTIONS = ("n_jobs", "backend", "cache", "timeout", "retries", "on_failure", "progress")


def flag(name: str) -> str:
    """The command-line spelling of the option ``name``."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def suggest(word: str, choices: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# -- text on the command line --------------------------------------------------------------

def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> {key: value}; value JSON when it parses, else the string."""
    config: dict[str, Any] = {}
    for item in items:
        key, eq, text = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, such as --set g=9.81")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        config[key.strip()] = value
    return config


def split_commas(text: str) -> list[str]:
    """``text`` split at the commas outside brackets: ``"a=1,model.geom_friction[0,0]=2"``
    gives two items (MuJoCo input names hold commas)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch in "[({") - (ch in "])}")
        if ch == "," and depth <= 0:
            parts.append(text[start:i])
            start, depth = i + 1, 0
    return parts + [text[start:]]


def _number(text: str, option: str, name: str = "", finite: bool = True) -> float:
    """``text`` as a float; a UsageError naming the option (and input) otherwise."""
    who = f" for {name!r}" if name else ""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UsageError(f"{option}: {str(text).strip()!r}{who} is not a number") from None
    if finite and not math.isfinite(value):
        raise UsageError(f"{option}: {name + '=' if name else ''}{str(text).strip()} is not allowed; "
                         f"allowed: a finite number{who}")
    return value


def _tokens(items: Sequence[str] | str) -> list[str]:
    if isinstance(items, str):
        items = [items]
    return [t.strip() for item in items for t in split_commas(item) if t.strip()]


def _resolve_name(text: str, inputs: Sequence[str], option: str) -> str:
    by_text = {"".join(n.split()): n for n in inputs}  # "data.qpos[ 2 ]" is "data.qpos[2]"
    name = by_text.get("".join(text.split()))
    if name is None:
        raise UsageError(f"{option}: unknown input {text.strip()!r}{suggest(text.strip(), inputs)}; "
                         f"the inputs are {', '.join(inputs)}")
    return name


def named_text(items: Sequence[str] | str, option: str, example: str,
               form: str = "NAME=VALUE") -> list[tuple[str, str]]:
    """``NAME=VALUE,...`` texts as (name, value text) pairs; a token without ``=`` is refused
    with the form (``speed:20`` says to write ``speed=20``)."""
    pairs = []
    for t in _tokens(items):
        name, eq, value = t.partition("=")
        if not eq or not name.strip():
            raise UsageError(f"{option} {t!r}: the form is {form}, such as {option} {example}")
        pairs.append((name.strip(), value.strip()))
    return pairs


def parse_at(items: Sequence[str] | str, inputs: Sequence[str] | None,
             option: str = "--at") -> tuple[np.ndarray, list[str]]:
    """The point x from ``--at`` texts (``NAME=VALUE,...``, or bare values in input order),
    ordered as ``inputs``; also the input names (``x0, x1, ...`` when the adapter has none)."""
    tokens = _tokens(items)
    if not tokens:
        raise UsageError(f"{option}: no values given; the form is NAME=VALUE,... such as "
                         f"{option} speed=20,angle=0.6")
    named = ["=" in t for t in tokens]
    if not any(named):
        values = []
        for t in tokens:
            try:
                float(t)
            except ValueError:
                name, sep, _ = t.partition(":")
                form = (f"; the form is NAME=VALUE, such as {option} {name.strip()}={_.strip()}"
                        if sep else "; the form is NAME=VALUE,... (or bare numbers in input order)")
                raise UsageError(f"{option}: {t!r} is not a number{form}") from None
            values.append(_number(t, option, f"x{len(values)}" if inputs is None
                                  else (inputs[len(values)] if len(values) < len(inputs) else "")))
        if inputs is not None and len(values) != len(inputs):
            raise UsageError(f"{option}: {len(values)} value(s) given, but the inputs are "
                             f"{', '.join(inputs)} ({len(inputs)})")
        return np.array(values), list(inputs) if inputs is not None else [f"x{j}" for j in range(len(values))]
    if not all(named):
        bad = next(t for t, n in zip(tokens, named) if not n)
        raise UsageError(f"{option} {bad!r}: give every value as NAME=VALUE (or all bare, in input "
                         f"order), not a mix; the form is NAME=VALUE, such as {option} speed=20")
    if inputs is None:  # unnamed inputs answer to x0, x1, ... (as the tables name them)
        pairs = named_text(tokens, option, "x0=1.0")
        index = [re.fullmatch(r"x\[?(\d+)\]?", "".join(n.split())) for n, _ in pairs]
        if not all(index):
            bad = next(n for (n, _), i in zip(pairs, index) if not i)
            raise UsageError(f"{option}: unknown input {bad!r}; this adapter does not name its "
                             f"inputs: call them x0, x1, ... or give bare values in order, such "
                             f"as {option} 1.0,2.5")
        inputs = [f"x{j}" for j in range(max(int(i.group(1)) for i in index) + 1)]
        tokens = [f"x{int(i.group(1))}={v}" for i, (_, v) in zip(index, pairs)]
    given: dict[str, float] = {}
    for text, value in named_text(tokens, option, "speed=20"):
        name = _resolve_name(text, inputs, option)
        if name in given:
            raise UsageError(f"{option}: input {name!r} given twice")
        given[name] = _number(value, option, name)
    missing = [n for n in inputs if n not in given]
    if missing:
        raise UsageError(f"{option}: missing value(s) for {', '.join(missing)}; the inputs are "
                         f"{', '.join(inputs)}")
    return np.array([given[n] for n in inputs]), list(inputs)


def parse_per_input(items: Sequence[str] | str, option: str, example: str) -> Any:
    """``--scale 10`` -> 10.0; ``--scale speed=10,angle=0.1`` -> {"speed": 10.0, ...}."""
    tokens = _tokens(items)
    if len(tokens) == 1 and "=" not in tokens[0]:
        return _number(tokens[0], option)
    return {name: _number(value, option, name) for name, value in named_text(tokens, option, example)}


def parse_bounds(items: Sequence[str] | str) -> dict[str, tuple[float, float]]:
    """``--bounds speed=10:30,drag=0:`` -> {"speed": (10, 30), "drag": (0, inf)}."""
    out = {}
    for name, text in named_text(items, "--bounds", "speed=10:30", form="NAME=LO:HI,..."):
        lo, colon, hi = text.partition(":")
        if not colon:
            raise UsageError(f"--bounds {name}={text}: the form is NAME=LO:HI (an empty side is "
                             f"unbounded), such as --bounds {name}=0:10 or {name}=0:")
        lo_v = -math.inf if not lo.strip() else _number(lo, "--bounds", name, finite=False)
        hi_v = math.inf if not hi.strip() else _number(hi, "--bounds", name, finite=False)
        out[name] = (lo_v, hi_v)
    return out


def parse_step(text: str) -> Any:
    """``--step``: 'adaptive', a positive float, or NAME=STEP,... per input."""
    text = text.strip()
    if text == "adaptive":
        return "adaptive"
    if "=" in text:
        return parse_per_input(text, "--step", "speed=1e-4")
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--step {text!r} is not allowed; allowed: a positive number (the "
                         f"absolute step), 'adaptive', or NAME=STEP,... such as --step 1e-4"
                         f"{suggest(text, ['adaptive'])}") from None
    return value


def parse_noise(text: str) -> Any:
    """``--noise``: 'estimate', a level (float) or one level per output (comma separated)."""
    text = text.strip()
    if text == "estimate":
        return "estimate"
    tokens = _tokens(text)
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        raise UsageError(f"--noise {text!r} is not allowed; allowed: a noise level such as "
                         f"--noise 1e-6, one level per output (comma separated), or 'estimate'"
                         f"{suggest(text, ['estimate'])}") from None
    return values[0] if len(values) == 1 else values


# -- values (from either source) into library arguments ------------------------------------

def _positive(value: Any, option: str, name: str = "") -> float:
    who = f" for {name!r}" if name else ""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise UsageError(f"{option}: {value!r}{who} is not a number")
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{option}: {value!r}{who} is not allowed; allowed: a finite number > 0")
    return float(value)


def per_input(value: Any, names: Sequence[str], x: np.ndarray, option: str,
              default: Callable[[int], float] | None) -> Any:
    """A float, a list of n floats, or {input name: float} (missing names take ``default(j)``;
    without a default every input must be named) as a float or an array (n,), entries > 0."""
    if isinstance(value, Mapping):
        out = np.full(len(names), np.nan)
        for key, v in value.items():
            j = names.index(_resolve_name(str(key), names, option))
            out[j] = _positive(v, option, names[j])
        missing = [n for j, n in enumerate(names) if np.isnan(out[j])]
        if missing and default is None:
            raise UsageError(f"{option}: no value for {', '.join(missing)}; give every input "
                             f"({', '.join(names)}) or a single number for all")
        for j, n in enumerate(names):
            if np.isnan(out[j]):
                out[j] = default(j)
        return out
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != len(names):
            raise UsageError(f"{option}: {len(value)} value(s) given, but there are {len(names)} "
                             f"inputs ({', '.join(names)}); give one per input or NAME=VALUE pairs")
        return np.array([_positive(v, option, n) for v, n in zip(value, names)])
    return _positive(value, option)


def step_argument(value: Any, names: Sequence[str], x: np.ndarray) -> Any:
    if isinstance(value, str):
        if value != "adaptive":
            raise UsageError(f"--step {value!r} is not allowed; allowed: a positive number, "
                             f"'adaptive', or one step per input{suggest(value, ['adaptive'])}")
        return value
    if not isinstance(value, (Mapping, list, tuple)) and isinstance(value, (int, float)) \
            and not isinstance(value, bool) and not (math.isfinite(value) and value > 0):
        raise UsageError(f"--step {value!r} is not allowed; allowed: a positive number such as "
                         f"--step 1e-4 (or --step=1e-4), 'adaptive', or NAME=STEP,... per input")
    return per_input(value, names, x, "--step", None)


def bounds_argument(value: Any, names: Sequence[str], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """{name: (lo, hi)} or [lower list, upper list] as (lower, upper) arrays (unlisted inputs
    unbounded); x must lie inside."""
    n = len(names)
    lower, upper = np.full(n, -np.inf), np.full(n, np.inf)
    if isinstance(value, Mapping):
        for key, pair in value.items():
            j = names.index(_resolve_name(str(key), names, "--bounds"))
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                raise UsageError(f"--bounds: {key} = {pair!r} is not allowed; allowed: a pair "
                                 f"[LO, HI] (on the command line NAME=LO:HI)")
            lo, hi = (math.nan if v is None else v for v in pair)
            lower[j] = -np.inf if (isinstance(lo, float) and math.isnan(lo)) else _float(lo, "--bounds", key)
            upper[j] = np.inf if (isinstance(hi, float) and math.isnan(hi)) else _float(hi, "--bounds", key)
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        lower = np.array([_float(v, "--bounds", "lower") for v in np.ravel(value[0])]) * np.ones(n)
        upper = np.array([_float(v, "--bounds", "upper") for v in np.ravel(value[1])]) * np.ones(n)
    else:
        raise UsageError(f"--bounds: {value!r} is not allowed; allowed: NAME=LO:HI,... (in a run "
                         "file a table {name = [lo, hi]})")
    for j, name in enumerate(names):
        if lower[j] > upper[j]:
            raise UsageError(f"--bounds: {name}={lower[j]:g}:{upper[j]:g} has its lower bound above "
                             "its upper bound; allowed: LO <= HI")
        if not lower[j] <= x[j] <= upper[j]:
            raise UsageError(f"--bounds: {name}={x[j]!r} lies outside its bounds "
                             f"{lower[j]:g}:{upper[j]:g}; allowed: a point inside the box")
    return lower, upper


def _float(v: Any, option: str, name: str) -> float:
    if isinstance(v, bool):
        raise UsageError(f"{option}: {v!r} for {name!r} is not a number")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise UsageError(f"{option}: {v!r} for {name!r} is not a number") from None


def direction_argument(value: Any, names: Sequence[str], option: str = "--v") -> np.ndarray:
    """{name: value} (missing inputs 0) or a list of n numbers as an array (n,)."""
    out = np.zeros(len(names))
    if isinstance(value, Mapping):
        for key, v in value.items():
            j = names.index(_resolve_name(str(key), names, option))
            out[j] = _float(v, option, names[j])
            if not math.isfinite(out[j]):
                raise UsageError(f"{option}: {names[j]}={v!r} is not allowed; allowed: a finite number")
        return out
    if isinstance(value, (list, tuple)) and len(value) == len(names):
        return np.array([_float(v, option, n) for v, n in zip(value, names)])
    raise UsageError(f"{option}: {value!r} is not allowed; allowed: NAME=VALUE,... over the inputs "
                     f"{', '.join(names)} (missing ones are 0)")


def import_function(spec: Any, option: str = "--grad") -> Callable:
    """``"package.module:function"`` or ``"path/file.py:function"`` as the callable."""
    if not isinstance(spec, str) or ":" not in spec:
        raise UsageError(f"{option} {spec!r}: the form is MODULE:FUNCTION, such as "
                         f"{option} mymodel:gradient (or path/to/file.py:gradient)")
    module_name, _, attr = spec.rpartition(":")
    try:
        if module_name.endswith(".py"):
            path = os.path.abspath(module_name)
            if not os.path.isfile(path):
                raise UsageError(f"{option} {spec!r}: no file {module_name!r}")
            mod_name = os.path.splitext(os.path.basename(path))[0]
            spec_ = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(spec_)
            sys.modules.setdefault(mod_name, module)
            spec_.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's module's
        raise UsageError(f"{option} {spec!r}: cannot import {module_name!r}: "
                         f"{type(exc).__name__}: {exc}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = [n for n in dir(module) if not n.startswith("_")]
            raise UsageError(f"{option} {spec!r}: module {module_name!r} has no {attr!r}"
                             f"{suggest(attr, public)}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"{option} {spec!r}: {attr!r} is not callable")

    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return obj(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the user's function: one line, not a traceback
            at = f" at x = {np.array2string(np.asarray(args[0]), precision=6)}" if args else ""
            raise UserCodeError(f"{option} {spec}{at} raised {type(exc).__name__}: {exc}") from exc

    guarded.__name__ = getattr(obj, "__name__", attr)
    return guarded


# -- one output of a simulator -------------------------------------------------------------

class Selected(Simulator):
    """One output of another simulator (``--output NAME``): a single-output view of it."""

    name = "selected"

    def __init__(self, sim: Simulator, index: int, label: str) -> None:
        self.sim, self.index, self.label = sim, int(index), str(label)
        self.name = sim.name
        self.inputs = sim.inputs
        self.outputs = (self.label,)
        self.bounds = sim.bounds
        self.vectorized = bool(getattr(sim, "vectorized", False))
        self.complex_safe = getattr(sim, "complex_safe", None)
        self.prefer = getattr(sim, "prefer", None)

    def evaluate(self, x: np.ndarray) -> Any:
        out = np.asarray(self.sim.evaluate(x))
        if self.vectorized and np.ndim(x) == 2:
            return out.reshape(len(x), -1)[:, self.index]
        return out.reshape(-1)[self.index]

    def config(self) -> dict[str, Any]:
        return {"sim": self.sim.identity(), "index": self.index}

    def __repr__(self) -> str:
        return f"{self.sim!r} output {self.label!r}"


def select_output(sim: Simulator, output: Any) -> Simulator:
    """The simulator restricted to one output, named (or numbered) by ``output``."""
    names = list(sim.outputs) if sim.outputs is not None else None
    if isinstance(output, (int, np.integer)) and not isinstance(output, bool):
        index = int(output)
        label = names[index] if names and 0 <= index < len(names) else f"f{index}"
    elif isinstance(output, str) and names is not None and output in names:
        index, label = names.index(output), output
    elif isinstance(output, str) and names is None and output.isdigit():
        index, label = int(output), f"f{output}"
    else:
        allowed = ", ".join(names) if names else "an index 0, 1, ... (this adapter does not name its outputs)"
        hint = suggest(str(output), names) if names else ""
        raise UsageError(f"--output {output!r}: unknown output{hint}; allowed: {allowed}")
    if names is not None and not 0 <= index < len(names):
        raise UsageError(f"--output {output!r}: out of range; the outputs are {', '.join(names)}")
    return Selected(sim, index, label)
