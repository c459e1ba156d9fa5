"""The ``simdiff`` command end to end, in a subprocess (``python -m simdiff``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

AT = "speed=20,angle=0.6,drag=0"
G = 9.81


def simdiff(*args, env_extra=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "SIMDIFF_DISABLE_PLUGINS"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "simdiff", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120, check=False)


def range_jac(v, th, g=G):
    return np.array([2 * v * np.sin(2 * th) / g, 2 * v * v * np.cos(2 * th) / g])


def test_adapters_lists_name_description_plugin_version():
    run = simdiff("adapters")
    assert run.returncode == 0, run.stderr
    lines = {line.split()[0]: line for line in run.stdout.splitlines()[2:]}
    assert {"projectile", "pendulum", "python", "subprocess", "mujoco"} <= set(lines)
    assert "physics" in lines["projectile"] and "Point mass" in lines["projectile"]
    rows = json.loads(simdiff("adapters", "--json").stdout)
    proj = next(r for r in rows if r["name"] == "projectile")
    assert proj["plugin"] == "physics" and proj["version"] and proj["description"]


def test_jacobian_json_matches_the_closed_form():
    run = simdiff("jacobian", "projectile", "--at", AT, "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["inputs"] == ["speed", "angle", "drag"]
    assert out["outputs"] == ["range", "max_height", "flight_time"]
    J = np.array(out["jacobian"])
    assert J.shape == (3, 3) and np.array(out["error"]).shape == (3, 3)
    np.testing.assert_allclose(J[0, :2], range_jac(20.0, 0.6), rtol=1e-6)
    assert out["nfev"] == 7 and out["method"] == "central" and len(out["step"]) == 3
    assert out["failures"] == []


def test_jacobian_table():
    run = simdiff("jacobian", "projectile", "--at", "speed=20", "--at", "angle=0.6,drag=0.05",
                  "--method", "five-point")
    assert run.returncode == 0, run.stderr
    text = run.stdout
    assert "method five-point, 12 evaluations" in text
    header = next(line for line in text.splitlines() if line.startswith("d/d"))
    assert header.split()[1:] == ["speed", "angle", "drag"]
    assert sum(line.startswith(("range", "max_height", "flight_time")) for line in text.splitlines()) == 3
    assert text.count("±") == 9


def test_gradient_with_set_values_parsed_as_json():
    run = simdiff("gradient", "projectile", "--at", AT, "--set", 'outputs=["range"]',
                  "--set", "g=1.62", "--jobs", "2", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["config"] == {"outputs": ["range"], "g": 1.62}
    np.testing.assert_allclose(out["gradient"][:2], range_jac(20.0, 0.6, g=1.62), rtol=1e-6)


def test_set_values_that_are_not_json_stay_strings_and_bare_at_values():
    run = simdiff("gradient", "python", "--set", "function=numpy:prod", "--at", "2,3,5", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["config"] == {"function": "numpy:prod"}
    np.testing.assert_allclose(out["gradient"], [15.0, 10.0, 6.0], rtol=1e-8)


def test_subprocess_adapter_from_the_command_line(tmp_path):
    prog = "print(3 * float(open('deck.inp').read()) ** 2)"
    args = ["--set", "command=" + json.dumps([sys.executable, "-c", prog]),
            "--set", 'inputs=["a"]', "--set", 'files={"deck.inp": "{a}"}',
            "--set", f"workdir={tmp_path}"]
    run = simdiff("gradient", "subprocess", *args, "--at", "a=2", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["gradient"] == pytest.approx([12.0], rel=1e-6)
    failing = ["--set", "command=" + json.dumps([sys.executable, "-c", "import sys; sys.exit('deck broken')"]),
               "--set", 'inputs=["a"]', "--set", f"workdir={tmp_path}"]
    run = simdiff("gradient", "subprocess", *failing, "--at", "a=2")
    assert run.returncode == 1
    assert "exited with code 1" in run.stderr and "deck broken" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("args, reason", [
    ([], "required: COMMAND"),
    (["jacobian", "projectile"], "required: --at"),
    (["jacobian", "projectil", "--at", AT], "no adapter named 'projectil'; known adapters: "),
    (["jacobian", "projectile", "--at", "speed=20,angle=0.6"], "missing value(s) for drag"),
    (["jacobian", "projectile", "--at", AT + ",wind=3"], "unknown input 'wind'"),
    (["jacobian", "projectile", "--at", "speed=fast,angle=0.6,drag=0"], "'fast' for 'speed' is not a number"),
    (["jacobian", "projectile", "--at", AT, "--set", "gravity=1"], "no configuration key 'gravity'"),
    (["jacobian", "projectile", "--at", AT, "--set", "g"], "expected KEY=VALUE"),
    (["jacobian", "projectile", "--at", AT, "--method", "sideways"], "invalid choice: 'sideways'"),
    (["jacobian", "projectile", "--at", AT, "--step", "-1"], "--step -1.0 is not allowed; allowed: a positive number"),
    (["gradient", "projectile", "--at", AT], "gradient needs a single output"),
    (["gradient", "python", "--set", "function=nowhere:f", "--at", "1"], "cannot import module 'nowhere'"),
])
def test_bad_usage_exits_2_with_one_line(args, reason):
    run = simdiff(*args)
    assert run.returncode == 2, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simdiff: error: "), run.stderr
    assert reason in lines[0]


def test_gradient_of_an_adapter_whose_outputs_show_only_at_run_time():
    prog = "print(1.0, 2.0)"
    run = simdiff("gradient", "subprocess", "--set", "command=" + json.dumps([sys.executable, "-c", prog]),
                  "--set", 'inputs=["a"]', "--at", "a=1")
    assert run.returncode == 2
    assert "gradient needs a single output" in run.stderr and "returned 2 values" in run.stderr


def test_a_broken_plugin_is_a_warning_not_a_traceback(tmp_path):
    (tmp_path / "broken_cli_plugin.py").write_text("raise ImportError('no such engine')\n")
    info = tmp_path / "broken_cli_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-cli-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[simdiff]\nbrokencli = broken_cli_plugin\n")
    run = simdiff("adapters", env_extra={"PYTHONPATH": str(tmp_path)})
    assert run.returncode == 0 and "projectile" in run.stdout
    assert run.stderr.startswith("simdiff: warning: simdiff plugin 'brokencli' is skipped")
    assert "no such engine" in run.stderr and "Traceback" not in run.stderr


def test_a_failed_simulation_exits_1_without_traceback():
    run = simdiff("jacobian", "projectile", "--at", "speed=0,angle=0.6,drag=0")
    assert run.returncode == 1
    assert "simulation failed" in run.stderr and "speed must be > 0" in run.stderr
    assert "Traceback" not in run.stderr


def test_disabled_plugin_is_reported_as_unknown_with_the_reason():
    run = simdiff("jacobian", "projectile", "--at", AT, env_extra={"SIMDIFF_DISABLE_PLUGINS": "physics"})
    assert run.returncode == 2
    assert "blocked by SIMDIFF_DISABLE_PLUGINS: physics" in run.stderr


def test_help_has_examples():
    for args in (["--help"], ["jacobian", "--help"]):
        run = simdiff(*args)
        assert run.returncode == 0
        assert "examples:" in run.stdout and "simdiff jacobian projectile --at" in run.stdout


def test_a_reader_that_goes_away_is_no_traceback():
    """`simdiff adapters | head -1`: stdout closed before simdiff writes; exit 141 (128 + SIGPIPE)."""
    env = {k: v for k, v in os.environ.items() if k != "SIMDIFF_DISABLE_PLUGINS"}
    proc = subprocess.Popen([sys.executable, "-m", "simdiff", "adapters"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_negative_values_and_the_exact_point_in_the_header():
    run = simdiff("gradient", "python", "--set", "function=numpy:sum", "--at", "-1,2", "--json")
    assert run.returncode == 0, run.stderr  # a negative value may follow its option directly
    assert json.loads(run.stdout)["at"] == {"x0": -1.0, "x1": 2.0}
    run = simdiff("gradient", "python", "--set", "function=numpy:sum", "--at=-1,0.30000000000000004")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == "gradient of python at x0=-1.0, x1=0.30000000000000004"


def test_a_legacy_program_writing_json_from_the_command_line(tmp_path):
    prog = tmp_path / "legacy_json.py"
    prog.write_text("import json\na, b = (float(v) for v in open('in.txt').read().split())\n"
                    "json.dump({'out': {'p': a * b, 'q': a - b}}, open('res.json', 'w'))\n")
    args = ["--set", "command=" + json.dumps([sys.executable, str(prog)]), "--set", 'inputs=["a", "b"]',
            "--set", 'files={"in.txt": "{a} {b}"}', "--set", 'outputs=["p", "q"]',
            "--set", 'parse={"json": "res.json", "keys": ["out.p", "out.q"]}', "--set", f"workdir={tmp_path}"]
    run = simdiff("jacobian", "subprocess", *args, "--at", "a=3,b=-2", "--jobs", "2", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["outputs"] == ["p", "q"] and out["inputs"] == ["a", "b"]
    np.testing.assert_allclose(out["jacobian"], [[-2.0, 3.0], [1.0, -1.0]], rtol=1e-8)
    assert [p.name for p in tmp_path.iterdir()] == ["legacy_json.py"], "work dirs removed after success"


def test_the_console_script_imports_a_users_module_from_the_current_directory(tmp_path):
    """`simdiff` as installed (a script in bin/, whose own directory heads sys.path) finds
    mysim.py beside the user, as `python -m simdiff` does; in worker processes too."""
    bindir, project = tmp_path / "bin", tmp_path / "project"
    bindir.mkdir()
    project.mkdir()
    (bindir / "simdiff").write_text("import sys\nfrom simdiff.cli import main\nsys.exit(main())\n")
    (project / "mysim.py").write_text("def f(x):\n    return float(x[0] ** 2 * x[1])\n")
    env = {k: v for k, v in os.environ.items() if k not in ("SIMDIFF_DISABLE_PLUGINS", "PYTHONPATH")}
    run = subprocess.run([sys.executable, str(bindir / "simdiff"), "gradient", "python", "--set",
                          "function=mysim:f", "--at", "2,3", "--jobs", "2", "--json"],
                         capture_output=True, text=True, env=env, cwd=project, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    np.testing.assert_allclose(json.loads(run.stdout)["gradient"], [12.0, 4.0], rtol=1e-8)


def test_input_names_holding_commas_and_spaces_mujoco_paths(tmp_path):
    pytest.importorskip("mujoco")
    (tmp_path / "cart.xml").write_text("""<mujoco><option timestep="0.01"/><worldbody><body>
        <joint name="s" type="slide" axis="1 0 0"/><geom type="box" size=".1 .1 .1" mass="2"/>
        </body></worldbody><actuator><motor joint="s"/></actuator></mujoco>""")
    inputs = ["model.body_mass[1]", "data.ctrl[0]", "model.geom_friction[0,0]"]
    run = simdiff("jacobian", "mujoco", "--set", "path=cart.xml", "--set", "inputs=" + json.dumps(inputs),
                  "--set", 'outputs=["data.qpos[0]"]', "--set", "steps=20", "--json",
                  "--at", "model.body_mass[1]=3,data.ctrl[0]=1.5,model.geom_friction[0, 0]=0.5", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["at"] == {"model.body_mass[1]": 3.0, "data.ctrl[0]": 1.5, "model.geom_friction[0,0]": 0.5}
    c = 0.01 ** 2 * 20 * 21 / 2  # x_N = (u/m) h^2 N(N+1)/2; friction plays no part in free sliding
    np.testing.assert_allclose(out["jacobian"], [[-1.5 / 9 * c, c / 3, 0.0]], rtol=1e-7, atol=1e-12)


def test_ctrl_c_stops_the_legacy_programs_that_worker_threads_wait_on(tmp_path):
    """Ctrl-C while --jobs 4 threads wait on running programs: simdiff exits 130 and the
    programs (in sessions of their own, out of reach of the terminal's SIGINT) are stopped."""
    import signal
    import time

    pids, first = tmp_path / "pids", tmp_path / "first"
    script = (f"echo $$ >> {pids}; if [ -e {first} ]; then sleep 300; else touch {first}; fi; echo 1")
    env = {k: v for k, v in os.environ.items() if k != "SIMDIFF_DISABLE_PLUGINS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "simdiff", "jacobian", "subprocess", "--set",
         "command=" + json.dumps(["bash", "-c", script]), "--set", 'inputs=["a", "b"]',
         "--at", "a=1,b=2", "--jobs", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for _ in range(600):  # until two of the sleeping runs have started (liveness, not timing)
            if pids.exists() and len(pids.read_text().split()) >= 3:
                break
            time.sleep(0.05)
        running = [int(p) for p in pids.read_text().split()[1:]]
        assert len(running) >= 2, "the parallel runs did not start"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
        assert "Traceback" not in proc.stderr.read()
        for _ in range(100):
            if not any(_running(p) for p in running):
                break
            time.sleep(0.05)
        assert [p for p in running if _running(p)] == [], "programs outlived simdiff"
    finally:
        proc.kill()
        for p in pids.read_text().split() if pids.exists() else []:
            if _running(int(p)):
                os.killpg(int(p), signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in open(f"/proc/{pid}/status").read()
    except FileNotFoundError:
        return False
