"""Run files: ``simdiff run STUDY.toml`` gives what the equivalent command gives; every mistake
in the file is named (with a suggestion), exit status 2, one line."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from simdiff.cli import main
from simdiff.runfile import load_study

G = 9.81


def write(tmp_path, text, name="study.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


GRADIENT = """
    adapter = "projectile"
    task = "gradient"
    [config]
    g = 9.81
    [at]
    speed = 20
    angle = 0.6
    drag = 0.0
    [options]
    output = "range"
    step = "adaptive"
    bounds = { drag = [0.0, 1.0] }
"""


def test_a_run_file_gives_what_the_command_gives(tmp_path, capsys):
    path = write(tmp_path, GRADIENT)
    code, out, err = run(capsys, "run", str(path), "--json")
    assert code == 0, err
    doc = json.loads(out)
    v, th = 20.0, 0.6
    np.testing.assert_allclose(doc["gradient"][:2], [2 * v * np.sin(2 * th) / G, 2 * v * v * np.cos(2 * th) / G],
                               rtol=1e-9)
    assert doc["file"] == str(path) and doc["task"] == "gradient" and doc["config"] == {"g": 9.81}
    code, out2, err = run(capsys, "gradient", "projectile", "--at", "speed=20,angle=0.6,drag=0", "--set", "g=9.81",
                          "--output", "range", "--step", "adaptive", "--bounds", "drag=0:1", "--json")
    assert json.loads(out2)["gradient"] == doc["gradient"]
    code, text, _ = run(capsys, "run", str(path))
    assert code == 0 and text.startswith("gradient of projectile at speed=20.0") and "±" in text


def test_point_as_a_list_and_unnamed_inputs(tmp_path, capsys):
    path = write(tmp_path, """
        adapter = "python"
        task = "jacobian"
        at = [2.0, 3.0]
        [config]
        function = "numpy:prod"
    """)
    code, out, err = run(capsys, "run", str(path), "--json")
    assert code == 0, err
    np.testing.assert_allclose(json.loads(out)["jacobian"], [[3.0, 2.0]], rtol=1e-8)


def test_relative_paths_and_modules_come_from_the_run_files_directory(tmp_path, capsys, monkeypatch):
    sub = tmp_path / "study"
    sub.mkdir()
    (sub / "rf_model.py").write_text("import numpy as np\n"
                                     "def f(x):\n    return float(x[0] ** 3 + x[1])\n"
                                     "def g(x):\n    return np.array([3 * x[0] ** 2, 1.0])\n")
    path = write(sub, """
        adapter = "python"
        task = "check"
        [config]
        function = "rf_model:f"
        [at]
        x0 = 2.0
        x1 = 1.0
        [options]
        grad = "rf_model.py:g"
        cache = "cache"
    """)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "run", "study/study.toml", "--json")
    assert code == 0, err
    assert json.loads(out)["passed"] is True
    assert (sub / "cache").is_dir()


@pytest.mark.parametrize("text, says", [
    ('adapter = "projectile"\ntask = "gradient"\n[confg]\ng = 1\n[at]\nspeed = 1\n',
     ["unknown table 'confg'", "did you mean 'config'"]),
    ('adapter = "projectile"\ntask = "gradient"\nmethd = "central"\n[at]\nspeed = 1\n',
     ["unknown key 'methd'"]),
    ('adapter = "projectile"\ntask = "gradient"\n[at]\nspeed = 20\nangle = 0.6\ndrag = 0\n[options]\nstepp = 1\n',
     ["unknown option 'stepp'", "did you mean 'step'"]),
    ('adapter = "projectile"\ntask = "gradient"\n[at]\nspeed = 20\nangle = 0.6\ndrag = 0\n[options]\nmaxfev = 1\n',
     ["unknown option 'maxfev'", "an option of minimize"]),
    ('adapter = "projectile"\ntask = "gradiant"\n[at]\nspeed = 1\n', ["unknown task 'gradiant'", "did you mean 'gradient'"]),
    ('task = "gradient"\n[at]\nspeed = 1\n', ["missing 'adapter'"]),
    ('adapter = "projectile"\ntask = "gradient"\n', ["missing the table [at]"]),
    ('adapter = "projectile"\ntask = "gradient\n', ["not valid TOML"]),
    ('adapter = "projectile"\ntask = "jacobian"\n[at]\nspeed = 20\nangle = 0.6\ndrag = "none"\n', ["drag", "not a number"]),
    ('adapter = "projectile"\ntask = "jacobian"\n[at]\nspeed = 20\nangle = 0.6\ndrag = nan\n', ["drag", "finite"]),
    ('adapter = "projectile"\ntask = "jacobian"\n[at]\nspeed = 20\nangle = 0.6\nwind = 0\n', ["unknown input 'wind'"]),
    ('adapter = "projectile"\ntask = "jacobian"\n[config]\ngravity = 1\n[at]\nspeed = 20\nangle = 0.6\ndrag = 0\n',
     ["no configuration key 'gravity'"]),
    ('adapter = "projectile"\ntask = "jacobian"\n[at]\nspeed = 20\nangle = 0.6\ndrag = 0\n[options]\nstep = -1\n',
     ["--step", "positive"]),
    ('adapter = "projectile"\ntask = "jacobian"\n[at]\nspeed = 20\nangle = 0.6\ndrag = 0\n[options]\nbounds = { speed = [30, 40] }\n',
     ["outside"]),
])
def test_every_mistake_is_named_with_exit_status_2(tmp_path, capsys, text, says):
    path = write(tmp_path, text)
    code, _, err = run(capsys, "run", str(path))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simdiff: error: "), err
    for s in says:
        assert s in lines[0], lines[0]


def test_a_missing_file_and_the_study_object(tmp_path, capsys):
    code, _, err = run(capsys, "run", str(tmp_path / "nope.toml"))
    assert code == 2 and "does not exist" in err
    study = load_study(write(tmp_path, GRADIENT))
    assert study.adapter == "projectile" and study.options["step"] == "adaptive"


def test_sweep_run_file_with_a_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = write(tmp_path, """
        adapter = "projectile"
        task = "sweep"
        plot = "v.png"
        [at]
        speed = 20
        angle = 0.6
        drag = 0.0
        [options]
        output = "range"
        input = "speed"
        steps = 12
    """)
    code, out, err = run(capsys, "run", str(path))
    assert code == 0, err
    assert (tmp_path / "v.png").stat().st_size > 1000 and "figure saved to" in out
    code, out, err = run(capsys, "run", str(path), "--plot", str(tmp_path / "w.png"), "--json")
    assert code == 0 and json.loads(out)["plot"] == str(tmp_path / "w.png")


def test_a_plot_without_matplotlib_is_one_line(tmp_path, capsys, monkeypatch):
    import builtins

    real = builtins.__import__

    def blocked(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", blocked)
    path = write(tmp_path, 'adapter = "projectile"\ntask = "sweep"\nplot = "v.png"\n'
                           '[at]\nspeed = 20\nangle = 0.6\ndrag = 0\n[options]\noutput = "range"\n')
    code, _, err = run(capsys, "run", str(path))
    assert code == 2 and 'pip install "simdiff[plot]"' in err and len(err.strip().splitlines()) == 1
