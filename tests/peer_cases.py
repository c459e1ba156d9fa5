"""The peers' public test cases as facts: function, point, closed-form derivative, tolerance.

Ported (re-written, not copied) from the public test suites of

- numdifftools (``tests/test_numdifftools.py``, ``test_example_functions.py``, ``test_nd_scipy.py``,
  ``test_invalid_outputs.py``, ``test_jacobian_complex_validation.py``, ``hamiltonian.py``),
- scipy ``optimize/tests/test__numdiff.py`` (``approx_derivative``: dense, bounds, tight bounds,
  bound switches, float32/float16 outputs, sparse with alternating bounds, linear operator,
  sign of absolute steps, ``check_derivative``),
- scipy ``differentiate/tests/test_differentiate.py`` (``derivative``, ``jacobian``,
  ``hessian``: the distribution-CDF accuracy sweep, the Wikipedia Jacobians, Rosenbrock),

plus the reproductions of issue 9 (complex-valued f, float32, aliasing at 1e8, outputs of
different scales, critical points, SI units, poles, NaN outputs, Lennard-Jones).

Each :class:`Case` holds the function (written here), the point, the derivative in closed form
(never a finite-difference result), the peer's own tolerance per method family, and flags.
Tolerances follow the peer's assertion: ``numpy.testing.assert_allclose`` defaults to
rtol = 1e-7, scipy's ``xp_assert_close`` to rtol = 4·√ε of the dtype; ``check_derivative``
bounds max|ΔJ| / max(1, |J|) (``combine="max"``); numdifftools' cos sweep adds 100× its own
error estimate (``est=100``: applied to the estimate of whichever library is measured).
Where a peer asserts with a tolerance the issue does not ask simdiff to meet (an xfail in the
peer, an exact-order stencil), the case says so in ``tol_required=False`` and ``why``.

``run(case, method)`` performs one run through the public simdiff API and returns a
:class:`Run`; ``judge(case, method, run)`` scores it entry by entry (shared by
``tests/test_peer_cases.py`` and ``benchmarks/honesty.py``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

EPS = float(np.finfo(float).eps)
NP_RTOL = 1e-7                                       # numpy.testing.assert_allclose default
SCIPY_RTOL = 4 * math.sqrt(EPS)                      # scipy xp_assert_close default, float64
SCIPY_RTOL32 = 4 * math.sqrt(float(np.finfo(np.float32).eps))
DEC7 = 1.5e-7                                        # assert_array_almost_equal(decimal=7)
#: The expected values are float64 evaluations of closed forms: their own rounding.
REF_RTOL = 4 * EPS

#: The method names of the runs; "adaptive" is step="adaptive" with the central method.
METHODS = ("central", "forward", "five-point", "adaptive", "complex")
FAMILY = {"central": "central", "five-point": "central", "adaptive": "central",
          "forward": "forward", "backward": "forward", "complex": "complex"}


@dataclass(frozen=True)
class Tol:
    """A peer's tolerance: |value − expected| ≤ atol + rtol·|expected| (+ est·estimate).

    combine="max" takes max(atol, rtol·|expected|) instead of the sum (``check_derivative``).
    rtol and atol may be arrays of the shape of the expected value.
    """

    rtol: Any = NP_RTOL
    atol: Any = 0.0
    combine: str = "sum"
    est: float = 0.0

    def bound(self, expected: np.ndarray, estimate: Any = 0.0) -> np.ndarray:
        a = np.abs(expected)
        base = (np.maximum(self.atol, self.rtol * a) if self.combine == "max"
                else self.atol + self.rtol * a)
        if self.est:
            base = base + self.est * np.nan_to_num(np.abs(estimate), nan=0.0, posinf=np.inf)
        return base


@dataclass
class Case:
    """One ported fact. ``kind``: derivative, gradient, jacobian, hessian or jvp."""

    id: str
    kind: str
    f: Callable
    x: Any
    expected: Any
    tol: dict = field(default_factory=dict)      # family ("central", "forward", "complex", "all") -> Tol
    v: Any = None                                # jvp direction
    opts: dict = field(default_factory=dict)     # bounds, step, sparsity, vectorized
    flags: frozenset = frozenset()
    complex_ok: bool = False                     # the complex step applies (f analytic, complex-safe)
    methods: tuple | None = None                 # only these methods (one-sided cases)
    raises: tuple = ()                           # methods that must raise a SimdiffError
    tol_required: bool = True
    why: str = ""
    ref_rtol: float = REF_RTOL

    def tol_for(self, method: str) -> Tol | None:
        fam = FAMILY[method]
        if fam in self.tol:
            return self.tol[fam]
        if "all" in self.tol:
            return self.tol["all"]
        if fam == "complex":
            return self.tol.get("central")
        return None


def methods_for(case: Case) -> tuple:
    """The methods a case runs with: the peer's applicable ones."""
    if case.methods is not None:
        return case.methods
    if case.kind == "hessian":
        return ("central", "adaptive")
    ms = ["central", "forward", "five-point", "adaptive"]
    if case.complex_ok or "complex" in case.raises:
        ms.append("complex")
    return tuple(ms)


# ----------------------------------------------------------------------------------- running

@dataclass
class Run:
    value: Any = None
    error: Any = None
    warned: list = field(default_factory=list)   # messages of SimdiffWarnings
    exc: BaseException | None = None
    info: Any = None


def _is_simdiff_warning(category: type) -> bool:
    import simdiff as sd
    base = getattr(sd, "SimdiffWarning", None)
    if base is not None and issubclass(category, base):
        return True
    return any(c.__name__ == "SimdiffWarning" for c in category.__mro__)


def call_kwargs(case: Case, method: str) -> dict:
    kw = dict(case.opts)
    if method == "adaptive":
        kw.pop("step", None)
        kw.pop("rel_step", None)
        kw["step"] = "adaptive"
    else:
        kw["method"] = method
    return kw


def run(case: Case, method: str) -> Run:
    """One run of simdiff on the case with ``method``, warnings recorded."""
    import simdiff as sd
    fn = {"derivative": sd.derivative, "gradient": sd.gradient, "jacobian": sd.jacobian,
          "hessian": sd.hessian, "jvp": sd.jvp}[case.kind]
    kw = call_kwargs(case, method)
    if case.kind == "hessian":
        kw.pop("method", None)
    args = (case.f, case.x) if case.kind != "jvp" else (case.f, case.x, case.v)
    out = Run()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            value, info = fn(*args, full_output=True, **kw)
            out.value, out.error, out.info = value, info.error, info
        except Exception as e:  # noqa: BLE001 - recorded, judged by the caller
            out.exc = e
    out.warned = [str(w.message) for w in rec if _is_simdiff_warning(w.category)]
    return out


@dataclass
class Verdict:
    """Entry-wise judgement of one run (arrays of the expected shape)."""

    true_err: np.ndarray
    estimate: np.ndarray
    covered: np.ndarray       # |value − expected| ≤ estimate + floor
    flagged: np.ndarray       # estimate inf/NaN, or a SimdiffWarning was emitted
    honest: np.ndarray        # covered or flagged
    within: np.ndarray | None  # within the peer's tolerance (None: no tolerance for the family)
    silent_wrong: np.ndarray | None  # outside the tolerance while the estimate claims it is inside


def _arr(a: Any) -> np.ndarray:
    if hasattr(a, "toarray"):
        a = a.toarray()
    return np.asarray(a)


def judge(case: Case, method: str, r: Run) -> Verdict:
    exp = _arr(case.expected)
    val = _arr(r.value)
    est = np.abs(_arr(r.error)).astype(float)
    if val.shape != exp.shape:
        val = np.reshape(val, exp.shape)
        est = np.reshape(est, exp.shape)
    est = np.broadcast_to(est, exp.shape)
    nan_exp = np.isnan(exp)
    with np.errstate(invalid="ignore", over="ignore"):
        true_err = np.abs(val.astype(complex) - np.where(nan_exp, 0, exp)).real
        true_err = np.where(nan_exp, np.where(np.isnan(val), 0.0, np.inf), true_err)
        true_err = np.where(np.isnan(true_err), np.inf, true_err)
        floor = 1e-300 + case.ref_rtol * np.abs(np.where(nan_exp, 0, exp))
        covered = (true_err <= est + floor) | (nan_exp & (np.isnan(val) | ~np.isfinite(est)))
    flagged = ~np.isfinite(est) | bool(r.warned)
    honest = covered | flagged
    tol = case.tol_for(method)
    within = silent = None
    if tol is not None:
        b = tol.bound(np.where(nan_exp, 0, exp), est)
        within = (true_err <= b + floor) | (nan_exp & np.isnan(val))
        claims_fine = np.isfinite(est) & (est <= b + floor) & (not r.warned)
        silent = ~within & claims_fine
    return Verdict(true_err, est, covered, flagged, honest, within, silent)


# ------------------------------------------------------------------------------ the cases

CASES: list[Case] = []


def add(**kw) -> Case:
    c = Case(**kw)
    c.expected = np.asarray(c.expected) if not np.isscalar(c.expected) else c.expected
    CASES.append(c)
    return c


# ---------------------------------------------------------------- numdifftools

# Elementary functions of numdifftools' example_functions at x = 0.5: first derivative
# (assert_array_almost_equal, decimal 7) and second derivative (decimal ≥ 4 for central).
_LN2, _LN10 = math.log(2.0), math.log(10.0)
ELEMENTARY = {
    # name: (f, f', f'')
    "cos": (np.cos, lambda x: -np.sin(x), lambda x: -np.cos(x)),
    "sin": (np.sin, np.cos, lambda x: -np.sin(x)),
    "tan": (np.tan, lambda x: 1 / np.cos(x) ** 2, lambda x: 2 * np.tan(x) / np.cos(x) ** 2),
    "cosh": (np.cosh, np.sinh, np.cosh),
    "sinh": (np.sinh, np.cosh, np.sinh),
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2,
             lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    "arcsinh": (np.arcsinh, lambda x: 1 / np.sqrt(1 + x * x), lambda x: -x / (1 + x * x) ** 1.5),
    "exp": (np.exp, np.exp, np.exp),
    "expm1": (np.expm1, np.exp, np.exp),
    "exp2": (np.exp2, lambda x: np.exp2(x) * _LN2, lambda x: np.exp2(x) * _LN2 ** 2),
    "square": (np.square, lambda x: 2 * x, lambda x: 2.0 + 0 * x),
    "sqrt": (np.sqrt, lambda x: 0.5 / np.sqrt(x), lambda x: -0.25 * x ** -1.5),
    "log": (np.log, lambda x: 1 / x, lambda x: -1 / x ** 2),
    "log1p": (np.log1p, lambda x: 1 / (1 + x), lambda x: -1 / (1 + x) ** 2),
    "log10": (np.log10, lambda x: 1 / (x * _LN10), lambda x: -1 / (x * x * _LN10)),
    "log2": (np.log2, lambda x: 1 / (x * _LN2), lambda x: -1 / (x * x * _LN2)),
    "arccos": (np.arccos, lambda x: -1 / np.sqrt(1 - x * x), lambda x: -x / (1 - x * x) ** 1.5),
    "arcsin": (np.arcsin, lambda x: 1 / np.sqrt(1 - x * x), lambda x: x / (1 - x * x) ** 1.5),
    "arctan": (np.arctan, lambda x: 1 / (1 + x * x), lambda x: -2 * x / (1 + x * x) ** 2),
}


class Of1:
    """g(x) = f(x[0]) for the Hessian of a function of one variable (picklable)."""

    def __init__(self, f):
        self.f = f

    def __call__(self, x):
        return self.f(x[0])


for _name, (_f, _d1, _d2) in ELEMENTARY.items():
    add(id=f"nd-example-{_name}-d1", kind="derivative", f=_f, x=0.5, expected=_d1(0.5),
        tol={"all": Tol(rtol=0.0, atol=DEC7)}, complex_ok=True)
    add(id=f"nd-example-{_name}-d2", kind="hessian", f=Of1(_f), x=np.array([0.5]),
        expected=np.array([[_d2(0.5)]]), tol={"all": Tol(rtol=0.0, atol=1.5e-4)},
        why="numdifftools tightens the decimal with its own estimate; its floor (4) is used")

# Derivatives of cos over [0, 10] (a hypothesis sweep: its pinned examples and a grid);
# assert_allclose(rtol=1e-6, atol=100·estimate + 1e-14).
for _k, _x in enumerate([7.6564547238847105, 8.9428143931508, 2.2204460492503134e-14,
                         0.0, 1.0, 2.5, 5.0, 10.0]):
    add(id=f"nd-derivative_of_cos_x-{_k}-d1", kind="derivative", f=np.cos, x=_x,
        expected=-np.sin(_x), tol={"all": Tol(rtol=1e-6, atol=1e-14, est=100.0)}, complex_ok=True)
    add(id=f"nd-derivative_of_cos_x-{_k}-d2", kind="hessian", f=Of1(np.cos), x=np.array([_x]),
        expected=np.array([[-np.cos(_x)]]), tol={"all": Tol(rtol=1e-6, atol=1e-14, est=100.0)})

# cos at π/2, first and second derivative, atol 1e-4.
add(id="nd-high_order_cos-d1", kind="derivative", f=np.cos, x=np.pi / 2, expected=-1.0,
    tol={"all": Tol(rtol=0.0, atol=1e-4)}, complex_ok=True)
add(id="nd-high_order_cos-d2", kind="hessian", f=Of1(np.cos), x=np.array([np.pi / 2]),
    expected=np.array([[-np.cos(np.pi / 2)]]), tol={"all": Tol(rtol=0.0, atol=1e-4)})


def _cube2(x):  # b·a·x³ with a = 1, b = 2
    return 2.0 * x * x * x


def _cube2_vec(x):
    return 2.0 * x[0] ** 3


for _x, _d, _dd in ((0.0, 0.0, 0.0), (1.0, 6.0, 12.0)):
    _t = Tol(rtol=NP_RTOL, atol=1e-13 if _x == 0 else 0.0)
    add(id=f"nd-additional_parameters-derivative-{_x:g}", kind="derivative", f=_cube2, x=_x,
        expected=_d, tol={"all": _t}, complex_ok=True, flags=frozenset({"critical"} if _x == 0 else ()))
    add(id=f"nd-additional_parameters-gradient-{_x:g}", kind="gradient", f=_cube2_vec,
        x=np.array([_x]), expected=np.array([_d]), tol={"all": _t}, complex_ok=True)
    add(id=f"nd-additional_parameters-hessian-{_x:g}", kind="hessian", f=_cube2_vec,
        x=np.array([_x]), expected=np.array([[_dd]]), tol={"all": Tol(rtol=NP_RTOL, atol=1e-13)})

add(id="nd-derivative_cube", kind="derivative", f=lambda x: x * x * x, x=2.0, expected=12.0,
    tol={"all": Tol(rtol=1e-8)}, complex_ok=True)
add(id="nd-derivative_exp", kind="derivative", f=np.exp, x=0.0, expected=1.0,
    tol={"all": Tol(rtol=1e-8)}, complex_ok=True)
for _k, _x in enumerate(np.linspace(0, 2 * np.pi, 13)):
    add(id=f"nd-derivative_sin-{_k}", kind="derivative", f=np.sin, x=float(_x),
        expected=np.cos(_x), tol={"all": Tol(rtol=NP_RTOL, atol=1e-8)}, complex_ok=True)
add(id="nd-backward_sinh", kind="derivative", f=np.sinh, x=0.0, expected=1.0,
    tol={"all": Tol()}, complex_ok=True)
add(id="nd-log_at_1e-3", kind="derivative", f=np.log, x=1e-3, expected=1e3,
    tol={"all": Tol()}, complex_ok=True, flags=frozenset({"issue", "small-x"}))


def _powers(x):
    return np.array([x[0], x[0] ** 2, x[0] ** 3])


for _k, _v in enumerate([-1000.0, -17.25, 0.0, 0.5, 3.0, 1000.0]):
    add(id=f"nd-jacobian_scalar_to_vector-{_k}", kind="jacobian", f=_powers, x=np.array([_v]),
        expected=np.array([[1.0], [2 * _v], [3 * _v * _v]]),
        tol={"all": Tol(rtol=1e-3, atol=1e-6)}, complex_ok=True)
for _k, _v in enumerate([-1e53, -7.5, 1.0, 1e53]):
    add(id=f"nd_scipy-jacobian_scalar_to_vector-{_k}", kind="jacobian", f=_powers,
        x=np.array([_v]), expected=np.array([[1.0], [2 * _v], [3 * _v * _v]]),
        tol={"all": Tol(rtol=NP_RTOL, atol=1e-6)}, complex_ok=True)


def _xyz_exp(x):
    return x[0] * x[1] * x[2] + np.exp(x[0]) * x[1]


_x = np.array([3.0, 5.0, 7.0])
add(id="nd-jacobian_on_scalar_function", kind="gradient", f=_xyz_exp, x=_x,
    expected=np.array([_x[1] * _x[2] + np.exp(_x[0]) * _x[1], _x[0] * _x[2] + np.exp(_x[0]),
                       _x[0] * _x[1]]), tol={"all": Tol()}, complex_ok=True)
add(id="nd-hessian_on_scalar_function", kind="hessian", f=_xyz_exp, x=_x,
    expected=np.array([[np.exp(3.0) * 5, np.exp(3.0) + 7, 5], [np.exp(3.0) + 7, 0, 3], [5, 3, 0]]),
    tol={"all": Tol(rtol=NP_RTOL, atol=1e-4)})

_XD = np.arange(0, 1, 0.1)
_YD = 1 + 2 * np.exp(0.75 * _XD)


def _residual_sq(c):
    return (c[0] + c[1] * np.exp(c[2] * _XD) - _YD) ** 2


add(id="nd-jacobian_on_vector_valued_function", kind="jacobian", f=_residual_sq,
    x=np.array([1.0, 2.0, 0.75]), expected=np.zeros((10, 3)),
    tol={"all": Tol(rtol=NP_RTOL, atol=1e-12)}, complex_ok=True, flags=frozenset({"zero"}))


def _sq_cube(x):
    return np.array([x[0] ** 2 + x[1] ** 2, x[0] ** 3 + x[1] ** 3])


for _p in ([1.0, 2.0], [3.0, 4.0]):
    _a, _b = _p
    add(id=f"nd-jacobian_on_matrix_valued_function-{_a:g}_{_b:g}", kind="jacobian", f=_sq_cube,
        x=np.array(_p), expected=np.array([[2 * _a, 2 * _b], [3 * _a * _a, 3 * _b * _b]]),
        tol={"all": Tol()}, complex_ok=True)

add(id="nd-issue_68", kind="jacobian", f=lambda x: np.array([np.sum(x ** 2) - 1]),
    x=np.array([1.0, 2.0]), expected=np.array([[2.0, 4.0]]), tol={"all": Tol()}, complex_ok=True)
add(id="nd-issue_25-g", kind="jacobian", f=lambda x: np.array([x[0], x[1], x[0], x[1]]),
    x=np.array([1.0, 2.0]), expected=np.array([[1.0, 0], [0, 1], [1, 0], [0, 1]]),
    tol={"all": Tol()}, complex_ok=True, flags=frozenset({"zero"}))


def _fun3(x):
    return np.array([x[0] * x[1] * x[2] ** 2, x[0] * x[1] * x[2]])


for _p in ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]):
    a, b, c = _p
    add(id=f"nd-issue_25-fun3-{a:g}", kind="jacobian", f=_fun3, x=np.array(_p),
        expected=np.array([[b * c * c, a * c * c, 2 * a * b * c], [b * c, a * c, a * b]]),
        tol={"all": Tol()}, complex_ok=True)
add(id="nd-issue_27a-n100", kind="jacobian", f=lambda x: x ** 2, x=np.ones(100),
    expected=2 * np.eye(100), tol={"all": Tol()}, complex_ok=True, flags=frozenset({"zero"}),
    why="the peer's slow test has n = 500; n = 100 keeps the suite fast")
add(id="nd-jacobian_fulloutput", kind="derivative", f=lambda x: x + 3.0, x=1.0, expected=1.0,
    tol={"all": Tol()}, complex_ok=True)


def _issue39(x):
    return 1.0 / (np.exp(x[0]) + np.cos(x[1]) + 10)


_d = np.exp(1.0) + np.cos(2.0) + 10
add(id="nd-gradient_issue_39", kind="gradient", f=_issue39, x=np.array([1.0, 2.0]),
    expected=np.array([-np.exp(1.0) / _d ** 2, np.sin(2.0) / _d ** 2]), tol={"all": Tol()},
    complex_ok=True)


def nd_rosen(x):
    """numdifftools' Rosenbrock variant: (1 − x0)² + 105 (x1 − x0²)²."""
    return (1 - x[0]) ** 2 + 105.0 * (x[1] - x[0] ** 2) ** 2


_g = np.array([-2 * (1 - 2.0) - 420 * 2.0 * (3.0 - 4.0), 210 * (3.0 - 4.0)])
add(id="nd-directional_diff-gradient", kind="gradient", f=nd_rosen, x=np.array([2.0, 3.0]),
    expected=_g, tol={"all": Tol()}, complex_ok=True)
_v = np.array([1.0, -1.0]) / np.sqrt(2.0)
add(id="nd-directional_diff", kind="jvp", f=nd_rosen, x=np.array([2.0, 3.0]), v=_v,
    expected=np.array([743.87633380824832]), tol={"all": Tol()}, complex_ok=True)
add(id="nd-gradient_sum_squares", kind="gradient", f=lambda x: np.sum(x ** 2),
    x=np.array([1.0, 2.0, 3.0]), expected=np.array([2.0, 4.0, 6.0]), tol={"all": Tol()},
    complex_ok=True)


def _hessdiag_fun(x):
    return x[0] + x[1] ** 2 + x[2] ** 3


for _k, _p in enumerate([(1.0, 2.0, 3.0), (0.0, 16.003907623933742, 68.02057249966789),
                         (1.2009289063e-314,) * 3, (88.01663712016305,) * 3,
                         (0.0, 19.945812226807096, 54.11322414875562)]):
    _p = np.array(_p)
    add(id=f"nd-hessdiag-{_k}", kind="hessian", f=_hessdiag_fun, x=_p,
        expected=np.diag([0.0, 2.0, 6 * _p[2]]),
        tol={"all": Tol(rtol=1e-5, atol=0.0, est=100.0)} if _k else {"all": Tol(rtol=NP_RTOL, atol=1e-8)},
        flags=frozenset({"zero"} | ({"subnormal"} if _k == 2 else set())))


class IonTrap:
    """numdifftools' hamiltonian test: two ions in a harmonic trap with Coulomb repulsion (SI).

    V(x) = ½·m·w²·Σx² + C/|x0 − x1|; at the equilibrium ±a, a³ = C / (4 m w²),
    ∂²V/∂xi² = m w² + 2C/d³, ∂²V/∂x0∂x1 = −2C/d³ with d = 2a.
    """

    w = 2 * np.pi * 1e6
    C = 1.602176634e-19 ** 2 / (4 * np.pi * 8.8541878128e-12)
    m = 39.96 * 1.66e-27

    def __call__(self, x):
        return 0.5 * self.m * self.w ** 2 * (x[0] ** 2 + x[1] ** 2) + self.C / np.abs(x[0] - x[1])


_trap = IonTrap()
_a = (_trap.C / (4 * _trap.m * _trap.w ** 2)) ** (1 / 3)
_k2 = 2 * _trap.C / (2 * _a) ** 3
add(id="nd-hessian_hamiltonian", kind="hessian", f=_trap, x=np.array([-_a, _a]),
    expected=np.array([[_trap.m * _trap.w ** 2 + _k2, -_k2], [-_k2, _trap.m * _trap.w ** 2 + _k2]]),
    tol={"all": Tol(rtol=1e-4)}, flags=frozenset({"si-units"}),
    why="the peer passes an explicit base step 1e-4; here the default steps")

_xc = np.array([0.4967, -0.1383, 0.6477])   # the peer draws randn(3); a fixed draw
add(id="nd-complex_hessian_issue_35", kind="hessian", f=lambda x: 1j * np.inner(x, x), x=_xc,
    expected=2j * np.eye(3), tol={"all": Tol(rtol=NP_RTOL, atol=1e-11)},
    flags=frozenset({"complex-valued", "issue"}))
add(id="nd-hessian_cos_x_y", kind="hessian", f=lambda x: np.cos(x[0] - x[1]),
    x=np.array([0.0, 0.0]), expected=np.array([[-1.0, 1.0], [1.0, -1.0]]), tol={"all": Tol()})
_x, _y = 3.0, 5.0
add(id="nd-hessian_vector_valued-cos", kind="hessian", f=lambda z: np.cos(z[0] * z[1]),
    x=np.array([_x, _y]),
    expected=np.array([[-_y * _y * np.cos(_x * _y), -_x * _y * np.cos(_x * _y) - np.sin(_x * _y)],
                       [-_x * _y * np.cos(_x * _y) - np.sin(_x * _y), -_x * _x * np.cos(_x * _y)]]),
    tol={"all": Tol(rtol=NP_RTOL, atol=1e-4)})
add(id="nd-hessian_vector_valued-sin", kind="hessian", f=lambda z: np.sin(z[0] * z[1]),
    x=np.array([_x, _y]),
    expected=np.array([[-_y * _y * np.sin(_x * _y), np.cos(_x * _y) - _x * _y * np.sin(_x * _y)],
                       [np.cos(_x * _y) - _x * _y * np.sin(_x * _y), -_x * _x * np.sin(_x * _y)]]),
    tol={"all": Tol(rtol=NP_RTOL, atol=1e-4)})

_valid = np.array([True, False, True])
_xm = np.array([0.5, 1.0, 5.0])
add(id="nd-invalid_output_column", kind="jacobian",
    f=lambda x: np.where(_valid, np.exp(x), np.nan), x=_xm,
    expected=np.where(_valid[:, None], np.diag(np.exp(_xm)), np.nan), tol={"all": Tol()},
    flags=frozenset({"nan-output", "issue"}))
add(id="nd-central_complex_output", kind="jacobian", f=lambda x: (1 + 1j) * x ** 2,
    x=np.array([1.0, 2.0]), expected=np.diag([2 + 2j, 4 + 4j]), tol={"all": Tol()},
    raises=("complex",), flags=frozenset({"complex-valued", "issue"}))
add(id="nd-complex_output_gradient", kind="gradient", f=lambda x: np.sum((1 + 1j) * x ** 2),
    x=np.array([1.0, 2.0]), expected=np.array([2 + 2j, 4 + 4j]), tol={"all": Tol()},
    raises=("complex",), flags=frozenset({"complex-valued", "issue"}))

# ---------------------------------------------------------------- scipy.optimize._numdiff

ND_SC = {"forward": Tol(rtol=1e-6), "central": Tol(rtol=1e-9), "complex": Tol(rtol=1e-12)}


def sp_scalar_vector(x):
    return np.array([x[0] ** 2, np.tan(x[0]), np.exp(x[0])])


def sp_vector_scalar(x):
    return np.sin(x[0] * x[1]) * np.log(x[0])


def sp_vector_scalar_jac(x):
    return np.array([x[1] * np.cos(x[0] * x[1]) * np.log(x[0]) + np.sin(x[0] * x[1]) / x[0],
                     x[0] * np.cos(x[0] * x[1]) * np.log(x[0])])


def sp_vector_vector(x):
    return np.array([x[0] * np.sin(x[1]), x[1] * np.cos(x[0]), x[0] ** 3 * x[1] ** -0.5])


def sp_vector_vector_jac(x):
    return np.array([[np.sin(x[1]), x[0] * np.cos(x[1])],
                     [-x[1] * np.sin(x[0]), np.cos(x[0])],
                     [3 * x[0] ** 2 * x[1] ** -0.5, -0.5 * x[0] ** 3 * x[1] ** -1.5]])


add(id="sp-numdiff-scalar_scalar", kind="derivative", f=np.sinh, x=1.0, expected=np.cosh(1.0),
    tol=ND_SC, complex_ok=True)
add(id="sp-numdiff-scalar_scalar_abs_step", kind="derivative", f=np.sinh, x=1.0,
    expected=np.cosh(1.0), tol=ND_SC, complex_ok=True, opts={"step": 1.49e-8},
    methods=("central", "forward", "complex"))
add(id="sp-numdiff-scalar_vector", kind="jacobian", f=sp_scalar_vector, x=np.array([0.5]),
    expected=np.array([[1.0], [np.cos(0.5) ** -2], [np.exp(0.5)]]), tol=ND_SC, complex_ok=True)
_x = np.array([100.0, -0.5])
add(id="sp-numdiff-vector_scalar", kind="gradient", f=sp_vector_scalar, x=_x,
    expected=sp_vector_scalar_jac(_x),
    tol={"forward": Tol(rtol=1e-6), "central": Tol(rtol=1e-7), "complex": Tol(rtol=1e-12)},
    complex_ok=True, flags=frozenset({"issue"}))
add(id="sp-numdiff-vector_scalar_abs_step", kind="gradient", f=sp_vector_scalar, x=_x,
    expected=sp_vector_scalar_jac(_x), opts={"step": 1.49e-8},
    tol={"forward": Tol(rtol=1e-6), "central": Tol(rtol=3e-9), "complex": Tol(rtol=1e-12)},
    complex_ok=True, methods=("central", "forward", "complex"))
_x = np.array([-100.0, 0.2])
add(id="sp-numdiff-vector_vector", kind="jacobian", f=sp_vector_vector, x=_x,
    expected=sp_vector_vector_jac(_x),
    tol={"forward": Tol(rtol=1e-5), "central": Tol(rtol=1e-6), "complex": Tol(rtol=1e-12)},
    complex_ok=True)
_x = np.array([-0.1, 0.1])
add(id="sp-numdiff-custom_rel_step", kind="jacobian", f=sp_vector_vector, x=_x,
    expected=sp_vector_vector_jac(_x), opts={"step": 1e-4 * np.maximum(1, np.abs(_x))},
    tol={"forward": Tol(rtol=1e-2), "central": Tol(rtol=1e-4)}, complex_ok=True,
    methods=("central", "forward"),
    why="scipy's rel_step is relative to max(1, |x|): passed as the absolute step")


def sp_parametrized(x):
    return np.array([np.exp(-1.0 * x[0]), np.exp(1.0 * x[1])])


add(id="sp-numdiff-options", kind="jacobian", f=sp_parametrized, x=np.array([1.0, 1.0]),
    expected=np.array([[-np.exp(-1.0), 0.0], [0.0, np.exp(1.0)]]),
    opts={"step": np.array([1e-6, 1e-7]), "bounds": (0.0, 2.0)},
    tol={"forward": Tol(rtol=1e-6), "central": Tol(rtol=1e-9)}, methods=("central", "forward"),
    flags=frozenset({"bounds"}), why="scipy's signed rel_step [-1e-6, 1e-7]: magnitudes kept")
_x = np.array([-1.0, 1.0])
add(id="sp-numdiff-with_bounds_2_point", kind="jacobian", f=sp_vector_vector, x=_x,
    expected=sp_vector_vector_jac(_x), opts={"bounds": (-np.ones(2), np.ones(2))},
    tol={"all": Tol(rtol=1e-6)}, flags=frozenset({"bounds"}))
_x = np.array([1.0, 2.0])
for _name, _bnd in (("none", None), ("lower", (np.array([1.0, 1.0]), np.inf)),
                    ("upper", (-np.inf, np.array([2.0, 2.0]))),
                    ("both", (np.array([1.0, 1.0]), np.array([2.0, 2.0])))):
    add(id=f"sp-numdiff-with_bounds_3_point-{_name}", kind="jacobian", f=sp_vector_vector, x=_x,
        expected=sp_vector_vector_jac(_x), opts={} if _bnd is None else {"bounds": _bnd},
        tol={"central": Tol(rtol=1e-9)}, complex_ok=_bnd is None,
        flags=frozenset({"bounds"}) if _bnd else frozenset())
_x = np.array([10.0, 10.0])
for _name, _o in (("default", {}), ("rel_step", {"step": 1e-5 * np.ones(2)})):
    add(id=f"sp-numdiff-tight_bounds-{_name}", kind="jacobian", f=sp_vector_vector, x=_x,
        expected=sp_vector_vector_jac(_x), opts={"bounds": (_x - 3e-9, _x + 2e-9), **_o},
        tol={"all": Tol(rtol=1e-6)}, flags=frozenset({"bounds"}),
        methods=None if not _o else ("central", "forward"))


def sp_fun_with_nan(x):
    return x if abs(x) <= 1e-8 else np.nan


for _x0 in (0.0, 1e-8):
    add(id=f"sp-numdiff-bound_switches-{_x0:g}", kind="derivative", f=sp_fun_with_nan, x=_x0,
        expected=1.0, opts={"step": 1e-6, "bounds": (-1e-8, 1e-8)},
        tol={"forward": Tol(rtol=1e-6), "central": Tol(rtol=1e-9)},
        flags=frozenset({"bounds", "nan-domain"}), methods=("central", "forward"))
add(id="sp-numdiff-non_numpy", kind="derivative", f=math.exp, x=1.0, expected=math.e,
    tol={"forward": Tol(rtol=1e-6), "central": Tol(rtol=1e-8)}, raises=("complex",))

# test_fp: residuals p0 + p1·x − y; the float32 output (gh-12991), atol 1e-3.
_xfp = np.linspace(0, 1, 100)
_yfp = np.random.default_rng(1).random(size=100)


def sp_fp_err64(p):
    return p[0] + p[1] * _xfp - _yfp


def sp_fp_err32(p):
    return (p[0] + p[1] * _xfp - _yfp).astype(np.float32)


_jfp = np.column_stack([np.ones(100), _xfp])
add(id="sp-numdiff-fp-float64", kind="jacobian", f=sp_fp_err64, x=np.array([-1.0, -1.0]),
    expected=_jfp, tol={"all": Tol(rtol=NP_RTOL, atol=1e-3)}, complex_ok=True)
add(id="sp-numdiff-fp-float32", kind="jacobian", f=sp_fp_err32, x=np.array([-1.0, -1.0]),
    expected=_jfp, tol={"all": Tol(rtol=NP_RTOL, atol=1e-3)}, flags=frozenset({"float32", "issue"}))


class SinAs:
    """sin(x) rounded to a low-precision dtype (scipy's test_fp bound on the 2-point error)."""

    def __init__(self, dtype):
        self.dtype = dtype

    def __call__(self, x):
        return np.asarray(np.sin(np.asarray(x, dtype=self.dtype)), dtype=self.dtype)


for _dt in (np.float16, np.float32, np.float64):
    _e = float(np.finfo(_dt).eps)
    _h = _e ** 0.5
    _atol = _h / 2 * max(abs(np.sin(1.0)), abs(np.sin(1.0 + _h))) + _e / _h * max(
        abs(np.sin(1.0)), abs(np.sin(1.0 + _h)))
    add(id=f"sp-numdiff-fp-sin-{np.dtype(_dt).name}", kind="derivative", f=SinAs(_dt), x=1.0,
        expected=np.cos(1.0), tol={"all": Tol(rtol=0.0, atol=_atol)},
        flags=frozenset({"float32"} if _dt != np.float64 else ()),
        why="scipy's bound h/2·|f''| + ε/h·|f| with h = √ε of the output dtype (2-point)")


def sp_rosen_as(dtype):
    def f(x):
        x = np.asarray(x, dtype=dtype)
        return dtype(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))
    return f


def rosen_der(x):
    xm, xm_m1, xm_p1 = x[1:-1], x[:-2], x[2:]
    d = np.zeros_like(x)
    d[1:-1] = 200 * (xm - xm_m1 ** 2) - 400 * (xm_p1 - xm ** 2) * xm - 2 * (1 - xm)
    d[0] = -400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0])
    d[-1] = 200 * (x[-1] - x[-2] ** 2)
    return d


def rosen_hess(x):
    n = len(x)
    H = np.zeros((n, n))
    for i in range(n - 1):
        H[i, i] += 1200 * x[i] ** 2 - 400 * x[i + 1] + 2
        H[i + 1, i + 1] += 200
        H[i, i + 1] = H[i + 1, i] = -400 * x[i]
    return H


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


for _dt in (np.float16, np.float32):
    _x = np.array([2.0, 3.0, 4.0])
    add(id=f"sp-numdiff-check_dtype-rosen-{np.dtype(_dt).name}", kind="gradient",
        f=sp_rosen_as(_dt), x=_x, expected=rosen_der(_x), tol={},
        flags=frozenset({"float32"}), why="the peer checks the dtype only: honesty only")
_x = np.array([-10.0, 10.0])
add(id="sp-numdiff-check_derivative", kind="jacobian", f=sp_vector_vector, x=_x,
    expected=sp_vector_vector_jac(_x), tol={"central": Tol(rtol=1e-9, atol=1e-9, combine="max")},
    complex_ok=True)
add(id="sp-numdiff-check_derivative-zero_jacobian", kind="jacobian",
    f=lambda x: np.array([x[0] * x[1], np.cos(x[0] * x[1])]), x=np.array([0.0, 0.0]),
    expected=np.zeros((2, 2)), tol={"central": Tol(rtol=0.0, atol=0.0)}, complex_ok=True,
    flags=frozenset({"zero"}))

# Sparse, Nocedal & Wright 2nd ed. p. 198: x0 alternately just inside its lower and upper bound.
_N = 50
_lb = -0.1 * (1 + np.arange(_N))
_ub = 0.1 * (1 + np.arange(_N))
_x0s = np.empty(_N)
_x0s[::2] = (1 - 1e-7) * _lb[::2]
_x0s[1::2] = (1 - 1e-7) * _ub[1::2]


def sp_sparse_fun(x):
    e = x[1:] ** 3 - x[:-1] ** 2
    return np.hstack((0, 3 * e)) + np.hstack((2 * e, 0))


def sp_sparse_jac(x):
    n = x.size
    J = np.zeros((n, n))
    J[0, 0] = -4 * x[0]
    J[0, 1] = 6 * x[1] ** 2
    for i in range(1, n - 1):
        J[i, i - 1] = -6 * x[i - 1]
        J[i, i] = 9 * x[i] ** 2 - 4 * x[i]
        J[i, i + 1] = 6 * x[i + 1] ** 2
    J[-1, -1] = 9 * x[-1] ** 2
    J[-1, -2] = -6 * x[-2]
    return J


_S = np.abs(np.eye(_N, k=-1)) + np.eye(_N) + np.eye(_N, k=1) > 0
_Js = sp_sparse_jac(_x0s)
for _name, _o in (("sparse-bounds", {"sparsity": _S, "bounds": (_lb, _ub)}),
                  ("sparse-nobounds", {"sparsity": _S}),
                  ("dense-bounds", {"bounds": (_lb, _ub)}),
                  ("dense", {})):
    add(id=f"sp-numdiff-sparse_alternating-{_name}", kind="jacobian", f=sp_sparse_fun, x=_x0s,
        expected=_Js, opts=_o, tol={"all": Tol(rtol=1e-6)}, complex_ok=True,
        flags=frozenset({"sparse"} if "sparsity" in _o else ()) | (
            {"bounds", "issue"} if "bounds" in _o else set()))
add(id="sp-numdiff-sparse_alternating-rel_step", kind="jacobian", f=sp_sparse_fun, x=_x0s,
    expected=_Js, opts={"sparsity": _S, "step": 1e-8 * np.ones(_N)}, tol={"all": Tol(rtol=1e-5)},
    complex_ok=True, methods=("central", "forward", "complex"), flags=frozenset({"sparse"}))

# LinearOperator: J·p for ten p ~ U(−10, 10) (seed 11290049580398) = jvp.
for _name, _f, _x, _J, _tols in (
        ("scalar_scalar", lambda x: np.sinh(x), np.array([1.0]), np.array([[np.cosh(1.0)]]),
         (1e-5, 5e-6, 5e-6)),
        ("scalar_vector", sp_scalar_vector, np.array([0.5]),
         np.array([[1.0], [np.cos(0.5) ** -2], [np.exp(0.5)]]), (1e-5, 5e-6, 5e-6)),
        ("vector_scalar", sp_vector_scalar, np.array([100.0, -0.5]),
         sp_vector_scalar_jac(np.array([100.0, -0.5]))[None, :], (1e-5, 5e-6, 1e-7)),
        ("vector_vector", sp_vector_vector, np.array([-100.0, 0.2]),
         sp_vector_vector_jac(np.array([-100.0, 0.2])), (1e-5, 1e-6, 1e-7))):
    _rng = np.random.default_rng(11290049580398)
    for _k in range(10):
        _p = _rng.uniform(-10, 10, size=_x.shape)
        add(id=f"sp-numdiff-linear_operator-{_name}-{_k}", kind="jvp", f=_f, x=_x, v=_p,
            expected=_J @ _p, complex_ok=True,
            tol={"forward": Tol(rtol=_tols[0]), "central": Tol(rtol=_tols[1]),
                 "complex": Tol(rtol=_tols[2])},
            flags=frozenset({"issue"}) if _name == "vector_scalar" else frozenset())


def sp_kinks(x):
    return -np.abs(x[0] + 1) + np.abs(x[1] + 1)


for _name, _meth, _bnd, _exp in (("forward", "forward", None, [-1.0, 1.0]),
                                 ("backward", "backward", None, [1.0, -1.0]),
                                 ("forward-upper_bound", "forward", (-np.inf, -1.0), [1.0, -1.0]),
                                 ("backward-lower_bound", "backward", (-1.0, np.inf), [-1.0, 1.0])):
    add(id=f"sp-numdiff-absolute_step_sign-{_name}", kind="gradient", f=sp_kinks,
        x=np.array([-1.0, -1.0]), expected=np.array(_exp), methods=(_meth,),
        opts={"step": 1e-8} if _bnd is None else {"step": 1e-8, "bounds": _bnd},
        tol={"all": Tol()}, flags=frozenset({"kink"} | ({"bounds"} if _bnd else set())),
        why="one-sided derivatives at a kink: only the one-sided method applies")

# ---------------------------------------------------------------- scipy.differentiate

from scipy import special, stats  # noqa: E402

_norm_pdf = lambda x: np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)  # noqa: E731
for _k, _x in enumerate(np.concatenate([[0.6], np.linspace(-0.05, 1.05, 10)])):
    add(id=f"sp-differentiate-basic-ndtr-{_k}", kind="derivative", f=special.ndtr, x=float(_x),
        expected=_norm_pdf(_x), tol={"all": Tol(rtol=SCIPY_RTOL)}, complex_ok=True)


class DistCdf:
    """The CDF of a frozen scipy distribution (test_accuracy); picklable by name."""

    def __init__(self, name, params):
        self.name, self.params = name, tuple(params)
        self._d = None

    def __call__(self, x):
        if self._d is None:
            self._d = getattr(stats, self.name)(*self.params)
        return self._d.cdf(x)

    def __getstate__(self):
        return {"name": self.name, "params": self.params, "_d": None}


# The distributions of scipy's test_accuracy whose CDF is cheap (< 1.5 ms a call); the slow
# ones (numerical integration: studentized_range, levy_stable, kappa4, ...) are left out.
SLOW_DISTS = {"studentized_range", "genhyperbolic", "levy_stable", "kstwo", "norminvgauss",
              "dpareto_lognorm", "kappa4", "ksone", "geninvgauss"}
_seen: dict = {}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for _name, _params in stats._distr_params.distcont:
        if _name in SLOW_DISTS:
            continue
        _k = _seen[_name] = _seen.get(_name, -1) + 1
        _dist = getattr(stats, _name)(*_params)
        _x = float(_dist.median()) + 0.1
        add(id=f"sp-differentiate-accuracy-{_name}-{_k}", kind="derivative",
            f=DistCdf(_name, _params), x=_x, expected=float(_dist.pdf(_x)),
            tol={"all": Tol(rtol=SCIPY_RTOL, atol=1e-10)}, ref_rtol=1e-12,
            why="expected is scipy's pdf (accurate to ~1e-13, not a closed form)")


def sd_preserve_shape(x):
    return np.array([x, np.sin(3 * x), x + np.sin(10 * x), np.sin(20 * x) * (x - 1) ** 2])


add(id="sp-differentiate-preserve_shape", kind="derivative", f=sd_preserve_shape, x=0.0,
    expected=np.array([1.0, 3.0, 11.0, 20.0]), tol={"all": Tol(rtol=SCIPY_RTOL)}, complex_ok=True)
_ref = _norm_pdf(1.0)
add(id="sp-differentiate-convergence-atol", kind="derivative", f=special.ndtr, x=1.0,
    expected=_ref, tol={"all": Tol(rtol=0.0, atol=1e-6)}, complex_ok=True)
add(id="sp-differentiate-convergence-rtol", kind="derivative", f=special.ndtr, x=1.0,
    expected=_ref, tol={"all": Tol(rtol=1e-6)}, complex_ok=True)


def sd_flags(x):
    """test_flags_preserve_shape without its random output: converges, exp, NaN everywhere."""
    return np.array([x - 2.5, np.exp(x), np.nan])


add(id="sp-differentiate-flags_preserve_shape", kind="derivative", f=sd_flags, x=1.0,
    expected=np.array([1.0, np.e, np.nan]), tol={"all": Tol(rtol=SCIPY_RTOL)},
    flags=frozenset({"nan-output"}))


def sd_exp_on_0_2(x):
    """exp on [0, 2], NaN outside (test_step_direction)."""
    x = np.asarray(x, dtype=float)
    y = np.exp(x)
    return np.where((x < 0) | (x > 2), np.nan, y)


for _k, _x in enumerate(np.linspace(0, 2, 10)):
    for _variant, _o in (("nan", {}), ("bounds", {"bounds": (0.0, 2.0)})):
        add(id=f"sp-differentiate-step_direction-{_variant}-{_k}", kind="derivative",
            f=sd_exp_on_0_2, x=float(_x), expected=np.exp(_x), opts=_o,
            tol={"all": Tol(rtol=SCIPY_RTOL)},
            flags=frozenset({"nan-domain"} if _variant == "nan" else {"bounds"}))


class Power:
    def __init__(self, p):
        self.p = p

    def __call__(self, x):
        return x ** self.p


for _x in (1.0, 2.0, 3.0, 4.0):
    for _p in (2, 3):
        add(id=f"sp-differentiate-step_direction_args-x{_x:g}-p{_p}", kind="derivative",
            f=Power(_p), x=_x, expected=_p * _x ** (_p - 1), tol={"all": Tol(rtol=SCIPY_RTOL)},
            complex_ok=True)


class ExpAs:
    def __init__(self, dtype):
        self.dtype = dtype

    def __call__(self, x):
        return np.exp(np.asarray(x, dtype=self.dtype))


for _x in (0.65, 0.7):
    for _dt in (np.float32, np.float64):
        _xr = float(_dt(_x))
        add(id=f"sp-differentiate-dtype-{np.dtype(_dt).name}-{_x:g}", kind="derivative",
            f=ExpAs(_dt), x=_xr, expected=np.exp(_xr),
            tol={"all": Tol(rtol=float(np.finfo(_dt).eps) ** 0.5)},
            flags=frozenset({"float32"} if _dt == np.float32 else ()))

add(id="sp-differentiate-special-x99", kind="derivative", f=lambda x: x ** 99 - 1, x=7.0,
    expected=99 * 7.0 ** 98, tol={"all": Tol(rtol=SCIPY_RTOL)}, complex_ok=True)
for _n in range(6):
    add(id=f"sp-differentiate-special-poly{_n}", kind="derivative", f=Power(_n), x=1.5,
        expected=_n * 1.5 ** (_n - 1) if _n else 0.0, tol={"all": Tol(rtol=1e-15)},
        complex_ok=True, tol_required=False,
        why="the peer's rtol 1e-15 assumes a stencil of exact order max(1, n)")
add(id="sp-differentiate-special-args", kind="derivative", f=lambda x: 3.0 * x - 1, x=2.0,
    expected=3.0, tol={"all": Tol(rtol=SCIPY_RTOL)}, complex_ok=True)


def sd_saddle2(x):
    return np.where(x > 1, (x - 1) ** 5, (x - 1) ** 3)


add(id="sp-differentiate-saddle_gh18811-cubic", kind="derivative", f=lambda x: (x - 1) ** 3,
    x=1.0, expected=0.0, tol={"all": Tol(rtol=SCIPY_RTOL, atol=1e-16)}, complex_ok=True,
    tol_required=False, flags=frozenset({"critical", "issue"}),
    why="xfail in scipy itself: atol 1e-16 at a critical point")
add(id="sp-differentiate-saddle_gh18811-piecewise", kind="derivative", f=sd_saddle2, x=1.0,
    expected=0.0, tol={"all": Tol(rtol=SCIPY_RTOL, atol=1e-16)}, tol_required=False,
    flags=frozenset({"critical"}), why="xfail in scipy itself: atol 1e-16 at a critical point")


# The Jacobians of scipy's TestJacobian (Wikipedia's examples) and rosen.
def jf1(z):
    x, y = z
    return np.stack([x ** 2 * y, 5 * x + np.sin(y)])


def jdf1(z):
    x, y = z
    return np.array([[2 * x * y, x ** 2], [5.0, np.cos(y)]])


def jf2(z):
    r, phi = z
    return np.stack([r * np.cos(phi), r * np.sin(phi)])


def jdf2(z):
    r, phi = z
    return np.array([[np.cos(phi), -r * np.sin(phi)], [np.sin(phi), r * np.cos(phi)]])


def jf3(z):
    r, phi, th = z
    return np.stack([r * np.sin(phi) * np.cos(th), r * np.sin(phi) * np.sin(th), r * np.cos(phi)])


def jdf3(z):
    r, phi, th = z
    return np.array([[np.sin(phi) * np.cos(th), r * np.cos(phi) * np.cos(th), -r * np.sin(phi) * np.sin(th)],
                     [np.sin(phi) * np.sin(th), r * np.cos(phi) * np.sin(th), r * np.sin(phi) * np.cos(th)],
                     [np.cos(phi), -r * np.sin(phi), 0.0]])


def jf4(x):
    x1, x2, x3 = x
    return np.stack([x1, 5 * x3, 4 * x2 ** 2 - 2 * x3, x3 * np.sin(x1)])


def jdf4(x):
    x1, x2, x3 = x
    return np.array([[1.0, 0, 0], [0, 0, 5], [0, 8 * x2, -2], [x3 * np.cos(x1), 0, np.sin(x1)]])


def jf5(x):
    x1, x2, x3 = x
    return np.stack([5 * x2, 4 * x1 ** 2 - 2 * np.sin(x2 * x3), x2 * x3])


def jdf5(x):
    x1, x2, x3 = x
    return np.array([[0.0, 5, 0], [8 * x1, -2 * x3 * np.cos(x2 * x3), -2 * x2 * np.cos(x2 * x3)],
                     [0, x3, x2]])


class In32:
    """f evaluated in float32 (input rounded, output float32)."""

    def __init__(self, f):
        self.f = f

    def __call__(self, x):
        return np.asarray(self.f(np.asarray(x, dtype=np.float32)), dtype=np.float32)


class Vectorized:
    """f: (n,) -> (m,) applied to a batch (k, n) -> (k, m) in one numpy call."""

    def __init__(self, f):
        self.f = f

    def __call__(self, X):
        return np.asarray(self.f(np.asarray(X).T)).T


_JFUNCS = {"f1": (jf1, jdf1, 2), "f2": (jf2, jdf2, 2), "f3": (jf3, jdf3, 3),
           "f4": (jf4, jdf4, 3), "f5": (jf5, jdf5, 3), "rosen": (rosen, rosen_der, 5)}
for _fname, (_f, _df, _n) in _JFUNCS.items():
    for _size in ((), (6,), (2, 3)):
        _X = np.random.default_rng(458912319542).random(size=(_n,) + _size).reshape(_n, -1)
        # The peer's one call per size: one point of each ((2, 3) holds the same draws as
        # (6,), so its fourth point is taken).
        for _k in ([3] if _size == (2, 3) else [0]):
            _x = _X[:, _k]
            _kind = "gradient" if _fname == "rosen" else "jacobian"
            _tag = f"{'x'.join(map(str, _size)) or 'scalar'}-{_k}"
            add(id=f"sp-differentiate-jacobian-{_fname}-float64-{_tag}", kind=_kind, f=_f, x=_x,
                expected=_df(_x), tol={"all": Tol(rtol=SCIPY_RTOL, atol=1e-10)}, complex_ok=True,
                flags=frozenset({"zero"}) if _fname in ("f4", "f5") else frozenset())
            _x32 = _x.astype(np.float32).astype(float)
            add(id=f"sp-differentiate-jacobian-{_fname}-float32-{_tag}", kind=_kind, f=In32(_f),
                x=_x32, expected=_df(_x32), tol={"all": Tol(rtol=SCIPY_RTOL32, atol=1.99e-3)},
                flags=frozenset({"float32"}))
            if _size == () and _fname != "rosen":
                add(id=f"sp-differentiate-jacobian-{_fname}-vectorized", kind=_kind,
                    f=Vectorized(_f), x=_x, expected=_df(_x), opts={"vectorized": True},
                    tol={"all": Tol(rtol=SCIPY_RTOL, atol=1e-10)})


def sd_attrs(z):
    x, y = z
    return np.stack([np.cos(0.5 * x) * np.cos(y), np.sin(2 * x) * y ** 2])


add(id="sp-differentiate-jacobian-attrs", kind="jacobian", f=sd_attrs, x=np.array([0.5, 0.25]),
    expected=np.array([[-0.5 * np.sin(0.25) * np.cos(0.25), -np.cos(0.25) * np.sin(0.25)],
                       [2 * np.cos(1.0) * 0.25 ** 2, np.sin(1.0) * 0.5]]),
    tol={}, complex_ok=True, why="the peer compares with itself: honesty only")

_b = np.random.default_rng(23892589425245).random(3)


def sd_f5_domain(x):
    """f5 with NaN outside x0 ∈ [b0, b0 + 0.25], x1 ∈ [b1 − 0.1, b1] (test_step_direction_size)."""
    x = np.asarray(x, dtype=float)
    if x[0] < _b[0] or x[0] > _b[0] + 0.25 or x[1] > _b[1] or x[1] < _b[1] - 0.1 - 1e-7:
        return np.full(3, np.nan)
    return jf5(x)


add(id="sp-differentiate-jacobian-step_direction_size-nan", kind="jacobian", f=sd_f5_domain,
    x=_b.copy(), expected=jdf5(_b), tol={"all": Tol(rtol=SCIPY_RTOL, atol=1e-8)},
    flags=frozenset({"nan-domain", "issue"}))
add(id="sp-differentiate-jacobian-step_direction_size-bounds", kind="jacobian", f=sd_f5_domain,
    x=_b.copy(), expected=jdf5(_b), tol={"all": Tol(rtol=SCIPY_RTOL, atol=1e-8)},
    opts={"bounds": (np.array([_b[0], _b[1] - 0.1, -np.inf]), np.array([_b[0] + 0.25, _b[1], np.inf]))},
    flags=frozenset({"bounds"}))

for _shape in ((), (4,), (2, 4)):
    _X = np.random.default_rng(458912319542).random((3,) + _shape).reshape(3, -1)
    for _k in range(2 if _shape else 1):   # the peer's vectorized call: two of its points
        _x = _X[:, _k]
        add(id=f"sp-differentiate-hessian-rosen-{'x'.join(map(str, _shape)) or 'scalar'}-{_k}",
            kind="hessian", f=rosen, x=_x, expected=rosen_hess(_x),
            tol={"all": Tol(rtol=SCIPY_RTOL, atol=1e-8)}, flags=frozenset({"issue"}))
_x32 = np.random.default_rng(458912319542).random(3).astype(np.float32).astype(float)
_H = rosen_hess(_x32)
_mask = _H != 0
add(id="sp-differentiate-hessian-rosen-float32", kind="hessian", f=In32(rosen), x=_x32,
    expected=_H, flags=frozenset({"float32", "zero"}),
    tol={"all": Tol(rtol=np.where(_mask, SCIPY_RTOL32, 0.0),
                    atol=np.where(_mask, 0.0, 1e-2 * np.min(np.abs(_H[_mask]))))})
_x, _y = 0.5, 0.25
add(id="sp-differentiate-hessian-nfev", kind="hessian", f=lambda z: np.sin(z[0]) * z[1] ** 3,
    x=np.array([_x, _y]),
    expected=np.array([[-np.sin(_x) * _y ** 3, 3 * np.cos(_x) * _y ** 2],
                       [3 * np.cos(_x) * _y ** 2, 6 * np.sin(_x) * _y]]), tol={},
    why="the peer counts evaluations: honesty only")
add(id="sp-differentiate-hessian-sin", kind="hessian", f=lambda z: np.sin(z[0]),
    x=np.array([1.0]), expected=np.array([[-np.sin(1.0)]]), tol={},
    why="the peer checks a warning: honesty only")

# ---------------------------------------------------------------- issue 9 reproductions

OWN = {"all": Tol(rtol=1e-6)}
WHY_OWN = "own case of issue 9: honesty is required, the 1e-6 tolerance is ours"


def own(**kw):
    kw.setdefault("tol", OWN)
    kw.setdefault("tol_required", False)
    kw.setdefault("why", WHY_OWN)
    kw["flags"] = frozenset(kw.get("flags", ())) | {"issue"}
    return add(**kw)


own(id="issue-complex_exp", kind="derivative", f=lambda t: np.exp(1j * t), x=0.7,
    expected=1j * np.exp(0.7j), raises=("complex",), flags={"complex-valued"})
own(id="issue-sin_at_1e8", kind="derivative", f=np.sin, x=1e8, expected=np.cos(1e8),
    complex_ok=True, flags={"aliasing"})
own(id="issue-scales_cos_1e6t", kind="derivative",
    f=lambda t: np.array([np.cos(t), 1e6 * t]), x=-100.0,
    expected=np.array([-np.sin(-100.0), 1e6]), complex_ok=True, flags={"scales"})
own(id="issue-critical_cubic", kind="derivative", f=lambda t: (t - 1) ** 3, x=1.0, expected=0.0,
    tol={"all": Tol(rtol=0.0, atol=1e-6)}, complex_ok=True, flags={"critical"})
own(id="issue-jvp_100_-0.5", kind="jvp", f=sp_vector_scalar, x=np.array([100.0, -0.5]),
    v=np.array([1.0, 1.0]), expected=np.array([sp_vector_scalar_jac(np.array([100.0, -0.5])).sum()]),
    complex_ok=True)
own(id="issue-sqrt_at_1e-8", kind="derivative", f=np.sqrt, x=1e-8, expected=0.5e4,
    complex_ok=True, flags={"small-x"})
own(id="issue-inverse_at_1e-6", kind="derivative", f=lambda x: 1.0 / x, x=1e-6, expected=-1e12,
    complex_ok=True, flags={"small-x", "pole"})
own(id="issue-log_at_1e-3-five-point", kind="derivative", f=np.log, x=1e-3, expected=1e3,
    complex_ok=True, flags={"small-x"})


def resonance(C, L=1e-3):
    """f0 = 1 / (2π √(L C)) of an LC circuit (C in farad)."""
    return 1.0 / (2 * np.pi * np.sqrt(L * C))


own(id="issue-si-resonance_C_1e-6", kind="derivative", f=resonance, x=1e-6,
    expected=-resonance(1e-6) / (2e-6), complex_ok=True, flags={"si-units"})


def rc_charge(C, R=1e3, t=1e-3, V0=5.0):
    """Capacitor voltage V0 (1 − exp(−t / (R C))) after t seconds."""
    return V0 * (1 - np.exp(-t / (R * C)))


own(id="issue-si-rc_charge_C_1e-6", kind="derivative", f=rc_charge, x=1e-6,
    expected=-5.0 * np.exp(-1.0) * 1e-3 / (1e3 * 1e-12), complex_ok=True, flags={"si-units"})
own(id="issue-si-time_constant_RC", kind="gradient", f=lambda p: p[0] * p[1],
    x=np.array([1e3, 1e-6]), expected=np.array([1e-6, 1e3]), complex_ok=True,
    flags={"si-units"})
own(id="issue-exact_zeros_five_point", kind="jacobian",
    f=lambda x: np.array([x[0] ** 2, np.sin(x[1]), np.exp(x[2])]), x=np.array([0.3, 1.1, -0.4]),
    expected=np.diag([0.6, np.cos(1.1), np.exp(-0.4)]),
    tol={"all": Tol(rtol=1e-6, atol=0.0)}, complex_ok=True, flags={"zero"})
own(id="issue-nan_output_row", kind="jacobian",
    f=lambda x: np.array([x[0] ** 2 + x[1], np.nan, np.sin(x[1])]), x=np.array([1.0, 2.0]),
    expected=np.array([[2.0, 1.0], [np.nan, np.nan], [0.0, np.cos(2.0)]]),
    flags={"nan-output", "zero"})


def lj_energy(r, eps=1.0, sigma=1.0):
    """Lennard-Jones pair energy 4ε((σ/r)¹² − (σ/r)⁶)."""
    s6 = (sigma / r) ** 6
    return 4 * eps * (s6 * s6 - s6)


def lj_denergy(r, eps=1.0, sigma=1.0):
    s6 = (sigma / r) ** 6
    return -24 * eps / r * (2 * s6 * s6 - s6)


def lj_force(r, eps=1.0, sigma=1.0):
    """F = −dE/dr = 24ε/r (2(σ/r)¹² − (σ/r)⁶)."""
    return -lj_denergy(r, eps, sigma)


def lj_dforce(r, eps=1.0, sigma=1.0):
    s6 = (sigma / r) ** 6
    return 24 * eps / r ** 2 * (7 * s6 - 26 * s6 * s6)


for _r in (0.95, 1.0, 2 ** (1 / 6), 1.5, 2.5):
    own(id=f"issue-lennard_jones-energy-r{_r:.4g}", kind="derivative", f=lj_energy, x=_r,
        expected=lj_denergy(_r), complex_ok=True, flags={"physics"})
    own(id=f"issue-lennard_jones-force-r{_r:.4g}", kind="derivative", f=lj_force, x=_r,
        expected=lj_dforce(_r), complex_ok=True, flags={"physics"})
_SIG, _EPSJ = 3.405e-10, 1.654e-21   # argon, SI
for _r in (3.8e-10, 5.0e-10):
    own(id=f"issue-lennard_jones-si-force-r{_r:.2g}", kind="derivative",
        f=lambda r: lj_force(r, _EPSJ, _SIG), x=_r, expected=lj_dforce(_r, _EPSJ, _SIG),
        complex_ok=True, flags={"physics", "si-units"})


def lj_cluster(x):
    """Total LJ energy of three atoms in the plane, positions x = (x0, y0, x1, y1, x2, y2)."""
    p = np.reshape(x, (3, 2))
    e = 0.0
    for i in range(3):
        for j in range(i + 1, 3):
            d = p[i] - p[j]
            e = e + lj_energy(np.sqrt(d[0] * d[0] + d[1] * d[1]))
    return e


def lj_cluster_grad(x):
    p = np.reshape(x, (3, 2))
    g = np.zeros((3, 2))
    for i in range(3):
        for j in range(i + 1, 3):
            d = p[i] - p[j]
            r = np.sqrt(d @ d)
            gij = lj_denergy(r) * d / r
            g[i] += gij
            g[j] -= gij
    return g.ravel()


_xc = np.array([0.0, 0.0, 1.1, 0.05, 0.52, 0.97])
own(id="issue-lennard_jones-cluster-gradient", kind="gradient", f=lj_cluster, x=_xc,
    expected=lj_cluster_grad(_xc), complex_ok=True, flags={"physics"})



class Printed:
    """f(x) as a legacy program prints it: each output with ``digits`` significant digits."""

    def __init__(self, f, digits=6):
        self.f, self.digits = f, digits

    def __call__(self, x):
        y = np.asarray(self.f(x), dtype=float)
        out = np.array([float(f"{v:.{self.digits - 1}e}") for v in y.ravel()]).reshape(y.shape)
        return out if out.ndim else float(out)


OWN_NOISY = {"all": Tol(rtol=1e-3)}
own(id="issue-printed6-sin", kind="derivative", f=Printed(np.sin), x=1.0, expected=np.cos(1.0),
    tol=OWN_NOISY, flags={"noise"})
own(id="issue-printed6-exp_gradient", kind="gradient",
    f=Printed(lambda x: np.exp(x[0]) * x[1]), x=np.array([0.5, 2.0]),
    expected=np.array([2 * np.exp(0.5), np.exp(0.5)]), tol=OWN_NOISY, flags={"noise"})
own(id="issue-printed6-rc_charge_C_1e-6", kind="derivative", f=Printed(rc_charge), x=1e-6,
    expected=-5.0 * np.exp(-1.0) * 1e-3 / (1e3 * 1e-12), tol=OWN_NOISY,
    flags={"noise", "si-units"})
own(id="issue-printed6-two_scales", kind="jacobian",
    f=Printed(lambda x: np.array([x[0] ** 2, 1e3 * np.sin(x[1])])), x=np.array([1.5, 0.3]),
    expected=np.array([[3.0, 0.0], [0.0, 1e3 * np.cos(0.3)]]), tol=OWN_NOISY,
    flags={"noise", "zero"})

# The SI-unit cases again, with the user's typical magnitudes given (``scale=``).
for _c in [c for c in CASES if "si-units" in c.flags and c.kind != "hessian"]:
    own(id=_c.id + "-scale", kind=_c.kind, f=_c.f, x=_c.x, expected=_c.expected, v=_c.v,
        tol=_c.tol, complex_ok=_c.complex_ok, flags=_c.flags | {"scale"},
        opts={**_c.opts, "scale": np.where(np.abs(np.atleast_1d(_c.x)) > 0,
                                           np.abs(np.atleast_1d(_c.x)), 1.0)
              if _c.kind != "derivative" else abs(_c.x)})

IDS = [c.id for c in CASES]
assert len(IDS) == len(set(IDS)), [i for i in IDS if IDS.count(i) > 1]
