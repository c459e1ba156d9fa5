"""Assembly when some points failed (on_failure="skip"): rebuilt from survivors, or NaN and named."""

import numpy as np
import pytest

import simdiff as sd
from simdiff.evaluate import Batch, Failure, SerialEvaluator


class DropRows:
    """An evaluator that evaluates serially but reports chosen points as failed."""

    on_failure = "skip"

    def __init__(self, fail):
        self.fail = fail  # predicate on the point
        self.inner = SerialEvaluator()
        self.batches = []

    def evaluate(self, sim, X):
        b = self.inner.evaluate(sim, X)
        self.batches.append(len(X))
        failures = []
        for i, x in enumerate(X):
            if self.fail(x):
                b.ok[i] = False
                b.values[i] = np.nan
                failures.append(Failure(i, x.copy(), "planted failure"))
        return Batch(b.values, b.ok, failures, b.nfev, b.scalar)


f = lambda x: np.sum(np.exp(np.sin(x)))  # noqa: E731
grad = lambda x: np.cos(x) * np.exp(np.sin(x))  # noqa: E731
X0 = np.array([0.3, -1.2, 0.7])


def test_central_missing_one_side_falls_back_to_one_sided_same_step():
    ev = DropRows(lambda x: x[1] > -1.2)  # the +h point of coordinate 1, at any step
    with pytest.warns(sd.SimdiffWarning, match=r"entry 1: f failed on one side of x"):
        g, info = sd.gradient(f, X0, evaluator=ev, full_output=True)
    # first batch 6 points and f(x) (the central estimate's measured curvature, and the
    # one-sided rebuild's centre); the entry is tried at steps 16x, 256x, 4096x shorter
    # (2 points each), which fail too; then the backward stencil of the same order (order 2,
    # nodes x, x - h, x - 2h: one new point)
    assert ev.batches == [7, 2, 2, 2, 1]
    assert info.schemes[1].startswith("backward")
    assert abs(g[1] - grad(X0)[1]) < 1e-8            # order 2, as the central one
    assert np.allclose(g[[0, 2]], grad(X0)[[0, 2]], rtol=1e-8)
    assert any(d.get("recovered") for d in info.failures)
    assert any(d.get("cause") == "planted failure" for d in info.failures)


def test_five_point_missing_one_point_uses_the_other_three():
    h = sd.gradient(f, X0, method="five-point", full_output=True)[1].step[0]
    ev = DropRows(lambda x: x[0] > 0.3 + 1.5 * h)  # the +2h point of coordinate 0
    g, info = sd.gradient(f, X0, method="five-point", evaluator=ev, full_output=True)
    # three survivors give an order-2 rebuild at once (no f(x) needed); its error is above
    # what five-point promises, so the entry is tried again 16x closer, where all four fit
    assert ev.batches == [12, 4]
    assert abs(g[0] - grad(X0)[0]) < 1e-9
    assert info.step[0] < h / 8


def test_entry_with_nothing_left_is_nan_and_named():
    ev = DropRows(lambda x: x[2] != 0.7)  # both points of coordinate 2, and f(x) survives
    g, info = sd.gradient(f, X0, method="forward", evaluator=ev, full_output=True)
    assert np.isnan(g[2]) and np.isnan(info.error[2])
    assert np.allclose(g[:2], grad(X0)[:2], rtol=1e-5)
    lost = [d for d in info.failures if d.get("entry") == 2]
    assert lost and "too few survive" in lost[0]["reason"]
