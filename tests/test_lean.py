"""The lean lane (simdiff/lean.py, issue 15) changes what a call costs, never what it returns:
the derivative, its error estimate, nfev and every warning are those of the general path
(``refine.run_partials``), bit for bit, whether the lane finishes the call or hands its batch
on. Random functions, points, scales and outputs; the inputs that must hand over are among
them (roots, kinks, noise, printed and float32 values, failed points, tiny and huge x, -0.0)."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import simdiff as sd
import simdiff.differentiate as dif
import simdiff.lean as lean

FUNS = {
    "cheap": lambda x: float(np.sum(x**2) + np.sin(x[0])),
    "exp_cos": lambda x: float(np.exp(x).sum() * np.prod(np.cos(x))),
    "vector": lambda x: np.array([np.sin(x).sum(), np.log(1 + x**2).sum(), x[0] * x[-1], 3.0]),
    "abs_kink": lambda x: float(np.sum(np.abs(x))),
    "big_cubic": lambda x: float(1e8 * np.sum(x**3)),
    "sqrt_edge": lambda x: float(np.sum(np.sqrt(np.abs(x) + 1e-3))),
    "fast_sine": lambda x: float(np.sum(np.sin(300 * x))),
    "noisy": lambda x: float(np.sum(np.cos(x)) + 1e-7 * np.sin(1e7 * np.sum(x * np.arange(1, len(x) + 1)))),
    "printed": lambda x: float(f"{np.sum(np.exp(x)):.6g}"),
    "float32": lambda x: np.float32(np.sum(np.sin(x))),
    "fails_left": lambda x: float(np.sum(np.log(x))) if np.all(x > 0) else np.nan,
    "raises": lambda x: float(np.sum(x**2)) if x[0] < 1.5 else 1 / 0,
    "constant_out": lambda x: np.array([1.0, np.sum(x)]),
}


def _call(fun, x, method, caller):
    with warnings.catch_warnings(record=True) as wl:
        warnings.simplefilter("always")
        try:
            if caller == "gradient":
                D, info = sd.gradient(fun, x, method=method, full_output=True,
                                      on_failure="skip")
            else:
                D, info = sd.jacobian(fun, x, method=method, full_output=True)
        except Exception as exc:  # noqa: BLE001 - the same error either way
            return repr(exc)
    return (np.asarray(D), np.asarray(info.error), info.nfev, list(info.schemes),
            np.asarray(info.step), [str(w.message) for w in wl])


def _same(a, b):
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return (np.array_equal(a[0], b[0], equal_nan=True) and np.array_equal(a[1], b[1], equal_nan=True)
            and a[2] == b[2] and a[3] == b[3] and np.array_equal(a[4], b[4]) and a[5] == b[5])


def _both(monkeypatch, fun, x, method, caller="jacobian"):
    """(the lane's result with its per-entry kernel, with its array kernel), the general path's."""
    monkeypatch.setattr(lean, "ENABLED", True)
    monkeypatch.setattr(lean, "SCALAR_ENTRIES", 10**9)
    scalar = _call(fun, x, method, caller)
    monkeypatch.setattr(lean, "SCALAR_ENTRIES", 0)
    arrays = _call(fun, x, method, caller)
    monkeypatch.undo()
    monkeypatch.setattr(lean, "ENABLED", False)
    slow = _call(fun, x, method, caller)
    monkeypatch.undo()
    assert _same(scalar, arrays), (x, method, scalar, arrays)
    return scalar, slow


@pytest.mark.parametrize("name", sorted(FUNS))
@pytest.mark.parametrize("method", ["central", "forward", "backward"])
def test_lane_equals_general_path(monkeypatch, name, method):
    rng = np.random.default_rng(abs(hash((name, method))) % 2**32)
    points = [rng.normal(size=int(rng.integers(1, 7))) * 10.0 ** rng.integers(-3, 3)
              for _ in range(6)]
    points += [np.linspace(0.1, 1.0, 6), np.array([0.0, 1e-7, 2.0]), np.array([-0.0, 1.0, 2.0]),
               np.array([1e6, 3.0, -2e4]), np.linspace(-2.0, 3.0, 40)]
    caller = "gradient" if np.ndim(FUNS[name](np.ones(3))) == 0 else "jacobian"
    for x in points:
        fast, slow = _both(monkeypatch, FUNS[name], x, method, caller)
        assert _same(fast, slow), (name, method, x, fast, slow)


def test_lane_finishes_the_usual_call_and_hands_on_the_rest(monkeypatch):
    seen = []
    real = lean.two_point

    def spy(*args):
        out = real(*args)
        seen.append("done" if isinstance(out, lean.Done) else ("pre" if out is not None else "none"))
        return out

    monkeypatch.setattr(dif, "two_point", spy)
    x = np.linspace(0.3, 1.7, 8)
    sd.gradient(FUNS["cheap"], x)
    sd.jacobian(lambda z: np.array([np.sin(z).sum(), z[0] * z[-1]]), x, method="forward")
    assert seen == ["done", "done"]
    seen.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sd.gradient(FUNS["noisy"], x)  # the midpoints spread: detect_noise decides
        sd.gradient(FUNS["float32"], x)  # single precision: longer steps, re-planned
        sd.gradient(FUNS["fails_left"], x - 0.5, on_failure="skip")  # failed points
        sd.gradient(FUNS["cheap"], np.array([1e-9, 1.0]))  # an input below its step scale
    assert seen == ["pre"] * 4


def test_handed_on_batch_is_not_evaluated_twice(monkeypatch):
    ev = sd.Evaluator()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, info = sd.gradient(FUNS["printed"], np.linspace(0.1, 1.0, 5), evaluator=ev,
                              full_output=True)
    assert info.nfev == ev.nfev and len(ev.log) == ev.nfev


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=6),
       st.sampled_from(["central", "forward", "backward"]),
       st.floats(-3, 3), st.integers(0, 3))
def test_lane_equals_general_path_for_random_sums(xs, method, a, k):
    # a·sin(x_j + a) + x_j^k summed: roots, critical points and flat outputs come up by chance
    x = np.array(xs)

    def f(z):
        return float(np.sum(a * np.sin(z + a) + z**k))

    with pytest.MonkeyPatch.context() as mp:
        fast, slow = _both(mp, f, x, method, "gradient")
    assert _same(fast, slow), (x, method, a, k)


@pytest.mark.parametrize("method", ["central", "forward", "backward"])
def test_jvp_lane_equals_general_path(monkeypatch, method):
    rng = np.random.default_rng(7)
    f = FUNS["vector"]
    for _ in range(25):
        n = int(rng.integers(1, 6))
        x = rng.normal(size=n) * 10.0 ** rng.integers(-2, 3)
        v = rng.normal(size=n) * (rng.random(n) > 0.3)
        if not v.any():
            v[0] = 1.0
        res = []
        for on, kernel in ((True, 10**9), (True, 0), (False, 0)):
            monkeypatch.setattr(lean, "ENABLED", on)
            monkeypatch.setattr(lean, "SCALAR_ENTRIES", kernel)
            with warnings.catch_warnings(record=True) as wl:
                warnings.simplefilter("always")
                d, info = sd.jvp(f, x, v, method=method, full_output=True)
            res.append((d, info.error, info.nfev, info.step, info.schemes,
                        [str(w.message) for w in wl]))
        for d1, e1, *r1 in res[:2]:
            d2, e2, *r2 = res[2]
            assert np.array_equal(d1, d2) and np.array_equal(e1, e2) and r1 == r2, (x, v)


def _lane(f, x, scheme, skip):
    from simdiff.stencils import scheme as stencil
    from simdiff.steps import base_steps

    st_ = stencil(scheme)
    return lean.two_point(sd.simulator.as_simulator(f), x, st_, base_steps(x, st_),
                          np.maximum(1.0, np.abs(x)), sd.Evaluator(), skip=frozenset(skip))


@pytest.mark.parametrize("case", ["noise", "small_x", "flat"])
def test_skipped_look_keeps_the_plain_difference(case):
    # each case hands on by default; with its look skipped the lane finishes, and its
    # derivative is the plain two-point difference the general path starts from
    if case == "noise":  # a zero-valued minimum: the midpoints spread by h²f''/2 against f ~ 0
        c = np.array([1.0, 10.0, 100.0, 1000.0, 3.0])
        f, x, scheme = (lambda z: float(np.sum(c * (z - 1) ** 2))), np.full(5, 1 + 1e-7), "central"
    elif case == "small_x":
        f, x, scheme = (lambda z: float(np.sum(np.cos(z)))), np.array([1e-9, 0.5, 1.0]), "central"
    else:  # one-sided at a critical point of a nonzero f
        f, x, scheme = (lambda z: float(3.0 + np.sum((z - 0.5) ** 2))), np.full(4, 0.5 + 1e-9), "forward"
    assert not isinstance(_lane(f, x, scheme, ()), lean.Done)
    done = _lane(f, x, scheme, (case,))
    assert isinstance(done, lean.Done)
    P = done.points
    F = np.array([f(p) for p in P])
    h = done.steps
    if scheme == "central":
        plain = (F[2::2] - F[1::2]) / (2 * h)
    else:
        plain = (F[1:] - F[0]) / h
    np.testing.assert_allclose(done.D[:, 0], plain, rtol=1e-12, atol=1e-300)
    assert np.all(np.isfinite(done.E)) and np.all(done.E >= 0)


def _lane_report(f, x, scheme, report, skip=()):
    from simdiff.stencils import scheme as stencil
    from simdiff.steps import base_steps

    st_ = stencil(scheme)
    return lean.two_point(sd.simulator.as_simulator(f), x, st_, base_steps(x, st_),
                          np.maximum(1.0, np.abs(x)), sd.Evaluator(), skip=frozenset(skip),
                          report=frozenset(report))


@pytest.mark.parametrize("n", [3, 20])  # the float kernel and the array kernel
def test_reported_root_keeps_the_plain_difference_and_names_the_entries(n):
    # f(x) = 0 at x0 with a sign change in every stencil: a root the lane hands on by default;
    # reported, the entries keep the plain difference, their model takes L = s, and the
    # flags name them (the optimizer then measures f'' itself, optimize/fdgrad.py)
    b = np.linspace(1.0, 2.0, n)
    f = lambda z: float(np.sum(z * z) - b @ z)  # noqa: E731
    x = np.zeros(n)
    assert not isinstance(_lane_report(f, x, "forward", ()), lean.Done)
    done = _lane_report(f, x, "forward", ("root",))
    assert isinstance(done, lean.Done)
    F = np.array([f(p) for p in done.points])
    np.testing.assert_allclose(done.D[:, 0], (F[1:] - F[0]) / done.steps, rtol=1e-12)
    assert done.flags["doubt"].all()
    # L = s: the model's 7·|C|·h·|D|/s, not the general path's "as large as the estimate"
    assert np.all(done.E[:, 0] > 0) and np.all(done.E[:, 0] < 1e-3 * np.abs(done.D[:, 0]))


def test_reported_flat_and_turn_and_noise():
    # a one-sided critical point ("flat"), a central pair past LARGE_X turning over at a
    # minimum ("turn"), and midpoints spread by h²f''/2 at a zero-valued minimum ("noise"):
    # each is named in the flags instead of handed on
    f = lambda z: float(3.0 + np.sum((z - 0.5) ** 2))  # noqa: E731
    x = np.full(4, 0.5 + 1e-9)
    done = _lane_report(f, x, "forward", ("flat",))
    assert isinstance(done, lean.Done) and done.flags["doubt"].all()
    c = np.array([1.0, 2.0, 3.0])
    g = lambda z: float(np.sum(c * (z - 40.0) ** 2))  # noqa: E731
    x = np.full(3, 40.0)
    assert not isinstance(_lane_report(g, x, "central", ()), lean.Done)
    done = _lane_report(g, x, "central", ("turn", "noise"), skip=("noise",))
    assert isinstance(done, lean.Done) and done.flags["turn"].all()
    c = np.array([1.0, 10.0, 100.0, 1000.0, 3.0])
    q = lambda z: float(np.sum(c * (z - 1) ** 2))  # noqa: E731
    done = _lane_report(q, np.full(5, 1 + 1e-7), "central", ("noise",), skip=("noise",))
    assert isinstance(done, lean.Done) and done.flags["noise"] is True
