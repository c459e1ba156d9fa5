"""Adapter ``mujoco``: a MuJoCo model rolled out for ``steps`` steps; inputs and outputs are paths.

``inputs`` name what x sets, as paths into the model or into the initial state::

    model.body_mass[1]   model.opt.gravity[2]   model.geom_friction[0,0]   model.opt.timestep
    data.qpos[0]         data.qvel[2]           data.ctrl[0]

``outputs`` are paths read after the rollout (``data.qpos[2]``, ``data.sensordata[0]``), or
``cost`` is a callable ``cost(model, data) -> float or array`` (or its import string
``"package.module:function"``), called after the rollout.

One evaluation: write the model inputs (then ``mj_setConst``, so derived constants such as
subtree masses follow), reset the data (``mj_resetData``, or ``mj_resetDataKeyframe`` with
``keyframe``), write the state inputs, ``mj_step`` ``steps`` times, read the outputs. Every
evaluation starts from the same reset state, so runs are deterministic. The compiled model is
built lazily, once per process and thread, and is never pickled.

``vectorized=True`` evaluates a whole batch in one ``mujoco.rollout`` call (a perturbed model
copy per point when model inputs vary; ``nthread`` threads), for inputs among model fields and
data.qpos/qvel/act/ctrl and outputs among data.qpos/qvel/act/time/sensordata.

MuJoCo's own ``mjd_transitionFD`` differentiates one step; this adapter differentiates whole
rollouts. With the default integrator (semi-implicit Euler, v ← v + h·a, q ← q + h·v) a free
body falls as z_N = z0 + N·h·v0 + g·h²·N(N+1)/2.
"""

from __future__ import annotations

import copy
import os
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from simdiff_plugins.python_callable import resolve_import_string

from simdiff.errors import ConfigError, SimulationError, require
from simdiff.host import hookimpl
from simdiff.simulator import Simulator

__all__ = ["MuJoCo", "StatePath", "simdiff_adapters"]

_PATH = re.compile(r"^(model|data)((?:\.[A-Za-z_]\w*)+)(?:\[\s*(-?\d+(?:\s*,\s*-?\d+)*)\s*\])?$")
_PATH_HELP = "allowed: 'model.<field>[i]', 'model.opt.<field>[i]', 'data.<field>[i]' or [i,j]"
_BAD_STATE = ("mjWARN_BADQACC", "mjWARN_BADQPOS", "mjWARN_BADQVEL")
_ROLLOUT_INPUTS = ("qpos", "qvel", "act", "ctrl")
_ROLLOUT_OUTPUTS = ("qpos", "qvel", "act", "time", "sensordata")


class StatePath:
    """A path such as ``model.geom_friction[0,1]`` that reads and writes one number."""

    def __init__(self, text: str, key: str) -> None:
        m = _PATH.match(str(text).replace(" ", ""))
        if m is None:
            raise ConfigError(f"{key}: {text!r} is not a path into the model or data; {_PATH_HELP}")
        self.text, self.root = str(text), m.group(1)
        self.attrs = m.group(2)[1:].split(".")
        self.index = tuple(int(i) for i in m.group(3).split(",")) if m.group(3) else None

    def _parent(self, model, data):
        obj = model if self.root == "model" else data
        for a in self.attrs[:-1]:
            obj = getattr(obj, a)
        return obj

    def get(self, model, data) -> float:
        value = getattr(self._parent(model, data), self.attrs[-1])
        if self.index is not None:
            return float(np.asarray(value)[self.index])
        return float(np.asarray(value).reshape(()))  # a scalar field, or an array of size 1

    def set(self, model, data, x: float) -> None:
        parent = self._parent(model, data)
        value = getattr(parent, self.attrs[-1])
        if self.index is not None:
            value[self.index] = x
        elif isinstance(value, np.ndarray):
            value[...] = x
        else:
            setattr(parent, self.attrs[-1], x)

    def check(self, model, data, key: str) -> None:
        """ConfigError unless the path names one number of this model."""
        try:
            self.get(model, data)
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{key}: {self.text!r} does not name one number of this model "
                f"({type(exc).__name__}: {exc}); {_PATH_HELP}"
            ) from None


def _count(value: Any, key: str, least: int) -> int:
    """``value`` as an int >= ``least``; ConfigError naming key, value and rule otherwise."""
    try:
        ok = not isinstance(value, bool) and int(value) == value and value >= least
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ConfigError(f"{key} must be an integer >= {least}; got {value!r}")
    return int(value)


class MuJoCo(Simulator):
    """A MuJoCo model rolled out for a number of steps from a reset state."""

    name = "mujoco"
    prefer = "processes"
    complex_safe = False

    def __init__(
        self,
        xml: str | None = None,
        path: str | None = None,
        inputs: Sequence[str] = (),
        outputs: Sequence[str] | None = None,
        cost: Callable[[Any, Any], Any] | str | None = None,
        steps: int = 100,
        keyframe: int | None = None,
        bounds: Any = None,
        vectorized: bool = False,
        nthread: int | None = None,
    ) -> None:
        """
        Parameters
        ----------
        xml : the MJCF model as text (give xml or path).
        path : an MJCF file (made absolute, so workers find it).
        inputs : paths of the numbers x sets, such as "model.body_mass[1]", "data.qpos[0]".
        outputs : paths into data read after the rollout, such as "data.qpos[0]" (or cost).
        cost : a callable cost(model, data), or its import string, instead of outputs.
        steps : mj_step calls per evaluation, from the reset state.
        keyframe : reset to this keyframe instead of the model's default state.
        bounds : (lower, upper) for the derivative calls.
        vectorized : evaluate a whole batch in one mujoco.rollout call (threads).
        nthread : threads of that rollout call.
        """
        if (xml is None) == (path is None):
            raise ConfigError(f"give exactly one of xml= (the MJCF text) or path= (a file); got xml={'...' if xml else xml!r}, path={path!r}")
        # absolute: a worker process, or the caller after a chdir, finds the same file
        self.xml, self.path = xml, None if path is None else os.path.abspath(os.fspath(path))
        if isinstance(inputs, str) or not inputs:
            raise ConfigError(f"inputs must be a non-empty list of paths such as ['data.qpos[0]']; got {inputs!r}")
        self.inputs = [str(p) for p in inputs]
        self._in = [StatePath(p, "inputs") for p in self.inputs]
        where = [(p.root, tuple(p.attrs), p.index) for p in self._in]
        twice = [p.text for k, p in enumerate(self._in) if where[k] in where[:k]]
        if twice:  # the second write would hide the first: a column of zeros in the Jacobian
            raise ConfigError(f"inputs must name distinct numbers; {twice!r} given twice in {self.inputs!r}")
        if (outputs is None) == (cost is None):
            raise ConfigError("give exactly one of outputs= (paths into data) or cost= (a callable cost(model, data))")
        self.outputs = None if outputs is None else [str(p) for p in ([outputs] if isinstance(outputs, str) else outputs)]
        self._out = [StatePath(p, "outputs") for p in self.outputs or ()]
        if isinstance(cost, str):
            resolve_import_string(cost, "cost")
        elif cost is not None and not callable(cost):
            raise ConfigError(f"cost must be a callable cost(model, data) or an import string; got {cost!r}")
        self.cost = cost
        self.steps = _count(steps, "steps", 0)
        self.keyframe = None if keyframe is None else _count(keyframe, "keyframe", 0)
        self.bounds = bounds
        self.vectorized = bool(vectorized)
        self.nthread = None if nthread is None else _count(nthread, "nthread", 1)
        if self.vectorized:
            self._check_rollout_paths()
        self._local = threading.local()
        model, data = self._engine()  # compile here once, so a bad model fails at configuration
        for p, key in [(p, "inputs") for p in self._in] + [(p, "outputs") for p in self._out]:
            p.check(model, data, key)
        if self.keyframe is not None and not 0 <= self.keyframe < model.nkey:
            raise ConfigError(f"keyframe={keyframe!r}, but the model has {model.nkey} keyframe(s)")

    def _engine(self):
        """This thread's (model, data), compiled on first use."""
        local = self._local
        if getattr(local, "model", None) is None:
            mujoco = require("mujoco", "mujoco")
            try:
                if self.xml is not None:
                    model = mujoco.MjModel.from_xml_string(self.xml)
                else:
                    model = mujoco.MjModel.from_xml_path(self.path)
            except Exception as exc:  # mujoco raises ValueError for bad MJCF or a missing file
                raise ConfigError(f"mujoco could not compile the model ({'xml' if self.xml else self.path}): {exc}") from exc
            local.mujoco, local.model, local.data = mujoco, model, mujoco.MjData(model)
            local.cost = resolve_import_string(self.cost, "cost") if isinstance(self.cost, str) else self.cost
        return local.model, local.data

    def _check_rollout_paths(self) -> None:
        """vectorized=True goes through mujoco.rollout, which carries the physics state
        (time, qpos, qvel, act), the controls and the sensors from step to step; nothing else."""
        bad = [p.text for p in self._in
               if p.root == "data" and (len(p.attrs) != 1 or p.attrs[0] not in _ROLLOUT_INPUTS)]
        bad += [p.text for p in self._out
                if p.root != "data" or len(p.attrs) != 1 or p.attrs[0] not in _ROLLOUT_OUTPUTS]
        if self.cost is not None:
            bad.append("cost=")
        if self.steps < 1:
            bad.append(f"steps={self.steps}")
        if bad:
            raise ConfigError(
                f"vectorized=True (batches through mujoco.rollout) allows model.* and "
                f"data.{{{', '.join(_ROLLOUT_INPUTS)}}} inputs, data.{{{', '.join(_ROLLOUT_OUTPUTS)}}} "
                f"outputs, no cost, steps >= 1; got {', '.join(bad)}; use vectorized=False for these"
            )

    def _start(self, model, data, x: np.ndarray) -> None:
        """Write the model inputs (and mj_setConst), reset the data, write the state inputs."""
        mujoco = self._local.mujoco
        if any(p.root == "model" for p in self._in):
            for p, v in zip(self._in, x):
                if p.root == "model":
                    p.set(model, data, v)
            mujoco.mj_setConst(model, data)
        if self.keyframe is None:
            mujoco.mj_resetData(model, data)
        else:
            mujoco.mj_resetDataKeyframe(model, data, self.keyframe)
        for p, v in zip(self._in, x):
            if p.root == "data":
                p.set(model, data, v)

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        n = len(self._in)
        if x.shape[-1:] != (n,) or x.ndim > 2 or (x.ndim == 2 and not self.vectorized):
            raise SimulationError(f"x has shape {x.shape}; the mujoco adapter has inputs {self.inputs!r}")
        if x.ndim == 2:
            return self._rollout(x)
        model, data = self._engine()
        mujoco = self._local.mujoco
        self._start(model, data, x)
        if self.steps:
            mujoco.mj_step(model, data, nstep=self.steps)
        else:
            mujoco.mj_forward(model, data)
        bad = [w for w in _BAD_STATE if data.warning[getattr(mujoco.mjtWarning, w)].number]
        if bad:
            raise SimulationError(f"mujoco rollout became unstable ({', '.join(bad)}) at x={x.tolist()}")
        if self._out:
            return np.array([p.get(model, data) for p in self._out])
        return self._local.cost(model, data)

    def _rollout(self, X: np.ndarray) -> np.ndarray:
        """Outputs for a batch X (k, n) in one ``mujoco.rollout`` call, run in ``nthread`` threads."""
        model, data = self._engine()
        local = self._local
        mujoco = local.mujoco
        rollout = require("mujoco.rollout", "mujoco")
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        per_point = any(p.root == "model" for p in self._in)
        k = len(X)
        models = []
        init = np.empty((k, mujoco.mj_stateSize(model, spec)))
        ctrl = np.empty((k, 1, model.nu))
        for i, x in enumerate(X):
            m = copy.copy(model) if per_point else model  # a perturbed model per point
            self._start(m, data, x)
            mujoco.mj_getState(m, data, init[i], spec)
            ctrl[i, 0] = data.ctrl
            models.append(m)
        nthread = self.nthread or min(k, os.cpu_count() or 1)
        if len(getattr(local, "datas", ())) != nthread:
            local.datas = [mujoco.MjData(model) for _ in range(nthread)]
        state, sensors = rollout.rollout(
            models if per_point else model, local.datas, init, ctrl if model.nu else None,
            nstep=self.steps,
        )
        out = np.empty((k, len(self._out)))
        for i in range(k):
            mujoco.mj_setState(models[i], data, state[i, -1], spec)
            data.sensordata[:] = sensors[i, -1]
            out[i] = [p.get(models[i], data) for p in self._out]
        return out

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_local"]  # the compiled model stays behind; the worker compiles its own
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def __repr__(self) -> str:
        src = f"path={self.path!r}" if self.path else f"xml=<{len(self.xml)} chars>"
        out = f"outputs={self.outputs!r}" if self.outputs else f"cost={self.cost!r}"
        return f"MuJoCo({src}, inputs={self.inputs!r}, {out}, steps={self.steps})"


@hookimpl
def simdiff_adapters() -> list[type[Simulator]]:
    return [MuJoCo]
