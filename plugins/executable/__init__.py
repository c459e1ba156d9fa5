"""Adapter ``subprocess``: a legacy executable run once per point (a "fork interface").

For each evaluation the adapter

1. makes a fresh work directory under ``workdir`` (default: the system temp dir);
2. writes each of ``files`` ({relative path: template text}) into it, with every ``{name}`` of
   an input replaced by ``repr(float(value))`` (17 significant digits: the value round-trips
   exactly); only the names in ``inputs`` are replaced, so other braces in a template (JSON,
   Fortran namelists, C) stay as they are. The same substitution applies to ``command``;
3. runs ``command`` (an argv list, never through a shell) in that directory, in a new process
   session; on ``timeout`` the whole process group gets SIGTERM, and SIGKILL after ``grace``
   seconds, so children that ignore SIGTERM die too;
4. parses the outputs (``parse``) and removes the directory (``keep``).

A non-zero exit, a time-out or unparsable output raises ``SimulationError`` carrying the exit
code, the last lines of stderr and the path of the kept work directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from simdiff.errors import ArgumentError, ConfigError, EvaluationTimeout, SimulationError
from simdiff.host import hookimpl
from simdiff.simulator import Simulator

__all__ = ["Executable", "parse_numbers", "simdiff_adapters"]

KEEP = ("failed", "always", "never")
STDERR_TAIL_LINES = 20

# A number standing on its own: not glued to a word ("step2", "x1y") nor inside another number.
_NUMBER = re.compile(
    r"(?<![\w.+-])[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf(?:inity)?)(?!\w)(?!\.\d)",
    re.IGNORECASE,
)

_PARSE_HELP = (
    'allowed: None (the numbers on stdout), {"file": path}, '
    '{"regex": pattern or [patterns], "file": optional path}, {"json": path, "keys": [...]}'
)


def parse_numbers(text: str) -> list[float]:
    """Every number that stands on its own in ``text``, in order (``"x = -1.5e3, 2"`` -> [-1500.0, 2.0])."""
    return [float(m) for m in _NUMBER.findall(text)]


def _relative_path(path: Any, key: str) -> str:
    """``path`` if it is relative and stays inside the work dir; ConfigError otherwise."""
    p = PurePath(str(path))
    depth = 0
    for part in p.parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            break
    if p.is_absolute() or depth < 0 or not p.parts or str(path).startswith(("/", "\\")):
        raise ConfigError(
            f"{key}: path {str(path)!r} would leave the work directory; allowed: a relative "
            "path inside it, such as 'input.dat' or 'deck/run.inp'"
        )
    return str(path)


class Executable(Simulator):
    """A legacy executable: parameters written into input files, outputs parsed back."""

    name = "subprocess"
    prefer = "threads"
    complex_safe = False

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
    ) -> None:
        """
        Parameters
        ----------
        command : argv list, e.g. ``["./solver", "deck.inp"]``; ``{input}`` placeholders filled.
        inputs : names of the parameters, in the order of x.
        outputs : names of the outputs; None accepts however many values ``parse`` finds.
        files : {relative path: template text}, written into each fresh work dir.
        parse : None (every number on stdout, in order); ``{"file": path}`` (every number in
            that file); ``{"regex": pattern or [patterns], "file": optional}`` (one group per
            output; a pattern without groups gives its whole match); ``{"json": path,
            "keys": [...]}`` (dotted keys such as ``"result.f.0"``; default: ``outputs``).
        timeout : seconds before the process group is killed (SIGTERM, SIGKILL after ``grace``).
        env : variables added to the inherited environment.
        workdir : the root under which each evaluation gets its own directory (default: the
            system temp dir).
        keep : "failed" (default: keep the work dir of failed runs), "always" or "never".
        bounds : (lower, upper) for the derivative calls.
        """
        if isinstance(command, (str, bytes)) or not command:
            raise ConfigError(
                f"command must be a non-empty argv list such as ['./solver', 'deck.inp'] (it is "
                f"never run through a shell); got {command!r}"
            )
        self.command = [str(a) for a in command]
        if isinstance(inputs, str) or not inputs:
            raise ConfigError(f"inputs must be a non-empty list of parameter names; got {inputs!r}")
        self.inputs = [str(n) for n in inputs]
        if len(set(self.inputs)) != len(self.inputs):
            raise ConfigError(f"inputs must be distinct names; got {self.inputs!r}")
        bad = [n for n in self.inputs if not n or "{" in n or "}" in n]
        if bad:
            raise ConfigError(f"inputs: names may not be empty or hold braces; got {bad!r}")
        self.outputs = [str(n) for n in outputs] if outputs is not None else None
        self.files = {_relative_path(k, "files"): str(v) for k, v in (files or {}).items()}
        self.parse = self._check_parse(parse)
        if timeout is not None and not float(timeout) > 0:
            raise ConfigError(f"timeout must be None or a positive number of seconds; got {timeout!r}")
        self.timeout = None if timeout is None else float(timeout)
        self.env = {str(k): str(v) for k, v in (env or {}).items()} or None
        self.workdir = None if workdir is None else str(workdir)
        if keep not in KEEP:
            raise ConfigError(f"keep must be one of {KEEP}; got {keep!r}")
        self.keep = keep
        self.grace = float(grace)
        self.bounds = bounds
        # Longest names first, so that {ab} is not read as {a} followed by 'b}'.
        names = sorted(self.inputs, key=len, reverse=True)
        self._placeholder = re.compile(r"\{(" + "|".join(map(re.escape, names)) + r")\}")

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
        """``template`` with each ``{input}`` replaced by ``repr(float(value))``."""
        values = dict(zip(self.inputs, x))
        return self._placeholder.sub(lambda m: repr(float(values[m.group(1)])), template)

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
        ok = False
        try:
            self._write_files(wd, x)
            argv = [self.fill(a, x) for a in self.command]
            stdout, stderr, code = self._run(argv, wd, x)
            if code != 0:
                raise self._failure(
                    f"exited with code {code}", x, wd, stderr, code=code, cls=SimulationError
                )
            try:
                values = self._parse(wd, stdout)
            except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
                raise self._failure(f"produced output that cannot be parsed: {exc}", x, wd, stderr, code=code) from None
            ok = True
            return values
        finally:
            if self.keep == "never" or (self.keep == "failed" and ok):
                shutil.rmtree(wd, ignore_errors=True)

    def _write_files(self, wd: Path, x: np.ndarray) -> None:
        real = os.path.realpath(wd)
        for rel, template in self.files.items():
            target = wd / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if os.path.commonpath([real, os.path.realpath(target)]) != real:  # through a symlink
                raise ConfigError(f"files: path {rel!r} leads out of the work directory {wd}")
            target.write_text(self.fill(template, x))

    def _run(self, argv: list[str], wd: Path, x: np.ndarray) -> tuple[str, str, int]:
        env = None if self.env is None else {**os.environ, **self.env}
        try:
            proc = subprocess.Popen(
                argv, cwd=wd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, start_new_session=True,
            )
        except OSError as exc:
            raise self._failure(f"could not be started: {exc}", x, wd, "") from exc
        try:
            stdout, stderr = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            stdout, stderr = self._kill_group(proc)
            raise self._failure(
                f"timed out after {self.timeout:g} s (its process group was killed)",
                x, wd, stderr, cls=EvaluationTimeout,
            ) from None
        except BaseException:
            self._kill_group(proc)
            raise
        return stdout, stderr, proc.returncode

    def _kill_group(self, proc: subprocess.Popen) -> tuple[str, str]:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds; the captured output."""
        for sig, wait in ((signal.SIGTERM, self.grace), (signal.SIGKILL, None)):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                # returns when every holder of the pipes (children too) has exited
                return proc.communicate(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        return "", ""  # pragma: no cover - communicate(timeout=None) returns

    def _parse(self, wd: Path, stdout: str) -> np.ndarray:
        p = self.parse
        if p is None or ("regex" not in p and "json" not in p):
            source = stdout if p is None else (wd / p["file"]).read_text()
            values = parse_numbers(source)
            where = "stdout" if p is None else p["file"]
            if not values:
                raise ValueError(f"no numbers found in {where}")
        elif "regex" in p:
            source = (wd / p["file"]).read_text() if "file" in p else stdout
            values = []
            for pat in p["regex"]:
                m = re.search(pat, source, re.MULTILINE)
                if m is None:
                    raise ValueError(f"pattern {pat!r} does not match")
                values.extend(float(g) for g in (m.groups() or (m.group(0),)))
        else:
            data = json.loads((wd / p["json"]).read_text())
            values = [float(_lookup(data, k)) for k in p["keys"]]
        if self.outputs is not None and len(values) != len(self.outputs):
            raise ValueError(f"found {len(values)} value(s) {values!r} but outputs has {len(self.outputs)}: {self.outputs!r}")
        return np.asarray(values, dtype=float)

    def _failure(self, what, x, wd, stderr, code=None, cls=SimulationError) -> SimulationError:
        tail = "\n".join((stderr or "").rstrip().splitlines()[-STDERR_TAIL_LINES:])
        kept = self.keep != "never"
        where = f"work dir kept: {wd}" if kept else f"work dir {wd} removed (keep='never')"
        msg = f"command {self.command[0]!r} {what}; {where}"
        if tail:
            msg += f"; stderr tail:\n{tail}"
        err = cls(msg, point=np.array(x), cause=msg)
        err.returncode, err.stderr_tail, err.workdir = code, tail, str(wd) if kept else None
        return err


def _lookup(data: Any, key: str) -> Any:
    """``data["a"]["b"][0]`` for the key ``"a.b.0"`` (a key present as a whole wins)."""
    if isinstance(data, Mapping) and key in data:
        return data[key]
    for part in key.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


@hookimpl
def simdiff_adapters() -> list[type[Simulator]]:
    return [Executable]
