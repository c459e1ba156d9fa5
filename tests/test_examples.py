"""Every script in examples/ runs to its end, every run file in examples/ runs, the plugin
template's own tests pass, and an example whose optional extra is missing says so in one line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import simdiff as sd

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
RUN_FILES = sorted(EXAMPLES.glob("*.toml"))
#: run files whose task needs a library function that may not be in this tree yet
NEEDS = {"noise": "noise_level", "minimize": "minimize", "least-squares": "least_squares"}


def _env(extra_path: list[str] | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SIMDIFF_DISABLE_PLUGINS"}
    paths = [str(p) for p in (extra_path or [])] + [str(REPO)] + (
        [env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["MPLBACKEND"] = "Agg"
    return env


def _run(args: list[str], cwd: Path, extra_path: list[str] | None = None, timeout: int = 300):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=_env(extra_path), capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_there_are_examples_and_a_run_file_per_task():
    from simdiff.cli_options import TASK_OPTIONS

    assert {"quickstart.py", "mujoco_rollout.py", "check_backward_pass.py"} <= {p.name for p in SCRIPTS}
    assert {p.stem for p in RUN_FILES} >= set(TASK_OPTIONS)


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_every_example_script_runs_to_its_end(script, tmp_path):
    run = _run([str(script)], cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert list(tmp_path.iterdir()) == [], "an example left files in the directory it ran in"


@pytest.mark.parametrize("study", RUN_FILES, ids=[p.name for p in RUN_FILES])
def test_every_run_file_runs(study, tmp_path, monkeypatch, capsys):
    """In-process (simdiff.cli.main), from another directory: the run file finds its models."""
    import json

    from simdiff.cli import main

    need = NEEDS.get(study.stem)
    if need and not hasattr(sd, need):
        pytest.skip(f"simdiff.{need} is not in this tree yet")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the run file adds its directory
    code = main(["run", str(study), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    assert doc["task"] == study.stem and doc["file"] == str(study)


def test_the_quickstart_does_what_the_readme_says():
    """The README: the first command prints the projectile Jacobian at speed=20, angle=0.6,
    drag=0.05 with an error per entry and the number of runs; quickstart.py does the same."""
    script = _run([str(EXAMPLES / "quickstart.py")], cwd=REPO)
    command = _run(["-m", "simdiff", "jacobian", "projectile", "--at", "speed=20,angle=0.6,drag=0.05"], cwd=REPO)
    assert script.returncode == 0 and command.returncode == 0, script.stderr + command.stderr
    import re

    runs = re.search(r"Jacobian of projectile at speed=20, angle=0.6, drag=0.05 \((\d+) runs\)", script.stdout)
    evals = re.search(r"method central, (\d+) evaluations", command.stdout)
    assert runs and evals and runs.group(1) == evals.group(1), script.stdout + command.stdout
    first = next(line for line in command.stdout.splitlines() if line.startswith("range"))
    value = first.split()[1]  # d range / d speed, 10 significant digits
    row = next(line for line in script.stdout.splitlines() if line.startswith("range"))
    assert float(row.split()[1]) == pytest.approx(float(value), rel=1e-7)
    assert "complex" in script.stdout


BLOCK = textwrap.dedent("""
    import sys
    BLOCKED = set(filter(None, __import__("os").environ.get("BLOCK_MODULES", "").split(",")))
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, _Block())
""")


def test_mujoco_example_without_mujoco_is_one_line(tmp_path):
    """mujoco made unimportable by a sitecustomize (as on an install without the extra)."""
    (tmp_path / "sitecustomize.py").write_text(BLOCK)
    env_path = [tmp_path]
    proc = subprocess.run([sys.executable, str(EXAMPLES / "mujoco_rollout.py")], cwd=tmp_path,
                          env={**_env(env_path), "BLOCK_MODULES": "mujoco"}, capture_output=True,
                          text=True, timeout=120, check=False)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 0 and len(lines) == 1, proc.stdout + proc.stderr  # skipped, cleanly
    assert 'pip install "simdiff[mujoco]"' in lines[0] and "Skipped" in lines[0]


def test_check_example_without_torch_still_runs_its_numpy_part(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCK)
    proc = subprocess.run([sys.executable, str(EXAMPLES / "check_backward_pass.py")], cwd=tmp_path,
                          env={**_env([tmp_path]), "BLOCK_MODULES": "torch"}, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert 'pip install "simdiff[torch]"' in proc.stdout + proc.stderr


def test_the_plugin_template_works_from_the_command_line(tmp_path):
    """The template as pip would leave it (its package on the path, a dist-info declaring the
    entry point); its own test suite runs in tests/test_host.py."""
    template = EXAMPLES / "plugin-template"
    info = tmp_path / "simdiff_plugin_template-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: simdiff-plugin-template\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[simdiff]\ntemplate = simdiff_template.plugin\n")
    paths = [tmp_path, template]
    shown = _run(["-m", "simdiff", "adapters", "rosenbrock"], cwd=tmp_path, extra_path=paths)
    assert shown.returncode == 0, shown.stderr
    assert "plugin template" in shown.stdout and "inputs: x, y" in shown.stdout
    assert "= 100.0" in shown.stdout and "steepness" in shown.stdout
    grad = _run(["-m", "simdiff", "gradient", "rosenbrock", "--at", "x=-1.2,y=1", "--set", "b=100", "--json"],
                cwd=tmp_path, extra_path=paths)
    assert grad.returncode == 0, grad.stderr
    import json

    g = json.loads(grad.stdout)["gradient"]
    assert g == pytest.approx([-215.6, -88.0], rel=1e-7)
    bad = _run(["-m", "simdiff", "gradient", "rosenbrock", "--at", "x=20,y=1", "--set", "limit=10"],
               cwd=tmp_path, extra_path=paths)
    assert bad.returncode == 1 and "|x| > limit 10" in bad.stderr and "Traceback" not in bad.stderr


def test_the_readme_tour_runs_and_its_sweep_tabulates():
    """The README's tour, as written, then the step_sweep line it describes on the same f, x."""
    import re

    import numpy as np

    text = (REPO / "README.md").read_text()
    tour = text[text.index("## A tour"):]
    code = re.search(r"```python\n(.*?)```", tour, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README tour", "exec"), scope)  # noqa: S102 - the README's own code
    sweep = sd.step_sweep(scope["f"], scope["x"])
    table = str(sweep)
    assert "x[0]" in table and "x[2]" in table and "array(" not in table
    assert np.isfinite([r.best_step for r in sweep]).all()
