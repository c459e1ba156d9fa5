"""The whole-array fast paths (simdiff/fastpath.py, issue 15) give the same derivatives, error
estimates and warnings, bit for bit, as the per-entry loops they replace."""

import warnings

import numpy as np
import pytest

import simdiff as sd
import simdiff.fastpath as fp
import simdiff.lean as lean
import simdiff.noise as nz
import simdiff.refine as rf


def _slow_center_estimates(terms, active, Fre, good):
    est, info, lows = [], [], []
    for k in active:
        c = nz._center_estimate(terms[k], Fre, good)
        if c is not None:
            est.append(c[0])
            info.append((k, c[1], c[2], terms[k].scale, c[3]))
            lows.append(c[4])
    return est, info, lows


@pytest.fixture(autouse=True)
def general_path(monkeypatch):
    """These fast paths live in the general path: the lean lane (tests/test_lean.py) off."""
    monkeypatch.setattr(lean, "ENABLED", False)


@pytest.fixture
def slow(monkeypatch):
    """Every fast path replaced by the loop it stands for."""
    def off():
        monkeypatch.setattr(rf, "partial_terms", lambda *a: None)
        monkeypatch.setattr(rf, "look_candidates", lambda terms, *a: np.arange(len(terms)))
        monkeypatch.setattr(fp, "center_estimates", _slow_center_estimates)
        monkeypatch.setattr(fp, "surely_unprinted", lambda F: False)
        monkeypatch.setattr(fp, "active_terms", lambda terms, good: [
            k for k, t in enumerate(terms) if t.kind != "fixed" and not t.kind.startswith("complex")
            and len(t.rows) and good[t.rows].all()])
    return off


FUNS = {
    "cheap": lambda x: np.sum(x ** 2) + np.sin(x[0]),
    "vector": lambda x: np.array([np.sum(x ** 2), np.prod(np.cos(x)), x[0] * x[-1], 0.0]),
    "noisy": lambda x: np.sum(np.cos(x)) + 1e-7 * np.sin(1e7 * np.sum(x * np.arange(1, len(x) + 1))),
    "printed": lambda x: float(f"{np.sum(np.exp(x)):.6g}"),
    "float32": lambda x: np.float32(np.sum(np.sin(x))),
    "edge": lambda x: np.sum(np.sqrt(x)) if np.all(x >= 0) else np.nan,
}


def _run(name, x, kw):
    with warnings.catch_warnings(record=True) as wl:
        warnings.simplefilter("always")
        D, info = sd.jacobian(FUNS[name], x, full_output=True, **kw)
    return np.asarray(D), np.asarray(info.error), info.nfev, sorted(str(w.message) for w in wl)


@pytest.mark.parametrize("name", sorted(FUNS))
@pytest.mark.parametrize("kw", [{}, {"method": "five-point"}, {"method": "forward"}])
def test_fast_paths_are_bit_identical(name, kw, slow):
    cases = [np.linspace(0.1, 1.0, 6), np.linspace(0.0, 2.0, 5), np.full(3, 1e-7)]
    fast = [_run(name, x, kw) for x in cases]
    slow()
    for x, (D, E, nfev, warns) in zip(cases, fast):
        D0, E0, nfev0, warns0 = _run(name, x, kw)
        assert np.array_equal(D, D0, equal_nan=True) and np.array_equal(E, E0, equal_nan=True)
        assert nfev == nfev0 and warns == warns0


def test_surely_unprinted_never_skips_a_printed_output():
    F = np.array([[0.1234567891234567, 1.5], [0.2234567891234567, 2.25], [0.3, 3.125]])
    assert not fp.surely_unprinted(F)  # the second output prints short everywhere
    assert fp.surely_unprinted(F[:, :1])
    assert fp.surely_unprinted(np.zeros((3, 2)))  # no finite nonzero value: never "printed"
