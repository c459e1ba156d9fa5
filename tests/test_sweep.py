"""step_sweep: the optimum in the right decade, the V's two slopes, one batch, the plot."""

import numpy as np
import pytest

import simdiff as sd
from simdiff.evaluate import SerialEvaluator

EPS = np.finfo(float).eps


def theory(method, f0, d2, d3):
    """The optimum of E(h) = ε|f|Σ|w|/h + |C|·|f^(p+1)|·h^p for the two classic schemes."""
    if method == "central":  # Σ|w| = 1, C = 1/6
        return (3 * EPS * abs(f0) / abs(d3)) ** (1 / 3)
    return 2 * np.sqrt(EPS * abs(f0) / abs(d2))  # forward: Σ|w| = 2, C = 1/2


CASES = [  # f, x, f(x), f', f'', f'''
    (np.exp, 1.0, np.e, np.e, np.e, np.e),
    (np.sin, 0.7, np.sin(0.7), np.cos(0.7), -np.sin(0.7), -np.cos(0.7)),
    (lambda x: np.exp(3 * x), 0.2, np.exp(0.6), 3 * np.exp(0.6), 9 * np.exp(0.6), 27 * np.exp(0.6)),
]


@pytest.mark.parametrize("method", ["central", "forward"])
@pytest.mark.parametrize("f, x, f0, d1, d2, d3", CASES)
def test_optimum_in_the_right_decade(method, f, x, f0, d1, d2, d3):
    r = sd.step_sweep(f, x, method=method, true=d1)
    assert len(r.steps) >= 50 and r.steps.min() <= 1e-15 and r.steps.max() >= 1.0
    assert abs(np.log10(r.best_step / theory(method, f0, d2, d3))) <= 1.0
    # the least measured error sits near the optimum, far below both ends of the V
    assert np.nanmin(r.errors) <= 1e-3 * min(r.errors[0], r.errors[-1])


def test_slopes_of_the_v():
    r = sd.step_sweep(np.exp, 1.0, method="central", true=np.e)
    big = (r.steps > 1e-3) & (r.steps < 1e-1)
    slope = np.polyfit(np.log(r.steps[big]), np.log(r.errors[big]), 1)[0]
    assert abs(slope - 2) < 0.1  # truncation: slope p = 2
    small = (r.steps > 1e-13) & (r.steps < 1e-8)
    slope = np.polyfit(np.log(r.steps[small]), np.log(r.errors[small]), 1)[0]
    assert abs(slope + 1) < 0.3  # rounding: slope −1 (noisy)


def test_reference_is_adaptive_without_true():
    r = sd.step_sweep(np.sin, 0.5)
    assert r.reference_kind == "adaptive"
    assert abs(r.reference - np.cos(0.5)) <= 1e-14


def test_one_batch_for_all_steps():
    class Counting(SerialEvaluator):
        def __init__(self):
            super().__init__(on_failure="skip")
            self.sizes = []

        def evaluate(self, sim, X):
            self.sizes.append(len(X))
            return super().evaluate(sim, X)

    ev = Counting()
    r = sd.step_sweep(np.exp, 1.0, method="forward", true=np.e, evaluator=ev)
    assert len(ev.sizes) == 1
    # f(x) once, one point per step (fewer where tiny steps land on the same float)
    assert ev.sizes[0] == r.nfev <= (~r.degenerate).sum() + 1


def test_direction_sweep():
    f = lambda v: np.sum(v**3)  # noqa: E731
    x, v = np.array([1.0, 2.0]), np.array([1.0, 1.0])
    r = sd.step_sweep(f, x, direction=v, true=(3 + 12) / np.sqrt(2))
    assert np.nanmin(r.errors) <= 1e-9


def test_degenerate_steps_below_float_spacing():
    r = sd.step_sweep(np.log, 1e3, steps=[1e-20, 1e-3], true=1e-3)
    assert r.degenerate.tolist() == [True, False]
    assert r.values[0] == 0.0


def test_plot_writes_a_png(tmp_path):
    r = sd.step_sweep(np.exp, 1.0, true=np.e)
    path = r.plot(tmp_path / "sweep.png")
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    r = sd.step_sweep(np.exp, 1.0, method="complex", true=np.e)
    assert r.plot(tmp_path / "complex.png").endswith("complex.png")


@pytest.mark.parametrize("kw, match", [
    ({"steps": [0.0, 1e-3]}, "steps"),
    ({"direction": np.array([0.0, 0.0])}, "direction"),
])
def test_bad_arguments(kw, match):
    x = 1.0 if "direction" not in kw else np.array([1.0, 2.0])
    with pytest.raises(sd.ArgumentError, match=match):
        sd.step_sweep(np.sum if "direction" in kw else np.exp, x, **kw)


@pytest.mark.parametrize("method", ["central", "forward"])
def test_optimum_without_true_when_rounding_is_absent(method):
    # sqrt near 4 rounds so well that the small steps agree with f' to the last bit: the
    # errors there only measure the adaptive reference's own error (1.7e-15) and must not be
    # fitted as a rounding branch (that put the optimum 2 and 4 decades too small).
    r = sd.step_sweep(np.sqrt, 4.0, method=method)
    assert r.reference_kind == "adaptive"
    assert abs(np.log10(r.best_step / theory(method, 2.0, -1 / 32, 3 / 256))) <= 1.0
