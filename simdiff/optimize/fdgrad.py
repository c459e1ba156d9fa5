"""Finite-difference gradients and Jacobians for the optimizers, through the Tally.

``fd_gradient`` is ``simdiff.gradient`` (one Evaluator batch) with the optimizer's extras: the
centre x is part of the batch (planned by the forward stencil, queued for the central one), so
f(x) always comes with the gradient and a line-search point evaluated with its gradient costs
one round; queued speculative points ride along.

Noise. When the derivative functions accept ``noise=`` it is passed on. Otherwise (the noise
feature not installed) a numeric noise level σ is turned into steps here, by the rule of
Moré & Wild, "Estimating derivatives of noisy simulations", ACM TOMS 38 (2012), with the
curvature taken as 1 on the coordinate's scale s_j = max(1, |x_j|):
forward h_j = 8^(1/4)·√σ·s_j, central h_j = (3σ)^(1/3)·s_j; the noise then adds
2σ/h_j (forward) or σ/h_j (central) to each entry's error estimate.
``noise="estimate"`` is resolved once, at x0, by ``estimate_noise``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ..differentiate import gradient, jacobian
from ..errors import SimulationError
from ..lean import Done, two_point
from ..noise import GENERIC, MAX_PRINTED_DIGITS, NOISE_FACTOR, PROBE
from ..refine import TWO_LEVEL_NOISE_LOOK
from ..stencils import scheme as scheme_stencil
from ..steps import base_steps
from .options import NOISE_SUPPORTED

__all__ = ["fd_gradient", "fd_jacobian", "estimate_noise", "noise_steps"]


def noise_steps(x: np.ndarray, scheme: str, sigma: float) -> np.ndarray:
    s = np.maximum(1.0, np.abs(x))
    if scheme == "central":
        return (3.0 * sigma) ** (1.0 / 3.0) * s
    return 8.0 ** 0.25 * math.sqrt(sigma) * s


def _opts(x: np.ndarray, scheme: str, noise: Any) -> tuple[dict, float]:
    if noise is None:
        return {}, 0.0
    if NOISE_SUPPORTED:
        return {"noise": noise}, 0.0
    sigma = float(np.max(getattr(noise, "level", noise)))
    if sigma <= 0:
        return {}, 0.0
    return {"step": noise_steps(x, scheme, sigma)}, sigma


def fd_gradient(tally: Any, x: np.ndarray, scheme: str, box: Any, noise: Any = None,
                extra: Any = (), curvature: Any = None, final: bool = False
                ) -> tuple[np.ndarray | None, np.ndarray | None, float | None]:
    """(g, error, f(x)) in one round; g None when the gradient could not be formed, f None
    when x itself failed.

    curvature : None or array (n,) of |∂²f/∂x_j²| estimates (from the optimizer's quasi-Newton
        matrix). A one-sided difference errs by h_j·|f''_j|/2 however small f' is, so its
        error estimate is raised to at least that.
    final : the gradient the result reports. The noise looks of ``simdiff.gradient`` are on
        (the midpoint test, then the two-level test), as a user's own call at x has them: its
        error must hold for f as it is, noisy or not. Its points are mostly in the Tally's
        memo already; a look that needs more evaluates them.
    """
    opts, sigma = _opts(x, scheme, noise)
    tally.extra = [x, *extra] if scheme != "forward" else list(extra)
    done = _lean(tally, x, scheme, box, opts, curvature, final)
    if done is not None:
        g, err, h, kinds = done.D[:, 0], done.E[:, 0], done.steps, None
    else:
        g, info = _quiet(gradient, tally, x, scheme, box, opts, two_level=final)
    tally.extra = []
    f = tally.lookup(x)
    if g is None or not np.isfinite(g).all():
        return None, None, f
    if done is None:
        err = np.asarray(info.error, dtype=float).reshape(-1)
        h = np.abs(np.asarray(info.step, dtype=float)).reshape(-1)
        kinds = info.schemes
    if curvature is not None and scheme != "central":
        bound = np.maximum(err, 0.5 * h * np.abs(curvature))
        if kinds is None:  # the lean lane: every entry one-sided
            err = bound
        else:
            one_sided = np.array([k not in ("central", "five-point") for k in kinds])
            err = np.where(one_sided, bound, err)
    if sigma > 0:
        err = err + np.where(h > 0, (2.0 if scheme != "central" else 1.0) * sigma / np.where(h > 0, h, 1), 0)
    return np.asarray(g, dtype=float), err, f


def _quiet(fun: Any, tally: Any, x: np.ndarray, scheme: str, box: Any, opts: dict,
           two_level: bool = False):
    """``fun(sim, x, ...)`` (``gradient`` or ``jacobian``) through the Tally, (value, info), or
    (None, None) when the points failed. Warnings off: the optimizer weighs info.error itself;
    the two-level noise look off (``refine.TWO_LEVEL_NOISE_LOOK``) unless ``two_level``."""
    token = TWO_LEVEL_NOISE_LOOK.set(two_level)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fun(tally.sim, x, method=scheme, bounds=box, evaluator=tally,
                       full_output=True, **opts)
    except SimulationError:
        return None, None
    finally:
        TWO_LEVEL_NOISE_LOOK.reset(token)


_SKIP = frozenset(("noise", "small_x"))
_SKIP_CURVED = _SKIP | {"flat"}
# the reported gradient keeps the noise look (its error must hold on a noisy f), taken here
# (``_two_level_floor``); the small-input look stays off (near a minimum at x_j = 0 it is a
# general-path gradient every run)
_FINAL = _SKIP
_FINAL_CURVED = _SKIP_CURVED
_DOUBT = frozenset(("root", "quantized"))
_DOUBT_TURN = _DOUBT | {"turn"}
_NOISE = _DOUBT | {"noise"}
_NOISE_TURN = _NOISE | {"turn"}


def _lean(tally: Any, x: np.ndarray, scheme: str, box: Any, opts: dict, curvature: Any = None,
          final: bool = False):
    """``gradient``'s lean lane called directly (``simdiff.lean.two_point``: its usual call, the
    same values bit for bit) for the default steps of a scalar f: the Done, or None. When the
    lane hands its batch on, that batch is in the Tally's memo, so the full ``gradient`` call
    that follows reads it from there (no run repeated, no round added). The optimizers weigh
    noise themselves (``noise=``) and need no second estimate at an input below its step
    (near a minimum at x_j = 0 every step has one); with ``curved`` (a quasi-Newton curvature
    to bound a one-sided entry's error by, see ``fd_gradient``) they need no f'' measured at a
    critical point either. The lane's tests for those stay off (``lean.two_point``'s skip)."""
    if box is not None or opts or scheme not in ("forward", "central") or tally.m not in (None, 1):
        return None
    curved = curvature is not None
    st = scheme_stencil(scheme)
    try:
        out = two_point(tally.sim, x, st, base_steps(x, st), np.maximum(1.0, np.abs(x)), tally,
                        skip=(_FINAL_CURVED if curved else _FINAL) if final
                        else _SKIP_CURVED if curved else _SKIP,
                        report=(_NOISE_TURN if curved else _NOISE) if final
                        else _DOUBT_TURN if curved else _DOUBT)
    except SimulationError:
        return None
    # (an entry the lane would name in a warning keeps its values: the optimizer ignores them)
    if not isinstance(out, Done) or out.D.shape[1] != 1:
        return None
    flags = out.flags
    if flags.get("quantized") and not _unquantized(tally, x):
        return None
    if flags.get("noise") and not _two_level_floor(tally, x, out):
        return None
    turn = flags.get("turn", False)
    if turn is not False and not _explained(out, turn, curvature):
        return None
    doubt = flags.get("doubt", False)
    if doubt is not False and out.kind != "central" and not curved and not _measured_curvature(
            tally, x, out, doubt):
        return None
    return out


def _unquantized(tally: Any, x: np.ndarray) -> bool:
    """Values that could be printed or single precision (``lean._quantized``) come from exact
    arithmetic too: f at x = 0 with power-of-two steps. True when f at the derivative
    functions' probe point (``noise.NoiseSetup._probe``: a generic move of 0.00074·max(1, |x_j|)
    in every input, a long decimal) is neither: more than MAX_PRINTED_DIGITS significant digits
    and no float32. Otherwise (or when the probe fails) the general path's noise look decides.
    One run, at most once per x."""
    j = np.arange(x.size)
    shape = (1.0 + 0.5 * (((j + 1) * 0.6180339887498949) % 1.0)) * np.where(j % 2, -1.0, 1.0)
    xp = x + np.sign(shape) * (np.maximum(1.0, np.abs(x)) * PROBE * GENERIC * np.abs(shape))
    v = tally.value(xp)
    if v is None or not math.isfinite(v) or v == 0:
        return False
    return float(np.float32(v)) != v and float(format(v, f".{MAX_PRINTED_DIGITS}g")) != v


def _explained(done: Done, turn: np.ndarray, curvature: np.ndarray) -> bool:
    """Whether the central pairs that turn over inside a long step (``lean.two_point``'s
    "turn": aliasing, or a minimum along x_j inside the stencil, as every pair has once the
    optimizer closes in on a minimum beyond |x_j| = LARGE_X) show the curvature the
    quasi-Newton matrix expects: a second difference (f(x + h) + f(x − h) − 2f(x))/h² within
    a factor 10 of B_jj. Aliasing (sin at 1e8 with h = 600) gives one of order |f|/h², unrelated
    to B; anything else goes to the general path's unit-step look."""
    j = np.flatnonzero(turn)
    n = len(done.steps)
    F = done.values[:, 0]
    Fn = F[1:].reshape(n, 2)[j]
    h = done.steps[j]
    f2 = np.abs(Fn[:, 0] + Fn[:, 1] - 2 * F[0]) / (h * h)
    c = curvature[j]
    return bool(((f2 <= 10 * c) & (c <= 10 * f2)).all())


def _measured_curvature(tally: Any, x: np.ndarray, done: Done, doubt: np.ndarray) -> bool:
    """One-sided entries whose two values cannot bound their truncation (``lean.two_point``'s
    "doubt": a root of f inside the stencil, or a critical point), with no curvature to bound
    it by: f'' is measured, as the general path's widening does, from one more node at 2h on
    the same side: the error grows to h·|f(x) − 2f(x + h) + f(x + 2h)|/(2h²), the gap between the
    two-point and the three-point one-sided estimates (one round, one run per such entry).
    False when a node failed (the general path then decides)."""
    j = np.flatnonzero(doubt)
    t = 1.0 if done.kind == "forward" else -1.0
    h = done.steps[j]
    X = np.repeat(x[None, :], len(j), axis=0)
    X[np.arange(len(j)), j] = x[j] + (2 * t) * h
    vals, ok = tally.values(X)
    if not ok.all():
        return False
    F = done.values[:, 0]
    F2 = vals[:, 0]
    f2 = np.abs(F[0] - 2 * F[1 + j] + F2) / (h * h)
    if not np.isfinite(f2).all():
        return False
    done.E[j, 0] = np.maximum(done.E[j, 0], 0.5 * h * f2)
    return True


def _two_level_floor(tally: Any, x: np.ndarray, done: Done) -> bool:
    """The reported central gradient's noise look (``noise.midpoints_look_noisy`` and
    ``noise.spread_floor``'s rule) when its midpoints spread: the pairs at ±2h_j join (one
    round, 2n runs), the two-level centre estimates (4·m(h) − m(2h))/3 = f(x) + O(h⁴) should
    agree across inputs, and whatever they still spread by, σ̂ = std/‖w‖ with ‖w‖ = √(17/18)
    their noise gain, is read as noise: every entry's error grows to at least
    NOISE_FACTOR·σ̂·(Σw²)^(1/2)/h_j, the two-point weights' (Σw²)^(1/2) = 1/√2. A curvature
    cancels in the extrapolation, noise does not. False when a node failed."""
    n = x.shape[0]
    h = done.steps
    X = np.repeat(x[None, :], 2 * n, axis=0)
    idx = np.arange(n)
    X[2 * idx, idx] = x + (-2.0 * h)
    X[2 * idx + 1, idx] = x + (2.0 * h)
    vals, ok = tally.values(X)
    if not ok.all() or not np.isfinite(vals).all():
        return False
    F = done.values[1:, 0].reshape(n, 2)
    m1 = 0.5 * (F[:, 0] + F[:, 1])
    m2 = 0.5 * (vals[0::2, 0] + vals[1::2, 0])
    est = (4.0 * m1 - m2) / 3.0
    sigma = float(np.std(est, ddof=1)) / math.sqrt(17.0 / 18.0)
    done.E[:, 0] = np.maximum(done.E[:, 0], NOISE_FACTOR * sigma * math.sqrt(0.5) / h)
    return True


def fd_jacobian(tally: Any, x: np.ndarray, scheme: str, box: Any, noise: Any = None,
                extra: Any = ()) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(J, error, r(x)) in one round, as ``fd_gradient`` for a vector-valued f."""
    opts, sigma = _opts(x, scheme, noise)
    tally.extra = [x, *extra] if scheme != "forward" else list(extra)
    J, info = _quiet(jacobian, tally, x, scheme, box, opts)
    tally.extra = []
    vals, ok = tally.values(x[None, :]) if tally.known(x) else (None, [False])
    r = vals[0].copy() if ok[0] else None
    if J is None or not np.all(np.isfinite(J)):
        return None, None, r
    return J, np.asarray(info.error, dtype=float), r


def estimate_noise(tally: Any, x: np.ndarray, box: Any, k: int = 8, rel: float = 1e-3,
                   seed: int = 0) -> float:
    """The noise level σ of f near x by ECnoise (Moré & Wild, SIAM J. Sci. Comput. 33, 2011).

    k + 1 points x + (i − k/2)·h·p on a random unit direction p (one round, inside the box),
    h = rel·max(1, ‖x‖∞); the j-th differences Δʲf of a smooth f vanish like h^j while those
    of noise keep the size √(C(2j, j))·σ, so σ_j = √(γ_j·mean((Δʲf)²)), γ_j = (j!)²/(2j)!, and
    the answer is the first σ_j (j ≥ 2) that agrees with its neighbours within a factor 4
    while the differences change sign; else the smallest σ_j.
    """
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    p = rng.choice([-1.0, 1.0], size=n) / math.sqrt(n)
    h = rel * max(1.0, float(np.max(np.abs(x))))
    offs = (np.arange(k + 1) - k / 2) * h
    X = x[None, :] + offs[:, None] * p[None, :]
    if box is not None:
        X = np.clip(X, box[0], box[1])
    vals, ok = tally.values(X)
    F = vals[ok, 0]
    if len(F) < 4:
        return 0.0
    sig = []
    D = F.copy()
    for j in range(1, len(F)):
        D = np.diff(D)
        gamma = math.factorial(j) ** 2 / math.factorial(2 * j)
        sig.append((j, math.sqrt(gamma * float(np.mean(D ** 2))), bool(np.any(D > 0) and np.any(D < 0))))
    for a, b, c in zip(sig, sig[1:], sig[2:]):
        lvl = [a[1], b[1], c[1]]
        if a[0] >= 2 and b[2] and max(lvl) <= 4 * min(lvl) and b[1] > 0:
            return b[1]
    return min(s[1] for s in sig if s[0] >= 2) if len(sig) > 1 else sig[0][1]
