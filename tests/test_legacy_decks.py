"""Decks as legacy programs read them: fixed-width fields, format specs, derived values, odd exit
codes, errors on stdout, units (issue 13).

The fake programs here read the way Fortran and Abaqus-style readers do: a number is the first
20 characters of its line (``(f20.0)``), anything beyond is cut off.
"""

from __future__ import annotations

import json
import math
import subprocess
import warnings
import sys
from pathlib import Path

import numpy as np
import pytest

import simdiff as sd

# A reader of fixed 20-character fields: E and P, one per line; prints the tip deflection of a
# cantilever, P·L³ / (3·E·I), with L and I read from the deck as well.
FIXED = r'''
import sys
lines = open("deck.inp").read().splitlines()
E, P, L, I = (float(line[:20]) for line in lines[:4])
print(f"DEFLECTION {P * L**3 / (3 * E * I)!r}")
'''


def deflection(E, P, L=2.0, I=8.0e-6):
    return P * L**3 / (3 * E * I)


def grad_deflection(E, P, L=2.0, I=8.0e-6):
    d = deflection(E, P, L, I)
    return np.array([-d / E, d / P])


@pytest.fixture
def fixed_width(tmp_path):
    prog = tmp_path / "fixed.py"
    prog.write_text(FIXED)

    def make(deck, **cfg):
        cfg.setdefault("parse", {"regex": r"DEFLECTION (\S+)"})
        return sd.load("subprocess", command=[sys.executable, str(prog)], inputs=["E", "P"],
                       outputs=["d"], files={"deck.inp": deck}, workdir=str(tmp_path / "runs"), **cfg)

    return make


def test_default_numbers_fit_a_20_character_field(fixed_width):
    # repr(9.900000000000001e-05) has 21 characters: an (f20.0) reader cut it to ...e-0 (= 9.9)
    from simdiff_plugins.executable.templates import format_number

    for v in (9.900000000000001e-05, -1.7976931348623157e308, 0.1 + 0.2, 2.1e11, -1.2345678901234567e-300):
        s = format_number(v)
        assert len(s) <= 20 and abs(float(s) - v) <= 5e-13 * abs(v)
    assert format_number(0.1 + 0.2) == repr(0.1 + 0.2), "repr is kept when it fits"
    assert format_number(9.900000000000001e-05) == "9.900000000000001e-5", "exact, compacted"
    sim = fixed_width("{E}\n{P}\n2.0\n8.0e-6\n")
    x = np.array([9.900000000000001e-05, 1.0 / 3.0])
    np.testing.assert_allclose(sim(x), deflection(*x), rtol=1e-15)
    assert sim.quantize(x).tolist() == x.tolist(), "both fit in 20 characters exactly"
    x = np.array([-1.2345678901234567e-300, 1.0 / 3.0])
    q = sim.quantize(x)
    assert q[1] == x[1] and 0 < abs(q[0] - x[0]) <= 5e-13 * abs(x[0])


@pytest.mark.parametrize("spec", [".6e", "12.5E", ".7g"])
def test_a_formatted_deck_differentiates_at_the_values_the_program_read(fixed_width, spec):
    sim = fixed_width("{E:%s}\n{P:%s}\n{L}\n{I}\n" % (spec, spec), constants={"L": 2.0, "I": 8.0e-6})
    x = np.array([2.1e11, 1234.5678])  # SI units: Pa, N
    for method in ("central", "five-point"):
        g, info = sd.gradient(sim, x, method=method, full_output=True)
        truth = grad_deflection(*sim.quantize(x))  # the program read q(x), not x
        err = np.abs(g - truth)
        assert np.all(err <= 1e-4 * np.abs(truth)), (method, err / np.abs(truth))
        assert np.all(info.error >= err), (method, info.error, err)


def test_quantize_is_what_the_program_reads_from_the_kept_deck(fixed_width):
    sim = fixed_width("{E:.6e}\n{P:.3f}\n{L}\n{I}\n", constants={"L": 2.0, "I": 8.0e-6},
                      keep="always")
    x = np.array([2.123456789e11, 12.34567])
    sim(x)
    (wd,) = list(Path(sim.workdir).iterdir())
    read = [float(line[:20]) for line in (wd / "deck.inp").read_text().splitlines()[:2]]
    assert read == sim.quantize(x).tolist() == [2.123457e11, 12.346]
    assert sim.quantize(np.vstack([x, x])).tolist() == [read, read], "(k, n) points too"


def test_without_quantize_the_rounded_steps_would_be_wrong(fixed_width):
    # the planned central step of E is 6.06e-6·E: .6e writes x ± h with 7 digits, so the offsets
    # the program saw differ from the planned ones by up to 8 %; quantize makes them exact
    sim = fixed_width("{E:.6e}\n{P:.6e}\n{L}\n{I}\n", constants={"L": 2.0, "I": 8.0e-6})
    x = np.array([2.1e11, 1234.5678])

    class Unquantized(type(sim)):
        def quantize(self, X):
            return X

    raw = Unquantized.__new__(Unquantized)
    raw.__setstate__(sim.__getstate__())
    g_raw = sd.gradient(raw, x)
    g = sd.gradient(sim, x)
    truth = grad_deflection(*sim.quantize(x))
    assert np.max(np.abs(g - truth) / np.abs(truth)) < 1e-6
    assert np.max(np.abs(g_raw - truth) / np.abs(truth)) > 1e-4, "the distortion this fixes"


def test_steps_below_the_written_resolution_are_refused_by_name(fixed_width):
    sim = fixed_width("{E:.3e}\n{P}\n2.0\n8.0e-6\n")
    with pytest.raises(sd.ArgumentError, match=r"x\[0\].*resolution of the written numbers"):
        sd.gradient(sim, [2.1e11, 1000.0], method="forward")


def test_integer_specs_constants_and_formats_in_command_arguments(tmp_path):
    prog = "import sys; print(' '.join(sys.argv[1:])); print(open('deck').read())"
    sim = sd.load("subprocess", command=[sys.executable, "-c", prog, "-n", "{n:d}", "-T", "{T:.2f}",
                                         "--steps={steps:d}"],
                  inputs=["n", "T"], files={"deck": "{n:05d}|{T:>10.3e}|{steps}"},
                  constants={"steps": 100}, parse={"regex": r"^-n (\S+) -T (\S+)"},
                  keep="always", workdir=str(tmp_path))
    out = sim(np.array([2.6, 300.004]))
    assert out.tolist() == [3.0, 300.0]
    (wd,) = list(tmp_path.iterdir())
    stdout = (wd / "simdiff-stdout.txt").read_text()
    assert stdout.startswith("-n 3 -T 300.00 --steps=100\n00003| 3.000e+02|100.0")
    assert sim.quantize(np.array([2.6, 300.004])).tolist() == [3.0, 300.0]


def test_expressions_compute_derived_values(tmp_path):
    prog = "print(open('deck').read())"
    deck = "{L/2} {r0 + d0} {sqrt(k)} {2*pi*r0:.8f} {-L**2 % 7} {max(k, 10)} {atan2(r0, L):.4f}"
    sim = sd.load("subprocess", command=[sys.executable, "-c", prog], inputs=["L", "r0", "k"],
                  constants={"d0": 0.25}, files={"deck": deck})
    L, r0, k = 3.0, 1.5, 16.0
    out = sim(np.array([L, r0, k]))
    expected = [L / 2, r0 + 0.25, 4.0, round(2 * math.pi * r0, 8), -L**2 % 7, 16.0,
                round(math.atan2(r0, L), 4)]
    np.testing.assert_allclose(out, expected, rtol=1e-15)
    # a derivative through derived values: f = L/2 + r0 + 0.25 + sqrt(k) + ...
    J = sd.jacobian(sim, [L, r0, k])
    np.testing.assert_allclose(J[0], [0.5, 0, 0], atol=1e-8)
    np.testing.assert_allclose(J[2], [0, 0, 1 / (2 * math.sqrt(k))], atol=1e-8)


@pytest.mark.parametrize("expr, what", [
    ("{k.real}", "Attribute"),
    ("{__import__('os').system('touch PWNED') + k}", "calling __import__"),
    ("{k if k else 0}", "IfExp"),
    ("{open(k)}", "calling open"),
    ("{k + foo}", "unknown name 'foo'"),
    ("{[k][0]}", "Subscript"),
    ("{k < 3}", "Compare"),
    ("{k:.3q}", "format spec '.3q'"),
    ("{k + 'a'}", "the constant 'a'"),
    ("{sqrt(k, base=2)}", "positional arguments"),
])
def test_anything_but_arithmetic_is_refused_naming_template_and_expression(tmp_path, expr, what):
    with pytest.raises(sd.ConfigError) as err:
        sd.load("subprocess", command=["true"], inputs=["k"], files={"deck.inp": f"x = {expr}\n"})
    msg = str(err.value)
    assert "files['deck.inp']" in msg and expr in msg and what in msg
    with pytest.raises(sd.ConfigError, match=r"command\[1\]"):
        sd.load("subprocess", command=["echo", expr], inputs=["k"])


def test_braces_that_name_no_input_are_written_as_they_stand(tmp_path):
    text = ('{"E": {E}, "nu": 0.3} {unknown} {__import__("os")} {a: 1} { } {1, 2}\n'
            "int v[] = {1, 2};\n&nml x={E:.2e} /\n")
    prog = "import sys; sys.stdout.write(open('deck').read())"
    sim = sd.load("subprocess", command=[sys.executable, "-c", prog], inputs=["E"],
                  files={"deck": text}, parse={"regex": r"x=(\S+)"}, keep="always",
                  workdir=str(tmp_path))
    assert sim(np.array([2.5e3])).tolist() == [2.5e3]
    (wd,) = list(tmp_path.iterdir())
    assert (wd / "deck").read_text() == text.replace("{E}", "2500.0").replace("{E:.2e}", "2.50e+03")


EXIT = r'''
import sys
code = int(float(open("deck").read()))
print("RESULT 42.0")
if code >= 200:
    print(" *ERROR reading *MATERIAL: no elastic constants")
    print(" *ERROR in calinput: the deck is not complete")
    code = 201
sys.exit(code)
'''


@pytest.fixture
def exits(tmp_path):
    prog = tmp_path / "exits.py"
    prog.write_text(EXIT)

    def make(**cfg):
        return sd.load("subprocess", command=[sys.executable, str(prog)], inputs=["code"],
                       files={"deck": "{code:d}"}, parse={"regex": r"RESULT (\S+)"},
                       workdir=str(tmp_path / "runs"), **cfg)

    return make


def test_ok_returncodes_accepts_declared_codes_only(exits):
    sim = exits(ok_returncodes=[0, 1])
    assert sim(np.array([1.0])).tolist() == [42.0]
    assert sim(np.array([0.0])).tolist() == [42.0]
    with pytest.raises(sd.SimulationError, match=r"exited with code 2 \(ok_returncodes=\[0, 1\]\)"):
        sim(np.array([2.0]))
    with pytest.raises(sd.SimulationError, match="exited with code 1"):
        exits()(np.array([1.0]))
    with pytest.raises(sd.ConfigError, match="ok_returncodes"):
        exits(ok_returncodes=[])
    with pytest.raises(sd.ConfigError, match="ok_returncodes"):
        exits(ok_returncodes="zero")


def test_an_error_printed_on_stdout_is_in_the_message_and_on_the_outer_error(exits):
    sim = exits()
    with pytest.raises(sd.SimulationError) as err:
        sim(np.array([201.0]))
    e = err.value
    assert "exited with code 201" in str(e) and "no elastic constants" in str(e)
    assert "stdout tail" in str(e) and "*ERROR in calinput" in e.stdout_tail
    assert e.stderr_tail == "" and e.returncode == 201
    wd = Path(e.workdir)
    assert (wd / "simdiff-stderr.txt").read_text() == ""
    assert "*ERROR reading" in (wd / "simdiff-stdout.txt").read_text()
    # the error of a derivative call carries the same attributes itself
    with pytest.raises(sd.SimulationError) as outer:
        sd.gradient(sim, [201.0], step=1.0)
    o = outer.value
    assert o.returncode == 201 and "*ERROR in calinput" in o.stdout_tail and o.stderr_tail == ""
    assert o.workdir is not None and Path(o.workdir).is_dir() and o.workdir in str(o)
    assert o.cause is not None and o.point is not None


def test_stderr_with_a_reason_wins_over_stdout(tmp_path):
    prog = "import sys; print('lots of progress'); sys.exit('FATAL: mesh is inverted')"
    sim = sd.load("subprocess", command=[sys.executable, "-c", prog], inputs=["a"], keep="never")
    with pytest.raises(sd.SimulationError) as err:
        sim(np.array([1.0]))
    assert "stderr tail:\nFATAL: mesh is inverted" in str(err.value)
    assert "lots of progress" not in str(err.value) and err.value.stdout_tail == "lots of progress"
    assert err.value.workdir is None


def test_scales_are_configuration_and_an_attribute(tmp_path):
    kw = dict(command=["true"], inputs=["C", "R"])
    assert sd.load("subprocess", **kw).scales is None
    np.testing.assert_array_equal(sd.load("subprocess", scales=[1e-6, 1e3], **kw).scales, [1e-6, 1e3])
    np.testing.assert_array_equal(sd.load("subprocess", scales={"R": 1e3, "C": 1e-6}, **kw).scales,
                                  [1e-6, 1e3])
    np.testing.assert_array_equal(sd.load("subprocess", scales=2.0, **kw).scales, [2.0, 2.0])
    for bad, match in [([1.0], "one positive number per input"), ([1.0, -1.0], "positive"),
                       ({"C": 1.0}, r"missing \['R'\]"), ("big", "scales")]:
        with pytest.raises(sd.ConfigError, match=match):
            sd.load("subprocess", scales=bad, **kw)
    # the Simulator attribute the derivative functions read; part of the cache identity
    a = sd.load("subprocess", scales=[1e-6, 1e3], **kw)
    b = sd.load("subprocess", scales=[1e-6, 1.0], **kw)
    assert a.identity() != b.identity()


def test_scales_from_the_command_line(tmp_path):
    # log C at C = 2e-6 F: steps on the scale max(1, |C|) = 1 would cross 0; scales=[1e-6]
    # (the adapter's configuration, read by the derivative functions) keeps them at C's size
    prog = "import math; print(math.log(float(open('d').read())))"
    run = subprocess.run(
        [sys.executable, "-m", "simdiff", "gradient", "subprocess",
         "--set", f'command={json.dumps([sys.executable, "-c", prog])}', "--set", 'inputs=["C"]',
         "--set", 'files={"d": "{C}"}', "--set", "scales=[1e-6]", "--set", "keep=\"never\"",
         "--at", "C=2e-6", "--json"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    np.testing.assert_allclose(out["gradient"][0], 1 / 2e-6, rtol=1e-6)
    assert out["failures"] == [] and out["step"][0] < 1e-7


def test_failure_records_have_one_shape_with_a_kind():
    def f(x):
        if x[0] > 1.0:
            raise ValueError("no")
        return float(np.sum(x**2))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the rebuilt entry is reported as a warning too
        g, info = sd.gradient(f, [1.0, 0.5], evaluator=sd.Evaluator(on_failure="skip"),
                              full_output=True)
    assert {r.kind for r in info.failures} == {"evaluation", "repair"}
    keys = {frozenset(r) for r in info.failures}
    assert len(keys) == 1, "every record has the same keys"
    for r in info.failures:
        assert isinstance(r, dict) and r["kind"] == r.kind and r.reason
        if r.kind == "evaluation":
            assert r.point[0] > 1.0 and isinstance(r.cause, ValueError) and "no" in r.reason
            assert r.entry is None
        else:
            assert r.entry == 0 and r.recovered and r.point is None
    np.testing.assert_allclose(g, [2.0, 1.0], rtol=1e-5)


def _has_on_failure() -> bool:
    import inspect

    return "on_failure" in inspect.signature(sd.gradient).parameters


def test_waiting_with_a_timeout_returns_the_exit_code_without_polling_paths(monkeypatch):
    import simdiff_plugins.executable as ex

    for pidfd in (True, False):
        if not pidfd:
            monkeypatch.delattr(ex.os, "pidfd_open", raising=False)
        p = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(7)"])
        assert ex._wait(p, 30.0) == 7
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert ex._wait(p, 0.2) is None, "still running after the time-out"
        finally:
            p.kill()
            p.wait()


def test_warnings_on_stderr_do_not_hide_an_error_on_stdout(tmp_path):
    prog = ("import sys; print('warning: OMP_NUM_THREADS not set', file=sys.stderr); "
            "print('step 1'); print('ERROR: lost atoms'); sys.exit(1)")
    sim = sd.load("subprocess", command=[sys.executable, "-c", prog], inputs=["a"], keep="never")
    with pytest.raises(sd.SimulationError) as err:
        sim(np.array([1.0]))
    msg = str(err.value)
    assert "OMP_NUM_THREADS" in msg and "ERROR: lost atoms" in msg


def test_adaptive_steps_and_hessians_warn_about_rounded_decks(fixed_width):
    rounded = fixed_width("{E:.6e}\n{P:.6e}\n2.0\n8.0e-6\n")
    x = np.array([2.1e11, 1234.5678])
    with pytest.warns(sd.SimdiffWarning, match=r"rounds the values it is given \(E = "):
        sd.gradient(rounded, x, step="adaptive")
    with pytest.warns(sd.SimdiffWarning, match="simdiff.hessian: .* rounds the values"):
        sd.hessian(rounded, x)
    exact = fixed_width("{E}\n{P}\n2.0\n8.0e-6\n")  # 20 characters: nothing is rounded here
    with warnings.catch_warnings():
        warnings.simplefilter("error", sd.SimdiffWarning)
        g = sd.gradient(exact, x, step="adaptive")
    np.testing.assert_allclose(g, grad_deflection(*x), rtol=1e-8)
