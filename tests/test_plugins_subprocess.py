"""The ``subprocess`` adapter against a small "legacy" program written by the tests.

The program reads an input deck, refuses a < 0 (exit 3, message on stderr), and reports
f1 = a² + 3b and f2 = b·sin(a) in the way the test asks: stdout, a file, labelled lines, JSON.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import simdiff as sd

LEGACY = r'''
import json, math, os, subprocess, sys, time

vals = {}
for line in open("deck.inp"):
    if "=" in line and not line.startswith("#"):
        key, value = line.split("=", 1)
        vals[key.strip()] = float(value)
a, b = vals["a"], vals["b"]
mode = sys.argv[1]
json.dump(sys.argv[2:], open("argv.json", "w"))
if a < 0:
    print("reading deck.inp", file=sys.stderr)
    print("boom: a must be >= 0", file=sys.stderr)
    sys.exit(3)
f1, f2 = a ** 2 + 3 * b, math.sin(a) * b
if mode == "stdout":
    print(f"step1 done\nf1 {f1!r} f2 {f2!r}")
elif mode == "file":
    open("out.txt", "w").write(f"{f1!r}\n{f2!r}\n")
elif mode == "regex":
    print(f"iterations: 12\nF1 = {f1!r}\nF2 = {f2!r}")
elif mode == "json":
    json.dump({"result": {"f1": f1, "f2": [f2]}}, open("out.json", "w"))
elif mode == "one":
    print(f1)
elif mode == "hang":  # a child that ignores SIGTERM; "quiet": it does not hold stdout/stderr
    code = ("import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "open('child.pid', 'w').write(str(os.getpid())); time.sleep(3600)")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL} if "quiet" in sys.argv else {}
    subprocess.Popen([sys.executable, "-c", code], **quiet)
    time.sleep(300)
'''

DECK = 'a = {a}\nb = {b}\n# not inputs, left alone: {"c": {c}, "ab": {ab}}\n'


def truth(x):
    a, b = x
    return np.array([a ** 2 + 3 * b, math.sin(a) * b])


def truth_jac(x):
    a, b = x
    return np.array([[2 * a, 3.0], [math.cos(a) * b, math.sin(a)]])


@pytest.fixture
def legacy(tmp_path):
    prog = tmp_path / "legacy.py"
    prog.write_text(LEGACY)
    runs = tmp_path / "runs"

    def make(mode="stdout", *extra_args, **cfg):
        cfg.setdefault("files", {"deck.inp": DECK})
        cfg.setdefault("outputs", ["f1", "f2"])
        return sd.load("subprocess", command=[sys.executable, str(prog), mode, *extra_args],
                       inputs=["a", "b"], workdir=str(runs), **cfg)

    make.runs = runs
    return make


def rundirs(runs: Path) -> list[Path]:
    return sorted(runs.iterdir()) if runs.exists() else []


X = np.array([0.1 + 0.2, 1.0 / 3.0])  # values whose decimal forms are long: repr must round-trip
A, B = (repr(float(v)) for v in X)  # "0.30000000000000004", "0.3333333333333333"


@pytest.mark.parametrize("mode, parse", [
    ("stdout", None),
    ("file", {"file": "out.txt"}),
    ("regex", {"regex": r"F1 = (\S+)\s+F2 = (\S+)"}),
    ("regex", {"regex": [r"^F1 = (\S+)$", r"^F2 = (\S+)$"]}),
    ("json", {"json": "out.json", "keys": ["result.f1", "result.f2.0"]}),
])
def test_every_parse_mode_returns_the_exact_values(legacy, mode, parse):
    sim = legacy(mode, parse=parse)
    out = sim(X)
    # repr(float) written, float() read back: the program saw X to the last bit
    assert out.tolist() == truth(X).tolist()
    assert rundirs(legacy.runs) == [], "keep='failed': the work dir goes after a success"


def test_jacobian_of_the_executable_matches_the_analytic_one(legacy):
    J, info = sd.jacobian(legacy("file", parse={"file": "out.txt"}), [0.7, 2.0], full_output=True)
    np.testing.assert_allclose(J, truth_jac([0.7, 2.0]), rtol=1e-6)
    assert info.nfev == 5  # x ± h e_j and f(x)


def test_only_input_placeholders_are_filled_and_arguments_reach_the_program_literally(legacy, tmp_path):
    pwned = tmp_path / "PWNED"
    args = [f"; touch {pwned}", f"$(touch {pwned})", "`id`", "{a}", "{b}{"]
    sim = legacy("stdout", *args, keep="always")
    sim(X)
    assert not pwned.exists(), "no shell ran the arguments"
    (wd,) = rundirs(legacy.runs)
    assert json.loads((wd / "argv.json").read_text()) == args[:3] + [A, B + "{"]
    deck = (wd / "deck.inp").read_text()
    assert deck == f'a = {A}\nb = {B}\n# not inputs, left alone: {{"c": {{c}}, "ab": {{ab}}}}\n'


def test_a_failing_run_raises_with_exit_code_stderr_tail_and_the_kept_workdir(legacy):
    sim = legacy("stdout")
    with pytest.raises(sd.SimulationError) as err:
        sim(np.array([-1.0, 1.0]))
    e = err.value
    assert e.returncode == 3 and "boom: a must be >= 0" in e.stderr_tail
    assert "exited with code 3" in str(e) and "boom: a must be >= 0" in str(e)
    (wd,) = rundirs(legacy.runs)
    assert e.workdir == str(wd) and str(wd) in str(e)
    assert (wd / "deck.inp").read_text().startswith("a = -1.0\n"), "the failed run's deck is kept"
    # through a derivative call: the Evaluator's SimulationError names the point and the cause
    with pytest.raises(sd.SimulationError) as err2:
        sd.jacobian(sim, [-1.0, 1.0])
    assert err2.value.point is not None and isinstance(err2.value.cause, sd.SimulationError)
    assert err2.value.cause.returncode == 3


def test_keep_never_and_always(legacy):
    with pytest.raises(sd.SimulationError, match="removed"):
        legacy("stdout", keep="never")(np.array([-1.0, 1.0]))
    assert rundirs(legacy.runs) == []
    legacy("stdout", keep="always")(X)
    assert len(rundirs(legacy.runs)) == 1


@pytest.mark.parametrize("quiet", [False, True], ids=["child-holds-stdout", "child-detached-from-stdout"])
def test_timeout_kills_the_whole_process_group_including_a_child_ignoring_sigterm(legacy, quiet):
    """Also a child that does not hold the output pipes: once SIGTERM has killed the program,
    nothing keeps the call waiting, yet the child must still get its SIGKILL."""
    sim = legacy("hang", *(["quiet"] if quiet else []), timeout=2.0, grace=0.3)
    outcome = {}

    def run():
        try:
            sim(X)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    # Liveness, not timing: a surviving child can keep the call waiting (its sleep is an hour);
    # 60 s is far beyond the 2.3 s the kill takes.
    worker.join(60)
    (wd,) = rundirs(legacy.runs)
    pid = int((wd / "child.pid").read_text())
    try:
        assert not worker.is_alive(), "the evaluation did not return: the child kept running"
        err = outcome["error"]
        assert isinstance(err, sd.EvaluationTimeout) and isinstance(err, sd.SimulationError)
        assert "timed out after 2 s" in str(err) and err.workdir == str(wd)
        for _ in range(100):  # the kernel may take a moment to reap it
            if not _alive(pid):
                break
            time.sleep(0.05)
        assert not _alive(pid), f"child {pid} that ignores SIGTERM survived the time-out"
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, waiting for a reaper) counts as dead
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("path", ["../escape.txt", "/tmp/abs.txt", "sub/../../escape.txt", "..",
                                  "sub/..", ".", ""])
def test_a_template_path_leaving_the_workdir_is_refused(legacy, path):
    with pytest.raises(sd.ConfigError, match="would leave the work directory"):
        legacy(files={"deck.inp": DECK, path: "x"})
    with pytest.raises(sd.ConfigError, match="would leave the work directory"):
        legacy(parse={"file": path})


def test_a_path_that_stays_inside_is_fine(legacy):
    sim = legacy("stdout", files={"deck.inp": DECK, "sub/../notes/extra.txt": "{a}"}, keep="always")
    sim(X)
    (wd,) = rundirs(legacy.runs)
    assert (wd / "notes" / "extra.txt").read_text() == A


def test_unparsable_output_is_a_simulation_failure(legacy):
    with pytest.raises(sd.SimulationError, match=r"found 1 value\(s\)"):
        legacy("one")(X)
    with pytest.raises(sd.SimulationError, match="cannot be parsed"):
        legacy("stdout", parse={"file": "missing.txt"})(X)
    assert len(rundirs(legacy.runs)) == 2


@pytest.mark.parametrize("cfg, match", [
    ({"command": "legacy --run"}, "argv list"),
    ({"command": []}, "argv list"),
    ({"command": {"prog": "x"}}, "argv list"),
    ({"timeout": "abc"}, "timeout must be a positive number of seconds; got 'abc'"),
    ({"timeout": float("nan")}, "timeout must be"),
    ({"grace": -1}, "grace must be a non-negative number of seconds; got -1"),
    ({"env": "SCALE=2"}, "env must be {variable: value}"),
    ({"files": "deck.inp"}, "files must be {relative path: template text}"),
    ({"outputs": ["f", "f"]}, "outputs must be distinct"),
    ({"parse": {"xml": "out.xml"}}, "not understood"),
    ({"parse": {"regex": r"F1 = (\S+)"}}, "yields 1 value"),
    ({"keep": "sometimes"}, "keep must be one of"),
    ({"timeout": 0}, "timeout must be"),
])
def test_bad_configuration_is_refused(legacy, cfg, match):
    with pytest.raises(sd.ConfigError) as err:
        if "command" in cfg:
            sd.load("subprocess", inputs=["a"], **cfg)
        else:
            legacy(**cfg)
    assert match in str(err.value)


def test_a_workdir_that_cannot_hold_the_runs_is_refused_at_configuration(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(sd.ConfigError, match="workdir=.*afile/runs.* cannot be created"):
        sd.load("subprocess", command=["true"], inputs=["a"], workdir=str(tmp_path / "afile" / "runs"))


def test_pickles_and_prefers_threads(legacy):
    sim = legacy("stdout")
    assert sim.prefer == "threads" and sim.complex_safe is False
    clone = pickle.loads(pickle.dumps(sim))
    assert clone(X).tolist() == truth(X).tolist()


def test_parallel_evaluation_gives_the_serial_result(legacy):
    sim = legacy("json", parse={"json": "out.json", "keys": ["result.f1", "result.f2.0"]})
    np.testing.assert_array_equal(sd.jacobian(sim, [0.7, 2.0], n_jobs=2), sd.jacobian(sim, [0.7, 2.0]))
    assert rundirs(legacy.runs) == []


def test_env_entries_are_added_to_the_inherited_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMDIFF_TEST_INHERITED", "4.0")
    prog = "import os; print(float(os.environ['SCALE']) * float(os.environ['SIMDIFF_TEST_INHERITED']) * float(open('d').read()))"
    sim = sd.load("subprocess", command=[sys.executable, "-c", prog], inputs=["a"], files={"d": "{a}"},
                  env={"SCALE": 2.5}, workdir=str(tmp_path))
    assert sim(np.array([3.0])).tolist() == [30.0]


# -- a legacy program in bash, as a user would have it --------------------------------------------

SOLVER_SH = r"""#!/bin/bash
# reads the namelist deck, prints two results; refuses a negative a like a 1990s code would
a=$(sed -n 's/^ *a *= *\([^,]*\),.*/\1/p' params.nml)
b=$(sed -n 's/^ *b *= *\([^ ]*\) *\/.*/\1/p' params.nml)
awk -v a="$a" -v b="$b" 'BEGIN { if (a < 0) { print "negative a" > "/dev/stderr"; exit 7 }
                              printf "RESULT f1=%.17g f2=%.17g\n", a*a + 3*b, b*sin(a) }'
"""
NAMELIST = "&params\n  a = {a},\n  b = {b} /\n! braces that are no inputs stay: {c} {{a}} }}{\n"


@pytest.fixture
def bash_solver(tmp_path, monkeypatch):
    """./solver.sh in the current directory, as a user runs it from their project dir."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "solver.sh").write_text(SOLVER_SH)
    (project / "solver.sh").chmod(0o755)
    monkeypatch.chdir(project)
    return project


def test_a_bash_program_given_by_a_relative_path_runs_in_each_work_dir(bash_solver):
    """The program is './solver.sh' from where the user configured it; the run's own cwd is its
    fresh work dir (where './solver.sh' does not exist), so the path is resolved at
    configuration, and the simulator still works in a worker started elsewhere."""
    sim = sd.load("subprocess", command=["./solver.sh"], inputs=["a", "b"],
                  files={"params.nml": NAMELIST}, outputs=["f1", "f2"], workdir="runs",
                  parse={"regex": r"f1=(\S+) f2=(\S+)"})
    assert sim.workdir == str(bash_solver / "runs"), "a relative workdir is fixed at configuration"
    J = sd.jacobian(sim, [0.7, 2.0])
    np.testing.assert_allclose(J, truth_jac([0.7, 2.0]), rtol=1e-6)
    os.chdir("/")
    clone = pickle.loads(pickle.dumps(sim))
    np.testing.assert_allclose(clone(np.array([0.7, 2.0])), truth([0.7, 2.0]), rtol=1e-15)
    assert rundirs(bash_solver / "runs") == []
    with pytest.raises(sd.SimulationError) as err:
        clone(np.array([-1.0, 2.0]))
    assert err.value.returncode == 7 and "negative a" in err.value.stderr_tail


def test_a_kept_work_dir_holds_the_programs_output(bash_solver):
    sim = sd.load("subprocess", command=["./solver.sh"], inputs=["a", "b"],
                  files={"params.nml": NAMELIST}, workdir="runs")
    with pytest.raises(sd.SimulationError):
        sim(np.array([-1.0, 2.0]))
    (wd,) = rundirs(bash_solver / "runs")
    assert (wd / "simdiff-stderr.txt").read_text() == "negative a\n"
    assert (wd / "simdiff-stdout.txt").read_text() == ""
    assert (wd / "params.nml").read_text() == (
        "&params\n  a = -1.0,\n  b = 2.0 /\n! braces that are no inputs stay: {c} {{a}} }}{\n"
    ).replace("{{a}}", "{-1.0}"), "{{a}} holds the placeholder {a}: filled, the outer braces stay"


def test_a_program_killed_by_a_signal_names_it():
    sim = sd.load("subprocess", command=["bash", "-c", "echo dumping core >&2; kill -SEGV $$"], inputs=["a"])
    with pytest.raises(sd.SimulationError) as err:
        sim(np.array([1.0]))
    assert err.value.returncode == -signal.SIGSEGV
    assert "killed by SIGSEGV (exited with code -11)" in str(err.value)
    assert "dumping core" in err.value.stderr_tail
    import shutil

    shutil.rmtree(err.value.workdir)


def test_output_that_is_not_utf8_is_still_parsed():
    sim = sd.load("subprocess", command=["bash", "-c", r"printf 'T = 21.5 \xb0C\n'; printf '\xff\n' >&2"],
                  inputs=["a"], outputs=["T"], keep="never")
    assert sim(np.array([1.0])).tolist() == [21.5]
    in_file = sd.load("subprocess", command=["bash", "-c", r"printf 'T = 21.5 \xb0C\n' > out.txt"],
                      inputs=["a"], outputs=["T"], parse={"file": "out.txt"}, keep="never")
    assert in_file(np.array([1.0])).tolist() == [21.5]


def test_a_child_left_running_does_not_hold_the_call_and_is_stopped(tmp_path):
    """The program exits but leaves a background child holding stdout: the call returns the
    program's result (with output pipes it would wait for the child, here past the time-out)
    and the child does not outlive the evaluation."""
    script = f"sleep 300 & echo $! > {tmp_path / 'bg.pid'}; echo 2.5"
    sim = sd.load("subprocess", command=["bash", "-c", script], inputs=["a"], timeout=30,
                  workdir=str(tmp_path / "runs"))
    assert sim(np.array([1.0])).tolist() == [2.5]
    pid = int((tmp_path / "bg.pid").read_text())
    try:
        for _ in range(100):
            if not _alive(pid):
                break
            time.sleep(0.05)
        assert not _alive(pid), "the background child survived its evaluation"
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_fortran_d_exponents_and_json_keys_that_are_missing(tmp_path):
    fortran = sd.load("subprocess", command=["bash", "-c", "echo '  F =  1.5D+03   G = -2.0d-01'"],
                      inputs=["a"], outputs=["F", "G"], keep="never")
    assert fortran(np.array([1.0])).tolist() == [1500.0, -0.2]
    regex = sd.load("subprocess", command=["bash", "-c", "echo 'F = 1.5D+03'"], inputs=["a"],
                    parse={"regex": r"F = (\S+)"}, keep="never")
    assert regex(np.array([1.0])).tolist() == [1500.0]
    assert sd.load("subprocess", command=["true"], inputs=["a"], outputs="F").outputs == ["F"]
    sim = sd.load("subprocess", command=["bash", "-c", """echo '{"result": {"f": 1}}' > o.json"""],
                  inputs=["a"], parse={"json": "o.json", "keys": ["result.g"]}, keep="never")
    with pytest.raises(sd.SimulationError, match=r"o.json has no key 'result.g' \(at 'g'"):
        sim(np.array([1.0]))


def test_extreme_values_reach_the_program_bit_for_bit(tmp_path):
    prog = "print(*(repr(float(v)) for v in open('deck').read().split()))"
    sim = sd.load("subprocess", command=[sys.executable, "-c", prog], inputs=list("abcdef"),
                  files={"deck": "{a:r} {b:r} {c:r} {d:r} {e:r} {f:r}"}, workdir=str(tmp_path))
    x = np.array([1e308, 5e-324, -0.0, 2.2250738585072014e-308, -1.7976931348623157e308, 0.1 + 0.2])
    y = sim(x)
    assert y.tobytes() == x.tobytes(), "{a:r}: repr round-trips every float64, -0.0 and subnormals included"
    assert sim.quantize(x).tobytes() == x.tobytes()


def test_the_legacy_executable_example_runs_and_matches_its_analytic_jacobian():
    import re
    import subprocess

    example = Path(__file__).resolve().parents[1] / "examples" / "legacy_executable.py"
    run = subprocess.run([sys.executable, str(example), "--keep"], capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    rel = float(re.search(r"analytic Jacobian: (\S+)", run.stdout).group(1))
    assert rel < 1e-6 and "work dirs left after success: 0" in run.stdout
    assert "exit code 1, stderr 'HEATX-E-017" in run.stdout
    # the work dir it says it kept is there afterwards, holding the failed run's deck
    kept = Path(re.search(r"kept for inspection: (\S+)", run.stdout).group(1))
    try:
        assert (kept / "deck.nml").is_file() and (kept / "simdiff-stderr.txt").is_file()
        assert f"look at {kept}" in run.stdout
    finally:
        import shutil

        shutil.rmtree(kept.parent.parent, ignore_errors=True)
    for args in (["--cleanup"], []):  # run by a script (no terminal): nothing left either
        cleaned = subprocess.run([sys.executable, str(example), *args], capture_output=True,
                                 text=True, timeout=120, check=False)
        assert cleaned.returncode == 0, cleaned.stderr
        gone = Path(re.search(r"kept for inspection: (\S+)", cleaned.stdout).group(1))
        assert not gone.exists() and not gone.parent.parent.exists(), "nothing is left"
        assert f"removed {gone.parent.parent}, the kept work dir with it" in cleaned.stdout


def test_a_program_reading_its_deck_from_stdin(tmp_path):
    """solver < deck.inp without a shell: stdin= names a file of the work dir."""
    prog = "import sys; a, b = (float(v) for v in sys.stdin.read().split()); print(a * b)"
    sim = sd.load("subprocess", command=[sys.executable, "-c", prog], inputs=["a", "b"],
                  files={"deck.inp": "{a}\n{b}\n"}, stdin="deck.inp", workdir=str(tmp_path))
    np.testing.assert_allclose(sd.gradient(sim, [3.0, -2.0]), [-2.0, 3.0], rtol=1e-8)
    with pytest.raises(sd.ConfigError, match="stdin: path '../deck' would leave"):
        sd.load("subprocess", command=["cat"], inputs=["a"], stdin="../deck")
    missing = sd.load("subprocess", command=["cat"], inputs=["a"], stdin="nope.inp", keep="never")
    with pytest.raises(sd.SimulationError, match="could not be started \\(stdin 'nope.inp'\\)"):
        missing(np.array([1.0]))
