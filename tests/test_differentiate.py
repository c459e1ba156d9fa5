"""derivative, gradient, jacobian, jvp against analytic derivatives."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simdiff as sd
from zoo import SCALAR, vec_f, vec_jac

# Relative tolerance per scheme at its default (optimal) step, on smooth O(1)-scaled functions.
TOL = {"forward": 3e-6, "backward": 3e-6, "central": 1e-8, "five-point": 1e-10, "complex": 1e-14}
POINTS = [np.array([0.3, -1.2, 0.7, 2.0]), np.array([-2.5, 0.1, 1.9, -0.4]), np.array([1.1, 0.9, -0.3, 0.6])]


def rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1.0)


@pytest.mark.parametrize("method", list(TOL))
@pytest.mark.parametrize("name, f, grad", SCALAR, ids=[s[0] for s in SCALAR])
@pytest.mark.parametrize("x", POINTS, ids=["p0", "p1", "p2"])
def test_gradient_against_analytic(method, name, f, grad, x):
    g, info = sd.gradient(f, x, method=method, full_output=True)
    assert g.shape == x.shape
    assert rel(g, grad(x)) < TOL[method]
    assert info.error.shape == x.shape and np.all(info.error >= 0)


@pytest.mark.parametrize("method", list(TOL))
@pytest.mark.parametrize("x", [np.array([0.4, 0.9, -1.3]), np.array([-1.7, -0.2, 2.2])])
def test_jacobian_against_analytic(method, x):
    J, info = sd.jacobian(vec_f, x, method=method, full_output=True)
    assert J.shape == (3, 3) and info.error.shape == (3, 3)
    assert rel(J, vec_jac(x)) < TOL[method]


@pytest.mark.parametrize("order", [2, 4, 6, 8])
def test_central_orders(order):
    x = np.array([0.4, 0.9, -1.3])
    J = sd.jacobian(vec_f, x, method="central", order=order)
    assert rel(J, vec_jac(x)) < {2: 1e-8, 4: 1e-10, 6: 1e-11, 8: 1e-11}[order]


@pytest.mark.parametrize("method", ["forward", "backward"])
@pytest.mark.parametrize("order", [2, 3, 4])
def test_one_sided_orders(method, order):
    x = np.array([0.4, 0.9, -1.3])
    J = sd.jacobian(vec_f, x, method=method, order=order)
    assert rel(J, vec_jac(x)) < {2: 1e-8, 3: 1e-9, 4: 1e-10}[order]


@pytest.mark.parametrize("method, expected", [("central", lambda n: 2 * n + 1), ("forward", lambda n: n + 1),
                                              ("backward", lambda n: n + 1), ("five-point", lambda n: 4 * n),
                                              ("complex", lambda n: n)])
@pytest.mark.parametrize("n", [1, 3, 7])
def test_evaluation_counts(method, expected, n):
    calls = []

    def f(x):
        calls.append(x.copy())
        return np.sum(np.cos(x))

    _, info = sd.gradient(f, np.linspace(0.1, 1.0, n), method=method, full_output=True)
    assert len(calls) == expected(n) == info.nfev


@pytest.mark.parametrize("scale", [1e4, 1e8, 1e12])
def test_large_x_needs_scaled_step(scale):
    # f = Σ (x/s)^3 at x ~ s: g_j = 3 x_j^2 / s^3. Only a step ∝ |x| keeps x + h distinguishable.
    x = scale * np.array([1.3, -0.7, 2.1])
    f = lambda x: np.sum((x / scale) ** 3)  # noqa: E731
    true = 3 * x**2 / scale**3
    rel0 = lambda a: np.max(np.abs(a - true)) / np.max(true)  # noqa: E731
    assert rel0(sd.gradient(f, x)) < 1e-8
    assert rel0(sd.gradient(f, x, method="five-point")) < 1e-10
    assert rel0(sd.gradient(f, x, method="forward")) < 3e-6
    # the same absolute step an unscaled rule would use loses everything at large |x|
    if scale <= 1e8:
        bad = sd.gradient(f, x, step=6e-6)
        assert rel0(bad) > 100 * rel0(sd.gradient(f, x))
    else:
        with pytest.raises(sd.ArgumentError, match="below the spacing of floats at x"):
            sd.gradient(f, x, step=6e-6)


def test_derivative_scalar():
    d, info = sd.derivative(np.sin, 1.0, full_output=True)
    assert isinstance(d, float) and abs(d - np.cos(1.0)) < 1e-9
    assert isinstance(info.error, float) and info.nfev == 3  # x ± h and f(x)
    assert abs(sd.derivative(lambda t: t**3, -2.0, method="five-point") - 12.0) < 1e-9
    # a callable receives a float; a vector-valued f returns an array
    dv = sd.derivative(lambda t: np.array([t, t**2]), 3.0)
    np.testing.assert_allclose(dv, [1.0, 6.0], rtol=1e-9)


def test_simulator_subclass():
    class Quadratic(sd.Simulator):
        """Weighted sum of squares."""

        name = "quadratic"

        def __init__(self, c=1.0):
            self.c = c

        def evaluate(self, x):
            return self.c * float(np.sum(x**2))

    x = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(sd.gradient(Quadratic(3.0), x), 6 * x, rtol=1e-9)
    assert Quadratic(3.0)(x) == pytest.approx(3 * 5.25)


def test_vectorized_single_call():
    calls = []

    def fv(X):
        calls.append(X.shape)
        return np.stack([np.sin(X[:, 0]) * X[:, 1], np.exp(X[:, 1]) + X[:, 2] ** 3,
                         np.log1p(X[:, 0] ** 2) * X[:, 2]], axis=1)

    x = np.array([0.4, 0.9, -1.3])
    J, info = sd.jacobian(fv, x, vectorized=True, full_output=True)
    assert calls == [(7, 3)] and info.nfev == 7
    np.testing.assert_array_equal(J, sd.jacobian(vec_f, x))


def test_vectorized_derivative():
    calls = []

    def f(t):
        calls.append(np.shape(t))
        return np.sin(t)

    assert abs(sd.derivative(f, 0.5, vectorized=True) - np.cos(0.5)) < 1e-9
    assert calls == [(3,)]


@pytest.mark.parametrize("method, count", [("central", 3), ("forward", 2), ("five-point", 4), ("complex", 1)])
def test_jvp(method, count):
    x = np.array([0.4, 0.9, -1.3])
    v = np.array([1.0, -2.0, 0.5])
    out, info = sd.jvp(vec_f, x, v, method=method, full_output=True)
    assert info.nfev == count
    assert rel(out, vec_jac(x) @ v) < TOL[method] * 10


def test_jvp_zero_direction():
    out = sd.jvp(vec_f, np.ones(3), np.zeros(3))
    np.testing.assert_array_equal(out, np.zeros(3))


def test_info_fields():
    J, info = sd.jacobian(vec_f, np.ones(3), full_output=True)
    for key in ("error", "nfev", "step", "method", "failures"):
        assert key in info and getattr(info, key) is info[key]
    assert info.method == "central" and info.failures == [] and info.step.shape == (3,)
    # steps are exactly representable: (x + h) - x == h
    x = np.ones(3)
    assert np.all((x + info.step) - x == info.step)


def test_error_estimate_covers_true_error_on_zoo():
    # a sanity floor for the foundation's estimate (the accuracy issue makes it sharp)
    for _, f, grad in SCALAR:
        for x in POINTS:
            for method in ("central", "five-point", "complex"):
                g, info = sd.gradient(f, x, method=method, full_output=True)
                true_err = np.abs(g - grad(x))
                assert np.all(true_err <= 100 * info.error + 1e-300)


def test_user_steps():
    x = np.array([0.3, 0.8])
    f = lambda x: np.sum(x**3)  # noqa: E731
    g, info = sd.gradient(f, x, step=1e-3, full_output=True)
    np.testing.assert_allclose(info.step, 1e-3, rtol=1e-12)
    np.testing.assert_allclose(g, 3 * x**2, atol=2e-6)  # h²·f'''/6 = 1e-6
    g, info = sd.gradient(f, x, step=[1e-3, 2e-3], full_output=True)
    np.testing.assert_allclose(info.step, [1e-3, 2e-3], rtol=1e-12)
    g, info = sd.gradient(f, x, rel_step=1e-4, full_output=True)
    np.testing.assert_allclose(info.step, 1e-4 * x, rtol=1e-10)


# --- polynomials: a scheme of order p is exact on degree ≤ p, up to rounding -------------------

SCHEMES = [("forward", 1), ("backward", 1), ("central", 2), ("five-point", 4), ("central", 6),
           ("central", 8), ("forward", 3), ("backward", 4)]


@settings(max_examples=40, deadline=None)
@given(
    coeffs=st.lists(st.floats(-10, 10, allow_nan=False), min_size=9, max_size=9),
    x0=st.floats(-3, 3, allow_nan=False),
    h=st.floats(1e-3, 0.5),
    k=st.integers(0, len(SCHEMES) - 1),
)
def test_polynomials_of_degree_p_exact(coeffs, x0, h, k):
    method, order = SCHEMES[k]
    c = np.array(coeffs[: order + 1])
    p = np.polynomial.Polynomial(c)
    dp = p.deriv()
    kw = {} if method == "five-point" else {"order": order}
    d, info = sd.derivative(p, x0, method=method, step=h, full_output=True, **kw)
    # rounding bound: ε·Σ|w|·max|p| over the stencil / h, with margin
    span = np.linspace(x0 - order * h, x0 + order * h, 17)
    bound = 64 * np.finfo(float).eps * 4 * np.max(np.abs(p(span))) / info.step
    assert abs(d - dp(x0)) <= bound + 1e-13 * abs(dp(x0))


# --- convergence: the error falls as h^p ---------------------------------------------------------

@pytest.mark.parametrize("method, order", [("forward", 1), ("backward", 1), ("central", 2),
                                           ("five-point", 4), ("central", 6), ("forward", 3)])
def test_error_falls_as_h_to_the_p(method, order):
    f, df, x0 = np.exp, np.exp, 0.3
    # a range of h where truncation dominates rounding by several decades
    hs = np.geomspace(10 ** (-2.0 / order), 10 ** (-0.5 / order) * 0.5, 6) * 0.5
    kw = {} if method == "five-point" else {"order": order}
    errs = [abs(sd.derivative(f, x0, method=method, step=h, **kw) - df(x0)) for h in hs]
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert abs(slope - order) < 0.25, (slope, errs)


def test_simulator_without_evaluate_cannot_be_built():
    class Incomplete(sd.Simulator):
        """Forgot evaluate."""

    with pytest.raises(TypeError, match="Incomplete.*evaluate"):
        Incomplete()
