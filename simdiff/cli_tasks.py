"""The tasks the ``simdiff`` command and run files perform, one function each.

``run_task(task, sim, x, inputs, options)`` calls the library function of ``task`` (gradient,
jacobian, hessian, derivative, jvp, check, noise, minimize, least-squares, sweep) on a
configured simulator at the point x, with ``options`` named as in Python and given only when
the user gave them, and returns an ``Outcome``: the JSON document, the text table, and the
figure it can draw (the step sweep, an optimizer's history). The command line and
``simdiff run`` print the same outcome, so a run file and the equivalent command agree.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import cli_options as co
from .cli_options import UsageError
from .errors import MissingDependencyError, SimdiffError
from .simulator import Simulator

__all__ = ["TASKS", "Outcome", "run_task", "check_plot_available"]

log = logging.getLogger("simdiff.cli")

TASKS = tuple(co.TASK_OPTIONS)
#: Tasks that draw a figure with ``--plot FILE``.
PLOTTING = ("sweep", "minimize", "least-squares")


@dataclass
class Outcome:
    """What a task produced: ``document`` (for --json), ``text`` (the table) and ``plot``
    (a function path -> None, or None when the task has no figure); ``status`` the exit code."""

    document: dict
    text: str
    plot: Callable[[str], None] | None = None
    status: int = 0
    notes: list = field(default_factory=list)


# -- formatting -----------------------------------------------------------------------------

def jsonable(a: Any) -> Any:
    """Arrays as nested lists, with NaN and infinities as null (strict JSON)."""
    if a is None:
        return None
    if hasattr(a, "toarray"):  # scipy.sparse
        a = a.toarray()
    arr = np.asarray(a, dtype=float)
    if arr.ndim == 0:
        v = float(arr)
        return v if math.isfinite(v) else None
    return [jsonable(r) for r in arr]


def failure_json(f: Any) -> dict:
    f = f.as_dict() if hasattr(f, "as_dict") else (dict(f) if isinstance(f, dict) else {"cause": f})
    cause = f.get("cause")
    out = {"kind": str(f.get("kind") or ("repair" if f.get("entry") is not None else "evaluation"))}
    out["cause" if cause is not None else "reason"] = str(cause if cause is not None else f.get("reason"))
    if f.get("reason") is not None and cause is not None:
        out["reason"] = str(f["reason"])
    if f.get("entry") is not None:
        out["entry"] = jsonable(f["entry"])
    if f.get("recovered") is not None:
        out["recovered"] = bool(f["recovered"])
    if f.get("index") is not None:
        out["index"] = int(f["index"])
    if f.get("point") is not None:
        out["point"] = jsonable(f["point"])
    return out


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = ">") -> str:
    """A plain-text table: the first column left-aligned, the others ``align``-ed."""
    cols = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    widths = [max(len(r[j]) for r in cols) for j in range(len(header))]
    lines = []
    for k, r in enumerate(cols):
        cells = [r[0].ljust(widths[0])] + [f"{c:{align}{w}}" for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _pm(v: float, e: float) -> str:
    return f"{v:.10g} ± {e:.1e}"


def _point_text(names: Sequence[str], x: np.ndarray) -> str:
    return ", ".join(f"{n}={v!r}" for n, v in zip(names, x.tolist()))  # exact: repr round-trips


# -- building the library's keyword arguments -------------------------------------------------

def _evaluator(opts: dict) -> Any:
    given = {k: opts[k] for k in co.EVALUATOR_OPTIONS if opts.get(k) is not None}
    if not given:
        return None
    rules = {"n_jobs": (lambda v: _int(v) and v != 0, "a positive number of parallel runs "
                        "(-1: all CPUs), such as --jobs 4"),
             "retries": (lambda v: _int(v) and v >= 0, "an integer >= 0, such as --retries 2"),
             "timeout": (lambda v: _num(v) and math.isfinite(v) and v > 0,
                         "a number of seconds > 0, such as --timeout 60")}
    for key, (ok, allowed) in rules.items():
        if key in given and not ok(given[key]):
            raise UsageError(f"{co.flag(key)} {given[key]!r} is not allowed; allowed: {allowed}")
    from .evaluate import Evaluator

    return Evaluator(**given)


def _int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def derivative_kwargs(opts: dict, names: Sequence[str], x: np.ndarray,
                      numeric: Sequence[str] = ("method", "order", "step", "rel_step")) -> dict:
    """The derivative options of ``opts`` as library keywords (only those given)."""
    kw: dict[str, Any] = {}
    for key in numeric:
        if opts.get(key) is None:
            continue
        value = opts[key]
        if key == "step":
            value = co.step_argument(value, names, x)
        elif key == "rel_step":
            value = co.per_input(value, names, x, "--rel-step", None)
        elif key == "order" and (isinstance(value, bool) or not isinstance(value, int)):
            raise UsageError(f"--order: {value!r} is not allowed; allowed: an integer such as --order 4")
        kw[key] = value
    if opts.get("scale") is not None:
        kw["scale"] = co.per_input(opts["scale"], names, x, "--scale",
                                   lambda j: max(1.0, abs(float(x[j]))))
    if opts.get("bounds") is not None:
        kw["bounds"] = co.bounds_argument(opts["bounds"], names, x)
    if opts.get("noise") is not None:
        kw["noise"] = opts["noise"]
    ev = _evaluator(opts)
    if ev is not None:
        kw["evaluator"] = ev
    return kw


def call(function: Callable, public: str, *args: Any, **kw: Any) -> Any:
    """``function(*args, **kw)``; a keyword this simdiff's ``public`` does not take yet becomes
    a one-line UsageError naming the option."""
    try:
        return function(*args, **kw)
    except TypeError as exc:
        if isinstance(exc, SimdiffError):
            raise
        m = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if m and m.group(1) in kw:
            raise UsageError(f"{co.flag(m.group(1))} is not supported by simdiff.{public} in this "
                             f"version of simdiff ({m.group(1)}= is not one of its options)") from None
        raise


def output_names(sim: Simulator, m: int) -> list[str]:
    outputs = list(sim.outputs) if sim.outputs is not None else None
    if outputs is None or len(outputs) != m:
        outputs = ["f"] if m == 1 else [f"f{i}" for i in range(m)]
    return outputs


def single_output(sim: Simulator, task: str, adapter: str) -> None:
    """Refuse a task that needs one output when the simulator names several."""
    outputs = list(sim.outputs) if sim.outputs is not None else None
    if outputs is not None and len(outputs) != 1:
        raise UsageError(
            f"{task} needs a single output, but {adapter!r} has {len(outputs)}: "
            f"{', '.join(outputs)}; pick one with --output {outputs[0]} (in a run file: "
            f"output = \"{outputs[0]}\" under [options])"
            + ("; or use 'simdiff jacobian'" if task == "gradient" else "")
        )


def _single_returned(task: str, adapter: str, m: int) -> None:
    if m != 1:  # outputs not named in advance: known only now
        raise UsageError(
            f"{task} needs a single output, but {adapter!r} returned {m} values per point; pick "
            f"one with --output 0..{m - 1}" + ("; or use 'simdiff jacobian'" if task == "gradient" else "")
        )


# -- the tasks --------------------------------------------------------------------------------

def run_task(task: str, sim: Simulator, x: np.ndarray, names: list[str], opts: dict, *,
             adapter: str = "", config: dict | None = None) -> Outcome:
    """Perform ``task`` on ``sim`` at ``x``; see the module docstring."""
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}{co.suggest(task, TASKS)}; allowed: {', '.join(TASKS)}")
    if opts.get("output") is not None:
        sim = co.select_output(sim, opts["output"])
    base = {"adapter": adapter, "config": config or {}, "task": task, "kind": task,
            "inputs": list(names), "at": dict(zip(names, x.tolist()))}
    handler = _HANDLERS[task]
    log.info("%s of %s at %s", task, adapter, _point_text(names, x))
    return handler(sim, x, names, opts, base, adapter)


def _derivatives(task: str):
    def run(sim, x, names, opts, base, adapter):
        import simdiff as sd

        if task in ("gradient", "hessian"):
            single_output(sim, task, adapter)
        kw = derivative_kwargs(opts, names, x)
        if task == "derivative":
            if len(x) != 1:
                raise UsageError(f"derivative needs an adapter with one input; {adapter!r} has "
                                 f"{len(x)}: {', '.join(names)}; use 'simdiff gradient' or "
                                 "'simdiff jacobian'")
            value, info = call(sd.derivative, "derivative", sim, float(x[0]), full_output=True, **kw)
            V, E = np.reshape(value, (-1, 1)), np.reshape(info.error, (-1, 1))
            rows_of, cols = output_names(sim, V.shape[0]), list(names)
        elif task == "jvp":
            if opts.get("v") is None:
                raise UsageError("jvp needs the direction: --v NAME=VALUE,... (inputs not named "
                                 "are 0), such as --v " + f"{names[0]}=1")
            v = co.direction_argument(opts["v"], names)
            value, info = call(sd.jvp, "jvp", sim, x, v, full_output=True, **kw)
            V, E = np.reshape(value, (-1, 1)), np.reshape(info.error, (-1, 1))
            rows_of, cols = output_names(sim, V.shape[0]), ["J·v"]
            base["v"] = dict(zip(names, v.tolist()))
        elif task == "hessian":
            value, info = call(sd.hessian, "hessian", sim, x, full_output=True, **kw)
            V, E = np.asarray(value), np.asarray(info.error)
            rows_of, cols = list(names), list(names)
        else:
            value, info = call(sd.jacobian, "jacobian", sim, x, full_output=True, **kw)
            V, E = np.asarray(value), np.asarray(info.error)
            if task == "gradient":
                _single_returned(task, adapter, V.shape[0])
            rows_of, cols = output_names(sim, V.shape[0]), list(names)
        result, error = V, E
        if task == "gradient":
            result, error = V[0], E[0]
        elif task in ("derivative", "jvp"):
            result, error = V[:, 0], E[:, 0]
            if V.shape[0] == 1:
                result, error = V[0, 0], E[0, 0]
        outputs = output_names(sim, V.shape[0]) if task != "hessian" else output_names(sim, 1)
        failures = list(info.get("failures", []) or [])
        doc = {**base, "outputs": outputs, task: jsonable(result), "error": jsonable(error),
               "nfev": int(info.nfev), "step": jsonable(info.get("step")),
               "method": info.get("method"), "failures": [failure_json(f) for f in failures]}
        head = (f"{task} of {adapter} at {_point_text(names, x)}\n"
                f"method {info.get('method')}, {int(info.nfev)} evaluations"
                + (f", {len(failures)} failed" if failures else "") + "\n")
        corner = {"hessian": "d2/d", "jvp": "", "derivative": "d/d"}.get(task, "d/d")
        rows = [[r] + [_pm(V[i, j], E[i, j]) for j in range(V.shape[1])] for i, r in enumerate(rows_of)]
        steps = np.atleast_1d(np.asarray(info.get("step"), dtype=float))
        if task not in ("jvp",) and steps.size == len(cols):
            rows.append(["step"] + [f"{h:.3g}" for h in steps])
        elif task == "jvp":
            rows.append(["step"] + [f"{float(steps.ravel()[0]):.3g}"])
        text = head + "\n" + table([corner] + cols, rows)
        return Outcome(doc, text)
    return run


def _check(sim, x, names, opts, base, adapter):
    import simdiff as sd

    if opts.get("grad") is None:
        raise UsageError("check needs the analytical derivative: --grad MODULE:FUNCTION, a "
                         "function x -> gradient (n,) or Jacobian (m, n)")
    deriv = co.import_function(opts["grad"], "--grad")
    kw = derivative_kwargs(opts, names, x)
    for key in ("tol", "points", "seed", "spread", "strict"):
        if opts.get(key) is not None:
            kw[key] = opts[key]
    outputs = list(sim.outputs) if sim.outputs is not None else None
    if outputs is not None and len(outputs) == 1 or outputs is None and _returns_one(sim, x):
        report = call(sd.check_gradient, "check_gradient", sim, deriv, x, inputs=names, **kw)
    else:
        report = call(sd.check_jacobian, "check_jacobian", sim, deriv, x, inputs=names, **kw)
    doc = {**base, "outputs": outputs, "passed": bool(report.passed), "verdict": report.verdict,
           "relative_error": float(report.relative_error), "entry_error": float(report.entry_error),
           "numerical": jsonable(report.numerical), "analytical": jsonable(report.analytical),
           "hints": [h.message for h in report.hints], "nfev": int(report.nfev)}
    return Outcome(doc, f"check of {adapter} at {_point_text(names, x)} against {opts['grad']}\n"
                   + str(report), status=0 if report.passed else 1)


def _returns_one(sim: Simulator, x: np.ndarray) -> bool:
    from .evaluate import SerialEvaluator

    batch = SerialEvaluator().evaluate(sim, x[None, :])
    return batch.values.shape[1] == 1


def _noise(sim, x, names, opts, base, adapter):
    import simdiff as sd

    noise_level = getattr(sd, "noise_level", None)
    if noise_level is None:
        raise UsageError("'noise' needs simdiff.noise_level, which this version of simdiff does "
                         "not have yet")
    kw = derivative_kwargs({k: v for k, v in opts.items() if k not in ("noise",)}, names, x,
                           numeric=())
    est = call(noise_level, "noise_level", sim, x, **kw)
    level = np.atleast_1d(np.asarray(est.level, dtype=float))
    rel = np.atleast_1d(np.asarray(getattr(est, "relative", np.full(level.shape, np.nan)), dtype=float))
    status = getattr(est, "status", "")
    statuses = list(status) if isinstance(status, (list, tuple, np.ndarray)) else [status] * level.size
    outputs = output_names(sim, level.size)
    doc = {**base, "outputs": outputs, "level": jsonable(level), "relative": jsonable(rel),
           "status": [str(s) for s in statuses], "nfev": int(getattr(est, "nfev", 0)),
           "h": jsonable(getattr(est, "h", None))}
    rows = [[o, f"{lv:.3g}", f"{r:.3g}", str(s)] for o, lv, r, s in zip(outputs, level, rel, statuses)]
    text = (f"noise level of {adapter} at {_point_text(names, x)} "
            f"({int(getattr(est, 'nfev', 0))} evaluations)\n\n"
            + table(["output", "level", "relative", "status"], rows))
    return Outcome(doc, text)


def _optimize(kind: str):
    def run(sim, x, names, opts, base, adapter):
        import simdiff as sd

        public = "minimize" if kind == "minimize" else "least_squares"
        fn = getattr(sd, public, None)
        if fn is None:
            raise UsageError(f"'{kind}' needs simdiff.{public}, which this version of simdiff "
                             "does not have yet")
        if kind == "minimize":
            single_output(sim, kind, adapter)
        kw = derivative_kwargs(opts, names, x, numeric=("method", "step", "rel_step", "order"))
        if opts.get("maxfev") is not None:
            kw["maxfev"] = opts["maxfev"]
        res = call(fn, public, sim, x, **kw)
        xs = np.asarray(res.x, dtype=float)
        doc = {**base, "x": dict(zip(names, xs.tolist())), "nfev": int(res.get("nfev", 0)),
               "nit": int(res.get("nit", 0) or 0), "nrounds": res.get("nrounds"),
               "success": bool(res.get("success", False)), "status": res.get("status"),
               "message": str(res.get("message", ""))}
        lines = [f"{kind} of {adapter} from {_point_text(names, x)}",
                 f"{res.get('message', '')}", ""]
        if kind == "minimize":
            doc["fun"] = jsonable(res.fun)
            summary = [["f", f"{float(np.ravel(res.fun)[0]):.10g}"]]
        else:
            doc["cost"] = jsonable(res.cost)
            doc["fun"] = jsonable(res.fun)
            summary = [["cost", f"{float(res.cost):.10g}"]]
        rows = [[n, f"{v:.10g}"] for n, v in zip(names, xs)] + summary
        rows += [["evaluations", str(doc["nfev"])], ["iterations", str(doc["nit"])]]
        if doc["nrounds"] is not None:
            rows.append(["rounds", str(doc["nrounds"])])
            doc["nrounds"] = int(doc["nrounds"])
        history = list(res.get("history", []) or [])
        doc["history"] = [_history_json(h) for h in history]
        lines.append(table(["", "value"], rows))
        plot = (lambda path: _plot_history(history, path, f"{kind} of {adapter}")) if history else None
        return Outcome(doc, "\n".join(lines), plot=plot, notes=[] if history else
                       ["this optimizer kept no history to plot"])
    return run


def _history_json(h: Any) -> dict:
    h = dict(h) if not isinstance(h, dict) else h
    return {k: (jsonable(v) if isinstance(v, (np.ndarray, float, int, np.floating, np.integer))
                and not isinstance(v, bool) else v) for k, v in h.items()}


def _plot_history(history: list, path: str, title: str) -> None:
    check_plot_available()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    nfev = [float(dict(h).get("nfev", i)) for i, h in enumerate(history)]
    fun = [float(np.sum(np.square(np.ravel(dict(h).get("fun", np.nan))))) * 0.5
           if np.ndim(dict(h).get("fun", 0.0)) else float(dict(h).get("fun", np.nan))
           for h in history]
    fig = Figure(figsize=(6.4, 4.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    finite = [v for v in fun if math.isfinite(v)]
    positive = [v for v in finite if v > 0]
    if positive and all(v >= 0 for v in finite):  # log scale; exact zeros drawn at the floor
        floor = min(positive) / 10
        fun = [max(v, floor) if math.isfinite(v) else v for v in fun]
        ax.set_yscale("log")
    ax.plot(nfev, fun, "o-", ms=3)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("objective")
    ax.set_title(title)
    ax.grid(True, lw=0.3)
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)


def check_plot_available() -> None:
    """MissingDependencyError (one line, the extra to install) when matplotlib is absent."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            'a plot needs matplotlib, which is not installed; pip install "simdiff[plot]"'
        ) from None


def _sweep(sim, x, names, opts, base, adapter):
    import simdiff as sd

    single_output(sim, "sweep", adapter)
    kw: dict[str, Any] = {}
    for key in ("method", "order", "true"):
        if opts.get(key) is not None:
            kw[key] = opts[key]
    ev = _evaluator(opts)
    if ev is not None:
        kw["evaluator"] = ev
    if opts.get("steps") is not None:
        steps = opts["steps"]
        if isinstance(steps, int) and not isinstance(steps, bool):
            if steps < 2:
                raise UsageError(f"--steps {steps}: allowed: an integer >= 2 (how many steps) or a list")
            s = float(max(1.0, np.max(np.abs(x))))
            steps = np.geomspace(1e-16 * s, s, steps)
        kw["steps"] = np.asarray(steps, dtype=float)
    if opts.get("direction") is not None:
        direction = co.direction_argument(opts["direction"], names, "--direction")
        label = "direction " + ", ".join(f"{n}={v:g}" for n, v in zip(names, direction) if v)
    else:
        which = opts.get("input", names[0])
        j = names.index(co._resolve_name(str(which), names, "--input"))
        direction = np.eye(len(x))[j]
        label = f"d/d{names[j]}"
    if len(x) == 1:
        res = call(sd.step_sweep, "step_sweep", sim, float(x[0]), **kw)
    else:
        res = call(sd.step_sweep, "step_sweep", sim, x, direction=direction, **kw)
    doc = {**base, "outputs": output_names(sim, 1), "along": label,
           "steps": jsonable(res.steps), "values": jsonable(res.values), "errors": jsonable(res.errors),
           "reference": jsonable(res.reference), "reference_kind": res.reference_kind,
           "best_step": float(res.best_step), "optimal_step": float(res.optimal_step),
           "method": res.method, "order": int(res.order), "nfev": int(res.nfev)}
    best = int(np.argmin(np.abs(np.log(res.steps) - math.log(res.best_step))))
    opt = int(np.argmin(np.abs(np.log(res.steps) - math.log(res.optimal_step))))
    rows = []
    for k, (h, v, e) in enumerate(zip(res.steps, res.values, res.errors)):
        mark = " ".join(w for w, i in (("best", best), ("rule", opt)) if i == k)
        rows.append([f"{h:.3e}", f"{v:.12g}", f"{e:.2e}" if math.isfinite(e) else "failed", mark])
    text = (f"step sweep of {adapter} at {_point_text(names, x)}, {label}, {res.method} "
            f"(order {res.order}), {res.nfev} evaluations\n"
            f"reference ({res.reference_kind}) {float(res.reference):.15g}; best step "
            f"{res.best_step:.3g}, the rule's step {res.optimal_step:.3g}\n\n"
            + table(["step", "value", "|error|", ""], rows))
    return Outcome(doc, text, plot=lambda path: res.plot(path, title=f"{adapter}: {label}"))


_HANDLERS: dict[str, Callable] = {
    "derivative": _derivatives("derivative"),
    "gradient": _derivatives("gradient"),
    "jacobian": _derivatives("jacobian"),
    "hessian": _derivatives("hessian"),
    "jvp": _derivatives("jvp"),
    "check": _check,
    "noise": _noise,
    "minimize": _optimize("minimize"),
    "least-squares": _optimize("least-squares"),
    "sweep": _sweep,
}
