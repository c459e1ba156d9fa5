"""Differentiate a whole MuJoCo rollout with respect to model parameters and the initial state.

MuJoCo's own ``mjd_transitionFD`` differentiates one step; the ``mujoco`` adapter differentiates
what a rollout of many steps ends in. Inputs and outputs are paths into the model and the data
(``model.dof_damping[0]``, ``data.qpos[0]``); every evaluation starts from the reset state, so
the finite differences see a deterministic function. ``vectorized=True`` hands the whole batch
of perturbed points to one ``mujoco.rollout`` call, run in threads.

First a check against a closed form (a free fall under MuJoCo's semi-implicit Euler,
z_N = z0 + N·h·v0 + g·h²·N(N+1)/2), then a damped pendulum, where no closed form exists.

Run:  python examples/mujoco_rollout.py      (needs `pip install "simdiff[mujoco]"`; ~1 s)
Without MuJoCo it says so in one line and exits with status 0 (skipped, as the other examples
whose optional extra is missing).
"""

import sys

import numpy as np

import simdiff as sd

try:
    import mujoco  # noqa: F401 - only to say in one line that the extra is missing
except ImportError:
    print('MuJoCo is not installed: this example needs it (pip install "simdiff[mujoco]"). Skipped.')
    sys.exit(0)

H, N = 0.002, 500  # 1 s of simulated time

BALL = f"""
<mujoco>
  <option timestep="{H}"/>
  <worldbody>
    <body pos="0 0 1"><freejoint/><geom type="sphere" size="0.05" mass="1"/></body>
  </worldbody>
</mujoco>
"""

PENDULUM = f"""
<mujoco>
  <option timestep="{H}"/>
  <worldbody>
    <body name="bob" pos="0 0 0">
      <joint name="hinge" type="hinge" axis="0 1 0" damping="0.05"/>
      <geom type="capsule" fromto="0 0 0 0 0 -0.5" size="0.02" mass="0.1"/>
      <geom type="sphere" pos="0 0 -0.5" size="0.05" mass="1"/>
    </body>
  </worldbody>
  <actuator><motor joint="hinge" gear="1"/></actuator>
  <sensor><jointpos joint="hinge"/></sensor>
</mujoco>
"""


def free_fall() -> None:
    sim = sd.load("mujoco", xml=BALL, steps=N,
                  inputs=["data.qpos[2]", "data.qvel[2]", "model.opt.gravity[2]"],
                  outputs=["data.qpos[2]"])
    g = sd.gradient(sim, [1.0, 3.0, -9.81])
    exact = np.array([1.0, N * H, H * H * N * (N + 1) / 2])
    print("free fall, d z_N / d(z0, v0, g):", np.array2string(g, precision=10))
    print("  closed form (semi-implicit Euler):", np.array2string(exact, precision=10),
          f" max rel. difference {np.max(np.abs(g / exact - 1)):.1e}\n")


def pendulum() -> None:
    cfg = {"xml": PENDULUM, "steps": N,
           "inputs": ["data.qpos[0]", "model.dof_damping[0]", "model.body_mass[1]", "data.ctrl[0]"],
           "outputs": ["data.qpos[0]", "data.qvel[0]"]}
    x = np.array([0.8, 0.05, 1.1, 0.0])  # initial angle [rad], damping, mass [kg], torque [N m]
    serial = sd.load("mujoco", **cfg)
    J, info = sd.jacobian(serial, x, method="five-point", full_output=True)
    batched = sd.load("mujoco", vectorized=True, nthread=2, **cfg)
    Jb = sd.jacobian(batched, x, method="five-point")

    print(f"damped pendulum after {N} steps ({N * H:g} s), five-point differences, "
          f"{info.nfev} rollouts:")
    print(f"{'':14}" + "".join(f"{'d/d ' + n:>27}" for n in serial.inputs))
    for name, row, err in zip(serial.outputs, J, info.error):
        print(f"{name:14}" + "".join(f"{v:>19.8g} ± {e:.0e}" for v, e in zip(row, err)))
    print(f"  the same batch through one mujoco.rollout call: max |difference| "
          f"{np.max(np.abs(J - Jb)):.1e}")


if __name__ == "__main__":
    free_fall()
    pendulum()
