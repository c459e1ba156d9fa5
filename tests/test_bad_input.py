"""Bad input: a SimdiffError naming the argument, the value given and what is allowed."""

import numpy as np
import pytest

import simdiff as sd

f = lambda x: float(np.sum(x**2))  # noqa: E731
X = np.array([1.0, 2.0, 3.0])


@pytest.mark.parametrize("x, match", [
    ([1.0, np.nan, 3.0], r"x must be finite; got x\[1\] = nan"),
    ([1.0, np.inf], r"x must be finite; got x\[1\] = inf"),
    ([[1.0, 2.0], [3.0, 4.0]], r"x must be 1-D.*shape \(2, 2\)"),
    (2.0, r"x must be 1-D.*shape \(\).*simdiff.derivative"),
    ([], r"at least one entry"),
])
def test_bad_x(x, match):
    with pytest.raises(sd.ArgumentError, match=match) as e:
        sd.gradient(f, x)
    assert isinstance(e.value, ValueError)


def test_non_numeric_x():
    with pytest.raises(sd.ArgumentTypeError, match="x must be an array of floats"):
        sd.gradient(f, ["a", "b"])


def test_unknown_method_lists_allowed():
    with pytest.raises(sd.ArgumentError, match=r"method must be one of 'central', 'forward', 'backward', 'five-point', 'complex'; got 'centered'"):
        sd.gradient(f, X, method="centered")


@pytest.mark.parametrize("step, match", [
    (0.0, r"step must be finite and > 0.*step\[0\] = 0.0"),
    (-1e-3, r"step\[0\] = -0.001"),
    (np.nan, r"step\[0\] = nan"),
    ([1e-3, 1e-3], r"step must be a float or an array of shape \(3,\).*got shape \(2,\)"),
    ([1e-3, np.inf, 1e-3], r"step\[1\] = inf"),
    ("big", r"step must be None, a positive float"),
])
def test_bad_step(step, match):
    with pytest.raises(sd.ArgumentError, match=match):
        sd.gradient(f, X, step=step)


def test_bad_rel_step_and_both():
    with pytest.raises(sd.ArgumentError, match=r"rel_step.*rel_step\[0\] = -1.0"):
        sd.gradient(f, X, rel_step=-1.0)
    with pytest.raises(sd.ArgumentError, match="not both"):
        sd.gradient(f, X, step=1e-3, rel_step=1e-3)


def test_x_outside_bounds():
    with pytest.raises(sd.BoundsError, match=r"x\[2\] = 3.0 outside \[0.0, 2.5\]") as e:
        sd.gradient(f, X, bounds=(0.0, [5.0, 5.0, 2.5]))
    assert isinstance(e.value, ValueError)


def test_lower_above_upper():
    with pytest.raises(sd.BoundsError, match=r"lower\[1\] = 3.0 > upper\[1\] = 1.0"):
        sd.gradient(f, X, bounds=([0.0, 3.0, 0.0], [5.0, 1.0, 5.0]))


def test_bounds_wrong_shape():
    with pytest.raises(sd.BoundsError, match=r"shape \(3,\)"):
        sd.gradient(f, X, bounds=([0.0, 0.0], 5.0))
    with pytest.raises(sd.BoundsError, match="pair"):
        sd.gradient(f, X, bounds=5.0)


@pytest.mark.parametrize("out", ["text", None, {"a": 1}, object()])
def test_non_numeric_output(out):
    with pytest.raises(sd.OutputError, match=r"not numeric|non-numeric.*point 0 x=") as e:
        sd.gradient(lambda x: out, X)
    assert isinstance(e.value, ValueError)


def test_output_shape_changes_names_points():
    def g(x):
        return np.zeros(2) if x[0] > 1.0 else np.zeros(3)

    with pytest.raises(sd.OutputError, match=r"shape \(\d,\) at point 0 x=.*but \(\d,\) at point \d+ x="):
        sd.jacobian(g, X)


def test_gradient_of_vector_output():
    with pytest.raises(sd.OutputError, match="gradient needs a scalar output; f returned 2 values"):
        sd.gradient(lambda x: np.array([1.0, 2.0]) * x[0], X)


def test_complex_step_refused_when_not_safe():
    class Legacy(sd.Simulator):
        """Not complex-safe."""

        complex_safe = False

        def evaluate(self, x):
            return float(np.sum(x))

    with pytest.raises(sd.ArgumentError, match="complex_safe = False; allowed for it: 'central'"):
        sd.gradient(Legacy(), X, method="complex")


def test_complex_step_detects_dropped_imaginary_part():
    with pytest.raises(sd.OutputError, match="dropped the imaginary part"):
        sd.gradient(lambda x: np.abs(x).sum(), X, method="complex")


def test_not_callable():
    with pytest.raises(sd.ArgumentTypeError, match="f must be a callable or a simdiff.Simulator; got int"):
        sd.gradient(3, X)


def test_jvp_bad_direction():
    with pytest.raises(sd.ArgumentError, match=r"v must have the shape of x, \(3,\); got shape \(2,\)"):
        sd.jvp(f, X, [1.0, 2.0])
    with pytest.raises(sd.ArgumentError, match=r"v must be finite"):
        sd.jvp(f, X, [1.0, np.nan, 0.0])


def test_derivative_needs_scalar():
    with pytest.raises(sd.ArgumentError, match="x must be a single float for derivative"):
        sd.derivative(np.sin, [1.0, 2.0])


def test_simulation_error_names_point_and_index():
    def g(x):  # fails on both sides of x[1] = 2 (a one-sided stencil cannot help either)
        if x[1] != 2.0:
            raise RuntimeError("solver diverged")
        return float(np.sum(x))

    with pytest.raises(sd.SimulationError, match=r"failed at point \d+ x=.*RuntimeError: solver diverged") as e:
        sd.gradient(g, X)
    assert e.value.index is not None and e.value.point[1] != 2.0
    assert isinstance(e.value.cause, RuntimeError)
