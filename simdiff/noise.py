"""Noise in f: estimate it (ECnoise), step for it, and count it in every error estimate.

Legacy programs print 6–8 significant digits, iterative solvers stop at a tolerance, Monte
Carlo models are random: their outputs carry noise far above the rounding ε·|f| that the
default steps of ``steps.py`` are made for. This module holds

* ``noise_level(f, x)``: the standard deviation of the noise of each output, by ECnoise
  (J. J. Moré and S. M. Wild, "Estimating computational noise", SIAM J. Sci. Comput. 33(3),
  2011, 1292-1314), returned as a ``NoiseEstimate``;
* ``resolve_noise``: the ``noise=`` argument of the derivative functions, checked;
* ``noise_optimal_step``: the step that balances noise against truncation (J. J. Moré and
  S. M. Wild, "Estimating derivatives of noisy simulations", ACM TOMS 38(3), 2012, art. 19);
* ``noise_error``: the noise term the derivative functions add to ``info.error``, and, when
  no noise was given, the detection of noise and printed (quantized) outputs in the
  stencil's own values (``detect_noise``), which grows the error and warns.

ECnoise
-------
Take nf values f_i = f(x + (i − c)·h·p), i = 0..nf−1, c = nf // 2, along a unit direction p
(x itself is one of them). Where f = smooth + noise of standard deviation σ, the k-th
differences Δ^k f_i of the table are dominated, for small enough h, by the noise part, whose
variance is C(2k, k)·σ² for independent noise. So

    σ_k = ( γ_k · mean_i (Δ^k f_i)² )^(1/2),   γ_k = (k!)² / (2k)!,

estimates σ at every order k whose smooth part h^k·f^(k) has fallen below the noise. The
level is the first σ_k such that (i) the k-th differences change sign (a smooth trend keeps
its sign) and (ii) σ_k, σ_(k+1), σ_(k+2) agree within a factor 4 (``AGREEMENT``). Statuses:

* "ok";
* "spacing too small": more than half of the first differences are exactly 0 (a printed
  output that does not move over nf·h); tried again with h·100;
* "spacing too large": the values spread over more than 10 % of their size, or no order
  passes the tests (the trend dominates); tried again with h/100.

The level reported is that order's least-squares refinement (``_refine``: the residuals of
a degree-k polynomial fit through the nf values). Each spacing is one Evaluator batch of nf
points (default nf = 12: 12 evaluations when the first spacing works). The default spacing is h = 1e-6 along p = u ⊙ s / ‖u ⊙ s‖ with u a
seeded random unit vector and s_j = max(1, |x_j|) (so that each input moves on its own
scale), h then being the length of the step along p (h·‖u ⊙ s‖).

Noise-optimal steps
-------------------
For a stencil of order p for the d-th derivative, Σ|w| the sum of its weights' magnitudes and
C its truncation coefficient, noise of level ε_f (an absolute standard deviation) gives the
error model ε_f·Σ|w|/h^d + |C|·μ·h^p with μ = |f^(p+d)|; its minimum is at

    h* = ( d·Σ|w|·ε_f / (p·|C|·μ) )^(1/(p+d)),

which is Moré & Wild's (3·ε_f/μ)^(1/3) for central differences and ((45/4)·ε_f/μ)^(1/5) for
five-point; for forward/backward differences their h = 8^(1/4)·(ε_f/μ)^(1/2) is used (the
minimum of the expected, not worst-case, error). The curvature μ is modelled, not measured
(measuring it costs 2–4 evaluations per input, Moré & Wild 2012 §5): f changes by its own size
over the scale s_j = max(1, |x_j|) of each input, μ ≈ M/s_j^(p+d) with M = max(|f(x)|,
1000·ε_f) (``CURVATURE_FLOOR``: where f(x) is zero up to the noise its size is unknown, and
the steps are kept from growing without limit). The step is at most ``MAX_STEP``·s_j. With
several outputs each input takes the largest of the outputs' steps (the noisiest output
decides; the others lose a little truncation accuracy rather than drown in noise).

The noise term of ``info.error``
--------------------------------
An entry Σ w_i·F_i / h^d of values with independent noise of level σ carries noise of standard
deviation σ·(Σ w_i²)^(1/2)/h^d; ``info.error`` adds ``NOISE_FACTOR`` = 3 times that (a 3σ
bound, 99.7 % for Gaussian noise). It is a root-sum-square, not the worst case Σ|w_i|·|e_i|:
for the uniform error of printed digits (|e| ≤ √3·σ) the worst case of a two-point stencil,
Σ|w|·√3·σ, is 1.73σ/h (central) or 3.46σ/h (forward), below the 2.12σ/h and 4.24σ/h added.
"""

from __future__ import annotations

import math
import warnings
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ArgumentError, ArgumentTypeError, OutputError

__all__ = [
    "NoiseEstimate",
    "NoiseWarning",
    "noise_level",
    "resolve_noise",
    "noise_optimal_step",
    "curvature_model",
    "noise_steps",
    "noise_error",
    "detect_noise",
    "decimal_quantum",
]

#: Number of points of the difference table (≤ 12 evaluations when the first spacing works).
DEFAULT_POINTS = 12
#: First spacing, relative to the scale of the inputs.
DEFAULT_SPACING = 1e-6
#: Factor of a retried spacing.
RETRY_FACTOR = 100.0
#: Spacings tried at most (the first included).
MAX_TRIES = 4
#: Consecutive levels σ_k, σ_k+1, σ_k+2 must agree within this factor.
AGREEMENT = 4.0
#: The values may spread over at most this share of their size ("spacing too large" beyond).
MAX_SPREAD = 0.1
#: Multiple of the noise standard deviation the error estimates add (see the module docstring).
NOISE_FACTOR = 3.0
#: The modelled curvature is at least this multiple of the noise level.
CURVATURE_FLOOR = 1e3
#: Noise-optimal steps are at most this share of the inputs' scale.
MAX_STEP = 0.1
#: Spread of the centre estimates below this share of the largest first-order change h·|D| is
#: not taken as noise (a guard for outputs whose entries are all about 0).
SLOPE_SHARE = 1e-10
#: Margins on the curvature model of the centre estimates: midpoints (error h²·f''/2), two pair
#: levels (h⁴·f''''/6), three (0.05·h⁶·f⁽⁶⁾): about 200×, 180× and 60× the coefficient.
CURVATURE_MARGIN = (100.0, 30.0, 3.0)
#: Noise spreads the centre estimates of L and L − 1 pair levels alike; below this ratio the
#: spread is taken as curvature.
LEVEL_RATIO = 0.5
#: The probe of a printed output that printed one value everywhere: this far, relative to s_j.
PROBE = 1e-3
#: A factor with a long decimal expansion (the fixed point of cos), so that the probe's inputs
#: are not short decimals.
GENERIC = 0.7390851332151607
#: A value printed with at most this many significant digits is taken as quantized.
MAX_PRINTED_DIGITS = 12

EPS = float(np.finfo(float).eps)


class NoiseWarning(UserWarning):
    """f looks noisy or quantized (printed digits) and no ``noise=`` was given."""


try:  # the team's common warning class, when it exists
    from .errors import SimdiffWarning as _Base  # type: ignore[attr-defined]

    class NoiseWarning(_Base, UserWarning):  # type: ignore[no-redef]  # noqa: F811
        """f looks noisy or quantized (printed digits) and no ``noise=`` was given."""
except ImportError:  # pragma: no cover - depends on the merge state
    pass


@dataclass
class NoiseEstimate:
    """The noise of f at x, by ECnoise (see the module docstring).

    level : ndarray (m,), the standard deviation of the noise of each output (absolute).
    relative : ndarray (m,), level / |f(x)| (inf where f(x) = 0).
    status : "ok", or why not ("spacing too small ...", "spacing too large ..."), one string
        for all outputs; ``statuses`` has one per output.
    nfev : simulator runs spent; h : the spacing (length of the step along ``direction``) of the
        accepted table (per output in ``spacings``); fx : f(x), shape (m,); order : the order k
        of the differences the level came from (per output).
    """

    level: np.ndarray
    relative: np.ndarray
    status: str
    nfev: int
    h: float
    fx: np.ndarray
    statuses: list = field(default_factory=list)
    spacings: np.ndarray = field(default=None, repr=False)
    order: np.ndarray = field(default=None, repr=False)
    direction: np.ndarray = field(default=None, repr=False)
    x: np.ndarray = field(default=None, repr=False)
    points: np.ndarray = field(default=None, repr=False)
    values: np.ndarray = field(default=None, repr=False)
    scalar: bool = False

    def __float__(self) -> float:
        if self.level.size != 1:
            raise ArgumentTypeError(
                f"float() of a NoiseEstimate needs one output; this one has {self.level.size} "
                "(use est.level)")
        return float(self.level[0])

    def __repr__(self) -> str:
        lv = ", ".join(f"{v:.3g}" for v in self.level[:6]) + (", ..." if self.level.size > 6 else "")
        rl = ", ".join(f"{v:.2g}" for v in self.relative[:6]) + (", ..." if self.relative.size > 6 else "")
        return (f"NoiseEstimate(level=[{lv}], relative=[{rl}], status={self.status!r}, "
                f"nfev={self.nfev}, h={self.h:.3g})")

    __str__ = __repr__


def _gamma(k: int) -> float:
    return math.factorial(k) ** 2 / math.factorial(2 * k)


def ecnoise_table(values: np.ndarray) -> tuple[float, str, int]:
    """ECnoise on one output's nf values at equal spacing: (level, status, order).

    status is "ok", "spacing too small" or "spacing too large" (module docstring); level is
    then the best available guess (0 when too small, the least σ_k when too large)."""
    f = np.asarray(values, dtype=float)
    nf = f.size
    fmin, fmax = float(np.min(f)), float(np.max(f))
    big = max(abs(fmin), abs(fmax))
    d = f.copy()
    levels, signs = [], []
    for k in range(1, nf):
        d = np.diff(d)
        if k == 1 and np.count_nonzero(d == 0) > (nf - 1) / 2:
            return 0.0, "spacing too small", 1
        levels.append(math.sqrt(_gamma(k) * float(np.mean(d**2))))
        signs.append(bool(np.min(d) < 0 < np.max(d)))
    if big > 0 and (fmax - fmin) > MAX_SPREAD * big:
        return float(min(levels)), "spacing too large", 0
    for k in range(len(levels) - 2):
        trio = levels[k:k + 3]
        if signs[k] and max(trio) <= AGREEMENT * min(trio):
            return _refine(f, k + 1, levels[k]), "ok", k + 1
    return float(min(levels)), "spacing too large", 0


def _refine(f: np.ndarray, k: int, level: float) -> float:
    """The level at the accepted order k, from the residuals of the least-squares polynomial
    of degree k through all nf values (nf − k − 1 degrees of freedom): the same smooth part
    h^(k+1)·f^(k+1) is removed as by the k-th differences, but every value counts once, so
    the estimate scatters less (nf = 12, Gaussian noise: within 2× of σ in 98.6 % of seeds
    against 95.6 % for σ_k itself)."""
    nf = f.size
    if nf - k - 1 < 2:
        return float(level)
    t = np.linspace(-1.0, 1.0, nf)
    g = f - np.mean(f)
    V = np.vander(t, k + 1)
    coef, *_ = np.linalg.lstsq(V, g, rcond=None)
    res = g - V @ coef
    return float(math.sqrt(float(np.sum(res**2)) / (nf - k - 1)))


def _unit_direction(x: np.ndarray, direction: Any, seed: Any) -> tuple[np.ndarray, float]:
    """The unit direction p and the length of the unit spacing along it (module docstring)."""
    n = x.size
    if direction is None:
        try:
            rng = np.random.default_rng(seed)
        except (TypeError, ValueError):
            raise ArgumentError(f"seed must be None, an int or a numpy Generator; got {seed!r}") from None
        u = rng.standard_normal(n)
        u /= np.linalg.norm(u)
        v = u * np.maximum(1.0, np.abs(x))
        length = float(np.linalg.norm(v))
        return v / length, length
    try:
        v = np.asarray(direction, dtype=float)
    except (TypeError, ValueError):
        raise ArgumentTypeError(f"direction must be an array of floats of shape ({n},); got {direction!r}") from None
    if v.shape != (n,) or not np.all(np.isfinite(v)) or not np.any(v):
        raise ArgumentError(
            f"direction must be a finite, nonzero array of shape ({n},) (the shape of x); got {direction!r}")
    p = v / np.linalg.norm(v)
    return p, float(max(1.0, np.max(np.abs(x[p != 0]))))


def noise_level(f: Any, x: Any, *, direction: Any = None, h: float | None = None,
                nf: int = DEFAULT_POINTS, seed: Any = 0, vectorized: bool | None = None,
                n_jobs: int | None = None, backend: Any = None, evaluator: Any = None,
                cache: Any = None, timeout: Any = None, retries: Any = None) -> NoiseEstimate:
    """The standard deviation of the noise of f's outputs at x, by ECnoise (Moré & Wild 2011).

    Parameters
    ----------
    f : callable or Simulator, R^n -> R or R^m (a float x: a function of one variable).
    x : float or array (n,), finite.
    direction : the direction of the table (default: a random direction scaled by
        max(1, |x_j|), from ``seed``).
    h : the first spacing, the length of the step along the unit direction (default
        1e-6·‖u ⊙ max(1, |x|)‖, see the module docstring). Retried ×100 or ÷100 (up to
        ``MAX_TRIES`` spacings) for the outputs whose table was not conclusive.
    nf : points per table, 4 ≤ nf ≤ 30 (default 12).
    vectorized, n_jobs, backend, evaluator, cache, timeout, retries : as for ``simdiff.gradient``;
        each spacing is one Evaluator batch.

    Returns
    -------
    NoiseEstimate with ``level`` (m,), ``relative`` (m,), ``status``, ``nfev``, ``h``, ``fx``.
    """
    from .differentiate import as_point
    from .evaluate import resolve_evaluator
    from .simulator import Simulator, as_simulator

    scalar_input = np.ndim(x) == 0
    if scalar_input:
        if not isinstance(x, (int, float, np.integer, np.floating)) or not np.isfinite(float(x)):
            raise ArgumentError(f"x must be finite; got x = {x!r}")
        xa = np.array([float(x)])
    else:
        xa = as_point(x)
    if isinstance(nf, bool) or not isinstance(nf, (int, np.integer)) or not 4 <= nf <= 30:
        raise ArgumentError(f"nf must be an int from 4 to 30 (points per difference table); got {nf!r}")
    sim = as_simulator(f, vectorized=vectorized,
                       scalar_input=scalar_input and not isinstance(f, Simulator))
    ev = resolve_evaluator(evaluator, n_jobs, backend, cache=cache, timeout=timeout, retries=retries)
    p, unit = _unit_direction(xa, direction, seed)
    if h is None:
        h0 = DEFAULT_SPACING * unit
    else:
        if isinstance(h, bool) or not isinstance(h, (int, float, np.integer, np.floating)) \
                or not np.isfinite(h) or h <= 0:
            raise ArgumentError(f"h must be a positive finite float (the spacing along the direction); got {h!r}")
        h0 = float(h)
    c = nf // 2
    t = np.arange(nf) - c
    nfev = 0
    pending = None  # outputs still to decide, and the spacing each wants
    want: dict[float, list] = {h0: None}
    result_level = result_status = result_h = result_order = None
    fx = None
    points_used = values_used = None
    tried: list[float] = []
    scalar = True
    for attempt in range(MAX_TRIES):
        if not want:
            break
        new_want: dict[float, list] = {}
        for hh, outs in want.items():
            X = xa[None, :] + (t[:, None] * hh) * p[None, :]
            batch = ev.evaluate(sim, X)
            nfev += batch.nfev
            tried.append(hh)
            F = np.real(np.asarray(batch.values, dtype=complex if np.iscomplexobj(batch.values) else float))
            ok = np.asarray(batch.ok, dtype=bool)
            if result_level is None:
                m = F.shape[1]
                scalar = bool(batch.scalar)
                result_level, result_status = np.zeros(m), ["not estimated"] * m
                result_h, result_order = np.full(m, hh), np.zeros(m, dtype=int)
                first_status = [""] * m
                quantum = np.zeros(m)
                outs = list(range(m))
                points_used, values_used = X, F
            if ok[c] and fx is None:
                fx = F[c].copy()
            if ok.sum() < 4:
                for i in outs:
                    result_status[i] = f"failed: {int((~ok).sum())} of {nf} points failed"
                continue
            Fg = F[ok]
            qn = np.maximum(_printed_quantum(Fg), _single_quantum(Fg))
            quantum = np.where(quantum > 0, np.where(qn > 0, np.minimum(quantum, qn), quantum), qn)
            if not ok.all():  # keep the longest run of consecutive good points
                Fg = _longest_run(F, ok)
            for i in outs:
                lvl, st, k = ecnoise_table(Fg[:, i])
                prev = result_status[i]
                result_h[i], result_order[i] = hh, k
                if st == "ok":
                    result_level[i], result_status[i] = lvl, "ok" if attempt == 0 else (
                        f"ok at h={hh:.3g} (h={h0:.3g}: {first_status[i]})")
                    continue
                if attempt == 0:
                    first_status[i] = st
                if prev.startswith("spacing too") and prev.split(" at ")[0] != st:
                    # the spacing was too small once and too large after it (or the reverse):
                    # nothing between works; keep the last guess
                    result_level[i] = lvl
                    result_status[i] = f"{st} (and {prev.split(' (')[0]}); no spacing worked"
                    continue
                result_level[i], result_status[i] = lvl, st
                nh = hh * RETRY_FACTOR if st == "spacing too small" else hh / RETRY_FACTOR
                if attempt + 1 < MAX_TRIES:
                    new_want.setdefault(nh, []).append(i)
        want = new_want
    if result_level is None:  # pragma: no cover - nf >= 4 always evaluates once
        raise OutputError("noise_level evaluated no point")
    for i, st in enumerate(result_status):
        if st in ("spacing too small", "spacing too large"):
            result_status[i] = f"{st}; tried h = " + ", ".join(f"{v:.3g}" for v in tried)
    # A printed (or single-precision) output is off by its rounding, q/√12 for a quantum q
    # (the last printed digit; the float32 spacing), even where the table cannot see it (a
    # staircase that moves a whole number of quanta per step is exactly linear).
    result_level = np.maximum(result_level, quantum / math.sqrt(12.0))
    if fx is None:
        fx = np.full(result_level.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(np.abs(fx) > 0, result_level / np.abs(fx), np.inf)
    uniq = list(dict.fromkeys(result_status))
    status = uniq[0] if len(uniq) == 1 else "; ".join(f"output {i}: {s}" for i, s in enumerate(result_status)
                                                     if not s.startswith("ok")) or "ok"
    return NoiseEstimate(level=result_level, relative=rel, status=status, nfev=nfev,
                         h=float(np.max(result_h)), fx=fx, statuses=result_status, spacings=result_h,
                         order=result_order, direction=p, x=xa, points=points_used,
                         values=values_used, scalar=scalar)


def _longest_run(F: np.ndarray, ok: np.ndarray) -> np.ndarray:
    best, start = (0, 0), None
    for i, good in enumerate(list(ok) + [False]):
        if good and start is None:
            start = i
        elif not good and start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return F[best[0]:best[1]]


# -- the noise= argument ---------------------------------------------------------------------

NOISE_WORDS = ("estimate",)


def resolve_noise(noise: Any, m: int | None = None) -> np.ndarray | None:
    """The ``noise=`` argument as an array (m,) of levels, or None.

    Accepts None, a non-negative float (every output), an array (m,), or a ``NoiseEstimate``
    (its ``level``). The word "estimate" is resolved by the caller (through ``noise_level``)
    before this; anything else is an ``ArgumentError`` naming ``noise``. With ``m`` None the
    length is not checked (a float gives shape (1,)).
    """
    if noise is None:
        return None
    if isinstance(noise, NoiseEstimate):
        arr = np.asarray(noise.level, dtype=float)
    elif isinstance(noise, str):
        raise ArgumentError(f"noise must be None, a level (float >= 0 or an array of one per output), "
                            f"a NoiseEstimate or 'estimate'; got the word {noise!r}")
    elif isinstance(noise, bool):
        raise ArgumentError(f"noise must be None, a float >= 0, an array (m,), a NoiseEstimate or "
                            f"'estimate'; got {noise!r}")
    else:
        try:
            arr = np.asarray(noise, dtype=float)
        except (TypeError, ValueError):
            raise ArgumentError(f"noise must be None, a float >= 0, an array (m,) of floats, a "
                                f"NoiseEstimate or 'estimate'; got {noise!r}") from None
    if arr.ndim > 1:
        raise ArgumentError(f"noise must be a float or an array of shape (m,) (one level per output); "
                            f"got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr < 0)
    if np.any(bad):
        raise ArgumentError(f"noise must be finite and >= 0 (a standard deviation); got noise = {noise!r}")
    if arr.ndim == 0:
        return np.full(1 if m is None else m, float(arr))
    if m is not None and arr.shape != (m,):
        if arr.size == 1:
            return np.full(m, float(arr[0]))
        raise ArgumentError(f"noise must have one level per output: shape ({m},); got shape {arr.shape} "
                            f"(noise = {noise!r})")
    return arr.copy()


def check_noise_arg(noise: Any) -> Any:
    """Validate ``noise=`` at the door (before any evaluation); returns it unchanged."""
    if isinstance(noise, str):
        if noise not in NOISE_WORDS:
            raise ArgumentError(f"noise must be None, a float >= 0, an array (m,), a NoiseEstimate or "
                                f"'estimate'; got {noise!r}")
        return noise
    resolve_noise(noise)
    return noise


# -- noise-optimal steps ---------------------------------------------------------------------

def noise_optimal_step(level: Any, curvature: Any, method: str = "central", deriv: int = 1) -> np.ndarray:
    """The step that minimizes noise + truncation error (Moré & Wild 2012; module docstring).

    level : ε_f, the noise standard deviation (absolute), float or array.
    curvature : μ = |f^(p+d)| at x in the same units (the derivative the stencil's truncation
        error involves: f'' forward, f''' central, f^(5) five-point, f^(4) for a second
        derivative); where μ is 0 or not finite the fallback μ = max(CURVATURE_FLOOR·ε_f, tiny)
        is used (a documented guard: f flat to the noise).
    method : "forward", "backward", "central", "five-point" (deriv 1) or "central" (deriv 2).

    Returns h (array, the broadcast shape of level and curvature).
    """
    eps = np.asarray(level, dtype=float)
    mu = np.abs(np.asarray(curvature, dtype=float))
    floor = np.maximum(CURVATURE_FLOOR * eps, np.finfo(float).tiny)
    mu = np.where(np.isfinite(mu) & (mu > 0), np.maximum(mu, np.finfo(float).tiny), floor)
    if deriv == 1 and method in ("forward", "backward"):
        return 8.0 ** 0.25 * np.sqrt(eps / mu)
    from .stencils import scheme

    st = scheme(method, None, deriv) if method != "complex" else None
    if st is None:
        raise ArgumentError("method='complex' has no noise-optimal step (it does not subtract values)")
    p, d = st.order, st.deriv
    c = d * st.abs_weight_sum / (p * abs(st.error_coef))
    return (c * eps / mu) ** (1.0 / (p + d))


def curvature_model(fx: Any, level: Any) -> np.ndarray:
    """The modelled |f^(k)|·s^k: M = max(|f(x)|, CURVATURE_FLOOR·ε_f) (module docstring)."""
    fx = np.abs(np.asarray(fx, dtype=float))
    eps = np.asarray(level, dtype=float)
    M = np.maximum(np.where(np.isfinite(fx), fx, 0.0), CURVATURE_FLOOR * eps)
    return np.maximum(M, np.finfo(float).tiny)


def noise_steps(level: np.ndarray, fx: np.ndarray, scale: np.ndarray, method: str,
                deriv: int = 1) -> np.ndarray:
    """Per-input noise-optimal steps (n,): the largest over the outputs of
    noise_optimal_step(ε_i, M_i, method)·s_j, at most MAX_STEP·s_j (module docstring).

    Outputs with level 0 count with the rounding level ε·|f_i| instead."""
    level = np.asarray(level, dtype=float).ravel()
    fx = np.asarray(fx, dtype=float).ravel()
    eps = np.maximum(level, EPS * np.abs(np.where(np.isfinite(fx), fx, 0.0)))
    eps = np.maximum(eps, np.finfo(float).tiny)
    unit = noise_optimal_step(eps, curvature_model(fx, eps), method, deriv)
    u = float(np.max(unit)) if unit.size else 0.0
    return np.minimum(u, MAX_STEP) * np.asarray(scale, dtype=float)


# -- the noise term of info.error, and noise nobody told us about -----------------------------

_LEVEL: ContextVar = ContextVar("simdiff_noise_level", default=None)


def current_noise() -> np.ndarray | None:
    """The noise level given to the derivative call in progress (inside its ``noise_context``),
    or None: for checks that run inside it (the sparsity pattern's J·v) to take it too."""
    ctx = _LEVEL.get()
    return None if ctx is None or ctx[0] != "given" else np.asarray(ctx[1], dtype=float)


class noise_context:
    """``with noise_context(level):`` the assembly inside adds the noise term of ``level``
    (array (m,), or None for detection); used by the derivative functions."""

    def __init__(self, level: Any, probe: Any = None) -> None:
        self.level, self.probe = level, probe

    def __enter__(self):
        self._token = _LEVEL.set(("given", self.level, None) if self.level is not None
                                 else ("detect", None, self.probe))
        return self

    def __exit__(self, *exc):
        _LEVEL.reset(self._token)
        del self._token
        return False


def decimal_quantum(values: np.ndarray) -> np.ndarray:
    """Per value, the place of its last significant decimal digit as printed by repr (the
    shortest representation that round-trips), and its number of significant digits.

    Returns (quantum, digits), arrays of the shape of values; 0 quantum for 0 and non-finite."""
    v = np.asarray(values, dtype=float)
    q = np.zeros(v.shape)
    dg = np.zeros(v.shape, dtype=int)
    flat_q, flat_d = q.reshape(-1), dg.reshape(-1)
    for i, val in enumerate(v.reshape(-1)):
        if not np.isfinite(val) or val == 0:
            continue
        s = repr(abs(float(val)))
        mant, _, exp = s.partition("e")
        e = int(exp) if exp else 0
        if "." in mant:
            ip, fp = mant.split(".")
        else:
            ip, fp = mant, ""
        fp = fp.rstrip("0")
        digits = (ip + fp).lstrip("0")
        if not digits:
            continue
        flat_d[i] = len(digits.rstrip("0")) if not fp else len(digits)
        if fp:
            flat_q[i] = 10.0 ** (e - len(fp))
        else:  # an integer mantissa: trailing zeros are not significant
            stripped = ip.rstrip("0")
            flat_q[i] = 10.0 ** (e + len(ip) - len(stripped))
    return q, dg


def _quantized_outputs(F: np.ndarray, constant: bool = False) -> np.ndarray:
    """Outputs (m,) whose every finite nonzero value has at most MAX_PRINTED_DIGITS significant
    digits, not all short binary fractions, and which take at least two distinct values (bool
    (m,)); with ``constant=True``, those that take one value only instead (printed, or flat)."""
    if F.size == 0:
        return np.zeros(F.shape[1], dtype=bool)
    _, dg = decimal_quantum(F)
    finite = np.isfinite(F) & (F != 0)
    few = np.where(finite, dg <= MAX_PRINTED_DIGITS, True).all(axis=0)
    # a function that is exactly representable with few digits at these points (a polynomial
    # at x = 1, 2, 0.5 with steps powers of two) prints exactly too: require a value that is
    # not a dyadic rational of few bits, i.e. one that a binary computation would not give
    dyadic = np.where(finite, _is_short_dyadic(F), True).all(axis=0)
    # an output that takes one value at every point is flat on every scale the batch saw (a
    # constant prints short too): only a wider probe can tell (``detect_noise``)
    varies = np.array([np.unique(F[:, i][np.isfinite(F[:, i])]).size >= 2 for i in range(F.shape[1])])
    base = few & finite.any(axis=0)
    if constant:
        # one value everywhere, even a short binary fraction (f = 1.0 printed at every point
        # of a forward stencil): the probe decides, and a flat f or exact arithmetic does not
        # print short there
        return base & ~varies
    return base & ~dyadic & varies


def _printed_quantum(F: np.ndarray) -> np.ndarray:
    """Per output (m,), the finest place of a last printed digit among its values where the
    output looks printed (``_quantized_outputs``), else 0 (the finest, because a value whose
    last digits are zeros prints shorter: 8.7311 of a 6-digit 8.73110)."""
    F = np.asarray(F, dtype=float)
    out = np.zeros(F.shape[1])
    quant = _quantized_outputs(F)
    if quant.any():
        qv, _ = decimal_quantum(F[:, quant])
        qv = np.where(qv > 0, qv, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmin(qv, axis=0)
        out[quant] = np.where(np.isfinite(med), med, 0.0)
    return out


def _single_quantum(F: np.ndarray, constant: bool = False) -> np.ndarray:
    """Per output (m,), the spacing of float32 at the largest |value| where every value of the
    output is a float32 (computed in single precision, or stored as one) and at least half of
    them need more than 21 bits of mantissa (not short binary fractions); else 0."""
    F = np.asarray(F, dtype=float)
    out = np.zeros(F.shape[1])
    fin = np.isfinite(F)
    with np.errstate(over="ignore", invalid="ignore"):
        single = np.where(fin, F.astype(np.float32).astype(float) == F, True).all(axis=0)
    m, _ = np.frexp(np.where(fin, F, 0.0))
    # a float32 result uses nearly all 24 bits of its mantissa; exact arithmetic on short
    # inputs (1e8·3·2^-12) fits in fewer: at least half the values need more than 21
    needs = np.where(fin, (m * 2.0**21) != np.round(m * 2.0**21), False)
    long16 = needs.sum(axis=0) >= np.maximum(1, fin.sum(axis=0) / 2)
    varies = np.array([np.unique(F[:, i][fin[:, i]]).size >= 2 for i in range(F.shape[1])])
    ok = single & long16 & (~varies if constant else varies)
    if ok.any():
        big = np.max(np.where(fin, np.abs(F), 0.0), axis=0)
        out[ok] = np.spacing(big[ok].astype(np.float32)).astype(float)
    return out


def _is_short_dyadic(F: np.ndarray) -> np.ndarray:
    m, e = np.frexp(np.where(np.isfinite(F), F, 0.0))
    scaled = m * 2.0**40  # a printed decimal fraction needs all 53 bits
    return scaled == np.round(scaled)


@dataclass(eq=False)
class PseudoTerm:
    """The parts of a ``plan.Term`` the detection reads (used for the adaptive search's pairs)."""

    rows: np.ndarray
    offsets: np.ndarray
    weights: np.ndarray
    h: float
    deriv: int = 1
    kind: str = "central"
    scale: float = 1.0


def _center_estimate(t: Any, Fre: np.ndarray, good: np.ndarray):
    """f(x) from the symmetric pairs of a central term: the midpoints m(k·a) =
    (f(x + k·a·h) + f(x − k·a·h))/2, k = 1..L (L ≤ 3 consecutive multiples of the smallest
    offset a), extrapolated to 0 in (k·a)² (Lagrange; L = 1: m(a) itself, L = 2:
    (4·m(a) − m(2a))/3), which leaves f(x) + O(h^(2L)). Returns (estimate (m,), a·h, 2L,
    ‖weights‖₂), or None when the term has no symmetric pair."""
    if t.kind.split(" ")[0] != "central" or len(t.rows) < 2:
        return None
    offs = np.asarray(t.offsets, dtype=float)
    pos = offs[offs > 0]
    if not pos.size:
        return None
    a = float(np.min(pos))

    def mid(v):
        ip, im = np.flatnonzero(np.isclose(offs, v, rtol=1e-9, atol=0)), \
            np.flatnonzero(np.isclose(offs, -v, rtol=1e-9, atol=0))
        if not len(ip) or not len(im) or not (good[t.rows[ip[0]]] and good[t.rows[im[0]]]):
            return None
        return 0.5 * (Fre[t.rows[ip[0]]] + Fre[t.rows[im[0]]])

    mids = []
    for k in (1, 2, 3):
        mk = mid(k * a)
        if mk is None:
            break
        mids.append(mk)
    if not mids:
        return None
    u = np.array([(k + 1.0) ** 2 for k in range(len(mids))])
    w = np.array([np.prod([(0 - u[i]) / (u[l] - u[i]) for i in range(len(u)) if i != l])
                  for l in range(len(u))])
    est = sum(wl * ml for wl, ml in zip(w, mids))
    low = None
    if len(mids) >= 2:  # the same extrapolation with one level less: its curvature error is
        ul = u[:-1]     # h^(2L-2), so curvature shrinks by far from it to est, noise does not
        wl_ = [np.prod([(0 - ul[i]) / (ul[l] - ul[i]) for i in range(len(ul)) if i != l])
               for l in range(len(ul))]
        low = sum(c * ml for c, ml in zip(wl_, mids[:-1]))
    return est, a * t.h, 2 * len(mids), float(np.linalg.norm(w)), low


def _trimmed_std(v: np.ndarray) -> float:
    """The standard deviation of the values without the one farthest from their median (a
    kink of f at x shifts one input's midpoint; noise shifts them all)."""
    v = np.asarray(v, dtype=float)
    if v.size >= 3:
        v = np.delete(v, int(np.argmax(np.abs(v - np.median(v)))))
    return float(np.std(v, ddof=1)) if v.size >= 2 else 0.0


def detect_noise(F: np.ndarray, ok: np.ndarray, terms: list, D: np.ndarray,
                 center: int | None = None, probe: Any = None,
                 norms: tuple | None = None) -> tuple[np.ndarray, list]:
    """Error floors (r, m) for entries whose stencil values look noisy or printed, and the
    reasons [(entry, output, kind)], from the values of the batch (plus, at most, one probe).

    * printed outputs: an output whose values all have ≤ MAX_PRINTED_DIGITS significant digits
      (and are not all short binary fractions) is quantized with the quantum q of its values'
      last printed digit (the finest among the entry's values, ``decimal_quantum``); each value
      is off by up to q/2, so the entry may be off by Σ|w_i|·q/2 / h^d. Short values also come
      from exact arithmetic on short inputs (a polynomial at x = 0.7 with steps 2^-6), so
      ``probe`` (a callable returning f at a point 0.00074·s_j away in every input, a long
      decimal; or None, and then nothing is taken as printed) confirms it: a printed output
      still prints short there. When the output takes ONE value at every point (a forward
      difference whose f(x + h) prints as f(x)), the probe printing a different short value
      tells a printed output from a flat one; a printed one gets the floor, so 0 is never
      returned as a confident 0 (one extra run, only when the values look printed);
    * random noise along one-sided runs of ≥ 6 equally spaced values from f(x) (the adaptive
      one-sided search): ECnoise on each run; the median level σ̂ of the conclusive runs,
      where it exceeds 10ε·max|F|, gives NOISE_FACTOR·σ̂·(Σw²)^(1/2)/h^d;
    * random noise between central pairs: the estimates of f(x) each term's symmetric pairs
      give (``_center_estimate``: the midpoint (f(x + h e_j) + f(x − h e_j))/2 = f(x) +
      h_j²·f_jj/2, or with pairs at h, 2h (, 3h) its extrapolation f(x) + O(h^4 or h^6)), and f(x) if
      evaluated, should agree across inputs; where they spread beyond 100× the rounding
      4ε·max|F| plus the curvature model K·h_j^k·(max|F|/s_j^k + |D_j|/s_j^(k−1)) (K = 100 for
      k = 2, 30 for k = 4, 3 for k = 6, ``CURVATURE_MARGIN``; the |D| part covers exp(a·x) with a up to
      2K), and — where the estimate used L ≥ 2 pair levels — at least LEVEL_RATIO times
      the spread of the estimates from L − 1 levels (noise spreads both alike, a curvature
      the lower one by far more), and beyond
      SLOPE_SHARE·max_j h_j·|D_j| (and some entry of the output is nonzero: a curvature at a
      root spreads them too), their standard deviation σ̂ (×√2 for midpoints) is taken as the
      noise level and the entries get NOISE_FACTOR·σ̂·(Σw²)^(1/2)/h^d.

    ``norms`` = (Σ|w|·h, (Σw²)^(1/2)·h) overrides the weights' (the adaptive search, whose
    chosen windows are not known here).
    """
    r = len(terms)
    m = F.shape[1] if F.ndim == 2 else 1
    floor = np.zeros((r, m))
    reasons: list = []
    if r == 0 or F.size == 0:
        return floor, reasons
    Fre = np.real(F).reshape(len(F), m)
    good = np.asarray(ok, dtype=bool) & np.all(np.isfinite(Fre), axis=1)
    if not good.any():
        return floor, reasons
    from .fastpath import active_terms, center_estimates, surely_unprinted

    if surely_unprinted(Fre[good]):  # fast path: no output can look printed (issue 15)
        quant = flat = np.zeros(m, dtype=bool)
        qv = None
    else:
        quant = _quantized_outputs(Fre[good])
        flat = _quantized_outputs(Fre[good], constant=True)
        qv, _ = decimal_quantum(Fre)
    if (flat.any() or quant.any()) and probe is not None:
        # short values can come from exact arithmetic on short inputs (a polynomial at x = 0.7
        # with steps 2^-6); the probe sits at a point with long decimals, where only a printed
        # output still prints short (and a printed flat one moves)
        pv = probe()
        if pv is None:
            quant = quant & False
        else:
            pv = np.asarray(pv, dtype=float).reshape(-1)
            short = _quantized_outputs(np.vstack([Fre[good], pv[None, :]]))
            const = Fre[good][0]
            moved = flat & np.isfinite(pv) & (pv != const) & short
            quant = (quant & short) | moved
    elif probe is None:
        quant = quant & False
    active = active_terms(terms, good)  # fastpath.py: the test below, per shape at once
    # [k for k, t in enumerate(terms) if t.kind != "fixed" and not t.kind.startswith("complex")
    #  and len(t.rows) and good[t.rows].all()]

    def sums(k):
        t = terms[k]
        if norms is not None:
            nr = norms[k] if isinstance(norms, list) else norms
            return nr[0] / t.h**t.deriv, nr[1] / t.h**t.deriv
        w = np.asarray(t.weights, dtype=float)
        return float(np.sum(np.abs(w))) / t.h**t.deriv, math.sqrt(float(np.sum(w**2))) / t.h**t.deriv

    # single-precision outputs: every value a float32 (not a short binary fraction), each off
    # by up to half the float32 spacing
    single = _single_quantum(Fre[good])
    single_flat = _single_quantum(Fre[good], constant=True)
    if (single_flat > 0).any() and probe is not None:
        # one float32 value everywhere (steps below its spacing): flat, or single precision?
        pv = probe()
        if pv is not None:
            pv = np.asarray(pv, dtype=float).reshape(-1)
            moved = (single_flat > 0) & np.isfinite(pv) & (pv != Fre[good][0]) & \
                (pv.astype(np.float32).astype(float) == pv)
            single = np.where(moved, single_flat, single)
    for i in np.flatnonzero((single > 0) & ~quant):
        for k in active:
            floor[k, i] = sums(k)[0] * float(single[i]) / 2
            reasons.append((k, i, "printed"))
    for i in np.flatnonzero(quant):
        for k in active:
            t = terms[k]
            qs = qv[t.rows, i]
            qs = qs[qs > 0]
            if not qs.size:
                continue
            floor[k, i] = sums(k)[0] * float(np.min(qs)) / 2
            reasons.append((k, i, "printed"))
    # random noise: the centre estimates of the central terms
    est, info, lows = center_estimates(terms, active, Fre, good)  # _center_estimate per term
    # f(x) joins the estimates only where a stencil uses it: central pairs take f(x) for their
    # curvature (plan.py), and beside two midpoints it would turn every curvature at a
    # minimum (Rosenbrock near (1, 1): f ≈ 1e-10, f'' = 802) into "noise"
    uses_center = center is not None and any(center in terms[k].rows for k in active)
    if uses_center and good[center] and est:
        est.append(Fre[center])
        info.append((None, 0.0, 2, 1.0, math.sqrt(2.0)))  # f(x) itself: σ, as ‖w‖/√2 = 1
        lows.append(Fre[center])
    if len(est) >= 3:
        P = np.array(est)
        big = np.max(np.abs(P), axis=0)
        ent = [i for i, row in enumerate(info) if row[0] is not None]
        Dk = np.abs(np.real(D[[info[i][0] for i in ent]])).reshape(len(ent), m)
        hh = np.array([[info[i][1]] for i in ent])
        pw = np.array([[info[i][2]] for i in ent])
        ss = np.array([[info[i][3]] for i in ent])
        K = np.where(pw == 2, CURVATURE_MARGIN[0], np.where(pw == 4, CURVATURE_MARGIN[1],
                                                             CURVATURE_MARGIN[2]))
        curv_j = K * hh**pw * (big / ss**pw + Dk / ss ** (pw - 1))  # (len(ent), m)
        if len(ent) < len(info):  # f(x) itself: no curvature error
            curv_j = np.vstack([curv_j, np.zeros((1, m))])
        slope = np.max(hh * Dk, axis=0)
        noisy = np.zeros(m, dtype=bool)
        spread = np.zeros(m)
        for i in range(m):
            # the estimates with the least curvature allowance (within 10× of the least, at
            # least 3): a long step on one input must not hide the noise the others show
            order = np.argsort(curv_j[:, i])
            pos = curv_j[:, i][curv_j[:, i] > 0]  # f(x) itself has none: it does not set the bar
            keep = curv_j[:, i] <= 10 * (float(np.min(pos)) if pos.size else 0.0)
            if keep.sum() < 3:
                keep = np.zeros(len(P), dtype=bool)
                keep[order[:3]] = True
            spread[i] = np.std(P[keep, i], ddof=1)
            allowed = 100.0 * 4 * EPS * big[i] + np.max(curv_j[keep, i]) + SLOPE_SHARE * slope[i]
            noisy[i] = (spread[i] > allowed and _trimmed_std(P[keep, i]) > allowed
                        and slope[i] > 0 and not quant[i])
            kept = np.flatnonzero(keep)
            if noisy[i] and all(lows[q] is not None for q in kept):
                # noise spreads the extrapolation of one level less about as much (its weights
                # are smaller); a curvature spreads it by far more (sin(10x): h² against h⁴)
                low_spread = np.std([lows[q][i] for q in kept], ddof=1)
                noisy[i] = spread[i] >= LEVEL_RATIO * low_spread
        if noisy.any():
            # each estimate carries noise σ·‖w‖/√2 (midpoints of values with noise σ)
            gain = float(np.sqrt(np.mean([(row[4] / math.sqrt(2.0)) ** 2 for row in info])))
            sigma = spread / gain
            for i_ in ent:
                k = info[i_][0]
                term = NOISE_FACTOR * sigma * sums(k)[1]
                for i in np.flatnonzero(noisy):
                    if term[i] > floor[k, i]:
                        floor[k, i] = term[i]
                        reasons.append((k, i, "noisy"))
    # random noise along one-sided node runs 0, h, 2h, ... (≥ 6 equally spaced values, the
    # adaptive one-sided search): ECnoise on each run, the median level of the runs that pass
    levels = []
    runs = []
    for k in active:
        t = terms[k]
        if t.kind.split(" ")[0] not in ("forward", "backward"):
            continue
        offs = np.abs(np.asarray(t.offsets, dtype=float))
        order = np.argsort(offs)
        o = offs[order]
        if len(o) < 6 or o[0] != 0:
            continue
        unit = o[1]
        run = [0]
        for q in range(1, len(o)):
            if np.isclose(o[q], len(run) * unit, rtol=1e-9, atol=0):
                run.append(q)
        if len(run) < 6:
            continue
        runs.append(k)
        levels.append([ecnoise_table(Fre[t.rows[order[run]], i]) for i in range(m)])
    if len(runs) >= 2:
        big = np.max(np.abs(Fre[good]), axis=0)
        for i in range(m):
            lv = [lvl[i][0] for lvl in levels if lvl[i][1] == "ok"]
            if len(lv) < 2 or quant[i]:
                continue
            sigma = float(np.median(lv))
            if sigma <= 10 * EPS * big[i]:
                continue
            for k in runs:
                term = NOISE_FACTOR * sigma * sums(k)[1]
                if term > floor[k, i]:
                    floor[k, i] = term
                    reasons.append((k, i, "noisy"))
    return floor, reasons


def noise_error(plan: Any, F: np.ndarray, ok: np.ndarray, D: np.ndarray, E: np.ndarray) -> np.ndarray:
    """``info.error`` with the noise accounted for; called by the derivative functions after
    ``plan.assemble`` (inside ``noise_context``).

    With a given level σ (m,): E + NOISE_FACTOR·σ·(Σ w_i²)^(1/2)/h^d per entry. Without one:
    the floors of ``detect_noise`` (the error grows to at least the floor) and a
    ``NoiseWarning`` naming the entries and telling how to pass ``noise=``."""
    ctx = _LEVEL.get()
    if ctx is None or getattr(plan, "complex_step", False) or F is None or not len(getattr(plan, "terms", [])):
        return E
    mode, level, probe = ctx
    E = np.array(E, dtype=float, copy=True)
    if mode == "given":
        level = np.asarray(level, dtype=float).reshape(-1)
        if level.size not in (1, E.shape[1]):
            raise ArgumentError(f"noise must have one level per output: shape ({E.shape[1]},); got "
                                f"shape {level.shape} (noise = {level!r})")
        level = np.broadcast_to(level, (E.shape[1],))
        for k, t in enumerate(plan.terms):
            if t.kind == "fixed" or not len(t.rows):
                continue
            w = np.asarray(t.weights, dtype=float)
            E[k] = E[k] + NOISE_FACTOR * level * math.sqrt(float(np.sum(w**2))) / t.h**t.deriv
        return E
    wide = None
    if probe is not None:
        steps = np.array([t.h for t in plan.terms])
        wide = lambda: probe(plan.x, steps)  # noqa: E731
    floor, reasons = detect_noise(F, ok, plan.terms, D, plan.center, wide)
    return _apply(E, floor, reasons)


def midpoints_look_noisy(plan: Any, F: np.ndarray, ok: np.ndarray, D: np.ndarray) -> bool:
    """In detection mode (no ``noise=``), True when ``detect_noise`` would take the spread of
    the two-point central midpoints for noise: every entry it reads is a central pair on ±h
    (one level, so its LEVEL_RATIO test cannot run). Such a spread is also what a curvature
    does where f itself is near 0 (a zero-residual minimum: f ≈ 1e-14 with f'' ≈ 800, whose
    midpoints h²·f''/2 differ across inputs by 1e-8), which the size model K·h²·(|f|/s² +
    |f'|/s) cannot tell apart. ``refine.run_partials`` then adds the pairs at ±2h, and the
    two-level test decides (noise spreads both levels' estimates alike, a curvature the
    one-level estimates far more)."""
    ctx = _LEVEL.get()
    if ctx is None or ctx[0] != "detect" or getattr(plan, "complex_step", False):
        return False
    terms = [t for t in plan.terms if t.kind != "fixed" and len(t.rows)]
    if len(terms) < 3 or any(t.kind != "central" or len(t.rows) != 2 for t in terms):
        return False
    _, reasons = detect_noise(F, ok, plan.terms, D, plan.center, None)
    return any(kind == "noisy" for _, _, kind in reasons)


def spread_floor(plan: Any, F: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Error floors (r, m) from what the two-level centre estimates of the central terms (pairs
    at ±h, ±2h: f(x) + O(h⁴), ``_center_estimate``) still spread by, read as noise whatever its
    cause: σ̂ = std/gain as ``detect_noise`` takes it, NOISE_FACTOR·σ̂·(Σw²)^(1/2)/h^d per entry.
    After the second look of ``midpoints_look_noisy`` has cleared the one-level spread as a
    curvature, this keeps what the values' own rounding still does to the entries (a residual
    squared at its root, f ≈ 1e-19, computed from parts of size 10: the rounding of the parts,
    not of f, sets the error); it raises no warning (nothing was found noisy)."""
    from .fastpath import active_terms, center_estimates

    terms = plan.terms
    r, m = len(terms), F.shape[1]
    floor = np.zeros((r, m))
    Fre = np.real(F).reshape(len(F), m)
    good = np.asarray(ok, dtype=bool) & np.all(np.isfinite(Fre), axis=1)
    active = active_terms(terms, good)
    est, info, _ = center_estimates(terms, active, Fre, good)
    if len(est) < 3:
        return floor
    sigma = np.std(np.array(est), axis=0, ddof=1) / float(
        np.sqrt(np.mean([(row[4] / math.sqrt(2.0)) ** 2 for row in info])))
    for k, *_ in info:
        t = terms[k]
        w = np.asarray(t.weights, dtype=float)
        floor[k] = NOISE_FACTOR * sigma * math.sqrt(float(np.sum(w**2))) / t.h**t.deriv
    return floor


def _apply(E: np.ndarray, floor: np.ndarray, reasons: list) -> np.ndarray:
    if reasons:
        grow = floor > E
        E = np.maximum(E, floor)
        if grow.any():
            _warn(reasons, grow, E.shape)
    return E


def adaptive_noise_error(x: np.ndarray, X: np.ndarray, F: np.ndarray, ok: np.ndarray,
                         D: np.ndarray, E: np.ndarray, steps: np.ndarray,
                         one_sided: bool = False, schemes: Any = None, probe: Any = None) -> np.ndarray:
    """``detect_noise`` for step="adaptive" along the coordinates, from the points the search
    evaluated (X, F, recorded by ``RecordingEvaluator``): each coordinate's pairs
    x ± t·h_j·e_j become a pseudo-term at its unit step h_j, and the floors use Σ|w|·h = 1.5
    and (Σw²)^(1/2)·h = 1 (those of the order-4 window on ±h, ±2h, which the search picks most
    often), or for one-sided searches 6.7 and 3.8 (order 3 on 0, h, 2h, 3h) — unless the
    entry's scheme names the nodes of its window ("nodes [t1, t2, ...]"), whose Fornberg
    weights then give both (high-order windows on spread nodes amplify noise far more).
    D, E are (n, m)."""
    ctx = _LEVEL.get()
    if ctx is None or ctx[0] != "detect" or X is None or not len(X):
        return E
    n = x.size
    Fr = np.real(np.asarray(F)).reshape(len(F), -1)
    d = np.asarray(X, dtype=float) - x[None, :]
    nz = d != 0
    single = nz.sum(axis=1) == 1
    centre = np.flatnonzero(nz.sum(axis=1) == 0)
    terms, index = [], []
    for j in range(n):
        if not steps[j] > 0:
            continue
        rows = np.flatnonzero(single & nz[:, j])
        if len(rows) < 2:
            continue
        if one_sided and centre.size:
            rows = np.concatenate([centre[:1], rows])
        offs = d[rows, j] / steps[j]
        terms.append(PseudoTerm(rows=rows, offsets=offs, weights=np.zeros(len(rows)), h=float(steps[j]),
                                kind="forward" if one_sided else "central",
                                scale=float(max(1.0, abs(x[j])))))
        index.append(j)
    if not terms:
        return E
    norms = [_window_norms(schemes[j] if schemes is not None else None, terms[k].h,
                           (6.7, 3.8) if one_sided else (1.5, 1.0)) for k, j in enumerate(index)]
    floor, reasons = detect_noise(Fr, ok, terms, D[index], None, probe, norms=norms)
    full = np.zeros_like(E)
    full[index] = floor
    return _apply(E, full, [(index[k], i, kind) for k, i, kind in reasons])


def _warn(reasons: list, grow: np.ndarray, shape: tuple) -> None:
    kinds = sorted({k for _, _, k in reasons})
    entries = sorted({(k, i) for k, i, _ in reasons if grow[k, i]})
    m = shape[1]
    names = [f"x[{k}]" if m == 1 else f"(f[{i}], x[{k}])" for k, i in entries[:8]]
    more = f" and {len(entries) - 8} more" if len(entries) > 8 else ""
    what = " and ".join({"printed": "quantized (printed with few digits, or single precision)",
                         "noisy": "noisy"}[k] for k in kinds)
    warnings.warn(
        f"f looks {what}: the finite differences of {', '.join(names)}{more} are dominated by it, "
        "and their info.error was raised to match; pass noise= (a level, or noise='estimate' to "
        "measure it with simdiff.noise_level) to get noise-optimal steps",
        NoiseWarning, stacklevel=_caller_level())


def _caller_level() -> int:
    import os
    import sys

    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


# -- reusing the values of the estimate --------------------------------------------------------

class ReuseEvaluator:
    """An evaluator that answers the points an estimate already evaluated from its values and
    hands the others to the wrapped evaluator (one batch): ``noise="estimate"`` reuses f(x)."""

    def __init__(self, ev: Any, points: np.ndarray, values: np.ndarray) -> None:
        self._ev = ev
        self._known = {np.asarray(p, dtype=float).tobytes(): np.asarray(v) for p, v in zip(points, values)
                       if np.all(np.isfinite(v))}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ev, name)

    def evaluate(self, sim: Any, X: Any):
        from .evaluate import Batch

        X = np.asarray(X)
        if X.dtype.kind == "c" or not self._known:
            return self._ev.evaluate(sim, X)
        hit = [self._known.get(np.asarray(p, dtype=float).tobytes()) for p in X]
        miss = [i for i, v in enumerate(hit) if v is None]
        if len(miss) == len(X):
            return self._ev.evaluate(sim, X)
        m = next(v for v in hit if v is not None).shape[-1]
        values = np.full((len(X), m), np.nan)
        okv = np.ones(len(X), dtype=bool)
        failures, nfev, scalar = [], 0, m == 1
        if miss:
            b = self._ev.evaluate(sim, X[miss])
            if b.values.shape[1] != m:
                return self._ev.evaluate(sim, X)
            values = values.astype(b.values.dtype)
            values[miss] = b.values
            okv[miss] = b.ok
            nfev, scalar = b.nfev, b.scalar
            for fl in b.failures:
                try:
                    fl.index = miss[fl.index]
                except Exception:  # noqa: BLE001 - a failure record without an index
                    pass
                failures.append(fl)
        for i, v in enumerate(hit):
            if v is not None:
                values[i] = v
        return Batch(values=values, ok=okv, failures=failures, nfev=nfev, scalar=scalar)


# -- what the derivative functions call ------------------------------------------------------

class NoiseSetup:
    """The noise side of one derivative call (``setup_noise``): the level, the steps, the
    evaluator (answering the estimate's points from its values), and the context in which the
    assembly adds the noise term (``with setup: ...``).

    level : (m,) or None; steps : (n,) or None (None: the caller's own step rule);
    estimate : the NoiseEstimate when noise="estimate"; nfev : runs spent here (the estimate,
    or f(x) for the curvature model)."""

    def __init__(self, level, steps, evaluator, estimate=None, nfev=0, sim=None, bounds=None):
        self.level, self.steps, self.evaluator = level, steps, evaluator
        self.estimate, self.nfev = estimate, nfev
        self._sim, self._bounds = sim, bounds
        # the context (which holds self._probe, so self) is made on entering and dropped on
        # leaving: no reference cycle outlives the call for the collector to find
        self._contexts: list = []

    def _probe(self, x: np.ndarray, steps: np.ndarray):
        """f at x + δ, |δ_j| = PROBE·GENERIC·max(1, |x_j|)·c_j with unequal c_j in [1, 1.5] and
        alternating signs (toward the side of the box with room), one run: tells a printed
        output from a flat one and from exact arithmetic on short inputs (``detect_noise``)."""
        # unequal, alternating moves: a move along x itself leaves a homogeneous f unchanged
        j = np.arange(x.size)
        shape = (1.0 + 0.5 * (((j + 1) * 0.6180339887498949) % 1.0)) * np.where(j % 2, -1.0, 1.0)
        s = np.maximum(1.0, np.abs(x)) * PROBE * GENERIC * np.abs(shape)
        lo, hi = self._bounds if self._bounds is not None else (np.full(x.size, -np.inf),
                                                              np.full(x.size, np.inf))
        first = np.where(shape > 0, hi - x >= s, x - lo >= s)
        other = np.where(shape > 0, x - lo >= s, hi - x >= s)
        delta = np.where(first, np.sign(shape) * s, np.where(other, -np.sign(shape) * s, 0.0))
        if not np.any(delta):
            return None
        try:
            batch = self.evaluator.evaluate(self._sim, (x + delta)[None, :])
        except Exception:  # noqa: BLE001 - a failed probe says nothing; the caller goes on
            return None
        self.nfev += batch.nfev
        return np.real(batch.values[0]) if batch.ok[0] else None

    def __enter__(self):
        ctx = noise_context(self.level, self._probe if self._sim is not None else None)
        ctx.__enter__()
        self._contexts.append(ctx)
        return self

    def __exit__(self, *exc):
        return self._contexts.pop().__exit__(*exc)

    def annotate(self, info: Any) -> Any:
        """Write ``noise`` (the level used, or None) and ``noise_estimate`` into info."""
        info["noise"] = None if self.level is None else self.level.copy()
        if self.estimate is not None:
            info["noise_estimate"] = self.estimate
        info["nfev"] = info.get("nfev", 0) + self.nfev
        return info


def setup_noise(noise: Any, sim: Any, x: np.ndarray, ev: Any, method: str, step: Any = None,
                rel_step: Any = None, deriv: int = 1, scale: Any = None,
                direction: Any = None, bounds: Any = None) -> NoiseSetup:
    """Resolve ``noise=`` for a derivative call at x (the rules of the module docstring).

    noise None: no level, the caller's steps, detection of unannounced noise in the assembly.
    noise a level or a NoiseEstimate: f(x) is evaluated once (one run, through ``ev``; reused
    where the stencil needs f(x)) for the curvature model, unless the estimate carries it.
    noise "estimate": ``noise_level`` first (12 runs when the first spacing works), through the
    same evaluator, along ``direction`` when given (jvp: v), its f(x) and points reused.
    Steps become noise-optimal (``noise_steps`` on the scale max(1, |x_j|), or ``scale``)
    unless the caller gave step= or rel_step=; method "complex" keeps its step (no subtraction).
    """
    check_noise_arg(noise)
    if noise is None:
        return NoiseSetup(None, None, ev, sim=sim, bounds=bounds)
    s = np.maximum(1.0, np.abs(x)) if scale is None else np.asarray(scale, dtype=float)
    est, nfev, fx = None, 0, None
    if isinstance(noise, str):  # "estimate"
        est = noise_level(sim, x, evaluator=ev, direction=direction)
        nfev += est.nfev
        level = est.level.copy()
        fx = est.fx
        ev = ReuseEvaluator(ev, est.points, est.values)
    else:
        level = resolve_noise(noise)
        if isinstance(noise, NoiseEstimate):
            fx = noise.fx
    own_steps = step is not None or rel_step is not None or method == "complex"
    if fx is None and not own_steps:
        batch = ev.evaluate(sim, x[None, :])
        nfev += batch.nfev
        fx = np.real(np.asarray(batch.values[0], dtype=complex)).astype(float)
        if not batch.ok[0] or not np.all(np.isfinite(fx)):
            fx = np.zeros_like(fx)
        ev = ReuseEvaluator(ev, x[None, :], batch.values[:1])
    m = None if fx is None else np.asarray(fx).size
    if m is not None:
        level = resolve_noise(level if level.size != 1 else float(level[0]), m)
    steps = None
    if not own_steps:
        steps = noise_steps(level, fx, s, method, deriv)
    return NoiseSetup(level, steps, ev, est, nfev)


def hessian_noise_error(level: Any, h: np.ndarray) -> np.ndarray:
    """The noise term (n, n) of the 2n² + 1 Hessian scheme: NOISE_FACTOR·σ·(Σw²)^(1/2) with
    weights (1, −2, 1)/h_j² on the diagonal, √6·σ/h_j², and (1, −1, −1, 1)/(4h_i h_j) off it,
    σ/(2h_i h_j)."""
    sig = float(np.max(np.asarray(level, dtype=float)))
    h = np.asarray(h, dtype=float)
    T = NOISE_FACTOR * sig * 0.5 / np.outer(h, h)
    np.fill_diagonal(T, NOISE_FACTOR * sig * math.sqrt(6.0) / h**2)
    return T


class RecordingEvaluator:
    """Hands every batch to the wrapped evaluator and keeps the points and values (the
    adaptive search's, for ``adaptive_noise_error``)."""

    def __init__(self, ev: Any) -> None:
        self._ev = ev
        self.X: list = []
        self.F: list = []
        self.ok: list = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ev, name)

    def evaluate(self, sim: Any, X: Any):
        b = self._ev.evaluate(sim, X)
        self.X.append(np.asarray(X))
        self.F.append(np.asarray(b.values))
        self.ok.append(np.asarray(b.ok))
        return b

    def arrays(self):
        if not self.X or len({f.shape[1] for f in self.F}) != 1:
            return None, None, None
        return np.vstack(self.X), np.vstack(self.F), np.concatenate(self.ok)


def adaptive_with_noise(run: Any, x: np.ndarray, ev: Any, method: str = "central", sim: Any = None,
                        bounds: Any = None):
    """Run the adaptive search ``run(ev)`` -> (D, E, nfev, failures, steps, schemes, scalar)
    through a recording evaluator and apply ``adaptive_noise_error`` to its E (detection mode
    only; D and E are (n, m) per coordinate)."""
    rec = RecordingEvaluator(ev)
    out = list(run(rec))
    X, F, ok = rec.arrays()
    if X is not None and not np.iscomplexobj(X):
        setup = NoiseSetup(None, None, ev, sim=sim, bounds=bounds)
        probe = (lambda: setup._probe(x, None)) if sim is not None else None  # noqa: E731
        with noise_context(None):
            out[1] = adaptive_noise_error(x, X, F, ok, out[0], out[1], np.asarray(out[4], dtype=float),
                                          one_sided=method in ("forward", "backward"),
                                          schemes=out[5], probe=probe)
        out[2] += setup.nfev
    return tuple(out)


def _window_norms(scheme: Any, h: float, default: tuple) -> tuple:
    """(Σ|w|·h, ‖w‖₂·h) of an adaptive window from its scheme text "adaptive central|forward|
    backward, order p, nodes [t1, ...]" (absolute node distances), else ``default``."""
    import re

    if not isinstance(scheme, str):
        return default
    mt = re.search(r"nodes \[([^\]]*)\]", scheme)
    if not mt:
        return default
    try:
        nodes = [float(v) for v in mt.group(1).split(",") if v.strip()]
    except ValueError:
        return default
    if not nodes:
        return default
    from .stencils import fornberg_weights

    if "central" in scheme:
        offs = [-v for v in nodes] + nodes
    elif "backward" in scheme:
        offs = [0.0] + [-v for v in nodes]
    elif "forward" in scheme:
        offs = [0.0] + nodes
    else:
        return default
    try:
        w = np.asarray(fornberg_weights(offs, 1), dtype=float)
    except Exception:  # noqa: BLE001 - nodes that give no stencil
        return default
    if not np.all(np.isfinite(w)):
        return default
    return float(np.sum(np.abs(w))) * h, float(np.linalg.norm(w)) * h
