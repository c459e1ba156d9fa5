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


def test_case_count():
    """The port stays broad: at least 250 cases from the two peers."""
    peers = [c for c in pc.CASES if not c.id.startswith("issue-")]
    assert len(peers) >= 250
