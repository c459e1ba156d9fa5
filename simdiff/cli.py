"""The ``simdiff`` command: every task of the library on a configured adapter, or a run file.

::

    simdiff adapters [NAME]
    simdiff derivative|gradient|jacobian|hessian|noise|sweep ADAPTER --at NAME=VALUE,... [options]
    simdiff jvp ADAPTER --at ... --v NAME=VALUE,...
    simdiff check ADAPTER --at ... --grad MODULE:FUNCTION
    simdiff minimize|least-squares ADAPTER --x0 NAME=VALUE,... [--bounds NAME=LO:HI,...] [--maxfev N]
    simdiff run STUDY.toml

Exit status: 0 success; 1 a simulation failed (``SimulationError``, ``OutputError``), a
gradient check did not pass, or the ``--grad`` function raised (an unexpected error, a bug, is
one line with exit status 1 too; ``-vv`` shows its traceback); 2 bad usage (an unknown adapter, option, configuration key or
value; a run file that does not parse): a one-line reason on stderr, never a traceback; 141
when the reader of stdout went away (``| head``); 130 on Ctrl-C.

``-v`` shows the ``simdiff`` logger's INFO records (each batch, retry and failure) on stderr,
``-vv`` its DEBUG records; without it simdiff logs nothing (the library adds no handler).
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from . import __version__
from . import cli_options as co
from .cli_options import UsageError, parse_at, parse_set, split_commas
from .errors import OutputError, SimdiffError, SimulationError
from .host import adapter_info, load
from .stencils import METHODS

log = logging.getLogger("simdiff.cli")

__all__ = ["build_parser", "main", "parse_at", "parse_set", "UsageError"]

_split_commas = split_commas  # the old private name

EXAMPLES = """\
examples:
  simdiff adapters
  simdiff adapters projectile
  simdiff jacobian projectile --at speed=20,angle=0.6,drag=0.05
  simdiff gradient projectile --at speed=20,angle=0.6,drag=0 --output range --json
  simdiff hessian projectile --at speed=20,angle=0.6,drag=0 --output range --step adaptive
  simdiff jvp projectile --at speed=20,angle=0.6,drag=0 --v speed=1,angle=0.1
  simdiff jacobian pendulum --at length=1,damping=0.1,drive=0.5,theta0=0.2 --set T=5 \\
      --method five-point --bounds damping=0:1 --jobs 2 --cache runs/cache
  simdiff check python --set function=mymodel:loss --at 1,2 --grad mymodel:loss_grad
  simdiff sweep projectile --at speed=20,angle=0.6,drag=0 --output range --input angle --plot sweep.png
  simdiff minimize python --set function=scipy.optimize:rosen --x0 -1.2,1 --maxfev 400
  simdiff run study.toml --json

--set values are read as JSON when they parse (numbers, lists, objects, true/false/null),
otherwise as plain strings. A value that starts with '-' may follow its option directly
(--step -1e-3 is read as --step=-1e-3).

exit status: 0 success, 1 a simulation failed or a check did not pass, 2 bad usage
"""

VERBS = {
    "derivative": "the derivative of a one-input simulator",
    "gradient": "the gradient of a single-output simulator",
    "jacobian": "the Jacobian (outputs x inputs) of a simulator",
    "hessian": "the Hessian of a single-output simulator",
    "jvp": "the directional derivative J·v",
    "check": "check an analytical gradient or Jacobian against finite differences",
    "noise": "the noise level of a simulator's outputs (ECnoise)",
    "sweep": "the error of a finite difference against the step (the V of rounding and truncation)",
    "minimize": "minimize a single-output simulator from --x0",
    "least-squares": "minimize ½‖r(x)‖² of a simulator's outputs r from --x0",
}


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # --meth is not --method: a typo is named
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        bad = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if bad:
            choices = re.findall(r"'([^']*)'", bad.group(2)) or [c.strip() for c in bad.group(2).split(",")]
            close = difflib.get_close_matches(bad.group(1), choices, n=1, cutoff=0.6)
            if close:
                message += f"; did you mean {close[0]!r}?"
        m = re.match(r"argument (\S+?)(?:/\S+)?: expected one argument", message)
        if m:
            message += (f"; the form is {m.group(1)} VALUE (a value that starts with '-' goes "
                        f"after '=', such as {m.group(1)}=-1)")
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _number_or_list(text: str) -> bool:
    return bool(re.match(r"^-(\d|\.\d|inf|nan)", text, re.IGNORECASE))


def _add_common(p: argparse.ArgumentParser, task: str) -> None:
    p.add_argument("adapter", metavar="ADAPTER", help="an adapter name (see 'simdiff adapters')")
    if task in ("minimize", "least-squares"):
        p.add_argument("--x0", "--at", dest="at", action="append", required=True,
                       metavar="NAME=VALUE,...", help="the start: name=value pairs (or bare values "
                       "in input order); repeatable")
    else:
        p.add_argument("--at", action="append", required=True, metavar="NAME=VALUE,...",
                       help="the point: name=value pairs (or bare values, in input order); repeatable")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an adapter configuration keyword; value JSON if it parses; repeatable")
    if task in ("minimize", "least-squares"):
        p.add_argument("--method", metavar="M", help="the optimizer (see simdiff.minimize)")
    else:
        p.add_argument("--method", choices=METHODS, help="difference scheme (default central)")
    p.add_argument("--order", type=int, metavar="P", help="accuracy order of the scheme")
    p.add_argument("--step", type=co.parse_step, metavar="FLOAT|adaptive",
                   help="absolute step (one for all inputs, or NAME=STEP,...), or 'adaptive'")
    p.add_argument("--rel-step", type=float, metavar="R", help="step relative to |x_j|")
    p.add_argument("--scale", action="append", metavar="NAME=S,...",
                   help="typical magnitude of each input (or one number for all)")
    p.add_argument("--bounds", action="append", metavar="NAME=LO:HI,...",
                   help="a box no evaluated point leaves; an empty side is unbounded")
    p.add_argument("--noise", type=co.parse_noise, metavar="LEVEL|estimate",
                   help="noise level of the outputs, or 'estimate'")
    p.add_argument("--output", metavar="NAME", help="use this one output of the simulator")
    p.add_argument("--jobs", type=int, metavar="N", help="evaluate N points in parallel")
    p.add_argument("--backend", metavar="NAME", help="loky, threading, dask, ray, ...")
    p.add_argument("--cache", metavar="DIR", help="keep every evaluation in DIR; a rerun resumes")
    p.add_argument("--timeout", type=float, metavar="S", help="seconds one evaluation may take")
    p.add_argument("--retries", type=int, metavar="N", help="run a failed point again N times")
    p.add_argument("--on-failure", choices=("raise", "skip"),
                   help="a failed point stops the run (raise) or is left out (skip)")
    p.add_argument("--progress", action="store_true", default=None, help="show a progress bar")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log batches, retries and failures to stderr (-vv: more)")
    if task == "jvp":
        p.add_argument("--v", dest="v", action="append", required=True, metavar="NAME=VALUE,...",
                       help="the direction; inputs not named are 0")
    if task == "check":
        p.add_argument("--grad", "--jac", dest="grad", required=True, metavar="MODULE:FUNCTION",
                       help="the analytical derivative, x -> (n,) or (m, n)")
        p.add_argument("--tol", type=float, help="pass below this relative error (default 1e-5)")
        p.add_argument("--points", type=int, metavar="K", help="check at K random points")
        p.add_argument("--seed", type=int, help="seed of the random points")
        p.add_argument("--strict", action="store_true", default=None,
                       help="fail on the worst single entry too")
    if task in ("minimize", "least-squares"):
        p.add_argument("--maxfev", type=int, metavar="N", help="at most N evaluations")
    if task == "sweep":
        p.add_argument("--input", metavar="NAME", help="sweep along this input (default the first)")
        p.add_argument("--steps", type=int, metavar="K", help="how many steps (default 65)")
        p.add_argument("--true", type=float, metavar="D", help="the exact derivative, if known")
    if task in ("sweep", "minimize", "least-squares"):
        p.add_argument("--plot", metavar="FILE", help="save the figure (PNG; needs matplotlib)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="simdiff", description="Numerical derivatives of black-box simulators.",
                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"simdiff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    p = sub.add_parser("adapters", help="list the adapters, or show one",
                       description="List the registered adapters; with NAME, show that adapter's "
                       "inputs, outputs and configuration keys with their defaults.")
    p.add_argument("name", nargs="?", metavar="NAME", help="an adapter to describe")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.set_defaults(func=_cmd_adapters)
    for task, what in VERBS.items():
        p = sub.add_parser(task, help=what, description=f"Compute {what}." if task not in
                           ("check", "minimize", "least-squares") else what[0].upper() + what[1:] + ".",
                           epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_common(p, task)
        p.set_defaults(func=_cmd_task, kind=task)
    p = sub.add_parser("run", help="run a study described in a TOML file",
                       description="Run the study a TOML run file describes: adapter, task, "
                       "[config], [at], [options] (see simdiff.runfile).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="STUDY.toml")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument("--plot", metavar="FILE", help="save the task's figure (sweep, optimizers)")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.set_defaults(func=_cmd_run)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options_of(parser: argparse.ArgumentParser) -> list[str]:
    return [s for a in parser._actions for s in a.option_strings]


def _prepare_argv(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """``--step -1e-3`` as ``--step=-1e-3``: a negative value after an option taking one."""
    takes_value = {s for p in [parser, *_subparsers(parser).values()] for a in p._actions
                   if a.nargs is None and a.option_strings and not isinstance(
                       a, (argparse._StoreTrueAction, argparse._CountAction,
                           argparse._StoreConstAction, argparse._VersionAction))
                   for s in a.option_strings}
    out, i = [], 0
    while i < len(argv):
        tok = argv[i]
        if tok in takes_value and i + 1 < len(argv) and _number_or_list(argv[i + 1]):
            out.append(f"{tok}={argv[i + 1]}")
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


def _unknown(extras: list[str], parser: argparse.ArgumentParser, command: str | None) -> None:
    sub = _subparsers(parser).get(command) if command else parser
    known = _options_of(sub or parser)
    for tok in extras:
        if tok.startswith("-") and not _number_or_list(tok):
            word = tok.split("=", 1)[0]
            close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else f"; the options are {', '.join(sorted(set(known)))}"
            raise UsageError(f"unknown option {word}{hint} (see 'simdiff {command or ''} --help')".replace("  ", " "))
    raise UsageError(f"unexpected argument(s): {' '.join(extras)} (see 'simdiff {command or ''} --help')")


# -- commands ----------------------------------------------------------------------------------

def _cmd_adapters(args: argparse.Namespace) -> int:
    from .adapter_doc import describe, describe_text

    if args.name:
        info = describe(args.name)
        print(json.dumps(info, indent=2, default=str) if args.json else describe_text(info))
        return 0
    rows = [(a.name, a.description, a.plugin, a.version) for a in adapter_info()]
    if args.json:
        print(json.dumps([dict(zip(("name", "description", "plugin", "version"), r)) for r in rows], indent=2))
        return 0
    from .cli_tasks import table

    print(table(("adapter", "description", "plugin", "version"), rows, align="<"))
    return 0


def _load(adapter: str, config: dict) -> Any:
    try:
        return load(adapter, **config)
    except SimdiffError:
        raise
    except (TypeError, ValueError) as exc:  # a third-party constructor refusing a value
        raise UsageError(f"adapter {adapter!r} rejected its configuration: {exc}") from None


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The command line's options, named as in Python; only those given."""
    opts: dict[str, Any] = {}
    simple = ("method", "order", "step", "rel_step", "noise", "output", "backend", "cache",
              "timeout", "retries", "on_failure", "progress", "grad", "tol", "points", "seed",
              "strict", "maxfev", "input", "steps", "true")
    for key in simple:
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
    if getattr(args, "jobs", None) is not None:
        opts["n_jobs"] = args.jobs
    if getattr(args, "scale", None):
        opts["scale"] = co.parse_per_input(args.scale, "--scale", "speed=10")
    if getattr(args, "bounds", None):
        opts["bounds"] = co.parse_bounds(args.bounds)
    if getattr(args, "v", None):
        tokens = [t.strip() for item in args.v for t in split_commas(item) if t.strip()]
        if tokens and not any("=" in t for t in tokens):  # bare values, in input order
            opts["v"] = [co._number(t, "--v", f"v[{k}]") for k, t in enumerate(tokens)]
        else:
            opts["v"] = {n: co._number(t, "--v", n) for n, t in co.named_text(args.v, "--v", "speed=1")}
    return opts


def _cmd_task(args: argparse.Namespace) -> int:
    from .cli_tasks import check_plot_available, run_task

    if getattr(args, "plot", None):
        check_plot_available()
    config = parse_set(args.set)
    sim = _load(args.adapter, config)
    option = "--x0" if args.kind in ("minimize", "least-squares") else "--at"
    x, names = parse_at(args.at, sim.inputs, option)
    outcome = run_task(args.kind, sim, x, names, options_from_args(args), adapter=args.adapter,
                       config=config)
    return _emit(outcome, args)


def _cmd_run(args: argparse.Namespace) -> int:
    from .runfile import run_file

    outcome = run_file(args.file, plot=args.plot)
    return _emit(outcome, args, plot=getattr(outcome, "plot_path", None))


def _emit(outcome: Any, args: argparse.Namespace, plot: str | None = None) -> int:
    plot = plot if plot is not None else getattr(args, "plot", None)
    if plot:
        if outcome.plot is None:
            print("simdiff: warning: this task has no figure to plot"
                  + (f" ({outcome.notes[0]})" if outcome.notes else ""), file=sys.stderr)
        else:
            outcome.plot(plot)
            outcome.document["plot"] = str(plot)
            log.info("figure saved to %s", plot)
    if args.json:
        print(json.dumps(outcome.document, indent=2, default=str))
    else:
        print(outcome.text)
        if plot and outcome.plot is not None:
            print(f"\nfigure saved to {plot}")
    return outcome.status


# -- entry point -------------------------------------------------------------------------------

def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _logging(verbosity: int) -> logging.Handler | None:
    if not verbosity:
        return None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("simdiff: %(levelname)s: %(name)s: %(message)s"))
    logger = logging.getLogger("simdiff")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"simdiff: warning: {_one_line(message)}", file=sys.stderr)

    # As under `python -m simdiff`: modules beside the user (--set function=mysim:f) import.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    argv = list(sys.argv[1:] if argv is None else argv)
    handler = None
    with warnings.catch_warnings():
        warnings.showwarning = show
        try:
            parser = build_parser()
            args, extras = parser.parse_known_args(_prepare_argv(argv, parser))
            if extras:
                _unknown(extras, parser, getattr(args, "command", None))
            handler = _logging(getattr(args, "verbose", 0))
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
        except co.UserCodeError as exc:
            return _fail(1, str(exc))
        except SimdiffError as exc:
            return _fail(2, f"{exc}")
        except KeyboardInterrupt:
            return _fail(130, "interrupted")
        except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback with -vv
            if verbosity(argv) > 1:
                raise
            return _fail(1, f"internal error: {type(exc).__name__}: {exc} (simdiff -vv ... shows "
                         "the traceback; please report it)")
        finally:
            if handler is not None:
                logging.getLogger("simdiff").removeHandler(handler)


def verbosity(argv: Sequence[str]) -> int:
    """-v counted from the raw arguments (the parsed ones may not exist when a bug struck)."""
    return sum(a.count("v") for a in argv if re.fullmatch(r"-v+", a)) + argv.count("--verbose")


def _fail(code: int, message: str, one_line: bool = True) -> int:
    print(f"simdiff: error: {_one_line(message) if one_line else message}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
