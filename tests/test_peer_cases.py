"""Honesty of info.error on the peers' own test cases (issue 9).

For every ported case of ``tests/peer_cases.py`` and every applicable method (central, forward,
five-point, step="adaptive", and the complex step where the peer allows it):

- ``test_honest``: every entry satisfies |value − expected| ≤ info.error + floor (the floor is
  1e-300 plus the rounding of the float64 reference, 4ε·|expected|), or is flagged: its
  estimate is inf/NaN, or a ``SimdiffWarning`` was emitted by the call. An exception is a
  failure, except for the complex step on a complex-valued f, which must be refused
  (``test_complex_step_refused``).
- ``test_peer_tolerance``: for central and adaptive, the value is within the peer's own
  tolerance (cases the issue does not require carry ``tol_required=False`` and are skipped
  with the reason).
- ``test_figure``: the issue's figures over all the runs (honest runs ≥ 97 %, no silent wrong
  answer, central / adaptive within the peer's tolerance in ≥ 93 % / ≥ 97 % of the required
  cases, ≤ 3 unexpected exceptions per 800 runs).

Runs that fail on the library as it stands are listed in ``KNOWN_FAILING`` (the only place an
xfail is set; non-strict, so a fix shows as XPASS). Empty it as fixes land.

Run: ``PYTHONPATH=$PWD python -m pytest -q tests/test_peer_cases.py``
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import simdiff as sd  # noqa: E402
import peer_cases as pc  # noqa: E402

#: "<test>::<case id>::<method>" of the runs that fail on the current library.
KNOWN_FAILING: list[str] = [
    "test_honest::issue-critical_cubic::complex",
    "test_honest::issue-lennard_jones-cluster-gradient::complex",
    "test_honest::issue-lennard_jones-cluster-gradient::forward",
    "test_honest::issue-lennard_jones-energy-r1.122::central",
    "test_honest::issue-lennard_jones-energy-r1.122::complex",
    "test_honest::issue-lennard_jones-force-r1.5::five-point",
    "test_honest::issue-lennard_jones-si-force-r5e-10-scale::five-point",
    "test_honest::issue-lennard_jones-si-force-r5e-10::five-point",
    "test_honest::issue-sin_at_1e8::central",
    "test_honest::issue-sin_at_1e8::five-point",
    "test_honest::issue-sin_at_1e8::forward",
    "test_honest::nd-additional_parameters-derivative-0::complex",
    "test_honest::nd-additional_parameters-gradient-0::complex",
    "test_honest::nd-additional_parameters-hessian-0::central",
    "test_honest::nd-hessdiag-2::central",
    "test_honest::nd-high_order_cos-d2::central",
    "test_honest::nd-jacobian_on_vector_valued_function::five-point",
    "test_honest::nd-jacobian_scalar_to_vector-2::complex",
    "test_honest::sp-differentiate-accuracy-beta-0::central",
    "test_honest::sp-differentiate-accuracy-beta-0::five-point",
    "test_honest::sp-differentiate-accuracy-burr-0::five-point",
    "test_honest::sp-differentiate-accuracy-burr12-0::five-point",
    "test_honest::sp-differentiate-accuracy-dgamma-0::central",
    "test_honest::sp-differentiate-accuracy-dgamma-0::five-point",
    "test_honest::sp-differentiate-accuracy-dweibull-0::five-point",
    "test_honest::sp-differentiate-accuracy-foldcauchy-0::central",
    "test_honest::sp-differentiate-accuracy-invgauss-0::forward",
    "test_honest::sp-differentiate-accuracy-johnsonsb-0::forward",
    "test_honest::sp-differentiate-accuracy-kstwobign-0::adaptive",
    "test_honest::sp-differentiate-accuracy-kstwobign-0::five-point",
    "test_honest::sp-differentiate-accuracy-mielke-0::five-point",
    "test_honest::sp-differentiate-accuracy-rel_breitwigner-0::central",
    "test_honest::sp-differentiate-accuracy-tukeylambda-0::adaptive",
    "test_honest::sp-differentiate-accuracy-tukeylambda-0::five-point",
    "test_honest::sp-differentiate-saddle_gh18811-cubic::complex",
    "test_honest::sp-numdiff-check_dtype-rosen-float32::forward",
    "test_honest::sp-numdiff-custom_rel_step::forward",
    "test_honest::sp-numdiff-linear_operator-vector_vector-1::adaptive",
    "test_honest::sp-numdiff-linear_operator-vector_vector-2::adaptive",
    "test_honest::sp-numdiff-linear_operator-vector_vector-3::adaptive",
    "test_honest::sp-numdiff-linear_operator-vector_vector-4::adaptive",
    "test_honest::sp-numdiff-linear_operator-vector_vector-9::adaptive",
    "test_honest::sp-numdiff-sparse_alternating-dense-bounds::central",
    "test_honest::sp-numdiff-sparse_alternating-dense-bounds::forward",
    "test_honest::sp-numdiff-sparse_alternating-dense::central",
    "test_honest::sp-numdiff-sparse_alternating-dense::five-point",
    "test_honest::sp-numdiff-sparse_alternating-dense::forward",
    "test_honest::sp-numdiff-sparse_alternating-rel_step::complex",
    "test_honest::sp-numdiff-sparse_alternating-sparse-bounds::central",
    "test_honest::sp-numdiff-sparse_alternating-sparse-bounds::forward",
    "test_honest::sp-numdiff-sparse_alternating-sparse-nobounds::central",
    "test_honest::sp-numdiff-sparse_alternating-sparse-nobounds::five-point",
    "test_honest::sp-numdiff-sparse_alternating-sparse-nobounds::forward",
    "test_honest::sp-numdiff-vector_scalar_abs_step::complex",
    "test_peer_tolerance::nd-complex_hessian_issue_35::central",
    "test_peer_tolerance::nd-log_at_1e-3::central",
    "test_peer_tolerance::sp-differentiate-accuracy-rel_breitwigner-0::central",
    "test_peer_tolerance::sp-differentiate-hessian-rosen-2x4-0::central",
    "test_peer_tolerance::sp-differentiate-special-x99::central",
    "test_peer_tolerance::sp-numdiff-check_derivative::central",
    "test_peer_tolerance::sp-numdiff-scalar_scalar_abs_step::central",
    "test_peer_tolerance::sp-numdiff-sparse_alternating-dense-bounds::adaptive",
    "test_peer_tolerance::sp-numdiff-tight_bounds-default::adaptive",
    "test_peer_tolerance::sp-numdiff-vector_scalar::central",
]

_RUNS: dict = {}


def _run(case: pc.Case, method: str) -> pc.Run:
    key = (case.id, method)
    if key not in _RUNS:
        _RUNS[key] = pc.run(case, method)
    return _RUNS[key]


def _params(test: str, pairs):
    out = []
    for case, method in pairs:
        tid = f"{case.id}::{method}"
        marks = ([pytest.mark.xfail(strict=False, reason="KNOWN_FAILING (issue 9)")]
                 if f"{test}::{tid}" in KNOWN_FAILING else [])
        out.append(pytest.param(case, method, id=tid, marks=marks))
    return out


HONEST = [(c, m) for c in pc.CASES for m in pc.methods_for(c) if m not in c.raises]
TOLERANCE = [(c, m) for c in pc.CASES for m in pc.methods_for(c)
             if m in ("central", "adaptive") and m not in c.raises and c.tol_for(m) is not None]
REFUSED = [(c, m) for c in pc.CASES for m in c.raises]


def _entries(case, r, v, mask):
    exp = np.asarray(pc._arr(case.expected))
    val = np.reshape(pc._arr(r.value), exp.shape)
    idx = np.argwhere(np.reshape(mask, exp.shape))[:8]
    return "; ".join(
        f"[{','.join(map(str, i))}] value={val[tuple(i)]!r} expected={exp[tuple(i)]!r} "
        f"error={v.estimate[tuple(i)]:.3g} true={v.true_err[tuple(i)]:.3g}" for i in idx)


@pytest.mark.parametrize("case, method", _params("test_honest", HONEST))
def test_honest(case, method):
    r = _run(case, method)
    if r.exc is not None:
        pytest.fail(f"{case.id} {method}: unexpected {type(r.exc).__name__}: {r.exc}")
    v = pc.judge(case, method, r)
    assert np.all(v.honest), (
        f"{case.id} {method}: info.error understates the true error, unflagged: "
        + _entries(case, r, v, ~v.honest))


@pytest.mark.parametrize("case, method", _params("test_peer_tolerance", TOLERANCE))
def test_peer_tolerance(case, method):
    if not case.tol_required:
        pytest.skip(f"not required by issue 9: {case.why}")
    r = _run(case, method)
    if r.exc is not None:
        pytest.fail(f"{case.id} {method}: unexpected {type(r.exc).__name__}: {r.exc}")
    v = pc.judge(case, method, r)
    assert np.all(v.within), (
        f"{case.id} {method}: outside the peer's tolerance {case.tol_for(method)}: "
        + _entries(case, r, v, ~v.within))


@pytest.mark.parametrize("case, method", _params("test_complex_step_refused", REFUSED))
def test_complex_step_refused(case, method):
    """The complex step cannot differentiate a complex-valued (or non-complex-safe) f."""
    r = _run(case, method)
    assert isinstance(r.exc, sd.SimdiffError), (
        f"{case.id}: method={method!r} must raise a SimdiffError; got "
        + (f"{type(r.exc).__name__}: {r.exc}" if r.exc else f"value {r.value!r}"))


def _all_verdicts():
    out = []
    for case in pc.CASES:
        for m in pc.methods_for(case):
            if m in case.raises:
                continue
            r = _run(case, m)
            out.append((case, m, r, None if r.exc is not None else pc.judge(case, m, r)))
    return out


def _figure(name):
    """The issue's figures, measured on the ported cases (value, threshold, passes)."""
    runs = _all_verdicts()
    ok = [(c, m, v) for c, m, r, v in runs if v is not None]
    if name == "honest runs >= 97%":
        val = np.mean([bool(v.honest.all()) for _, _, v in ok])
        return val, val >= 0.97
    if name == "no silent wrong":
        bad = [f"{c.id}::{m}" for c, m, v in ok
               if c.tol_required and v.silent_wrong is not None and v.silent_wrong.any()]
        return bad, not bad
    if name.startswith("central within tol") or name.startswith("adaptive within tol"):
        method, need = name.split()[0], (0.93 if name.startswith("central") else 0.97)
        sel = [(c, r, v) for c, m, r, v in runs
               if m == method and c.tol_required and c.tol_for(m) is not None]
        val = np.mean([v is not None and bool(v.within.all()) for _, _, v in sel])
        return val, val >= need
    if name == "exceptions <= 3 per 800 runs":
        exc = [f"{c.id}::{m}" for c, m, r, v in runs if v is None]
        return exc, len(exc) <= int(np.ceil(3 * len(runs) / 800))
    raise AssertionError(name)


FIGURES = ["honest runs >= 97%", "no silent wrong", "central within tol >= 93%",
           "adaptive within tol >= 97%", "exceptions <= 3 per 800 runs"]


@pytest.mark.parametrize("name", [
    pytest.param(n, id=n, marks=[pytest.mark.xfail(strict=False, reason="KNOWN_FAILING (issue 9)")]
                 if f"test_figure::{n}" in KNOWN_FAILING else []) for n in FIGURES])
def test_figure(name):
    """Issue 9's figures over all the ported cases and methods."""
    value, passes = _figure(name)
    assert passes, f"{name}: {value}"


def test_case_count():
    """The port stays broad: at least 250 cases from the two peers."""
    peers = [c for c in pc.CASES if not c.id.startswith("issue-")]
    assert len(peers) >= 250
