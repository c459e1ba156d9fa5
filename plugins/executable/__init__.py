"""Adapter ``subprocess``: a legacy executable run once per point (a "fork interface").

For each evaluation the adapter

1. makes a fresh work directory under ``workdir`` (default: the system temp dir);
2. writes each of ``files`` ({relative path: template text}) into it, with every placeholder
   filled (``plugins/executable/templates.py``): ``{E}`` writes input E in at most 20
   characters (``repr`` when it fits: 0.1 + 0.2 reaches the program bit for bit; else 14-16
   digits), ``{E:.6e}`` or ``{n:d}`` with a format spec, ``{E:r}`` the full ``repr``, and
   ``{L/2}``, ``{r0 + d0}``, ``{sqrt(k)}`` a safe arithmetic expression of inputs and
   ``constants``. A brace group that names no input or constant (JSON, Fortran namelists, C
   initialisers, unknown ``{names}``) is written as it stands. There is no escape: ``{{a}}``
   is written as ``{`` + a's value + ``}``. The same filling applies to the arguments of
   ``command``. Whatever a format rounds, ``quantize`` returns the values the program reads,
   and the derivative functions take their differences between those values;
3. runs ``command`` (an argv list, never through a shell) in that directory, in a new process
   session (its own process group), with stdout and stderr captured in files (so a child left
   holding them cannot stall the call); the program, ``command[0]``, when given as a relative
   path that exists (``./solver``), is made absolute where the adapter is configured; the other
   arguments are read in the work dir (give files outside it by absolute path);
4. when the program has exited (or on ``timeout``, or an interrupt), stops what is left of its
   process group: SIGTERM, then SIGKILL after ``grace`` seconds, so children that ignore
   SIGTERM die too. Programs still running when Python exits (Ctrl-C in ``simdiff`` while
   worker threads wait on them) are stopped the same way, at exit;
5. parses the outputs (``parse``) and removes the directory (``keep``); a kept directory also
   holds the program's output as ``simdiff-stdout.txt`` and ``simdiff-stderr.txt``.

Give the time-out here (``timeout=``) rather than to the Evaluator: a worker process that the
Evaluator kills for running too long dies by SIGKILL and cannot stop the program it started.

An exit code outside ``ok_returncodes`` (default ``[0]``; ``[0, 1]`` for ``ngspice -b``),
a death by a signal, a time-out or unparsable output raises ``SimulationError`` carrying the
exit code (``returncode``), the last lines of stderr and stdout (``stderr_tail``,
``stdout_tail``) and the path of the kept work directory (``workdir``); the message quotes the
stderr tail, or the stdout tail when stderr holds nothing readable (ccx and LAMMPS print their
reason on stdout; both tails when stderr holds only warnings and stdout names an error). The
``SimulationError`` that a derivative call raises carries the same four attributes.

Time-outs wait on the process itself (a pidfd on Linux, else a waiting thread): no polling
delay is added to a run.

Units: ``scales=`` (one positive number per input, a {name: number} mapping, or one number for
all) is the typical magnitude of each input; the derivative functions use it as their default
``scale`` (steps of the inputs' own size for a deck in SI units).
"""

from __future__ import annotations

import json
import math
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from simdiff.errors import ArgumentError, ConfigError, EvaluationTimeout, SimulationError
from simdiff.host import hookimpl
from simdiff.simulator import Simulator

from .templates import Template, format_number, format_value, written

__all__ = ["Executable", "format_number", "format_value", "parse_numbers", "simdiff_adapters"]

KEEP = ("failed", "always", "never")
STDERR_TAIL_LINES = 20
STDOUT_TAIL_LINES = 20

# A number standing on its own: not glued to a word ("step2", "x1y") nor inside another number.
# Fortran's double-precision exponent letter D (1.5D+03) counts as E.
_NUMBER = re.compile(
    r"(?<![\w.+-])[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eEdD][-+]?\d+)?|nan|inf(?:inity)?)(?!\w)(?!\.\d)",
    re.IGNORECASE,
)
_FORTRAN_EXPONENT = re.compile(r"(?<=[\d.])[dD](?=[-+]?\d)")

_PARSE_HELP = (
    'allowed: None (the numbers on stdout), {"file": path}, '
    '{"regex": pattern or [patterns], "file": optional path}, {"json": path, "keys": [...]}'
)


def to_float(text: str) -> float:
    """``float(text)``, also for Fortran's D exponent (``"1.5D+03"`` -> 1500.0)."""
    try:
        return float(text)
    except ValueError:
        return float(_FORTRAN_EXPONENT.sub("e", text.strip()))


def parse_numbers(text: str) -> list[float]:
    """Every number that stands on its own in ``text``, in order (``"x = -1.5e3, 2"`` -> [-1500.0, 2.0])."""
    return [to_float(m) for m in _NUMBER.findall(text)]


def _relative_path(path: Any, key: str) -> str:
    """``path`` if it is relative and stays inside the work dir; ConfigError otherwise."""
    p = PurePath(str(path))
    depth = 0
    for part in p.parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            break
    if p.is_absolute() or depth <= 0 or str(path).startswith(("/", "\\")):  # 0: the dir itself
        raise ConfigError(
            f"{key}: path {str(path)!r} would leave the work directory or name the directory "
            "itself; allowed: a relative path of a file inside it, such as 'input.dat' or "
            "'deck/run.inp'"
        )
    return str(path)


def _names(value: Any, key: str, example: str) -> list[str]:
    """A list of names from a list (or one name given as a string); ConfigError otherwise."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Mapping) or not isinstance(value, Sequence) or not value:
        raise ConfigError(f"{key} must be a non-empty list of names such as {example}; got {value!r}")
    names = [str(n) for n in value]
    if len(set(names)) != len(names):
        raise ConfigError(f"{key} must be distinct names; got {names!r}")
    return names


def _seconds(value: Any, key: str, allow_zero: bool) -> float:
    """A finite number of seconds, > 0 (or >= 0); ConfigError otherwise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if isinstance(value, bool) or not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ConfigError(
            f"{key} must be a {'non-negative' if allow_zero else 'positive'} number of seconds; "
            f"got {value!r}"
        )
    return v


def _program(arg: str) -> str:
    """``./solver`` made absolute when it exists here (the run's cwd is its own work dir)."""
    if os.sep in arg and not os.path.isabs(arg) and os.path.exists(arg):
        return os.path.abspath(arg)
    return arg


def _group_alive(pgid: int) -> bool:
    """Whether a process that is not a zombie is left in process group ``pgid``.

    ``killpg(pgid, 0)`` also succeeds for zombies (an orphan whose reaper, such as a container's
    PID 1, never reaps), so on Linux the members are looked up in /proc.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a member changed its user id
        return True
    if not os.path.isdir("/proc/self"):  # pragma: no cover - not Linux
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(os.path.join(entry.path, "stat"), "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def _stop_groups(procs: Sequence[subprocess.Popen], grace: float) -> None:
    """SIGTERM the process groups of ``procs``; SIGKILL those with anything left after ``grace``
    seconds (a process that ignores SIGTERM, or is too slow to end)."""
    for proc in procs:
        _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    pending = list(procs)
    while pending:
        for proc in pending:
            proc.poll()  # reap the program as soon as it dies: a zombie still counts in killpg
        pending = [proc for proc in pending if _group_alive(proc.pid)]
        if not pending:
            break
        if time.monotonic() >= deadline:
            for proc in pending:
                _signal_group(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    for proc in procs:
        proc.wait()


def _stop_live(live: set, lock: threading.Lock, grace: float, stopped: list) -> None:
    """Stop the programs running now, and refuse to start any later (a worker thread that is
    still going when the simulator is collected, or the interpreter exits, must not leave a
    program behind that nobody stops)."""
    with lock:
        stopped.append(True)
        procs = list(live)
    _stop_groups(procs, grace)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _read(f: Any) -> str:
    f.seek(0)
    return f.read().decode("utf-8", errors="replace")  # a stray byte must not fail the run


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


class Executable(Simulator):
    """A legacy executable: parameters written into input files, outputs parsed back."""

    name = "subprocess"
    prefer = "threads"
    complex_safe = False
    # where the runs go, what is kept and how long they may take: not part of a cache key
    cache_ignore = ("workdir", "keep", "grace", "timeout")

    def __init__(
        self,
        command: Sequence[str],
        inputs: Sequence[str],
        outputs: Sequence[str] | None = None,
        files: Mapping[str, str] | None = None,
        parse: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | os.PathLike | None = None,
        keep: str = "failed",
        grace: float = 2.0,
        bounds: Any = None,
        stdin: str | None = None,
        constants: Mapping[str, float] | None = None,
        scales: Any = None,
        ok_returncodes: Sequence[int] = (0,),
    ) -> None:
        """
        Parameters
        ----------
        command : argv list, e.g. ``["./solver", "deck.inp"]``; ``{input}`` placeholders filled;
            a relative program path that exists is made absolute; the arguments are read in
            the work dir.
        inputs : names of the parameters, in the order of x.
        outputs : names of the outputs; None accepts however many values ``parse`` finds.
        files : {relative path: template text}, written into each fresh work dir.
        parse : None (every number on stdout, in order); ``{"file": path}`` (every number in
            that file); ``{"regex": pattern or [patterns], "file": optional}`` (one group per
            output, from each pattern's first match, re.MULTILINE; a pattern without groups
            gives its whole match); ``{"json": path,
            "keys": [...]}`` (dotted keys such as ``"result.f.0"``; default: ``outputs``).
        timeout : seconds before the process group is killed (SIGTERM, SIGKILL after ``grace``).
        env : variables added to the inherited environment ({name: value}).
        workdir : the root under which each evaluation gets its own directory (default: the
            system temp dir); a relative one is taken from the current directory.
        keep : "failed" (default: keep the work dir of failed runs), "always" or "never".
        grace : seconds between SIGTERM and SIGKILL when the process group is stopped.
        bounds : (lower, upper) for the derivative calls.
        stdin : a relative path in the work dir (usually one of ``files``) given to the program
            as its standard input, for programs that read their deck as ``solver < deck.inp``;
            None: no input (/dev/null).
        constants : {name: number} usable in placeholders next to the inputs (``{n:d}``,
            ``{L/n}``); not differentiated.
        scales : the typical magnitude of each input (a list in the order of ``inputs``, a
            {name: number} mapping covering every input, or one number for all); the
            derivative functions' default ``scale``. Exposed as ``self.scales`` (ndarray (n,)
            or None).
        ok_returncodes : exit codes that mean success (default ``[0]``; ``ngspice -b`` exits
            1 after a successful ``.control`` block: ``[0, 1]``).
        """
        if isinstance(command, (str, bytes, Mapping)) or not isinstance(command, Sequence) or not command:
            raise ConfigError(
                f"command must be a non-empty argv list such as ['./solver', 'deck.inp'] (it is "
                f"never run through a shell); got {command!r}"
            )
        self.command = [str(a) for a in command]
        self.command[0] = _program(self.command[0])
        self.inputs = _names(inputs, "inputs", "['a', 'b']")
        bad = [n for n in self.inputs if not n or "{" in n or "}" in n]
        if bad:
            raise ConfigError(f"inputs: names may not be empty or hold braces; got {bad!r}")
        self.outputs = None if outputs is None else _names(outputs, "outputs", "['f1', 'f2']")
        if files is not None and not isinstance(files, Mapping):
            raise ConfigError(f"files must be {{relative path: template text}}; got {files!r}")
        self.files = {_relative_path(k, "files"): str(v) for k, v in (files or {}).items()}
        self.parse = self._check_parse(parse)
        self.timeout = None if timeout is None else _seconds(timeout, "timeout", allow_zero=False)
        if env is not None and not isinstance(env, Mapping):
            raise ConfigError(f"env must be {{variable: value}} added to the environment; got {env!r}")
        self.env = {str(k): str(v) for k, v in (env or {}).items()} or None
        self.workdir = None if workdir is None else os.path.abspath(os.fspath(workdir))
        if self.workdir is not None:
            try:
                os.makedirs(self.workdir, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"workdir={workdir!r} cannot be created: {exc}") from None
            if not os.access(self.workdir, os.W_OK | os.X_OK):
                raise ConfigError(f"workdir={workdir!r} is not writable: the work dirs of the runs go there")
        if keep not in KEEP:
            raise ConfigError(f"keep must be one of {KEEP}; got {keep!r}")
        self.keep = keep
        self.grace = _seconds(grace, "grace", allow_zero=True)
        self.bounds = bounds
        self.stdin = None if stdin is None else _relative_path(stdin, "stdin")
        self.constants = _constants(constants, self.inputs)
        self.scales = _scales(scales, self.inputs)
        self.ok_returncodes = _returncodes(ok_returncodes)
        consts = self.constants or {}
        self._file_templates = {
            rel: Template(text, f"files[{rel!r}]", self.inputs, consts)
            for rel, text in self.files.items()
        }
        self._argv_templates = [
            Template(a, f"command[{i}]", self.inputs, consts) for i, a in enumerate(self.command)
        ]
        # the format specs each input is written with where it stands alone ({E}, {E:.6e})
        specs: dict[int, set] = {}
        for t in [*self._file_templates.values(), *self._argv_templates]:
            for ph in t.placeholders:
                if ph.bare is not None:
                    specs.setdefault(self.inputs.index(ph.bare), set()).add(ph.spec)
        self._specs = {j: sorted(v, key=str) for j, v in sorted(specs.items())}
        self._init_runtime()

    def _init_runtime(self) -> None:
        """The programs running now (per process, never pickled), stopped at exit if need be."""
        self._live: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._stopped: list = []  # non-empty once _stop_live ran: no program starts after it
        # runs at exit while this simulator lives; forgotten with it (no reference to self)
        weakref.finalize(self, _stop_live, self._live, self._lock, self.grace, self._stopped)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_live"], state["_lock"], state["_stopped"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def _check_parse(self, parse: Any) -> dict | None:
        if parse is None or parse == "stdout":
            return None
        if not isinstance(parse, Mapping):
            raise ConfigError(f"parse={parse!r} is not understood; {_PARSE_HELP}")
        parse = dict(parse)
        modes = [k for k in ("regex", "json") if k in parse]
        unknown = set(parse) - {"file", "regex", "json", "keys"}
        if len(modes) > 1 or unknown or not (modes or "file" in parse) or ("keys" in parse and "json" not in parse):
            raise ConfigError(f"parse={parse!r} is not understood; {_PARSE_HELP}")
        for key in ("file", "json"):
            if key in parse:
                _relative_path(parse[key], f"parse[{key!r}]")
        if "regex" in parse:
            pats = parse["regex"]
            pats = [pats] if isinstance(pats, str) else list(pats)
            for p in pats:
                try:
                    re.compile(p)
                except re.error as exc:
                    raise ConfigError(f"parse['regex']: {p!r} is not a regular expression ({exc})") from exc
            parse["regex"] = pats
            if self.outputs is not None:
                groups = sum(max(re.compile(p).groups, 1) for p in pats)
                if groups != len(self.outputs):
                    raise ConfigError(
                        f"parse['regex'] yields {groups} value(s) (one group per output, or one "
                        f"pattern per output) but outputs has {len(self.outputs)}: {self.outputs!r}"
                    )
        if "json" in parse:
            keys = parse.get("keys", self.outputs)
            if not keys:
                raise ConfigError("parse['json'] needs 'keys' (or outputs=) naming the values to read")
            parse["keys"] = [str(k) for k in keys]
        return parse

    def __repr__(self) -> str:
        return f"Executable(command={self.command!r}, inputs={self.inputs!r})"

    # -- one evaluation -------------------------------------------------------------------------

    def fill(self, template: str, x: np.ndarray) -> str:
        """``template`` (text) with its placeholders filled for the point ``x``."""
        t = Template(template, "template", self.inputs, self.constants or {})
        return t.fill(self._values(np.asarray(x, dtype=float)))

    def _values(self, x: np.ndarray) -> dict:
        """{input or constant: value} for filling templates: the inputs as the program reads them."""
        return {**(self.constants or {}), **dict(zip(self.inputs, self.quantize(x).tolist()))}

    def quantize(self, X: Any) -> np.ndarray:
        """The values the program reads for the points X ((n,) or (k, n)): each input as
        ``float`` of the text its placeholders write (``{E:.6e}``: 6 decimals of mantissa;
        the default format: exact unless the number needs more than 20 characters). An input
        written with several formats is taken at the coarsest; one that is written only
        inside expressions (``{L/2}``) or not at all is returned unchanged.

        The derivative functions call this on their planned points, so differences are taken
        between the values the program actually read (``simdiff.simulator.Simulator.quantize``).
        """
        X = np.asarray(X)
        if np.iscomplexobj(X) or not self._specs:
            return X
        X = np.asarray(X, dtype=float)
        out = X.copy()
        for j, specs in self._specs.items():
            col = out[..., j]
            flat = col.reshape(-1)
            for i, v in enumerate(flat.tolist()):
                best = v
                if not math.isfinite(v):
                    continue
                for spec in specs:
                    w = written(v, spec)
                    if abs(w - v) > abs(best - v):
                        best = w
                flat[i] = best
            out[..., j] = flat.reshape(col.shape)
        return out

    def evaluate(self, x: np.ndarray) -> Any:
        x = np.asarray(x, dtype=float)
        if x.shape != (len(self.inputs),):
            raise ArgumentError(
                f"x has shape {x.shape}, but the subprocess adapter has {len(self.inputs)} "
                f"inputs {self.inputs!r}; allowed: shape ({len(self.inputs)},)"
            )
        root = self.workdir or tempfile.gettempdir()
        os.makedirs(root, exist_ok=True)
        wd = Path(tempfile.mkdtemp(prefix="simdiff-run-", dir=root))
        ok, output = False, None
        try:
            values = self._values(x)
            try:
                self._write_files(wd, values)
                argv = [t.fill(values) for t in self._argv_templates]
            except ValueError as exc:  # an expression that failed at this point (sqrt(-1))
                raise self._failure(f"could not be given its input: {exc}", x, wd, "", "") from None
            stdout, stderr, code = output = self._run(argv, wd, x)
            if code is None:
                raise self._failure(
                    f"timed out after {self.timeout:g} s (its process group was killed)",
                    x, wd, stdout, stderr, cls=EvaluationTimeout,
                )
            if code not in self.ok_returncodes:
                raise self._failure(_exit_text(code, self.ok_returncodes), x, wd, stdout, stderr, code=code)
            try:
                values = self._parse(wd, stdout)
            except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
                raise self._failure(f"produced output that cannot be parsed: {exc}", x, wd, stdout, stderr,
                                    code=code) from None
            ok = True
            return values
        finally:
            if self.keep == "never" or (self.keep == "failed" and ok):
                shutil.rmtree(wd, ignore_errors=True)
            elif output is not None:
                _save_output(wd, output[:2])

    def _write_files(self, wd: Path, values: dict) -> None:
        real = os.path.realpath(wd)
        for rel, template in self._file_templates.items():
            target = wd / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if os.path.commonpath([real, os.path.realpath(target)]) != real:  # through a symlink
                raise ConfigError(f"files: path {rel!r} leads out of the work directory {wd}")
            target.write_text(template.fill(values))

    def _run(self, argv: list[str], wd: Path, x: np.ndarray) -> tuple[str, str, int | None]:
        """Run argv in wd; (stdout, stderr, exit code or None after a time-out). Output goes to
        files, not pipes: a child that outlives the program cannot hold the call open."""
        env = None if self.env is None else {**os.environ, **self.env}
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                # started and registered under the lock, so that _stop_live sees every program
                # that ever starts, and none starts after it
                with self._lock, (open(wd / self.stdin, "rb") if self.stdin
                                  else open(os.devnull, "rb")) as inp:
                    if self._stopped:
                        raise self._failure("not started: simdiff is stopping", x, wd, "", "")
                    proc = subprocess.Popen(
                        argv, cwd=wd, env=env, stdin=inp, stdout=out, stderr=err,
                        start_new_session=True,
                    )
                    self._live.add(proc)
            except OSError as exc:
                what = f" (stdin {self.stdin!r})" if self.stdin and not (wd / self.stdin).is_file() else ""
                raise self._failure(f"could not be started{what}: {exc}", x, wd, "", "") from exc
            try:
                try:
                    code = _wait(proc, self.timeout)
                except BaseException:
                    _stop_groups([proc], self.grace)
                    raise
                if code is None or _group_alive(proc.pid):  # timed out, or children left behind
                    _stop_groups([proc], self.grace)
            finally:
                with self._lock:
                    self._live.discard(proc)
            return _read(out), _read(err), code

    def _parse(self, wd: Path, stdout: str) -> np.ndarray:
        p = self.parse
        if p is None or ("regex" not in p and "json" not in p):
            source = stdout if p is None else _text(wd / p["file"])
            values = parse_numbers(source)
            where = "stdout" if p is None else p["file"]
            if not values:
                raise ValueError(f"no numbers found in {where}")
        elif "regex" in p:
            source = _text(wd / p["file"]) if "file" in p else stdout
            values = []
            for pat in p["regex"]:
                m = re.search(pat, source, re.MULTILINE)
                if m is None:
                    raise ValueError(f"pattern {pat!r} does not match")
                values.extend(to_float(g) for g in (m.groups() or (m.group(0),)))
        else:
            data = json.loads(_text(wd / p["json"]))
            values = [float(_lookup(data, k, p["json"])) for k in p["keys"]]
        if self.outputs is not None and len(values) != len(self.outputs):
            raise ValueError(f"found {len(values)} value(s) {values!r} but outputs has {len(self.outputs)}: {self.outputs!r}")
        return np.asarray(values, dtype=float)

    def _failure(self, what, x, wd, stdout, stderr, code=None, cls=SimulationError) -> SimulationError:
        err_tail = _tail(stderr, STDERR_TAIL_LINES)
        out_tail = _tail(stdout, STDOUT_TAIL_LINES)
        kept = self.keep != "never"
        where = f"work dir kept: {wd}" if kept else f"work dir {wd} removed (keep='never')"
        msg = f"command {self.command[0]!r} {what}; {where}"
        if _readable(err_tail):
            msg += f"; stderr tail:\n{err_tail}"
            if _ERRORISH.search(out_tail) and not _ERRORISH.search(err_tail):
                msg += f"\nstdout tail:\n{out_tail}"  # warnings on stderr, the reason on stdout
        elif _readable(out_tail):  # ccx, LAMMPS: the reason is on stdout
            msg += f"; stderr {'is empty' if not err_tail else 'says nothing readable'}, stdout tail:\n{out_tail}"
        err = cls(msg, point=np.array(x), cause=msg)
        err.returncode, err.workdir = code, str(wd) if kept else None
        err.stderr_tail, err.stdout_tail = err_tail, out_tail
        return err


def _lookup(data: Any, key: str, where: str) -> Any:
    """``data["a"]["b"][0]`` for the key ``"a.b.0"`` (a key present as a whole wins)."""
    if isinstance(data, Mapping) and key in data:
        return data[key]
    node = data
    for part in key.split("."):
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            top = list(data)[:10] if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"{where} has no key {key!r} (at {part!r}; its top level: {top})") from None
    return node


def _save_output(wd: Path, output: Sequence[str]) -> None:
    """Leave the program's stdout and stderr in its kept work dir (never over its own files)."""
    for name, text in zip(("simdiff-stdout.txt", "simdiff-stderr.txt"), output):
        path = wd / name
        if not path.exists():
            try:
                path.write_text(text)
            except OSError:  # pragma: no cover - the program removed its directory
                pass


def _exit_text(code: int, ok: Sequence[int] = (0,)) -> str:
    """``exited with code 3``; for a death by a signal, its name too."""
    if code < 0:
        from simdiff.workers import signal_name

        return f"was killed by {signal_name(code)} (exited with code {code})"
    if tuple(ok) != (0,):
        return f"exited with code {code} (ok_returncodes={list(ok)})"
    return f"exited with code {code}"


def _tail(text: str | None, lines: int) -> str:
    return "\n".join((text or "").rstrip().splitlines()[-lines:])


_ERRORISH = re.compile(r"error|fatal|abort|exception|traceback|failed", re.IGNORECASE)


def _readable(text: str) -> bool:
    """Whether a tail says anything: at least one letter or digit."""
    return any(c.isalnum() for c in text)


def _wait(proc: subprocess.Popen, timeout: float | None) -> int | None:
    """The exit code of ``proc``, or None when it is still running after ``timeout`` seconds.

    ``Popen.wait(timeout)`` polls with sleeps growing to 50 ms, which adds up to that much to
    every run; here the wait blocks on the process itself: a pidfd (Linux >= 5.3) readable
    when it exits, else a thread blocked in ``waitpid`` and an Event. Overhead: well under a
    millisecond (``benchmarks/subprocess_overhead.py``).
    """
    if timeout is None:
        return proc.wait()
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is not None:
        try:
            fd = pidfd_open(proc.pid)
        except OSError:  # already reaped, or pidfds not supported by this kernel
            fd = None
        if fd is not None:
            try:
                ready, _, _ = select.select([fd], [], [], timeout)
            finally:
                os.close(fd)
            return proc.wait() if ready else proc.poll()
    done = threading.Event()

    def waiter() -> None:
        try:
            proc.wait()
        finally:
            done.set()

    threading.Thread(target=waiter, daemon=True).start()
    done.wait(timeout)
    return proc.poll()


def _constants(value: Any, inputs: list[str]) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"constants must be {{name: number}}; got {value!r}")
    out = {}
    for k, v in value.items():
        k = str(k)
        if not k.isidentifier() or k in inputs:
            raise ConfigError(
                f"constants: {k!r} must be a name (a Python identifier) that is not an input "
                f"({inputs!r})"
            )
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"constants[{k!r}] must be a number; got {v!r}") from None
    return out or None


def _scales(value: Any, inputs: list[str]) -> np.ndarray | None:
    """``scales=`` as an array (n,) of positive finite numbers, or None."""
    if value is None:
        return None
    n = len(inputs)
    if isinstance(value, Mapping):
        missing = [name for name in inputs if name not in value]
        unknown = [k for k in value if k not in inputs]
        if missing or unknown:
            raise ConfigError(
                f"scales as a mapping must give every input a scale: missing {missing!r}, "
                f"unknown {unknown!r}; inputs are {inputs!r}"
            )
        value = [value[name] for name in inputs]
    try:
        arr = np.asarray(value, dtype=float)
        arr = np.full(n, float(arr)) if arr.ndim == 0 else (arr.copy() if arr.shape == (n,) else None)
    except (TypeError, ValueError):
        arr = None
    if arr is None or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ConfigError(
            f"scales must be one positive number per input ({n}: {inputs!r}), a {{name: number}} "
            f"mapping, or one number for all; got {value!r}"
        )
    return arr


def _returncodes(value: Any) -> tuple:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value]
    try:
        codes = tuple(int(c) for c in value)
        ok = bool(codes) and all(not isinstance(c, bool) and float(c) == int(c) for c in value)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"ok_returncodes must be a non-empty list of exit codes such as [0, 1]; got {value!r}")
    return codes


@hookimpl
def simdiff_adapters() -> list[type[Simulator]]:
    return [Executable]
