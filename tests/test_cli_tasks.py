"""Every verb and option of the ``simdiff`` command, in-process (``simdiff.cli.main``), against
closed forms; and the messages of the first hour: each says what was wrong and what is allowed."""

from __future__ import annotations

import json
import math
import sys
import textwrap

import numpy as np
import pytest

import simdiff as sd
from simdiff.cli import main

AT = "speed=20,angle=0.6,drag=0"
G = 9.81


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *args):
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def range_grad(v, th):
    return np.array([2 * v * np.sin(2 * th) / G, 2 * v * v * np.cos(2 * th) / G])


def range_hess(v, th):  # d²/d(v, θ)² of v² sin(2θ)/g
    return np.array([[2 * np.sin(2 * th) / G, 4 * v * np.cos(2 * th) / G],
                     [4 * v * np.cos(2 * th) / G, -4 * v * v * np.sin(2 * th) / G]])


@pytest.fixture
def models(tmp_path, monkeypatch):
    """A module of test functions importable by name (cli_models:...)."""
    (tmp_path / "cli_models.py").write_text(textwrap.dedent("""
        import numpy as np
        def quad(x):
            return float(x[0] ** 2 * x[1] + 3 * x[1])
        def quad_grad(x):
            return np.array([2 * x[0] * x[1], x[0] ** 2 + 3])
        def quad_grad_wrong(x):
            return np.array([2 * x[0] * x[1], x[0] ** 2 - 3])
        def vec(x):
            return np.array([x[0] * x[1], np.sin(x[0])])
        def vec_jac(x):
            return np.array([[x[1], x[0]], [np.cos(x[0]), 0.0]])
        def cube(x):
            return np.sum(x ** 3)
        def res(x):
            return np.array([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])
        def bad_grad(x):
            raise ValueError("grad broke")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("cli_models", None)


# -- verbs ----------------------------------------------------------------------------------

def test_gradient_with_output_and_adaptive_step(capsys):
    out = run_json(capsys, "gradient", "projectile", "--at", AT, "--output", "range", "--step", "adaptive")
    np.testing.assert_allclose(out["gradient"][:2], range_grad(20, 0.6), rtol=1e-10)
    assert out["outputs"] == ["range"] and len(out["error"]) == 3
    assert max(out["error"][:2]) < 1e-8


def test_hessian_of_one_output(capsys):
    out = run_json(capsys, "hessian", "projectile", "--at", AT, "--output", "range",
                   "--bounds", "drag=0:1")
    H = np.array(out["hessian"])
    assert H.shape == (3, 3) and np.array_equal(H, H.T)
    np.testing.assert_allclose(H[:2, :2], range_hess(20, 0.6), rtol=1e-5)


def test_jvp_along_named_inputs_missing_ones_are_zero(capsys):
    out = run_json(capsys, "jvp", "projectile", "--at", AT, "--v", "speed=1,angle=0.1", "--output", "range")
    assert out["jvp"] == pytest.approx(range_grad(20, 0.6) @ [1.0, 0.1], rel=1e-7)
    assert out["v"] == {"speed": 1.0, "angle": 0.1, "drag": 0.0} and out["nfev"] >= 2
    bare = run_json(capsys, "jvp", "projectile", "--at", AT, "--v", "1,0.1,0", "--output", "range")
    assert bare["jvp"] == out["jvp"]
    full = run_json(capsys, "jvp", "projectile", "--at", AT, "--v", "speed=1")
    assert len(full["jvp"]) == 3 and full["jvp"][0] == pytest.approx(range_grad(20, 0.6)[0], rel=1e-7)


def test_derivative_of_a_one_input_function(capsys):
    out = run_json(capsys, "derivative", "python", "--set", "function=numpy:sin", "--set",
                   "complex_safe=true", "--at", "x0=1", "--method", "complex")
    assert out["derivative"] == pytest.approx(math.cos(1.0), rel=1e-15)
    code, _, err = run(capsys, "derivative", "projectile", "--at", AT)
    assert code == 2 and "one input" in err and "simdiff gradient" in err


def test_check_passes_fails_and_names_the_entry(capsys, models):
    ok = run_json(capsys, "check", "python", "--set", "function=cli_models:quad", "--at", "1.5,-2",
                  "--grad", "cli_models:quad_grad")
    assert ok["passed"] and ok["verdict"] in ("excellent", "ok")
    code, out, err = run(capsys, "check", "python", "--set", "function=cli_models:quad",
                         "--at", "1.5,-2", "--grad", "cli_models:quad_grad_wrong")
    assert code == 1 and "BUG" in out and "x[1]" in out
    jac = run_json(capsys, "check", "python", "--set", "function=cli_models:vec", "--at", "0.5,2",
                   "--jac", "cli_models:vec_jac", "--points", "2", "--seed", "1")
    assert jac["passed"] and np.array(jac["analytical"]).shape == (2, 2)


def test_check_with_a_file_path_and_bad_specs(capsys, models):
    path = models / "cli_models.py"
    ok = run_json(capsys, "check", "python", "--set", "function=cli_models:quad", "--at", "1,1",
                  "--grad", f"{path}:quad_grad")
    assert ok["passed"]
    for spec, msg in (("cli_models", "the form is MODULE:FUNCTION"),
                      ("cli_models:quad_gard", "did you mean 'quad_grad'"),
                      ("no_such_module_xyz:f", "cannot import 'no_such_module_xyz'")):
        code, _, err = run(capsys, "check", "python", "--set", "function=cli_models:quad",
                           "--at", "1,1", "--grad", spec)
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err


def test_a_failing_grad_function_is_one_line_exit_1(capsys, models):
    code, out, err = run(capsys, "check", "python", "--set", "function=cli_models:quad", "--at", "1,2",
                         "--grad", "cli_models:bad_grad")
    lines = err.strip().splitlines()
    assert code == 1 and lines == ["simdiff: error: --grad cli_models:bad_grad at x = [1. 2.] raised "
                                   "ValueError: grad broke"], err


def test_a_bug_in_simdiff_is_one_line_and_minus_vv_shows_the_traceback(capsys, monkeypatch):
    from simdiff import cli_tasks

    def broken(*args, **kwargs):
        raise RuntimeError("planted bug")

    monkeypatch.setitem(cli_tasks._HANDLERS, "jacobian", broken)
    code, _, err = run(capsys, "jacobian", "projectile", "--at", AT)
    assert code == 1 and err.strip().splitlines() == [
        "simdiff: error: internal error: RuntimeError: planted bug (simdiff -vv ... shows the "
        "traceback; please report it)"]
    with pytest.raises(RuntimeError, match="planted bug"):
        main(["jacobian", "projectile", "--at", AT, "-vv"])


def test_sweep_table_json_and_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "sweep.png"
    out = run_json(capsys, "sweep", "projectile", "--at", AT, "--output", "range", "--input", "angle",
                   "--steps", "17", "--true", str(range_grad(20, 0.6)[1]), "--plot", str(png))
    assert len(out["steps"]) == 17 and out["reference_kind"] == "true"
    errors = np.array([e if e is not None else np.inf for e in out["errors"]])
    assert errors.min() < 1e-7 and errors.max() > 1e-3  # the V: both branches show
    assert png.stat().st_size > 1000 and out["plot"] == str(png)
    code, text, _ = run(capsys, "sweep", "projectile", "--at", AT, "--output", "range", "--steps", "9")
    assert code == 0 and text.count("\n") >= 9 and "best" in text


def test_evaluator_options_reach_the_evaluator(capsys, tmp_path, models):
    cache = tmp_path / "cache"
    args = ["jacobian", "python", "--set", "function=cli_models:vec", "--at", "0.5,2",
            "--cache", str(cache), "--retries", "1", "--timeout", "60", "--on-failure", "skip"]
    first = run_json(capsys, *args)
    np.testing.assert_allclose(first["jacobian"], [[2.0, 0.5], [math.cos(0.5), 0.0]], rtol=1e-7)
    assert any(cache.rglob("*")), "the cache was not written"
    again = run_json(capsys, *args)
    assert again["jacobian"] == first["jacobian"]


def test_on_failure_skip_lists_the_failed_points(capsys, tmp_path):
    prog = "import sys; sys.exit('no')"
    code, _, err = run(capsys, "jacobian", "subprocess", "--set",
                       "command=" + json.dumps([sys.executable, "-c", prog]), "--set", 'inputs=["a"]',
                       "--set", "keep=never", "--at", "a=1", "--on-failure", "skip", "--json")
    assert code in (0, 1)  # every point failed: skip leaves NaN, or the assembly refuses
    if code == 1:
        assert "simulation failed" in err


def test_bounds_keep_every_point_inside(capsys, tmp_path, models):
    out = run_json(capsys, "gradient", "python", "--set", "function=cli_models:cube", "--at", "x0=1,x1=2",
                   "--bounds", "x0=1:2,x1=:2")
    np.testing.assert_allclose(out["gradient"], [3.0, 12.0], rtol=1e-6)


def test_scale_and_noise_pass_through_or_say_they_are_not_supported(capsys, models):
    import inspect

    for flag_, value, key in (("--scale", "x0=10", "scale"), ("--noise", "1e-6", "noise")):
        code, out, err = run(capsys, "gradient", "python", "--set", "function=cli_models:cube",
                             "--at", "1,2", flag_, value, "--json")
        if key in inspect.signature(sd.jacobian).parameters:
            assert code == 0, err
        else:
            assert code == 2 and f"{flag_} is not supported by simdiff.jacobian" in err


def test_noise_verb(capsys, models):
    if not hasattr(sd, "noise_level"):
        pytest.skip("simdiff.noise_level is not in this tree yet (branch noise)")
    out = run_json(capsys, "noise", "python", "--set", "function=cli_models:quad", "--at", "1,2")
    assert "level" in out and len(out["level"]) == 1


def test_minimize_and_least_squares_verbs(capsys, models):
    if not hasattr(sd, "minimize") or not hasattr(sd, "least_squares"):
        pytest.skip("simdiff.minimize / least_squares are not in this tree yet (branch opt)")
    png = models / "history.png"
    out = run_json(capsys, "minimize", "python", "--set", "function=scipy.optimize:rosen",
                   "--x0", "-1.2,1", "--maxfev", "3000", "--plot", str(png))
    assert out["x"]["x0"] == pytest.approx(1.0, abs=1e-3) and out["nfev"] <= 3000
    assert out["history"] and png.stat().st_size > 1000
    out = run_json(capsys, "least-squares", "python", "--set", "function=cli_models:res",
                   "--x0", "-1.2,1", "--maxfev", "3000")
    assert out["x"]["x1"] == pytest.approx(1.0, abs=1e-4) and out["cost"] < 1e-8


def test_optimizer_verbs_without_the_optimizer_say_so(capsys, monkeypatch):
    for name in ("minimize", "least_squares", "noise_level"):
        monkeypatch.delattr(sd, name, raising=False)
    for verb in ("minimize", "least-squares"):
        code, _, err = run(capsys, verb, "python", "--set", "function=scipy.optimize:rosen", "--x0", "-1.2,1")
        assert code == 2 and f"simdiff.{verb.replace('-', '_')}" in err
    code, _, err = run(capsys, "noise", "projectile", "--at", AT)
    assert code == 2 and "simdiff.noise_level" in err


def test_adapters_name_shows_inputs_outputs_and_config_defaults(capsys):
    code, out, _ = run(capsys, "adapters", "projectile")
    assert code == 0
    assert "inputs: speed, angle, drag" in out and "outputs: range, max_height, flight_time" in out
    assert "g " in out and "= 9.81" in out and "gravitational acceleration" in out
    doc = run_json(capsys, "adapters", "subprocess")
    keys = {c["key"]: c for c in doc["config"]}
    assert keys["command"]["required"] and keys["keep"]["default"] == "failed"
    assert doc["inputs_from"] == "inputs" and "argv" in keys["command"]["doc"]
    for name in ("python", "mujoco", "pendulum"):  # every built-in documents every key
        doc = run_json(capsys, "adapters", name)
        assert all(c["doc"] for c in doc["config"]), [c["key"] for c in doc["config"] if not c["doc"]]
    code, _, err = run(capsys, "adapters", "projectil")
    assert code == 2 and "did you mean 'projectile'" in err


def test_verbose_logs_to_stderr_and_the_library_is_silent_by_default(capsys):
    import logging

    assert not logging.getLogger("simdiff").handlers  # the library adds no handler
    code, _, err = run(capsys, "gradient", "projectile", "--at", AT, "--output", "range", "-v")
    assert code == 0 and "simdiff: INFO" in err
    code, _, err = run(capsys, "gradient", "projectile", "--at", AT, "--output", "range")
    assert code == 0 and err == ""
    assert not logging.getLogger("simdiff").handlers


def test_the_library_logs_batches_retries_and_failures(caplog):
    import logging

    tries: dict = {}

    def flaky(x):  # fails the first time at every point, and always beyond x0 = 5
        key = tuple(x)
        tries[key] = tries.get(key, 0) + 1
        if tries[key] == 1 or x[0] > 5:
            raise RuntimeError("flaky")
        return float(x @ x)

    with caplog.at_level(logging.DEBUG, logger="simdiff"):
        ev = sd.Evaluator(retries=1, on_failure="skip")
        batch = ev.evaluate(flaky, np.array([[1.0, 2.0], [6.0, 0.0]]))
    assert batch.ok.tolist() == [True, False]
    text = caplog.text
    assert "batch of 2 point(s)" in text and "retry 1 of 1" in text
    assert "point 1 failed after 2 attempt(s)" in text and "flaky" in text
    assert all(r.name.startswith("simdiff") for r in caplog.records)


# -- messages -------------------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["jacobian", "projectile", "--at", AT, "--step", "-1e-3"], ["--step", "positive"]),
    (["jacobian", "projectile", "--at", AT, "--step", "big"], ["--step 'big'", "'adaptive'"]),
    (["jacobian", "projectile", "--at", AT, "--metod", "central"], ["unknown option --metod", "did you mean --method"]),
    (["jacobian", "projectile", "--at", AT, "--meth=central"], ["did you mean --method"]),
    (["jacobian", "projectile", "--at", "speed=nan,angle=0.6,drag=0"], ["speed", "finite"]),
    (["jacobian", "projectile", "--at", "speed=inf,angle=0.6,drag=0"], ["speed", "finite"]),
    (["jacobian", "projectile", "--at", "speed:20,angle:0.6,drag:0"], ["the form is NAME=VALUE", "speed=20"]),
    (["jacobian", "projectile", "--at", "speed=20,angle=0.6,drag=0,spede=1"], ["spede"]),
    (["jacobian", "projectile", "--at", "sped=20,angle=0.6,drag=0"], ["did you mean 'speed'"]),
    (["jacobian", "projectile", "--at", AT, "--bounds", "speed=30:10"], ["--bounds", "lower bound above"]),
    (["jacobian", "projectile", "--at", AT, "--bounds", "speed=25:30"], ["--bounds", "outside"]),
    (["jacobian", "projectile", "--at", AT, "--bounds", "speed:10"], ["NAME=LO:HI"]),
    (["jacobian", "projectile", "--at", AT, "--scale", "speed=-1"], ["--scale", "> 0"]),
    (["jacobian", "projectile", "--at", AT, "--noise", "loud"], ["--noise", "estimate"]),
    (["jacobian", "projectile", "--at", AT, "--on-failure", "ignore"], ["invalid choice", "raise", "skip"]),
    (["jacobian", "projectile", "--at", AT, "--jobs", "two"], ["--jobs", "invalid int"]),
    (["jacobian", "projectile", "--at", AT, "--jobs", "0"], ["--jobs 0 is not allowed", "positive"]),
    (["jacobian", "projectile", "--at", AT, "--timeout", "-1"], ["--timeout -1.0 is not allowed", "seconds > 0"]),
    (["jacobian", "projectile", "--at", AT, "--retries", "-2"], ["--retries -2 is not allowed", ">= 0"]),
    (["jacobian", "projectile", "--at", AT, "--output", "rnge"], ["did you mean 'range'"]),
    (["gradient", "projectile", "--at", AT], ["single output", "--output range"]),
    (["hessian", "projectile", "--at", AT], ["single output", "--output"]),
    (["jvp", "projectile", "--at", AT], ["--v"]),
    (["jvp", "projectile", "--at", AT, "--v", "wind=1"], ["unknown input 'wind'"]),
    (["check", "projectile", "--at", AT], ["--grad"]),
    (["jacobian", "projectile", "--at", AT, "--order", "3", "--method", "central"], ["order"]),
    (["jacobain", "projectile", "--at", AT], ["invalid choice: 'jacobain'", "did you mean 'jacobian'?"]),
    (["jacobian", "projectile", "--at", AT, "--method", "centrl"], ["did you mean 'central'?"]),
])
def test_messages_say_what_was_wrong_and_what_is_allowed(capsys, args, says):
    code, _, err = run(capsys, *args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simdiff: error: "), err
    for text in says:
        assert text in lines[0], lines[0]


def test_a_plugin_that_takes_a_builtin_name_does_not_stop_the_commands(tmp_path, monkeypatch, capsys):
    from simdiff import host

    (tmp_path / "shadow_cli_plugin.py").write_text(textwrap.dedent('''
        import simdiff as sd
        class Fake(sd.Simulator):
            """Not the projectile."""
            name = "projectile"
            def evaluate(self, x):
                return 0.0
        @sd.hookimpl
        def simdiff_adapters():
            return [Fake]
    '''))
    info = tmp_path / "shadow_cli_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shadow-cli-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[simdiff]\nshadow = shadow_cli_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(host.DISABLE_ENV, raising=False)
    host.reset()
    try:
        code, out, err = run(capsys, "adapters")
        assert code == 0 and "projectile" in out and "Point mass" in out
        assert "'shadow'" in err and "'physics'" in err and "skipped" in err
        out = run_json(capsys, "gradient", "projectile", "--at", AT, "--output", "range")
        np.testing.assert_allclose(out["gradient"][:2], range_grad(20, 0.6), rtol=1e-6)
    finally:
        host.reset()
        sys.modules.pop("shadow_cli_plugin", None)
