"""The plugin host: entry points, SIMDIFF_DISABLE_PLUGINS, isolation, duplicates, config checks.

Third-party plugins are "installed" the way pip leaves them: a package and a *.dist-info
directory with entry_points.txt, in a temp dir put on sys.path; then the lazy plugin manager is
reset so that it re-reads the entry points.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import simdiff as sd
from simdiff import host

REPO = Path(__file__).resolve().parents[1]
BUILTIN = {"python", "subprocess", "projectile", "pendulum", "mujoco"}


@pytest.fixture(autouse=True)
def fresh_host(monkeypatch):
    """A host rebuilt for each test, without any disable list; third-party modules forgotten."""
    monkeypatch.delenv(host.DISABLE_ENV, raising=False)
    before = set(sys.modules)
    host.reset()
    yield
    host.reset()
    for name in set(sys.modules) - before:
        if name.startswith(("thirdparty", "broken", "twin", "sneaky", "simdiff_template")):
            del sys.modules[name]


def fake_install(root: Path, dist: str, version: str, entry_points: dict[str, str],
                 files: dict[str, str], monkeypatch) -> None:
    """Write ``files`` and a dist-info declaring ``entry_points`` (group simdiff) under root."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(
        "[simdiff]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    )
    monkeypatch.syspath_prepend(str(root))


CUBIC = '''
    import simdiff as sd

    class Cubic(sd.Simulator):
        """c * x0**3 + x1, a third-party adapter."""
        name = "cubic"
        inputs = ("u", "v")
        def __init__(self, c=1.0):
            self.c = c
        def evaluate(self, x):
            return self.c * x[0] ** 3 + x[1]

    @sd.hookimpl
    def simdiff_adapters():
        return [Cubic]
'''


def adapter_module(adapter: str, doc: str = "An adapter.") -> str:
    return f'''
    import simdiff as sd

    class A(sd.Simulator):
        """{doc}"""
        name = "{adapter}"
        def evaluate(self, x):
            return float(x[0])

    @sd.hookimpl
    def simdiff_adapters():
        return [A]
    '''


def test_builtin_adapters_come_through_the_entry_points():
    infos = {a.name: a for a in sd.adapter_info()}
    assert BUILTIN <= set(infos)
    assert {infos[n].plugin for n in BUILTIN} == {"python", "subprocess", "physics", "mujoco"}
    assert infos["projectile"].version == sd.__version__
    assert all(sd.available()[n] for n in BUILTIN), "every adapter has a one-line description"
    names = {n for n, _ in host.get_plugin_manager().list_name_plugin()}
    assert {"python", "subprocess", "physics", "mujoco"} <= names


def test_a_third_party_plugin_is_found_loaded_and_differentiated(tmp_path, monkeypatch):
    fake_install(tmp_path, "thirdparty-sim", "1.2.3", {"thirdparty": "thirdparty_pkg.plugin"},
                 {"thirdparty_pkg/__init__.py": "", "thirdparty_pkg/plugin.py": CUBIC}, monkeypatch)
    info = {a.name: a for a in sd.adapter_info()}["cubic"]
    assert (info.plugin, info.version) == ("thirdparty", "1.2.3")
    assert sd.available()["cubic"] == "c * x0**3 + x1, a third-party adapter."
    sim = sd.load("cubic", c=2.0)
    assert sim(np.array([3.0, 1.0])) == 55.0
    np.testing.assert_allclose(sd.gradient(sim, [3.0, 1.0]), [2.0 * 3 * 9.0, 1.0], rtol=1e-8)
    assert BUILTIN <= set(sd.available())


def test_disable_list_blocks_plugins_before_they_are_imported(tmp_path, monkeypatch):
    marker = tmp_path / "IMPORTED"
    fake_install(tmp_path, "thirdparty-sim", "1.0", {"thirdparty": "thirdparty_spy"},
                 {"thirdparty_spy.py": f"open({str(marker)!r}, 'w').close()\n" + textwrap.dedent(CUBIC)}, monkeypatch)
    monkeypatch.setenv(host.DISABLE_ENV, " thirdparty , physics")
    names = set(sd.available())
    assert "cubic" not in names and "projectile" not in names and "pendulum" not in names
    assert {"python", "subprocess"} <= names
    assert not marker.exists(), "a blocked plugin's module must not even be imported"
    with pytest.raises(sd.UnknownAdapterError, match="blocked by SIMDIFF_DISABLE_PLUGINS: physics, thirdparty"):
        sd.load("projectile")
    monkeypatch.delenv(host.DISABLE_ENV)
    host.reset()
    assert "cubic" in sd.available() and marker.exists()


def test_a_broken_plugin_is_skipped_with_a_warning_and_the_others_load(tmp_path, monkeypatch):
    fake_install(
        tmp_path, "two-plugins", "1.0",
        {"brokenplug": "broken_pkg", "thirdparty": "thirdparty_ok"},
        {"broken_pkg/__init__.py": "import numpy\nraise ZeroDivisionError('bad plugin init')\n",
         "thirdparty_ok.py": CUBIC}, monkeypatch)
    with pytest.warns(host.PluginLoadWarning, match=r"'brokenplug'.*ZeroDivisionError: bad plugin init"):
        names = set(sd.available())
    assert {"cubic"} | BUILTIN <= names
    with pytest.raises(sd.UnknownAdapterError, match="failed to load: brokenplug"):
        sd.load("brokenplug-adapter")


@pytest.mark.parametrize("tag, hook, reported", [
    ("raises", "def simdiff_adapters():\n    raise RuntimeError('nope')\n",
     "'raises' is skipped: simdiff_adapters() raised RuntimeError: nope"),
    ("badclass", "def simdiff_adapters():\n    return [dict]\n",
     "'badclass' returned <class 'dict'>, which is not a subclass of simdiff.Simulator"),
    ("badsig", "def simdiff_adapters(config):\n    return []\n",
     "'badsig' is skipped: its hooks do not match the specification"),
    ("badname", "def simdiff_adapter():\n    return []\n",
     "'badname' implements 'simdiff_adapter', which is not a simdiff hook"),
])
def test_a_broken_hook_is_reported_and_isolated(tmp_path, monkeypatch, tag, hook, reported):
    fake_install(tmp_path, "bad-hooks", "1.0", {tag: f"broken_{tag}"},
                 {f"broken_{tag}.py": "import simdiff as sd\n@sd.hookimpl\n" + hook}, monkeypatch)
    with pytest.warns(host.PluginLoadWarning) as caught:
        names = set(sd.available())
    assert reported in " ".join(str(w.message) for w in caught)
    assert BUILTIN <= names


def test_two_adapters_with_one_name_are_skipped_with_a_warning_naming_both(tmp_path, monkeypatch):
    fake_install(tmp_path, "twins", "1.0", {"twin_a": "twin_a", "twin_b": "twin_b"},
                 {"twin_a.py": adapter_module("twin"), "twin_b.py": adapter_module("twin")}, monkeypatch)
    with pytest.warns(host.PluginLoadWarning, match="'twin' is registered twice") as caught:
        names = set(sd.available())
    msg = " ".join(str(w.message) for w in caught)
    assert "plugin 'twin_a'" in msg and "plugin 'twin_b'" in msg
    assert "twin" not in names and BUILTIN <= names  # every other adapter still works
    assert sd.load("projectile") is not None
    with pytest.raises(sd.UnknownAdapterError, match="registered by both plugins"):
        sd.load("twin")
    monkeypatch.setenv(host.DISABLE_ENV, "twin_b")  # the way out the message names
    host.reset()
    assert sd.load("twin")(np.array([4.0])) == 4.0


def test_two_distributions_with_one_plugin_name_are_named_both(tmp_path, monkeypatch):
    fake_install(tmp_path / "one", "first-dist", "1.0", {"thirdparty": "twin_a"},
                 {"twin_a.py": adapter_module("twin_a")}, monkeypatch)
    fake_install(tmp_path / "two", "second-dist", "1.0", {"thirdparty": "twin_b"},
                 {"twin_b.py": adapter_module("twin_b")}, monkeypatch)
    with pytest.raises(sd.PluginError, match="two plugins are both named 'thirdparty'") as err:
        sd.available()
    assert "first-dist" in str(err.value) and "second-dist" in str(err.value)
    assert "rename one's entry point" in str(err.value) and "would block both" in str(err.value)


def test_a_plugin_shadowing_a_builtin_adapter_is_skipped_and_the_builtin_kept(tmp_path, monkeypatch):
    fake_install(tmp_path, "sneaky", "1.0", {"sneaky": "sneaky_mod"},
                 {"sneaky_mod.py": adapter_module("projectile")}, monkeypatch)
    with pytest.warns(host.PluginLoadWarning, match="'projectile'") as caught:
        sim = sd.load("projectile")
    msg = " ".join(str(w.message) for w in caught)
    assert "plugin 'physics'" in msg and "plugin 'sneaky'" in msg and "skipped" in msg
    assert type(sim).__module__ == "simdiff_plugins.physics"
    assert BUILTIN <= set(sd.available())


def test_unknown_adapter_name_lists_the_known_ones():
    with pytest.raises(sd.UnknownAdapterError) as err:
        sd.load("projectil")
    msg = str(err.value)
    assert "'projectil'" in msg and "did you mean 'projectile'" in msg
    assert all(name in msg for name in BUILTIN)
    assert isinstance(err.value, LookupError) and isinstance(err.value, sd.PluginError)


def test_unknown_and_missing_configuration_keys_name_the_allowed_ones():
    with pytest.raises(sd.ConfigError) as err:
        sd.load("projectile", gravity=1.62)
    msg = str(err.value)
    assert "'gravity'" in msg and "allowed: g, height, outputs, rtol, atol" in msg
    assert isinstance(err.value, TypeError)
    with pytest.raises(sd.ConfigError, match=r"needs the configuration key\(s\) function"):
        sd.load("python")
    assert sd.load("projectile", g=1.62).g == 1.62


def test_register_plugin_in_process():
    import types

    mod = types.ModuleType("inline_plugin")
    exec(textwrap.dedent(adapter_module("inline", "Defined in a notebook.")), mod.__dict__)  # noqa: S102
    assert sd.register_plugin(mod) == "inline_plugin"
    assert sd.available()["inline"] == "Defined in a notebook."
    with pytest.raises(sd.PluginError, match="already registered"):
        sd.register_plugin(mod)


def test_the_plugin_template_installs_and_its_own_tests_pass(tmp_path, monkeypatch):
    """The template's pyproject entry point, package and tests agree (a pip install stand-in)."""
    tomllib = pytest.importorskip("tomllib", reason="Python >= 3.11 reads the template's pyproject")
    template = REPO / "examples" / "plugin-template"
    meta = tomllib.loads((template / "pyproject.toml").read_text())
    files = {f"simdiff_template/{p.name}": p.read_text() for p in (template / "simdiff_template").glob("*.py")}
    fake_install(tmp_path, meta["project"]["name"], meta["project"]["version"],
                 meta["project"]["entry-points"]["simdiff"], files, monkeypatch)
    assert sd.available()["rosenbrock"].startswith("Rosenbrock's banana function")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(template / "tests")],
                         cwd=template, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "5 passed" in run.stdout


def test_a_plugin_that_exits_on_import_or_is_listed_twice_is_skipped(tmp_path, monkeypatch):
    """sys.exit() at import (SystemExit is no Exception) and one module behind two entry-point
    names (pluggy refuses the second) are reported like any other broken plugin."""
    fake_install(tmp_path, "odd-plugins", "1.0",
                 {"brokenexit": "broken_exit", "thirdparty": "thirdparty_once", "thirdparty2": "thirdparty_once"},
                 {"broken_exit.py": "import sys\nsys.exit('needs a licence server')\n",
                  "thirdparty_once.py": CUBIC}, monkeypatch)
    with pytest.warns(host.PluginLoadWarning) as caught:
        names = set(sd.available())
    text = " ".join(str(w.message) for w in caught)
    assert "'brokenexit' is skipped: broken_exit failed to import: SystemExit: needs a licence server" in text
    assert "'thirdparty2' is skipped: thirdparty_once is already loaded as the plugin 'thirdparty'" in text
    assert {"cubic"} | BUILTIN <= names


def test_an_adapter_listed_twice_by_its_own_plugin_is_no_duplicate(tmp_path, monkeypatch):
    fake_install(tmp_path, "thirdparty-sim", "1.0", {"thirdparty": "thirdparty_twice"},
                 {"thirdparty_twice.py": CUBIC.replace("return [Cubic]", "return [Cubic, Cubic]")}, monkeypatch)
    assert sd.load("cubic", c=1.0)(np.array([2.0, 1.0])) == 9.0


def test_the_disable_list_also_takes_an_adapter_name(monkeypatch):
    """'projectile' is an adapter of the plugin 'physics': naming it leaves out that adapter and
    keeps its sibling 'pendulum'."""
    monkeypatch.setenv(host.DISABLE_ENV, "projectile")
    names = set(sd.available())
    assert "projectile" not in names and BUILTIN - {"projectile"} <= names
    with pytest.raises(sd.UnknownAdapterError, match="blocked by SIMDIFF_DISABLE_PLUGINS: projectile"):
        sd.load("projectile")
