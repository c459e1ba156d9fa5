"""The ``simdiff`` command: list adapters, differentiate a configured simulator.

Exit status: 0 success; 1 a simulation failed (``SimulationError``, ``OutputError``); 2 bad
usage (an unknown adapter, option, configuration key or value): a one-line reason on stderr,
never a traceback; 141 when the reader of stdout went away (``| head``); 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import __version__
from .differentiate import jacobian
from .errors import OutputError, SimdiffError, SimulationError
from .host import adapter_info, load
from .stencils import METHODS

__all__ = ["build_parser", "main", "parse_at", "parse_set"]

EXAMPLES = """\
examples:
  simdiff adapters
  simdiff jacobian projectile --at speed=20,angle=0.6,drag=0.05
  simdiff gradient projectile --at speed=20,angle=0.6,drag=0 --set outputs='["range"]' --json
  simdiff jacobian pendulum --at length=1,damping=0.1,drive=0.5,theta0=0.2 --set T=5 \\
      --method five-point
  simdiff jacobian subprocess --set command='["./solver", "deck.inp"]' \\
      --set inputs='["a", "b"]' --set files='{"deck.inp": "a = {a}\\nb = {b}\\n"}' \\
      --at a=1,b=2 --jobs 4

--set values are read as JSON when they parse (numbers, lists, objects, true/false/null),
otherwise as plain strings.

exit status: 0 success, 1 a simulation failed, 2 bad usage
"""


class UsageError(Exception):
    """A mistake on the command line (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        if "expected one argument" in message:  # "--at -1,2": argparse takes -1,2 for an option
            message += "; a value that starts with '-' goes after '=', such as --at=-1,2"
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="simdiff",
        description="Numerical derivatives of black-box simulators.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"simdiff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("adapters", help="list the registered adapters",
                       description="List the registered adapters: name, description, plugin, version.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_adapters)
    for kind, what in (("gradient", "the gradient of a single-output simulator"),
                       ("jacobian", "the Jacobian (outputs x inputs) of a simulator")):
        p = sub.add_parser(kind, help=f"{what}", description=f"Compute {what} at a point.",
                           epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("adapter", metavar="ADAPTER", help="an adapter name (see 'simdiff adapters')")
        p.add_argument("--at", action="append", required=True, metavar="NAME=VALUE,...",
                       help="the point: name=value pairs (or bare values, in input order); repeatable")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="an adapter configuration keyword; value JSON if it parses; repeatable")
        p.add_argument("--method", choices=METHODS, default="central", help="difference scheme (default central)")
        p.add_argument("--order", type=int, help="accuracy order of the scheme")
        p.add_argument("--step", type=float, help="absolute step for every input")
        p.add_argument("--rel-step", type=float, help="step relative to |x_j|")
        p.add_argument("--jobs", type=int, metavar="N", help="evaluate N points in parallel")
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        p.set_defaults(func=_cmd_derivative, kind=kind)
    return parser


# -- parsing the point and the configuration ---------------------------------------------------

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


def _split_commas(text: str) -> list[str]:
    """``text`` split at the commas outside brackets: ``"a=1,model.geom_friction[0,0]=2"``
    gives two items (MuJoCo input names hold commas)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch in "[({") - (ch in "])}")
        if ch == "," and depth <= 0:
            parts.append(text[start:i])
            start, depth = i + 1, 0
    return parts + [text[start:]]


def parse_at(items: Sequence[str], inputs: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    """The point x from ``--at`` texts, ordered as ``inputs``; also the names used."""
    tokens = [t.strip() for item in items for t in _split_commas(item) if t.strip()]
    if not tokens:
        raise UsageError("--at: no values given; expected NAME=VALUE,... such as --at speed=20,angle=0.6")
    named = ["=" in t for t in tokens]
    if any(named) and not all(named):
        raise UsageError(f"--at {','.join(tokens)!r}: give all values as NAME=VALUE or all bare, not a mix")
    pairs = [t.partition("=")[::2] if "=" in t else ("", t) for t in tokens]
    values: list[float] = []
    for name, text in pairs:
        try:
            values.append(float(text))
        except ValueError:
            raise UsageError(f"--at: {text!r}{' for ' + repr(name) if name else ''} is not a number") from None
    if not all(named):
        if inputs is not None and len(values) != len(inputs):
            raise UsageError(
                f"--at: {len(values)} value(s) given, but the inputs are {', '.join(inputs)} ({len(inputs)})"
            )
        return np.array(values), list(inputs) if inputs is not None else [f"x{j}" for j in range(len(values))]
    if inputs is None:
        raise UsageError("--at: this adapter does not name its inputs; give bare values in order, such as --at 1.0,2.5")
    given: dict[str, float] = {}
    by_text = {"".join(n.split()): n for n in inputs}  # "data.qpos[ 2 ]" is "data.qpos[2]"
    for (text, _), v in zip(pairs, values):
        name = by_text.get("".join(text.split()))
        if name is None:
            raise UsageError(f"--at: unknown input {text.strip()!r}; the inputs are {', '.join(inputs)}")
        if name in given:
            raise UsageError(f"--at: input {name!r} given twice")
        given[name] = v
    missing = [n for n in inputs if n not in given]
    if missing:
        raise UsageError(f"--at: missing value(s) for {', '.join(missing)}; the inputs are {', '.join(inputs)}")
    return np.array([given[n] for n in inputs]), list(inputs)


# -- commands ----------------------------------------------------------------------------------

def _cmd_adapters(args: argparse.Namespace) -> int:
    rows = [(a.name, a.description, a.plugin, a.version) for a in adapter_info()]
    if args.json:
        print(json.dumps([dict(zip(("name", "description", "plugin", "version"), r)) for r in rows], indent=2))
        return 0
    _print_table(("adapter", "description", "plugin", "version"), rows, align="<")
    return 0


def _cmd_derivative(args: argparse.Namespace) -> int:
    config = parse_set(args.set)
    try:
        sim = load(args.adapter, **config)
    except SimdiffError:
        raise
    except (TypeError, ValueError) as exc:  # a third-party constructor refusing a value
        raise UsageError(f"adapter {args.adapter!r} rejected its configuration: {exc}") from None
    x, names = parse_at(args.at, sim.inputs)
    outputs = list(sim.outputs) if sim.outputs is not None else None
    if args.kind == "gradient" and outputs is not None and len(outputs) != 1:
        hint = ""
        if "outputs" in inspect.signature(type(sim)).parameters:
            hint = f", or pick one with --set outputs='[\"{outputs[0]}\"]'"
        raise UsageError(
            f"gradient needs a single output, but {args.adapter!r} has {len(outputs)}: "
            f"{', '.join(outputs)}; use 'simdiff jacobian'{hint}"
        )
    J, info = jacobian(sim, x, method=args.method, order=args.order, step=args.step,
                       rel_step=args.rel_step, n_jobs=args.jobs, full_output=True)
    E = np.asarray(info.error)
    value, error = J, E
    if args.kind == "gradient":
        if J.shape[0] != 1:  # outputs not named in advance: known only now
            raise UsageError(
                f"gradient needs a single output, but {args.adapter!r} returned {J.shape[0]} values "
                "per point; use 'simdiff jacobian'"
            )
        value, error = J[0], E[0]
    if outputs is None or len(outputs) != J.shape[0]:
        outputs = ["f"] if J.shape[0] == 1 else [f"f{i}" for i in range(J.shape[0])]
    if args.json:
        print(json.dumps({
            "adapter": args.adapter,
            "config": config,
            "at": dict(zip(names, x.tolist())),
            "inputs": names,
            "outputs": outputs,
            "kind": args.kind,
            args.kind: _jsonable(value),
            "error": _jsonable(error),
            "nfev": int(info.nfev),
            "step": _jsonable(info.step),
            "method": info.method,
            "failures": [_failure_json(f) for f in info.failures],
        }, indent=2))
        return 0
    at = ", ".join(f"{n}={v!r}" for n, v in zip(names, x.tolist()))  # exact: repr round-trips
    print(f"{args.kind} of {args.adapter} at {at}")
    print(f"method {info.method}, {int(info.nfev)} evaluations"
          + (f", {len(info.failures)} failed" if info.failures else ""))
    print()
    rows = [[out] + [f"{J[i, j]:.10g} ± {E[i, j]:.1e}" for j in range(J.shape[1])]
            for i, out in enumerate(outputs)]
    rows.append(["step"] + [f"{h:.3g}" for h in np.asarray(info.step, dtype=float)])
    _print_table(["d/d"] + names, rows, align=">")
    return 0


def _jsonable(a: Any) -> Any:
    """Arrays as nested lists, with NaN and infinities as null (strict JSON)."""
    arr = np.asarray(a, dtype=float)
    if arr.ndim == 0:
        v = float(arr)
        return v if math.isfinite(v) else None
    return [_jsonable(r) for r in arr]


def _failure_json(f: Any) -> dict:
    f = dict(f) if isinstance(f, dict) else {"cause": f}
    out = {"cause": str(f.get("cause"))}
    if f.get("index") is not None:
        out["index"] = int(f["index"])
    if f.get("point") is not None:
        out["point"] = _jsonable(f["point"])
    return out


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> None:
    cols = [list(header)] + [list(map(str, r)) for r in rows]
    widths = [max(len(r[j]) for r in cols) for j in range(len(header))]
    for k, r in enumerate(cols):
        cells = [r[0].ljust(widths[0])] + [f"{c:{align}{w}}" for c, w in zip(r[1:], widths[1:])]
        print("  ".join(cells).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


# -- entry point -------------------------------------------------------------------------------

def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"simdiff: warning: {message}", file=sys.stderr)

    # As under `python -m simdiff`: modules beside the user (--set function=mysim:f) import.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    with warnings.catch_warnings():
        warnings.showwarning = show
        try:
            args = build_parser().parse_args(argv)
            status = args.func(args)
            sys.stdout.flush()  # here, so that a closed pipe is seen inside the try
            return status
        except BrokenPipeError:  # `simdiff adapters | head -1`: the reader has gone
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141  # 128 + SIGPIPE, as a C tool killed by it
        except UsageError as exc:
            return _fail(2, str(exc))
        except (SimulationError, OutputError) as exc:
            return _fail(1, f"simulation failed: {exc}", one_line=False)
        except SimdiffError as exc:
            return _fail(2, f"{exc}")
        except KeyboardInterrupt:
            return _fail(130, "interrupted")


def _fail(code: int, message: str, one_line: bool = True) -> int:
    print(f"simdiff: error: {_one_line(message) if one_line else message}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
