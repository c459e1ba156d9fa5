"""simdiff.testing: assertions for users' test suites."""

import numpy as np
import pytest
from zoo import vec_f, vec_jac

import simdiff as sd
import simdiff.testing as sdt


def f(x):
    return float(np.sum(np.exp(np.sin(x))))


def grad(x):
    return np.cos(x) * np.exp(np.sin(x))


X = np.array([0.4, -1.1, 2.0])


def test_a_correct_gradient_returns_the_report():
    r = sdt.assert_gradient(f, grad, X, points=3, seed=0)
    assert isinstance(r, sd.CheckReport) and r.passed
    assert sdt.assert_jacobian(vec_f, vec_jac, X).passed


def test_a_wrong_gradient_raises_with_verdict_hint_and_table():
    with pytest.raises(AssertionError) as exc:
        sdt.assert_gradient(f, lambda x: -grad(x), X)
    msg = str(exc.value)
    assert msg.startswith("gradient check failed: verdict 'bug'")
    assert "hint: sign: analytical = −numerical everywhere" in msg
    assert "entry" in msg and "fd err" in msg and "x[0]" in msg


def test_a_wrong_jacobian_raises_naming_the_entry():
    bad = lambda x: vec_jac(x) * np.array([[1, 1, 1], [1, 1, 1.003], [1, 1, 1]])
    with pytest.raises(AssertionError, match=r"Jacobian check failed: verdict '(suspicious|bug)'") as exc:
        sdt.assert_jacobian(vec_f, bad, X)
    assert "one entry, J[1,2]" in str(exc.value)


def test_options_reach_the_check():
    bad = lambda x: grad(x) * 1.001
    with pytest.raises(AssertionError):
        sdt.assert_gradient(f, bad, X)
    assert sdt.assert_gradient(f, bad, X, tol=1e-2).passed
    with pytest.raises(sd.ArgumentError, match="unknown option"):
        sdt.assert_gradient(f, grad, X, atol=1.0)


def test_assert_autograd():
    torch = pytest.importorskip("torch")
    x = torch.linspace(-1, 1, 5, dtype=torch.float64, requires_grad=True)
    assert sdt.assert_autograd(torch.sin, x).passed
    with pytest.raises(AssertionError, match="autograd check failed"):
        sdt.assert_autograd(lambda t: t.detach() ** 2 + t, x)  # detach drops the 2t term
