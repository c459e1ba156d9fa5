"""The ``mujoco`` adapter against the closed forms of MuJoCo's default integrator.

MuJoCo's Euler integrator is semi-implicit: v_{k+1} = v_k + h·a, q_{k+1} = q_k + h·v_{k+1}.
From rest-or-not with constant acceleration a, after N steps

    q_N = q0 + N·h·v0 + a·h²·N(N+1)/2,      v_N = v0 + N·h·a,

with a = g (signed: gravity[2] = -9.81 pulls down) for a free body, a = u/m for a motor.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import simdiff as sd

pytest.importorskip("mujoco")

H = 0.01
BALL = f"""
<mujoco>
  <option timestep="{H}"/>
  <worldbody>
    <body name="ball" pos="0 0 1"><freejoint/><geom type="sphere" size="0.1" mass="2"/></body>
  </worldbody>
</mujoco>
"""
CART = f"""
<mujoco>
  <option timestep="{H}"/>
  <worldbody>
    <body name="cart">
      <joint name="slider" type="slide" axis="1 0 0"/>
      <geom type="box" size=".1 .1 .1" mass="2" friction="0.7 0.01 0.001"/>
    </body>
  </worldbody>
  <actuator><motor joint="slider" gear="1"/></actuator>
  <sensor><jointpos joint="slider"/></sensor>
</mujoco>
"""
FALL_INPUTS = ["data.qpos[2]", "data.qvel[2]", "model.opt.gravity[2]", "model.body_mass[1]"]


def fall(z0, v0, g, N):
    return np.array([z0 + N * H * v0 + g * H * H * N * (N + 1) / 2, v0 + N * H * g])


@pytest.fixture
def ball():
    return sd.load("mujoco", xml=BALL, inputs=FALL_INPUTS, outputs=["data.qpos[2]", "data.qvel[2]"], steps=50)


def test_free_fall_matches_semi_implicit_euler(ball):
    x = np.array([1.0, 2.0, -9.81, 2.0])
    np.testing.assert_allclose(ball(x), fall(1.0, 2.0, -9.81, 50), rtol=1e-13)
    J = sd.jacobian(ball, x)
    N = 50
    exact = np.array([[1.0, N * H, H * H * N * (N + 1) / 2, 0.0],
                      [0.0, 1.0, N * H, 0.0]])
    np.testing.assert_allclose(J, exact, rtol=1e-7, atol=1e-8)  # mass does not change a fall


def test_motor_on_a_slider_control_mass_and_a_sensor():
    """x_N = (u/m)·h²·N(N+1)/2; the jointpos sensor is computed before the last integration,
    so it reads x_{N-1}; body_mass changes go through mj_setConst."""
    N, m, u = 20, 3.0, 1.5
    sim = sd.load("mujoco", xml=CART, inputs=["model.body_mass[1]", "data.ctrl[0]"],
                  outputs=["data.qpos[0]", "data.sensordata[0]", "data.qvel[0]"], steps=N)
    c, c1 = H * H * N * (N + 1) / 2, H * H * (N - 1) * N / 2
    np.testing.assert_allclose(sim([m, u]), [u / m * c, u / m * c1, u / m * N * H], rtol=1e-12)
    J = sd.jacobian(sim, [m, u])
    exact = np.array([[-u / m ** 2 * c, c / m], [-u / m ** 2 * c1, c1 / m], [-u / m ** 2 * N * H, N * H / m]])
    np.testing.assert_allclose(J, exact, rtol=1e-7)


def test_every_evaluation_starts_from_the_reset_state(ball):
    x1, x2 = np.array([1.0, 2.0, -9.81, 2.0]), np.array([5.0, -1.0, -3.0, 1.0])
    first = ball(x1)
    ball(x2)
    assert ball(x1).tolist() == first.tolist()


def test_two_index_paths_and_scalar_fields():
    sim = sd.load("mujoco", xml=CART, inputs=["model.geom_friction[0,0]", "model.opt.timestep"],
                  outputs=["model.geom_friction[0, 0]", "model.opt.timestep", "data.time"], steps=7)
    np.testing.assert_allclose(sim([0.3, 0.002]), [0.3, 0.002, 7 * 0.002], rtol=1e-12)


def cost_height_squared(model, data):
    return data.qpos[2] ** 2


def test_cost_callable(ball):
    sim = sd.load("mujoco", xml=BALL, inputs=FALL_INPUTS, cost=cost_height_squared, steps=50)
    x = np.array([1.0, 2.0, -9.81, 2.0])
    z = fall(1.0, 2.0, -9.81, 50)[0]
    assert sim(x) == pytest.approx(z * z, rel=1e-13)
    g = sd.gradient(sim, x)
    np.testing.assert_allclose(g[:3], 2 * z * np.array([1.0, 50 * H, H * H * 50 * 51 / 2]), rtol=1e-7)


def test_model_from_a_path_and_pickling_leaves_the_compiled_model_behind(ball, tmp_path):
    path = tmp_path / "ball.xml"
    path.write_text(BALL)
    sim = sd.load("mujoco", path=str(path), inputs=FALL_INPUTS, outputs=["data.qpos[2]"], steps=50)
    x = np.array([1.0, 2.0, -9.81, 2.0])
    assert sim(x)[0] == ball(x)[0]
    state = sim.__getstate__()
    assert "_local" not in state and not any("MjModel" in type(v).__name__ for v in state.values())
    clone = pickle.loads(pickle.dumps(sim))
    assert clone(x).tolist() == sim(x).tolist()


def test_a_relative_model_path_still_loads_after_a_change_of_directory(ball, tmp_path, monkeypatch):
    """A worker process may start elsewhere: the path is made absolute at configuration."""
    (tmp_path / "ball.xml").write_text(BALL)
    monkeypatch.chdir(tmp_path)
    sim = sd.load("mujoco", path="ball.xml", inputs=FALL_INPUTS, outputs=["data.qpos[2]"], steps=50)
    monkeypatch.chdir("/")
    x = np.array([1.0, 2.0, -9.81, 2.0])
    assert pickle.loads(pickle.dumps(sim))(x).tolist() == ball(x)[:1].tolist()


@pytest.mark.parametrize("cfg, match", [
    ({"inputs": ["data.qpos[99]"]}, "does not name one number"),
    ({"inputs": ["model.no_such_field[0]"]}, "does not name one number"),
    ({"inputs": ["qpos[0]"]}, "not a path"),
    ({"inputs": ["data.qpos"]}, "does not name one number"),  # 7 numbers, not one
    ({"outputs": ["data.qpos[1]"], "cost": cost_height_squared}, "exactly one of outputs"),
    ({"xml": "<mujoco><worldbody><bogus/></worldbody></mujoco>"}, "could not compile"),
    ({"path": "ball.xml"}, "exactly one of xml"),
    ({"steps": "abc"}, "steps must be an integer >= 0; got 'abc'"),
    ({"steps": 2.5}, "steps must be an integer >= 0; got 2.5"),
    ({"keyframe": "a"}, "keyframe must be an integer >= 0; got 'a'"),
    ({"nthread": 0}, "nthread must be an integer >= 1; got 0"),
    ({"inputs": ["data.qpos[2]", "data.qpos[ 2 ]"]}, r"inputs must name distinct numbers; \['data.qpos\[ 2 \]'\]"),
])
def test_bad_configuration_is_refused(cfg, match):
    base = {"xml": BALL, "inputs": ["data.qpos[2]"], "outputs": ["data.qpos[2]"]}
    if "cost" in cfg:
        base.pop("outputs")
    with pytest.raises(sd.ConfigError, match=match):
        sd.load("mujoco", **{**base, **cfg})


def test_parallel_workers_compile_their_own_model(ball):
    x = [1.0, 2.0, -9.81, 2.0]
    np.testing.assert_array_equal(sd.jacobian(ball, x, n_jobs=2), sd.jacobian(ball, x))


def test_vectorized_batches_through_rollout_equal_the_serial_steps():
    cfg = {"xml": CART, "inputs": ["model.body_mass[1]", "data.ctrl[0]", "data.qvel[0]"],
           "outputs": ["data.qpos[0]", "data.sensordata[0]", "data.qvel[0]", "data.time"], "steps": 20}
    serial, batched = sd.load("mujoco", **cfg), sd.load("mujoco", vectorized=True, nthread=2, **cfg)
    X = np.array([[3.0, 1.5, 0.0], [2.0, -1.0, 0.3], [5.0, 0.2, -0.1]])
    rows = batched.evaluate(X)
    np.testing.assert_allclose(rows, [serial(x) for x in X], rtol=1e-14, atol=1e-15)
    N, m, u = 20, 3.0, 1.5
    c = H * H * N * (N + 1) / 2
    J = sd.jacobian(batched, X[0])
    np.testing.assert_allclose(J[0], [-u / m ** 2 * c, c / m, N * H], rtol=1e-7)


@pytest.mark.parametrize("cfg, bad", [
    ({"cost": cost_height_squared}, "cost="),
    ({"outputs": ["data.xpos[1,2]"]}, "data.xpos[1,2]"),
    ({"inputs": ["data.qfrc_applied[0]"]}, "data.qfrc_applied[0]"),
])
def test_vectorized_refuses_what_rollout_does_not_carry(cfg, bad):
    base = {"xml": BALL, "inputs": ["data.qpos[2]"], "outputs": ["data.qpos[2]"], "vectorized": True}
    if "cost" in cfg:
        base.pop("outputs")
    with pytest.raises(sd.ConfigError, match="mujoco.rollout") as err:
        sd.load("mujoco", **{**base, **cfg})
    assert bad in str(err.value)


def test_the_mujoco_rollout_example_runs_and_matches_the_closed_form():
    import re
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "mujoco_rollout.py"
    run = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert float(re.search(r"max rel. difference (\S+)", run.stdout).group(1)) < 1e-7
    assert float(re.search(r"rollout call: max \|difference\| (\S+)", run.stdout).group(1)) < 1e-9
