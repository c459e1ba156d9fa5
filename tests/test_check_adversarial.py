"""check_gradient / check_jacobian on the cases a review found wrong, one regression test each,
plus the shapes, scales and planted bugs around them."""

import warnings

import numpy as np
import pytest

import simdiff as sd
from simdiff.check import NonSmoothWarning
from simdiff.diagnose import format_factor

RNG = np.random.default_rng(20261201)


def _smooth(n, seed=0):
    """f(x) = Σ c·sin(a·x) + 0.1·(Σx)² with distinct partials, and its gradient."""
    rng = np.random.default_rng(seed)
    a, c = rng.uniform(0.5, 2, n), rng.uniform(-2, 2, n)
    return (lambda x: float(np.sum(c * np.sin(a * x)) + 0.1 * np.sum(x) ** 2),
            lambda x: c * a * np.cos(a * x) + 0.2 * np.sum(x))


def _faulty(A, B):
    return set(map(int, np.flatnonzero(np.abs(A - B) > 1e-12 * np.abs(B).max())))


# -- the hint's wording ------------------------------------------------------------------------

def test_a_factor_near_one_is_not_printed_as_x1():
    # was: "factor ×1: analytical = 1.001 × numerical" (rounded to a fraction within 1e-3)
    assert format_factor(1.001) == "×1.001"
    assert format_factor(0.999) == "×0.999"
    f, g = _smooth(1)
    r = sd.check_gradient(f, lambda x: 1.001 * g(x), np.array([0.4]))
    assert not r.passed and r.kinds[0] == "factor" and "factor ×1.001" in r.hint


@pytest.mark.parametrize("n", [20, 48])
@pytest.mark.parametrize("s", [2, -2, 3])
def test_a_shift_by_two_or_three_is_named_so_not_as_a_row_shift_of_a_reshape(n, s):
    # was: np.roll(g, 2) on n = 200 (and 20, 48) reported "shifted by 1: with x seen as a 100×2 array ..."
    f, g = _smooth(n, seed=n)
    x = RNG.uniform(-2, 2, n)
    r = sd.check_gradient(f, lambda x: np.roll(g(x), s), x)
    assert not r.passed and r.kinds[0] == "shifted"
    assert r.hint.startswith(f"shifted by {abs(s)}: the analytical entry for x[j]"), r.hint
    assert f"x[j{'-' if s > 0 else '+'}{abs(s)}]" in r.hint


def test_jacobian_rows_rolled_by_two_are_named_shifted_by_two():
    A, B = RNG.normal(size=(6, 6)), RNG.normal(size=(6, 6))
    f = lambda x: A @ np.sin(x) + (B @ x) ** 2
    J = lambda x: A * np.cos(x) + 2 * (B @ x)[:, None] * B
    r = sd.check_jacobian(f, lambda x: np.roll(J(x), 2, axis=0), RNG.uniform(-2, 2, 6))
    assert r.kinds[0] == "shifted" and r.hint.startswith("shifted by 2") and "f[i-2]" in r.hint


def test_a_gradient_wrong_at_a_stationary_point_is_not_said_to_be_independent_of_x():
    # was: "although f does not depend on x there" for f = Σx² at x = 0
    r = sd.check_gradient(lambda x: float(np.sum(x**2)), lambda x: 2 * x + 1e-3, np.zeros(3))
    assert not r.passed and r.kinds[0] == "spurious"
    assert "does not depend" not in r.hint and "numerical derivative is 0" in r.hint


# -- kinks ---------------------------------------------------------------------------------------

def test_a_wrong_value_at_a_kink_is_hinted_as_the_kink_first():
    # was: first hint "spurious" (central difference of |x| at 0 is 0), the kink second
    f = lambda x: float(np.sum(np.abs(x)))
    g = lambda x: np.where(x == 0, 3.0, np.sign(x))
    with pytest.warns(NonSmoothWarning):
        r = sd.check_gradient(f, g, np.array([0.0, 1.0, -2.0]))
    assert not r.passed and r.kinds[0] == "nonsmooth"
    assert r.hint.startswith("f is not smooth at x[0]") and "lies outside them" in r.hint


@pytest.mark.parametrize("kind,x0", [("relu", 1e-5), ("abs", 1e-5), ("max", 1e-5), ("abs", -1e-7),
                                     ("max", -1e-7)])
def test_a_kink_within_the_step_but_not_at_x_is_no_false_alarm(kind, x0):
    # was: relu at x = 1e-5 (smooth there, derivative 2) failed with "off by +90 %": the central
    # stencil straddles the kink and the adaptive search reports a tiny error estimate
    w = 2.0
    f = {"relu": lambda x: float(w * max(x[0], 0.0) + x[1] ** 3),
         "abs": lambda x: float(w * abs(x[0]) + x[1] ** 3),
         "max": lambda x: float(max(w * x[0], 0.5 * x[0]) + x[1] ** 3)}[kind]
    d0 = {"relu": lambda t: w * (t > 0), "abs": lambda t: w * np.sign(t),
          "max": lambda t: w if t > 0 else 0.5}[kind]
    g = lambda x: np.array([d0(x[0]), 3 * x[1] ** 2])
    x = np.array([x0, 0.7])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonSmoothWarning)
        r = sd.check_gradient(f, g, x)
        assert r.passed and r.relative_error < 1e-7, str(r)
        # and a bug on that entry is still caught there, against the one-sided value
        bad = sd.check_gradient(f, lambda x: g(x) + [5.0, 0.0], x)  # outside any one-sided value
    assert not bad.passed and bad.worst[0].index == 0


def test_a_kink_near_x_is_resolved_by_the_search_on_xs_own_scale():
    # relu at 1e-5: the first adaptive level (reach 4·2^-6) straddles the kink; the search on
    # x[0]'s own scale (|x| < 1/64) does not, disagrees, and wins: the derivative is right and
    # the check needs no note (it used to replace the central value by the one-sided mean)
    f = lambda x: float(2 * max(x[0], 0.0) + x[1] ** 3)
    g = lambda x: np.array([2.0 * (x[0] > 0), 3 * x[1] ** 2])
    r = sd.check_gradient(f, g, np.array([1e-5, 0.7]))
    assert r.passed and r.nonsmooth == []
    assert r.numerical[0] == pytest.approx(2.0, rel=1e-8)


@pytest.mark.parametrize("name", ["relu", "max", "hinge"])
def test_correct_gradient_with_a_kink_elsewhere_passes_without_a_note(name):
    f, g = {"relu": (lambda x: float(np.sum(np.maximum(x, 0))), lambda x: (x > 0) * 1.0),
            "max": (lambda x: float(max(x[0], x[1]) + x[2]), lambda x: np.array([x[0] > x[1], x[1] >= x[0], 1.0]) * 1.0),
            "hinge": (lambda x: float(np.sum(np.maximum(0, 1 - x))), lambda x: -(x < 1).astype(float))}[name]
    for x in (np.array([0.3, -0.8, 1.7]), np.array([-1.2, 0.6, 2.4])):
        with warnings.catch_warnings():
            warnings.simplefilter("error", NonSmoothWarning)
            r = sd.check_gradient(f, g, x)
        assert r.passed and r.verdict == "excellent" and r.nonsmooth == []


# -- Jacobian shapes ---------------------------------------------------------------------------

def _map(m, n, seed):
    rng = np.random.default_rng(seed)
    A, B = rng.normal(size=(m, n)), rng.normal(size=(m, n))
    return (lambda x: A @ np.sin(x) + (B @ x) ** 2,
            lambda x: A * np.cos(x) + 2 * (B @ x)[:, None] * B)


@pytest.mark.parametrize("m,n", [(3, 5), (5, 3), (2, 30)])
def test_a_transposed_non_square_jacobian_is_a_failed_report_with_the_hint(m, n):
    # was: an ArgumentError, so that a planted transpose was not "caught with the right hint"
    f, J = _map(m, n, m * n)
    x = RNG.uniform(-2, 2, n)
    r = sd.check_jacobian(f, lambda x: J(x).T, x)
    assert not r.passed and r.verdict == "bug" and r.kinds == ["transposed"]
    assert f"returned shape ({n}, {m})" in r.hint
    with pytest.raises(AssertionError, match="transposed"):
        sd.testing.assert_jacobian(f, lambda x: J(x).T, x)


@pytest.mark.parametrize("m,n", [(1, 4), (4, 1)])
def test_a_vector_shaped_jacobian_in_either_orientation_is_accepted(m, n):
    # was: (4, 1) for a 1×4 Jacobian refused as "transposed" though its entries are in order
    f, J = _map(m, n, 3)
    x = RNG.uniform(-2, 2, n)
    assert sd.check_jacobian(f, lambda x: J(x).T, x).passed
    assert sd.check_jacobian(f, lambda x: J(x).ravel(), x).passed
    r = sd.check_jacobian(f, lambda x: -J(x), x)
    assert r.kinds == ["sign"]


@pytest.mark.parametrize("m,n", [(1, 4), (4, 1), (3, 5), (5, 3), (6, 6), (12, 20)])
def test_planted_jacobian_bugs_on_non_square_shapes(m, n):
    f, J = _map(m, n, m + 10 * n)
    x = RNG.uniform(-2, 2, n)
    J0 = J(x)
    assert sd.check_jacobian(f, J, x).verdict == "excellent"
    row = np.zeros((m, 1), bool)
    row[0] = True
    col = np.zeros((1, n), bool)
    col[0, n - 1] = True
    bugs = [("sign", lambda J: -J), ("factor", lambda J: 10 * J),
            ("sign", lambda J: np.where(row, -J, J) if m > 1 else np.where(col, -J, J)),
            ("factor", lambda J: np.where(col, 0.5 * J, J))]
    for kind, bug in bugs:
        r = sd.check_jacobian(f, lambda x, bug=bug: bug(J(x)), x)
        faulty = {tuple(map(int, ij)) for ij in np.argwhere(np.abs(bug(J0) - J0) > 1e-12)}
        expected = "confined" if kind == "factor" and len(faulty) == 1 else kind
        assert not r.passed and r.kinds[0] == expected, (kind, r.hints)
        assert r.worst[0].index in faulty


# -- scales ------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1e-8, 1e8])
def test_tiny_and_huge_functions_pass_and_a_one_entry_bug_is_named(scale):
    f = lambda x: scale * float(np.sum(np.exp(np.sin(x))))
    g = lambda x: scale * np.cos(x) * np.exp(np.sin(x))
    x = np.array([0.3, -2.0, 1.7, -0.4])
    assert sd.check_gradient(f, g, x).verdict == "excellent"
    r = sd.check_gradient(f, lambda x: g(x) * [1, -1, 1, 1], x)
    assert not r.passed and r.kinds[0] == "sign" and "for input x[1]" in r.hint
    r = sd.check_gradient(f, lambda x: g(x) * [1, 1, 1.005, 1], x)
    assert not r.passed and r.worst[0].index == 2 and "one entry, x[2]" in r.hint


def test_derivatives_below_the_zero_threshold_say_the_check_cannot_fail():
    # was: a sign flip on a 1e-12-scale gradient passed in silence
    f = lambda x: 1e-12 * float(np.sum(np.exp(np.sin(x))))
    g = lambda x: 1e-12 * np.cos(x) * np.exp(np.sin(x))
    x = np.array([0.3, -2.0, 1.7])
    ok = sd.check_gradient(f, g, x)
    assert ok.relative_error == 0.0 and ok.hints == []
    r = sd.check_gradient(f, lambda x: g(x) * [1, -1, 1], x)
    assert r.relative_error == 0.0 and r.passed  # the contract: both norms below 1e-10
    assert r.kinds == ["tiny"] and "cannot fail" in r.hint and "worst x[1]" in r.hint
    # a stationary point, where both are 0 up to rounding, gets no such hint
    assert sd.check_gradient(lambda x: float(np.sum(x**2)), lambda x: 2 * x, np.zeros(3)).hints == []


def test_large_points_of_both_signs_and_zero_entries():
    f = lambda x: float(x[0] ** 2 + np.sin(x[2]) + x[3] * x[0])
    g = lambda x: np.array([2 * x[0] + x[3], 0.0, np.cos(x[2]), x[0]])
    for x in (np.array([0.5, -1.2, 0.3, -0.7]), np.array([-3e4, 2e4, 1.0, 5e3])):
        assert sd.check_gradient(f, g, x).passed
        r = sd.check_gradient(f, lambda x: g(x) + [0, 0.5 * np.linalg.norm(g(x)), 0, 0], x)
        assert not r.passed and r.kinds[0] == "spurious" and r.worst[0].index == 1
        r = sd.check_gradient(f, lambda x: -g(x), x)
        assert r.kinds == ["sign"] and "everywhere" in r.hint


# -- arguments ---------------------------------------------------------------------------------

F, G, X = (lambda x: float(np.sum(x**2))), (lambda x: 2 * x), np.array([0.5, -1.0])


@pytest.mark.parametrize("kwargs,error,match", [
    ({"points": 2, "spread": np.inf}, sd.ArgumentError, r"spread must be a positive finite float; got inf"),
    ({"max_rows": True}, sd.ArgumentError, r"max_rows must be a positive int; got True"),
    ({"inputs": "ab"}, sd.ArgumentError, r"inputs must be a sequence of 2 names.*got str 'ab'"),
    ({"inputs": 5}, sd.ArgumentError, r"inputs must be a sequence of 2 names.*got int 5"),
    ({"outputs": ["a"]}, sd.ArgumentError, r"outputs= is for check_jacobian"),
    ({"tol": True}, sd.ArgumentError, r"tol must be a float in \(0, 1\); got True"),
    ({"points": 2, "seed": -1}, sd.ArgumentError, r"seed must be None, a non-negative int .*; got -1"),
])
def test_bad_arguments_name_the_argument_the_value_and_what_is_allowed(kwargs, error, match):
    # were: spread=inf blamed x, True accepted as max_rows, 'ab' taken as two names, 5 a
    # TypeError, and outputs= "unknown" while listed as allowed
    with pytest.raises(error, match=match):
        sd.check_gradient(F, G, X, **kwargs)


def test_numpy_scalars_are_accepted_as_tol_and_spread():
    # was: tol=np.float32(1e-4) refused as "not a float"
    r = sd.check_gradient(F, G, X, tol=np.float32(1e-4), points=2, spread=np.float64(0.5), seed=0)
    assert r.passed and r.tol == pytest.approx(1e-4)


@pytest.mark.parametrize("grad,match", [
    (None, r"grad must be a callable x -> ndarray .* or an array of floats; got NoneType None"),
    ("abc", r"grad must be a callable .*; got str 'abc'"),
    (lambda x: None, r"grad returned None at x = .*allowed: an array of floats of shape \(2,\)"),
])
def test_a_grad_that_is_not_a_derivative_is_refused_by_name(grad, match):
    # were: "grad returned an array of shape ()" for None, and for a function returning None
    with pytest.raises(sd.ArgumentTypeError, match=match):
        sd.check_gradient(F, grad, X)


def test_a_jacobian_whose_blocks_are_the_batch_mean_is_named_batch():
    # was: "48 of 48 significant entries mismatch, with no simple pattern"
    B, d = 3, 4
    W = RNG.normal(size=(d, d)) / 2

    def f(x):
        return (np.sin(x.reshape(B, d) @ W) + x.reshape(B, d) ** 2).ravel()

    def J(x):
        X = x.reshape(B, d)
        return _blockdiag([np.cos(X[b] @ W)[:, None] * W.T + np.diag(2 * X[b])
                           for b in range(B)])

    x = RNG.normal(size=B * d)
    J0 = J(x)
    mean = sum(J0[b * d:(b + 1) * d, b * d:(b + 1) * d] for b in range(B)) / B
    for bug, text in ((np.kron(np.eye(B), mean), "each sample's block is the mean"),
                      (np.kron(np.ones((B, B)), mean), "every block is the mean")):
        r = sd.check_jacobian(f, lambda _x, bug=bug: bug, x)
        assert not r.passed and r.kinds[0] == "batch" and text in r.hint, r.hints


def _blockdiag(blocks):
    k, d = blocks[0].shape
    out = np.zeros((len(blocks) * k, len(blocks) * d))
    for b, blk in enumerate(blocks):
        out[b * k:(b + 1) * k, b * d:(b + 1) * d] = blk
    return out


def test_with_several_points_each_kink_says_at_which_point():
    # was: the notes of every point listed under the worst one's x, without saying whose they were
    f = lambda x: float(np.sum(np.maximum(x, 0.0)))
    g = lambda x: (x > 0).astype(float)
    # a fixed step of 1e-4: point 1, 1e-9 from the kink, straddles it too
    with pytest.warns(NonSmoothWarning, match=r"at point \d: f is not smooth (near|at) x\[0\]"):
        r = sd.check_gradient(f, g, np.array([0.0]), points=2, seed=0, spread=1e-9,
                              method="central", step=1e-4)
    assert r.passed and sorted(k.point for k in r.nonsmooth) == [0, 1]
    assert all(k.index == 0 for k in r.nonsmooth) and "note: at point 0: f is not smooth" in str(r)


def test_the_non_smooth_warning_points_at_the_users_call():
    # was: stacklevel=3, which blamed simdiff/testing.py or simdiff/torch.py behind those helpers
    f = lambda x: float(np.sum(np.maximum(x, 0.0)))
    g = lambda x: (x > 0).astype(float)
    for call in (sd.check_gradient, sd.testing.assert_gradient):
        with pytest.warns(NonSmoothWarning) as caught:
            call(f, g, np.array([0.0, 1.0]))
        assert caught[0].filename == __file__


def test_relative_error_refuses_complex_arrays_rather_than_dropping_their_imaginary_part():
    # was: np.asarray(..., dtype=float) on a complex array, a ComplexWarning and the real part
    with pytest.raises(sd.ArgumentTypeError, match="a is ndarray"):
        sd.relative_error(np.array([1.0 + 1e-3j, 2.0]), [1.0, 2.0])


@pytest.mark.parametrize("c", [-1.0, 0.5, -2.0])
def test_a_missing_or_flipped_l2_term_is_named_proportional_to_x(c):
    # was: "6 of 6 significant entries mismatch, with no simple pattern"
    rng = np.random.default_rng(3)
    X, y, lam = rng.normal(size=(20, 6)), rng.normal(size=20), 0.5
    f = lambda w: float(np.sum(np.log(np.cosh(X @ w - y))) + 0.5 * lam * w @ w)
    g = lambda w: X.T @ np.tanh(X @ w - y) + lam * w
    w0 = rng.normal(size=6)
    r = sd.check_gradient(f, lambda w: g(w) + c * lam * w, w0)
    assert not r.passed and r.kinds == ["proportional"]
    assert f"= {c * lam:.6g}·x on every entry" in r.hint
    # an unstructured error is not forced into that pattern
    r = sd.check_gradient(f, lambda w: g(w) + np.arange(6.0) ** 2, w0)
    assert r.kinds != ["proportional"]


def test_x_abs_x_at_zero_is_no_false_alarm():
    # f = x|x| is C¹ with f'(0) = 0, but its even second-order terms defeat every central
    # stencil (f(h) − f(−h) = 2h²): the central value was ~h, "wrong"; the one-sided ones agree
    f = lambda x: float(np.sum(x * np.abs(x)))
    g = lambda x: 2 * np.abs(x)
    with pytest.warns(NonSmoothWarning, match=r"not smooth near x\[0\] \(at x or within"):
        r = sd.check_gradient(f, g, np.array([0.0, 0.5]))
    assert r.passed and r.verdict == "excellent" and [k.index for k in r.nonsmooth] == [0]
    off = sd.check_gradient(f, g, np.array([0.0, 0.5]), nonsmooth="off")
    assert off.mismatched[0] and off.numerical[0] > 1e-6 and off.hints  # flagged without the rule


def test_a_norm_failure_within_the_numerical_error_says_it_is_not_a_bug():
    # f = 1e11 + Σ sin x: rounding of |f| limits the numerical side to ~1e-4; the contract's norm
    # rule says "suspicious" though no entry stands above the finite-difference error. Was: no
    # word of that; the summary said "0 of 3 entries mismatched" under SUSPICIOUS.
    f = lambda x: float(1e11 + np.sum(np.sin(x)))
    r = sd.check_gradient(f, np.cos, np.array([0.3, -1.2, 0.8]))
    assert not r.passed and r.relative_error >= 1e-5 and not r.mismatched.any()
    assert r.kinds == ["resolution"] and "finite-difference error rather than a bug" in r.hint
    assert sd.check_gradient(lambda x: float(np.sum(np.sin(x))), np.cos, np.array([0.3, -1.2])).hints == []
