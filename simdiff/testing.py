"""Assertions for users' test suites: ``assert_gradient``, ``assert_jacobian``, ``assert_autograd``.

Each runs the matching check (``simdiff.check_gradient`` / ``check_jacobian`` /
``simdiff.torch.check_autograd``) with the same options and raises ``AssertionError`` when it does
not pass; the message carries the verdict, the hints and the table of the worst entries::

    def test_my_backward():
        simdiff.testing.assert_gradient(loss, loss_grad, x0, points=5, seed=0)

On success the report is returned, so a test can go on to inspect it. For a noisy f pass
``noise=`` (a level or "estimate"): the tolerance then includes the noise (``check_gradient``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .check import CheckReport, check_gradient, check_jacobian

__all__ = ["assert_autograd", "assert_gradient", "assert_jacobian"]


def _raise_unless_passed(report: CheckReport, what: str) -> CheckReport:
    __tracebackhide__ = True
    if not report.passed:
        raise AssertionError(f"{what} check failed: verdict {report.verdict!r} (error "
                             f"{report.error:.3g} ≥ tol {report.tol:g}"
                             + (f" + noise {report.noise_tol:.1e}" if report.noise_tol else "")
                             + f")\n{report}")
    return report


def assert_gradient(f: Any, grad: Any, x: Any, **opts: Any) -> CheckReport:
    """Assert that ``grad`` is the gradient of f at x (options of ``simdiff.check_gradient``)."""
    __tracebackhide__ = True
    return _raise_unless_passed(check_gradient(f, grad, x, **opts), "gradient")


def assert_jacobian(f: Any, jac: Any, x: Any, **opts: Any) -> CheckReport:
    """Assert that ``jac`` is the Jacobian of f at x (options of ``simdiff.check_jacobian``)."""
    __tracebackhide__ = True
    return _raise_unless_passed(check_jacobian(f, jac, x, **opts), "Jacobian")


def assert_autograd(fn: Callable, *inputs: Any, **opts: Any) -> CheckReport:
    """Assert that torch autograd differentiates ``fn(*inputs)`` correctly (extra ``torch``)."""
    __tracebackhide__ = True
    from .torch import check_autograd

    return _raise_unless_passed(check_autograd(fn, *inputs, **opts), "autograd")
