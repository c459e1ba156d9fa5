"""Gradient checking: is a hand-written derivative right, and if not, where and how is it wrong?

``check_gradient(f, grad, x)`` and ``check_jacobian(f, jac, x)`` compare an analytical derivative
with simdiff's numerical one and return a ``CheckReport``:

* ``relative_error`` = ‖A − N‖ / (‖A‖ + ‖N‖) over the entries that count (``relative_error``;
  0 when both norms are below 1e-10), A analytical, N numerical;
* ``entry_error``, the worst single entry: e_ij = max(|A_ij − N_ij| − κ·E_ij, 0) /
  max(|A_ij| + |N_ij|, δ·T), where E_ij is the numerical side's own error estimate, κ = 4,
  T the root mean square of |A_ij| + |N_ij| and δ = 1e-2. The norm alone hides a 0.1 % error in
  one small entry of a large Jacobian; e_ij does not, and the floor δ·T keeps entries that are
  zero up to rounding from counting as 100 % wrong;
* ``verdict`` from relative_error, as the contract of DESIGN.md has it: "excellent" < 1e-7 ≤
  "ok" < 1e-5 ≤ "suspicious" < 1e-3 ≤ "bug"; ``passed`` when relative_error < ``tol`` (1e-5).
  With ``strict=True`` both are decided on max(relative_error, entry_error) instead, so that a
  0.1 % error confined to one small entry fails too. An entry is *mismatched* when e_ij ≥ tol,
  whatever ``strict`` says: the table and the hints name it even when the norm passes;
* per-entry ``abs_error``, ``rel_error`` (|A−N|/(|A|+|N|)), the numerical ``fd_error`` and ``step``;
  ``worst`` (entries worst first) and ``hints`` (``simdiff.diagnose``: sign, factor, transposed,
  shifted, batch summed, permuted, or the entries named; here: a gradient off by c·x on every
  entry, "proportional", a Jacobian returned as its transpose, kinks, derivatives too small to
  check).

The numerical side is ``simdiff.jacobian`` / ``simdiff.gradient`` with ``NUMERICAL_DEFAULTS``
(central differences with ``step="adaptive"``: a per-coordinate step search with
Richardson-type error estimates, see ``simdiff.adaptive``; errors ~1e-13 on smooth f, six orders
below the "excellent" threshold, at about 8–11 evaluations per input) unless the caller passes
``method``/``order``/``step``/``rel_step``; every other option (``n_jobs``, ``evaluator``,
``bounds``, ``vectorized`` …) goes through unchanged.

Non-smooth points. The one-sided derivatives D⁺ (``method="forward"``) and D⁻ (``"backward"``)
are computed with the same step rule (adaptive; order 4 with fixed steps) for the inputs that
need them (``nonsmooth="suspects"``, the default; "all" for every input, "off" never): those
with a mismatched entry, and those where x_j is exactly 0 or ties another input (where relu,
abs and max have their kinks) if order-2 forward and backward differences there differ by more
than 0.1 % (4 evaluations per such input; a point without zeros or ties pays nothing). The
other inputs are pinned by bounds lower = upper = x_j, which costs no evaluation. Where
|D⁺ − D⁻| > κ·(E⁺ + E⁻) + 1e-6·(|D⁺| + |D⁻|), f has a kink along x_j; if A_ij lies between
D⁻ and D⁺ (a one-sided value or a subgradient), the entry is reported as "f is not smooth at
x[j]", warned about (``NonSmoothWarning``) and kept out of the verdict; otherwise it still
counts. Where D⁺ and D⁻ agree on a mismatched entry but the central value lies beyond both
errors from them, the central stencil straddles a kink near x (relu at x = 1e-5 with a step of
2e-4): their mean replaces it, with the note "f is not smooth near x[j]".

``points=k`` checks at k random points x + spread·max(1, |x|)·u, u uniform in [−1, 1]ⁿ
(perturbations of both signs; ``seed``), and reports the worst point.
"""

from __future__ import annotations

import inspect
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from . import differentiate as _d
from .diagnose import Hint, diagnose
from .errors import ArgumentError, ArgumentTypeError
from .steps import normalize_bounds

__all__ = [
    "NUMERICAL_DEFAULTS",
    "VERDICTS",
    "CheckReport",
    "Entry",
    "Kink",
    "NonSmoothWarning",
    "check_gradient",
    "check_jacobian",
    "relative_error",
    "verdict_for",
]

#: How the numerical side is computed when the caller names no method/order/step.
NUMERICAL_DEFAULTS: dict[str, Any] = {"method": "central", "step": "adaptive"}
#: Verdict names and their upper thresholds on max(relative_error, entry_error).
VERDICTS = (("excellent", 1e-7), ("ok", 1e-5), ("suspicious", 1e-3), ("bug", np.inf))
DEFAULT_TOL = 1e-5
KAPPA = 4.0          # a mismatch must exceed this many finite-difference error estimates
FLOOR = 1e-2         # per-entry denominator floor, relative to the typical entry T
ONE_SIDED_ORDER = 4  # accuracy order of D⁺ and D⁻ for the non-smooth test with fixed steps
NONSMOOTH = ("suspects", "all", "off")
_NUMERIC_OPTIONS = ("method", "order", "step", "rel_step")


class NonSmoothWarning(UserWarning):
    """f is not differentiable at (or within a step of) the checked point in some input."""


def relative_error(a: Any, b: Any) -> float:
    """‖a − b‖ / (‖a‖ + ‖b‖) with 2-norms over all entries; 0.0 when both norms are below 1e-10.

    Symmetric, between 0 (equal) and 1 (opposite, or one of them zero); a factor c between a and
    b gives |c − 1| / (|c| + 1), a sign flip gives 1.
    """
    arrays = []
    for name, v in (("a", a), ("b", b)):
        v = _untensor(v)
        try:
            if np.iscomplexobj(v):
                raise TypeError("complex")
            arrays.append(np.asarray(v, dtype=float))
        except (TypeError, ValueError):
            raise ArgumentTypeError(f"relative_error needs two arrays of real numbers; {name} is "
                                    f"{type(v).__name__} {v!r}") from None
    a, b = arrays
    if a.shape != b.shape:
        raise ArgumentError(f"relative_error needs a and b of the same shape; got {a.shape} and {b.shape}")
    na, nb = float(np.linalg.norm(a.ravel())), float(np.linalg.norm(b.ravel()))
    if na < 1e-10 and nb < 1e-10:
        return 0.0
    return float(np.linalg.norm((a - b).ravel()) / (na + nb))


def _untensor(v: Any) -> Any:
    """A torch tensor (even one that requires grad) as a numpy array; anything else unchanged."""
    if hasattr(v, "detach") and hasattr(v, "numpy"):
        return v.detach().cpu().numpy()
    return v


def verdict_for(err: float) -> str:
    """The verdict name for an error (see ``VERDICTS``); NaN is a "bug"."""
    for name, upper in VERDICTS:
        if err < upper:
            return name
    return "bug"


@dataclass(frozen=True)
class Entry:
    """One entry of the comparison. ``index`` is j (gradient) or (i, j) (Jacobian)."""

    index: Any
    label: str
    analytical: float
    numerical: float
    abs_error: float
    rel_error: float
    fd_error: float
    step: float
    score: float
    status: str  # "mismatch", "ok", "non-smooth", "not computed"


@dataclass(frozen=True)
class Kink:
    """A non-smooth entry: the derivatives from the right and the left differ (``near`` False), or
    they agree while the central difference, whose stencil straddles a kink within its step,
    does not (``near`` True: the one-sided mean replaces the central value)."""

    index: Any
    label: str
    right: float
    left: float
    analytical: float
    excused: bool  # analytical lies between them: kept out of the verdict
    near: bool = False
    central: float = float("nan")
    step: float = float("nan")
    point: int | None = None  # with points=k: which of the points

    @property
    def message(self) -> str:
        where = "" if self.point is None else f"at point {self.point}: "
        return where + self._message()

    def _message(self) -> str:
        if self.near:
            return (f"f is not smooth near {self.label} (at x or within the central "
                    f"difference's step {self.step:.1e}, in f or a higher derivative): the central "
                    f"estimate {self.central + 0.0:.6g} is off, while the derivatives from the "
                    f"right ({self.right + 0.0:.6g}) and the left ({self.left + 0.0:.6g}) agree; "
                    "their mean is compared instead")
        head = (f"f is not smooth at {self.label}: its derivative is {self.right + 0.0:.6g} from "
                f"the right and {self.left + 0.0:.6g} from the left")
        if self.excused:
            return head + (f"; analytical {self.analytical + 0.0:.6g} lies between them (kept out of "
                           "the verdict)")
        return head + (f", and analytical {self.analytical + 0.0:.6g} lies outside them "
                       "(still counted as a mismatch)")

    def __str__(self) -> str:
        return self.message


@dataclass(eq=False)
class CheckReport:
    """The outcome of ``check_gradient`` / ``check_jacobian`` (see the module docstring).

    Arrays have the shape of the derivative: (n,) for a gradient, (m, n) for a Jacobian.
    With ``points=k`` the fields are those of the worst point; ``reports`` holds every point's
    report and ``points`` the points (k, n).
    """

    kind: str
    x: np.ndarray
    numerical: np.ndarray
    analytical: np.ndarray
    abs_error: np.ndarray
    rel_error: np.ndarray
    fd_error: np.ndarray
    step: np.ndarray
    mismatched: np.ndarray
    relative_error: float
    entry_error: float
    tol: float
    entries: list = field(repr=False)
    hints: list = field(default_factory=list)
    nonsmooth: list = field(default_factory=list)
    method: str = ""
    nfev: int = 0
    max_rows: int = 10
    points: np.ndarray | None = field(default=None, repr=False)
    reports: list = field(default_factory=list, repr=False)
    point_index: int = 0
    strict: bool = False
    noise_tol: float = 0.0  # with noise=: the numerical side's own relative error, added to tol

    @property
    def error(self) -> float:
        """What the verdict and ``passed`` are decided on: relative_error, or with ``strict``
        max(relative_error, entry_error)."""
        if self.strict:
            return float(max(self.relative_error, self.entry_error))
        return float(self.relative_error)

    @property
    def passed(self) -> bool:
        return bool(self.error < self.tol + self.noise_tol)

    @property
    def verdict(self) -> str:
        return verdict_for(max(self.error - self.noise_tol, 0.0) if self.noise_tol else self.error)

    @property
    def worst(self) -> list:
        """The entries, worst first (mismatched ones before the others)."""
        return self.entries

    @property
    def worst_entry(self) -> Entry:
        return self.entries[0]

    @property
    def hint(self) -> str | None:
        """The first hint's message, or None when nothing is mismatched."""
        return self.hints[0].message if self.hints else None

    @property
    def kinds(self) -> list[str]:
        return [h.kind for h in self.hints]

    def __bool__(self) -> bool:  # a report is truthy when the check passed
        return self.passed

    def summary(self) -> str:
        word = {"excellent": "EXCELLENT", "ok": "OK", "suspicious": "SUSPICIOUS", "bug": "BUG"}[self.verdict]
        n_bad = int(self.mismatched.sum())
        note = ""
        if n_bad and self.passed:
            note = " (the norm passes; strict=True would fail them)"
        return (f"check_{self.kind}: {word} — relative error {self.relative_error:.2e}, "
                f"worst entry {self.entry_error:.2e} (tol {self.tol:g}"
                + (f" + noise {self.noise_tol:.1e}" if self.noise_tol else "") + "); "
                f"{n_bad} of {self.mismatched.size} entries mismatched{note}")

    def __str__(self) -> str:
        lines = [self.summary()]
        if self.reports and len(self.reports) > 1:
            lines.append(f"checked at {len(self.reports)} points; the worst is point "
                         f"{self.point_index}:")
            for k, r in enumerate(self.reports):
                lines.append(f"  point {k}: {r.verdict:<10} error {r.error:.2e}  x = {_fmt_x(r.x)}")
        lines.append(f"x = {_fmt_x(self.x)}")
        for h in self.hints:
            lines.append(f"hint: {h.message}")
        for k in self.nonsmooth:
            lines.append(f"note: {k.message}")
        lines.append(f"numerical side: {self.method}, {self.nfev} evaluations; 'fd err' is its "
                     "own error estimate; 'rel err' is |a − n| / (|a| + |n|)")
        lines.append(_table(self.entries[: self.max_rows]))
        rest = self.entries[self.max_rows:]
        if rest:
            bad = sum(e.status == "mismatch" for e in rest)
            lines.append(f"  … {len(rest)} more entries" + (f" ({bad} of them mismatched)" if bad
                                                            else ", all within tolerance"))
        return "\n".join(lines)


def _fmt_x(x: np.ndarray) -> str:
    return np.array2string(np.asarray(x), precision=4, separator=", ", threshold=8)


def _table(entries: Sequence[Entry]) -> str:
    head = ("entry", "", "analytical", "numerical", "abs err", "rel err", "fd err", "step")
    rows = [head]
    mark = {"mismatch": "✗", "ok": "", "non-smooth": "kink", "not computed": "n/a"}
    for e in entries:
        rows.append((e.label, mark[e.status], f"{e.analytical: .10e}", f"{e.numerical: .10e}",
                     f"{e.abs_error:.1e}", f"{e.rel_error:.1e}", f"{e.fd_error:.1e}", f"{e.step:.1e}"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(head))]
    return "\n".join("  " + "  ".join(r[c].ljust(widths[c]) if c < 2 else r[c].rjust(widths[c])
                                      for c in range(len(head))).rstrip() for r in rows)


# -- the public checks ---------------------------------------------------------------------

def check_gradient(f: Any, grad: Any, x: Any, *, tol: float = DEFAULT_TOL, points: int | None = None,
                   seed: Any = None, spread: float = 1.0, nonsmooth: str = "suspects",
                   inputs: Sequence[str] | None = None, max_rows: int = 10, strict: bool = False,
                   **opts: Any) -> CheckReport:
    """Compare ``grad(x)`` (shape (n,)) with the numerical gradient of f: R^n -> R at x.

    Parameters
    ----------
    f : callable or Simulator returning a float (or an array of size 1).
    grad : callable x -> ndarray (n,), the analytical gradient; an array is accepted for a
        single-point check.
    x : array_like (n,).
    tol : the error below which the check passes (default 1e-5).
    strict : decide ``passed``/``verdict`` on the worse of relative_error and the worst
        single entry's error (default False: on relative_error alone, the contract).
    points, seed, spread : check at ``points`` random points x + spread·max(1, |x|)·u,
        u ~ U[−1, 1]ⁿ, instead of x alone.
    nonsmooth : "suspects" (one-sided test of the mismatched entries, and of exact zeros and ties
        where forward and backward differences disagree), "all", or "off".
    inputs : names of the entries of x (default: ``f.inputs`` when f has them).
    max_rows : rows of the table ``str(report)`` shows.
    **opts : options of ``simdiff.gradient`` (method, order, step, n_jobs, evaluator, bounds, …);
        ``noise=`` (a level, a NoiseEstimate or "estimate") makes the numerical side noise-aware
        (central differences at noise-optimal steps instead of the adaptive search) and adds the
        noise's relative error to ``tol`` (``noise_tol``).

    Returns
    -------
    CheckReport — see the module docstring for every field and the rules behind them.
    """
    return _check("gradient", f, grad, x, tol=tol, points=points, seed=seed, spread=spread,
                  nonsmooth=nonsmooth, inputs=inputs, outputs=None, max_rows=max_rows, strict=strict,
                  opts=opts)


def check_jacobian(f: Any, jac: Any, x: Any, *, tol: float = DEFAULT_TOL, points: int | None = None,
                   seed: Any = None, spread: float = 1.0, nonsmooth: str = "suspects",
                   inputs: Sequence[str] | None = None, outputs: Sequence[str] | None = None,
                   max_rows: int = 10, strict: bool = False, **opts: Any) -> CheckReport:
    """Compare ``jac(x)`` (shape (m, n)) with the numerical Jacobian of f: R^n -> R^m at x.

    Parameters as for ``check_gradient``; ``outputs`` names the entries of f(x) (default:
    ``f.outputs``). A ``jac`` that returns the (n, m) transpose (m ≠ n) fails with the hint
    "transposed" when its transpose matches, and is refused (``ArgumentError``) otherwise; for
    m = 1 or n = 1 either orientation is accepted.
    """
    return _check("jacobian", f, jac, x, tol=tol, points=points, seed=seed, spread=spread,
                  nonsmooth=nonsmooth, inputs=inputs, outputs=outputs, max_rows=max_rows, strict=strict,
                  opts=opts)


def _check(kind, f, deriv, x, *, tol, points, seed, spread, nonsmooth, inputs, outputs, max_rows,
           strict, opts):
    x = _d.as_point(x)
    arg = "grad" if kind == "gradient" else "jac"
    _check_options(kind, tol, nonsmooth, max_rows, opts)
    if not callable(deriv):
        if points is not None:
            raise ArgumentTypeError(f"{arg} must be a callable x -> ndarray when points= is given "
                                    f"(it is evaluated at every point); got {type(deriv).__name__}")
        if deriv is None or isinstance(deriv, (str, bytes)):
            raise ArgumentTypeError(f"{arg} must be a callable x -> ndarray (the analytical "
                                    f"derivative) or an array of floats; got {type(deriv).__name__} "
                                    f"{deriv!r}")
        fixed = deriv
        deriv = lambda _x: fixed
    inputs = _names(inputs if inputs is not None else getattr(f, "inputs", None), x.size, "inputs")
    out_names = outputs if outputs is not None else getattr(f, "outputs", None)
    ctx = {"kind": kind, "f": f, "deriv": deriv, "arg": arg, "tol": tol, "nonsmooth": nonsmooth,
           "inputs": inputs, "outputs": out_names, "max_rows": max_rows, "opts": opts}
    if not isinstance(strict, (bool, np.bool_)):
        raise ArgumentError(f"strict must be True or False; got {strict!r}")
    if points is None:
        report = replace(_check_at(x, **ctx), strict=bool(strict))
        report.reports = [report]
        report.points = x[None, :]
    else:
        X = _random_points(x, points, seed, spread, opts.get("bounds", getattr(f, "bounds", None)))
        reports = [replace(_check_at(p, **ctx), strict=bool(strict)) for p in X]
        k = int(np.argmax([r.error if np.isfinite(r.error) else np.inf for r in reports]))
        report = replace(reports[k], reports=reports, points=X, point_index=k,
                         nfev=sum(r.nfev for r in reports),
                         nonsmooth=[replace(kk, point=p) for p, r in enumerate(reports)
                                    for kk in r.nonsmooth])
    if report.nonsmooth:
        warnings.warn("; ".join(dict.fromkeys(k.message for k in report.nonsmooth)),
                      NonSmoothWarning, stacklevel=_caller_level())
    return report


def _is_real(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside simdiff (the user's
    call, whether through check_gradient, simdiff.testing or simdiff.torch)."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def _check_options(kind, tol, nonsmooth, max_rows, opts):
    if not _is_real(tol) or not (0 < tol < 1):
        raise ArgumentError(f"tol must be a float in (0, 1); got {tol!r}")
    if nonsmooth not in NONSMOOTH:
        raise ArgumentError(f"nonsmooth must be one of {', '.join(map(repr, NONSMOOTH))}; got {nonsmooth!r}")
    if not isinstance(max_rows, (int, np.integer)) or isinstance(max_rows, (bool, np.bool_)) or max_rows < 1:
        raise ArgumentError(f"max_rows must be a positive int; got {max_rows!r}")
    allowed = [p for p in inspect.signature(_d.jacobian).parameters if p not in ("f", "x", "full_output")]
    own = "tol, strict, points, seed, spread, nonsmooth, inputs, " + (
        "max_rows" if kind == "gradient" else "outputs, max_rows")
    for key in opts:
        if key not in allowed:
            extra = (" (check_gradient's f has one output; outputs= is for check_jacobian)"
                     if key == "outputs" and kind == "gradient" else "")
            raise ArgumentError(f"unknown option {key}={opts[key]!r}{extra}; allowed: {own}, and the "
                                f"options of simdiff.jacobian: {', '.join(allowed)}")


def _names(names, size, what):
    if names is None:
        return None
    if isinstance(names, (str, bytes)) or not np.iterable(names):
        raise ArgumentError(f"{what} must be a sequence of {size} names, one per entry; got "
                            f"{type(names).__name__} {names!r}")
    names = [str(s) for s in names]
    if len(names) != size:
        raise ArgumentError(f"{what} must name every entry: {size} names needed; got {len(names)} ({names!r})")
    return names


def _random_points(x, points, seed, spread, bounds):
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 1:
        raise ArgumentError(f"points must be a positive int (how many random points to check); got {points!r}")
    if not _is_real(spread) or not 0 < spread < np.inf:
        raise ArgumentError(f"spread must be a positive finite float; got {spread!r}")
    try:
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError):
        raise ArgumentError(f"seed must be None, a non-negative int or a numpy Generator; got {seed!r}") from None
    X = x + spread * np.maximum(1.0, np.abs(x)) * rng.uniform(-1.0, 1.0, size=(int(points), x.size))
    box = normalize_bounds(bounds, x)
    if box is not None:
        X = np.clip(X, *box)
    return X


# -- one point -------------------------------------------------------------------------------

def _exact_points(x):
    """The inputs where a kink at x itself is likely: exact zeros (relu, abs) and exact ties
    with another input (max, sort). A random point has none, so the screen costs nothing there."""
    values, counts = np.unique(x, return_counts=True)
    return (x == 0) | np.isin(x, values[counts > 1])


def _screen(kind, f, x, opts, columns, T):
    """Inputs among ``columns`` whose forward and backward differences (order 2, the scheme's
    step: 2 evaluations per input and side, plus f(x)) differ by more than 0.1 %: candidates
    for the adaptive one-sided test. A symmetric kink (|x| at 0 with sign(0) = 0) leaves no
    trace in the central difference, so only this finds it when the check otherwise passes."""
    o = {k: v for k, v in opts.items() if k not in _NUMERIC_OPTIONS}
    o.update(method="forward", order=2)
    Fp, Ep, ip = _numerical(kind, f, x, o, columns=columns)
    o["method"] = "backward"
    Fm, Em, im = _numerical(kind, f, x, o, columns=columns)
    jump = np.abs(Fp - Fm) > 1e-3 * (np.abs(Fp) + np.abs(Fm)) + KAPPA * (Ep + Em) + 1e-9 * T
    return columns & jump.any(axis=0), int(ip.nfev) + int(im.nfev)


def _numerical(kind, f, x, opts, side=None, columns=None):
    """The numerical derivative as (m, n), its error estimate and info, through the public
    functions.

    ``side`` "forward"/"backward" gives the one-sided derivative of the same step rule
    (adaptive) or of order ``ONE_SIDED_ORDER`` (fixed steps); ``columns`` (bool (n,)) limits it
    to those inputs by pinning the others with bounds lower = upper = x_j, which the planner
    treats as fixed coordinates at no cost (their columns come back 0 and are not used).
    """
    o = dict(opts)
    if not any(k in o for k in _NUMERIC_OPTIONS):
        o.update(NUMERICAL_DEFAULTS)
    if side is not None:
        o["method"] = side
        o.pop("order", None)
        if o.get("step") != "adaptive":
            o["order"] = ONE_SIDED_ORDER
    if columns is not None and not columns.all():
        box = normalize_bounds(o.get("bounds", getattr(f, "bounds", None)), x)
        lo, hi = box if box is not None else (np.full(x.size, -np.inf), np.full(x.size, np.inf))
        o["bounds"] = (np.where(columns, lo, x), np.where(columns, hi, x))
    if kind == "gradient":
        g, info = _d.gradient(f, x, full_output=True, **o)
        return g[None, :], np.asarray(info.error, dtype=float)[None, :], info
    J, info = _d.jacobian(f, x, full_output=True, **o)
    return J, np.asarray(info.error, dtype=float), info


def _analytical(deriv, x, arg, kind, m, n):
    """The analytical derivative as (m, n), and whether it came back transposed, (n, m).

    A Jacobian returned as its (n, m) transpose (m ≠ n, both ≥ 2) is compared as returned, read
    in (m, n) order, so that the check fails and says why (``_transposed_hint``); a vector-shaped
    derivative (m = 1 or n = 1) in either orientation holds its entries in the right order.
    """
    out = deriv(x.copy())
    if out is None:
        raise ArgumentTypeError(f"{arg} returned None at x = {_fmt_x(x)}; allowed: an array of floats "
                                f"of shape {(n,) if kind == 'gradient' else (m, n)} (a missing return?)")
    out = _untensor(out)
    if np.iscomplexobj(out):
        raise ArgumentTypeError(f"{arg} must return real values; got a complex array at x = {_fmt_x(x)}")
    try:
        A = np.asarray(out, dtype=float)
    except (TypeError, ValueError):
        raise ArgumentTypeError(f"{arg} must return an array of floats; got {type(out).__name__} {out!r}") from None
    if kind == "gradient":
        if A.shape == (n,) or (A.size == n and A.ndim <= 2 and max(A.shape, default=1) == n):
            return A.reshape(1, n), False
        raise ArgumentError(f"{arg} returned an array of shape {A.shape} at x = {_fmt_x(x)}; allowed: "
                            f"shape ({n},), one entry per input")
    if A.shape == (m, n) or (A.ndim <= 2 and A.size == m * n and 1 in (m, n)
                             and max(A.shape, default=1) == m * n):
        return A.reshape(m, n), False
    if A.shape == (n, m):
        return A.reshape(m, n), True
    raise ArgumentError(f"{arg} returned an array of shape {A.shape} at x = {_fmt_x(x)}; allowed: "
                        f"shape ({m}, {n}) (f has {m} outputs and {n} inputs)")


def _transposed_hint(A_returned, N, E, arg, x):
    """The hint for a Jacobian returned as its (n, m) transpose, or the shape error when even its
    transpose does not match."""
    m, n = N.shape
    T = float(np.sqrt(np.mean((np.abs(A_returned.T) + np.abs(N)) ** 2)))
    close = np.abs(A_returned.T - N) <= 1e-4 * (np.abs(A_returned.T) + np.abs(N)) + 10 * E + 1e-9 * T
    if not close.all():
        raise ArgumentError(f"{arg} returned an array of shape {A_returned.shape} at x = {_fmt_x(x)}; allowed: "
                            f"shape ({m}, {n}) (outputs × inputs) — it looks transposed: return "
                            f"J[i, j] = ∂f_i/∂x_j, not its transpose")
    return Hint("transposed", f"transposed: {arg} returned shape ({n}, {m}) (inputs × outputs) for "
                f"f with {m} outputs and {n} inputs, and its transpose equals the numerical Jacobian: "
                f"return J[i, j] = ∂f_i/∂x_j, shape ({m}, {n}) (the table reads the array as returned, "
                f"in ({m}, {n}) order)", tuple((i, j) for i in range(m) for j in range(n)))


def _scores(A, N, E, use, tol):
    """Per-entry scores e_ij (module docstring) and the typical entry size T."""
    scale = np.abs(A) + np.abs(N)
    T = float(np.sqrt(np.mean(scale[use] ** 2))) if use.any() else 0.0
    if np.linalg.norm(A[use]) < 1e-10 and np.linalg.norm(N[use]) < 1e-10 and np.isfinite(A[use]).all():
        return np.zeros_like(A), T
    excess = np.maximum(np.abs(A - N) - KAPPA * E, 0.0)
    score = excess / np.maximum(scale, max(FLOOR * T, 1e-10))
    score = np.where(np.isfinite(A), score, np.inf)
    return np.where(use, score, 0.0), T


def _check_at(x, *, kind, f, deriv, arg, tol, nonsmooth, inputs, outputs, max_rows, opts):
    N, E, info = _numerical(kind, f, x, opts)
    m, n = N.shape
    out_names = None if kind == "gradient" else _names(outputs, m, "outputs")
    A, transposed = _analytical(deriv, x, arg, kind, m, n)
    layout_hint = _transposed_hint(A.reshape(n, m), N, E, arg, x) if transposed else None
    steps = np.broadcast_to(np.asarray(info.step, dtype=float), (n,))
    nfev = int(info.nfev)

    def in_label(j):
        return f"x[{j}]" + (f" '{inputs[j]}'" if inputs else "")

    def out_label(i):
        return f"f[{i}]" + (f" '{out_names[i]}'" if out_names else "")

    def entry_label(ij):
        i, j = ij
        if kind == "gradient":
            return in_label(j)
        if inputs or out_names:
            return f"J[{i},{j}] ∂{out_names[i] if out_names else f'f[{i}]'}/∂{inputs[j] if inputs else f'x[{j}]'}"
        return f"J[{i},{j}]"

    pinned = _pinned(f, x, opts)  # lower == upper: no step fits, the derivative there is not computed
    computed = np.isfinite(N) & ~pinned[None, :]
    use = computed.copy()
    score, T = _scores(A, N, E, use, tol)
    mism = score >= tol
    kinks: list[Kink] = []
    excused = np.zeros_like(mism)
    screened = np.zeros(n, dtype=bool)
    if nonsmooth == "suspects":
        probe = _exact_points(x) & ~mism.any(axis=0)
        if probe.any():
            screened, screen_nfev = _screen(kind, f, x, opts, probe, T)
            nfev += screen_nfev
    if nonsmooth == "all" or (nonsmooth == "suspects" and (mism.any() or screened.any())):
        cols = None if nonsmooth == "all" else mism.any(axis=0) | screened
        Fp, Ep, ip = _numerical(kind, f, x, opts, side="forward", columns=cols)
        Fm, Em, im = _numerical(kind, f, x, opts, side="backward", columns=cols)
        nfev += int(ip.nfev) + int(im.nfev)
        jump = np.abs(Fp - Fm)
        size = np.abs(Fp) + np.abs(Fm)
        kink = computed & (jump > KAPPA * (Ep + Em) + 1e-6 * size + 1e-9 * T)
        if nonsmooth == "suspects":
            kink &= mism | screened[None, :]
        lo, hi = np.minimum(Fp, Fm), np.maximum(Fp, Fm)
        slack = KAPPA * (Ep + Em) + tol * size + 1e-9 * T
        between = (A >= lo - slack) & (A <= hi + slack)
        excused = kink & between
        # A kink within the central step but not at x: D⁺ and D⁻ agree, the central value not.
        mid, e_mid = 0.5 * (Fp + Fm), np.maximum(Ep, Em) + 0.5 * jump
        off = np.abs(N - mid) > KAPPA * (E + e_mid) + 1e-6 * (np.abs(N) + np.abs(mid)) + 1e-9 * T
        near = computed & mism & ~kink & off & np.isfinite(mid)
        central = N.copy()
        if near.any():
            N, E = np.where(near, mid, N), np.where(near, e_mid, E)
        for i, j in np.argwhere(kink | near):
            label = in_label(j) + ("" if kind == "gradient" else f" (output {out_label(i)})")
            kinks.append(Kink(index=int(j) if kind == "gradient" else (int(i), int(j)), label=label,
                              right=float(Fp[i, j]), left=float(Fm[i, j]), analytical=float(A[i, j]),
                              excused=bool(excused[i, j]), near=bool(near[i, j]),
                              central=float(central[i, j]), step=float(steps[j])))
        if excused.any() or near.any():
            use = computed & ~excused
            score, T = _scores(A, N, E, use, tol)
            mism = score >= tol
    rel_err_total = relative_error(A[use], N[use]) if np.isfinite(A[use]).all() else np.inf
    entry_error = float(score.max(initial=0.0))
    d = np.abs(A - N)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(np.abs(A) + np.abs(N) < 1e-10, 0.0, d / (np.abs(A) + np.abs(N)))
    hints = diagnose(A, N, E, mism, use, entry_label, in_label, out_label, kind == "gradient") if mism.any() else []
    if layout_hint is not None:  # the layout explains it all; what diagnose sees in it is noise
        hints = [layout_hint]
    elif hints and hints[0].kind == "entries" and kind == "gradient":
        linear = _proportional_hint(A[0], N[0], E[0], use[0], x, mism[0])
        if linear is not None:
            hints = [linear]
    counted = [k for k in kinks if not (k.excused or k.near)]
    kinked = {k.index if kind == "jacobian" else (0, k.index) for k in counted}
    smooth_hints = [Hint("nonsmooth", k.message, (k.index,)) for k in counted]
    if kinked and {tuple(map(int, ij)) for ij in np.argwhere(mism)} <= kinked:
        hints = smooth_hints + hints  # every mismatch sits on a kink: say that first
    else:
        hints += smooth_hints
    if pinned.any():
        which = ", ".join(f"{in_label(j)} = {x[j]:g}" for j in np.flatnonzero(pinned))
        hints.append(Hint("pinned", f"pinned by the bounds (lower = upper): {which}; the derivative "
                          "with respect to it is not computed (the numerical side has 0 there) and "
                          "is not checked; widen its bounds to check it",
                          tuple((0, int(j)) if kind == "gradient" else (i, int(j))
                                for j in np.flatnonzero(pinned) for i in range(m))))
    tiny = _tiny_hint(A, N, E, use, tol, entry_label)
    if tiny is not None:
        hints.append(tiny)
    if rel_err_total >= tol and not mism.any() and np.isfinite(rel_err_total):
        hints.append(_resolution_hint(A, N, E, use, rel_err_total))
    entries = _entries(A, N, d, rel, E, steps, score, mism, excused, computed, entry_label, kind)
    shape = (n,) if kind == "gradient" else (m, n)
    method = _describe_method(info, opts)
    return CheckReport(
        kind=kind, x=x, numerical=N.reshape(shape), analytical=A.reshape(shape),
        abs_error=d.reshape(shape), rel_error=rel.reshape(shape), fd_error=E.reshape(shape),
        step=steps.copy(), mismatched=mism.reshape(shape), relative_error=float(rel_err_total),
        entry_error=entry_error, tol=tol, entries=entries, hints=hints, nonsmooth=kinks,
        method=method, nfev=nfev, max_rows=max_rows,
        noise_tol=_noise_tol(A, N, E, use, opts))


def _noise_tol(A, N, E, use, opts):
    """With ``noise=`` given: ‖E‖ / (‖A‖ + ‖N‖) over the entries that count, the relative error
    the noise alone explains (E holds the 3σ noise term, ``simdiff.noise``); 0 otherwise. It is
    added to ``tol`` and taken off the error before the verdict, so a correct gradient of a noisy
    f passes and an error beyond the noise still fails."""
    if opts.get("noise") is None or not use.any():
        return 0.0
    den = float(np.linalg.norm(A[use]) + np.linalg.norm(N[use]))
    return float(np.linalg.norm(E[use]) / den) if den > 0 and np.isfinite(E[use]).all() else 0.0


def _pinned(f, x, opts) -> np.ndarray:
    """(n,) True where the bounds the check passes on (or f's own) pin x_j: lower == upper."""
    try:
        box = normalize_bounds(opts.get("bounds", getattr(f, "bounds", None)), x)
    except Exception:  # noqa: BLE001 - bad bounds are the numerical side's error to raise
        box = None
    return np.zeros(x.size, dtype=bool) if box is None else np.asarray(box[0] == box[1])


def _proportional_hint(a, nu, e, use, x, mism):
    """analytical − numerical = c·x on every entry (a gradient): the trace of a term c·x_j, an L2
    penalty's λ·x, left out, doubled or with its sign flipped. Tried only when the mismatch has
    no simpler pattern."""
    d, xs = np.where(use, a - nu, 0.0), np.where(use, x, 0.0)
    if mism.sum() < 2 or not xs.any():
        return None
    c = float(d @ xs / (xs @ xs))
    T = float(np.sqrt(np.mean((np.abs(a) + np.abs(nu))[use] ** 2)))
    fits = np.abs(d - c * xs) <= 1e-4 * (np.abs(a) + np.abs(nu)) + 10 * e + 1e-9 * T
    if not fits[use].all() or abs(c) * np.abs(xs).max() <= 1e-6 * T:
        return None
    return Hint("proportional", f"analytical − numerical = {c:.6g}·x on every entry: a term "
                f"{abs(c):.6g}·x_j in the gradient (an L2 penalty's λ·x?) left out, doubled or with "
                "the wrong sign", tuple((0, int(j)) for j in np.flatnonzero(mism)))


def _resolution_hint(A, N, E, use, err):
    """The norm fails but no entry differs by more than κ of the numerical side's own error: the
    relative error is finite-difference error (rounding of a large |f|, or noise), not a bug."""
    fd = float(np.linalg.norm(E[use]) / max(np.linalg.norm(A[use]) + np.linalg.norm(N[use]), 1e-300))
    return Hint("resolution", f"no entry differs from the numerical one by more than {KAPPA:g}× the "
                f"numerical side's own error estimate (together {fd:.1e} relative, against the "
                f"relative error {err:.1e}): the check cannot resolve this f to the tolerance "
                "(rounding of a large |f| or noise in its values), so the verdict reflects "
                "finite-difference error rather than a bug; subtract f's large constant part, "
                "or use method='complex' if f allows it", ())


def _tiny_hint(A, N, E, use, tol, entry_label):
    """Both derivatives below 1e-10 in norm, where relative_error is 0 by definition, yet
    different relative to their own size: say so rather than pass in silence."""
    na, nn = np.linalg.norm(A[use]), np.linalg.norm(N[use])
    if not (na < 1e-10 and nn < 1e-10) or not np.isfinite(A[use]).all():
        return None
    scale = np.abs(A) + np.abs(N)
    T = float(np.sqrt(np.mean(scale[use] ** 2))) if use.any() else 0.0
    if T == 0.0:
        return None
    score = np.where(use, np.maximum(np.abs(A - N) - KAPPA * E, 0.0) / np.maximum(scale, FLOOR * T), 0.0)
    if score.max() < tol:
        return None
    worst = np.unravel_index(int(np.argmax(score)), score.shape)
    return Hint("tiny", f"both derivatives are below 1e-10 in norm (analytical {na:.2e}, numerical "
                f"{nn:.2e}), where relative_error is 0 by definition and the check cannot fail; "
                f"relative to their own size they differ by up to {score.max():.2g} (worst "
                f"{entry_label(tuple(map(int, worst)))}): rescale f to check them",
                tuple(map(tuple, np.argwhere(score >= tol).tolist())))


def _describe_method(info, opts):
    o = opts if any(k in opts for k in _NUMERIC_OPTIONS) else NUMERICAL_DEFAULTS
    text = str(info.get("method", o.get("method", "")))
    if o.get("order") is not None:
        text += f" order {o['order']}"
    if isinstance(o.get("step"), str):
        text += f", step={o['step']}"
    return text


def _entries(A, N, d, rel, E, steps, score, mism, excused, computed, entry_label, kind):
    n = A.shape[1]
    # mismatched entries first, then by absolute error (what each adds to ‖A − N‖)
    order = np.lexsort((-np.nan_to_num(d, nan=np.inf).ravel(), ~mism.ravel()))
    out = []
    for flat in order:
        i, j = divmod(int(flat), n)
        status = ("mismatch" if mism[i, j] else "non-smooth" if excused[i, j]
                  else "not computed" if not computed[i, j] else "ok")
        out.append(Entry(index=j if kind == "gradient" else (i, j), label=entry_label((i, j)),
                         analytical=float(A[i, j]), numerical=float(N[i, j]), abs_error=float(d[i, j]),
                         rel_error=float(rel[i, j]), fd_error=float(E[i, j]), step=float(steps[j]),
                         score=float(score[i, j]), status=status))
    return out
