"""simdiff.torch.check_autograd against torch.autograd.gradcheck, side by side."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import simdiff as sd

torch = pytest.importorskip("torch")
from simdiff.torch import check_autograd


def _load_example():
    """examples/check_backward_pass.py, whose Softmax and ForgetfulSoftmax the tests share."""
    path = Path(__file__).resolve().parents[1] / "examples" / "check_backward_pass.py"
    spec = importlib.util.spec_from_file_location("check_backward_pass", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_example = _load_example()
Softmax, ForgetfulSoftmax = _example.Softmax, _example.ForgetfulSoftmax  # s ⊙ (g − g·s); s ⊙ g


class DoubledSquare(torch.autograd.Function):
    """x² with a backward that is twice too large."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 4 * x * g


def _x():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, generator=gen, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("fn,correct", [(Softmax, True), (ForgetfulSoftmax, False),
                                        (DoubledSquare, False)])
def test_verdict_agrees_with_torch_gradcheck(fn, correct):
    x = _x()
    torch_says = torch.autograd.gradcheck(fn.apply, (x,), raise_exception=False)
    r = check_autograd(fn.apply, x)
    assert torch_says is correct
    assert r.passed is correct, str(r)
    assert r.verdict == ("excellent" if correct else "bug")


def test_the_forgotten_term_is_located():
    r = check_autograd(ForgetfulSoftmax.apply, _x())
    assert r.kinds[0] == "rank-1" and "2 independent samples" in r.hint
    worst = r.worst[0]
    assert worst.label.startswith(f"J[{worst.index[0]},{worst.index[1]}] ∂out[")
    assert "∂logits[" in worst.label  # named after the parameter of ForgetfulSoftmax.forward
    # s·(g − g·s) differs from s·g by −s sᵀ: every entry of each 3×3 sample block, none outside
    bad = r.mismatched
    assert bad.shape == (6, 6)
    assert bad[:3, :3].all() and bad[3:, 3:].all() and not bad[:3, 3:].any() and not bad[3:, :3].any()


def test_factor_bug_is_named_factor_2():
    r = check_autograd(DoubledSquare.apply, _x())
    assert r.kinds[0] == "factor" and "factor ×2" in r.hint


def test_several_inputs_a_scalar_output_and_non_tensor_arguments():
    gen = torch.Generator().manual_seed(1)
    W = torch.randn(3, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, generator=gen, dtype=torch.float64, requires_grad=True)
    X = torch.randn(4, 3, generator=gen, dtype=torch.float64)  # data: not differentiated

    def loss(W, b, X, power):
        return (torch.tanh(X @ W + b) ** power).sum()

    r = check_autograd(loss, W, b, X, 2)
    assert r.kind == "gradient" and r.passed and r.numerical.shape == (8,)
    assert r.worst[0].label.split()[1].strip("'")[0] in "Wb"
    expected = torch.autograd.grad(loss(W, b, X, 2), (W, b))
    np.testing.assert_allclose(r.analytical, torch.cat([e.reshape(-1) for e in expected]).numpy())


def test_float32_inputs_are_checked_in_float64():
    x = _x().detach().float().requires_grad_(True)
    r = check_autograd(Softmax.apply, x)
    assert r.verdict == "excellent"  # float32 could not reach 1e-7


def test_points_and_options_pass_through():
    ev = sd.SerialEvaluator()
    r = check_autograd(ForgetfulSoftmax.apply, _x(), points=2, seed=0, evaluator=ev)
    assert len(r.reports) == 2 and not r.passed and ev.nfev == r.nfev


def test_an_input_without_floats_is_refused():
    with pytest.raises(sd.ArgumentError, match="floating-point tensor"):
        check_autograd(lambda n: torch.ones(3) * n, 3)
    with pytest.raises(sd.ArgumentError, match=r"got \['Tensor torch.int64', 'int'\]"):
        check_autograd(lambda t, k: t * k, torch.ones(3, dtype=torch.int64), 2)


def test_relu_at_zero_is_named_not_smooth_where_gradcheck_fails():
    x = torch.tensor([-1.0, 0.0, 0.5, 0.0], dtype=torch.float64, requires_grad=True)
    assert not torch.autograd.gradcheck(torch.relu, (x,), raise_exception=False)
    with pytest.warns(sd.check.NonSmoothWarning, match=r"not smooth at x\[1\]"):
        r = check_autograd(torch.relu, x)
    assert r.passed  # torch's derivative 0 at the kink lies between the one-sided 0 and 1
    assert sorted(k.index for k in r.nonsmooth) == [(1, 1), (3, 3)]


def test_a_non_tensor_output_is_refused_by_name():
    # was: AttributeError 'float' object has no attribute 'shape'
    with pytest.raises(sd.ArgumentTypeError, match="fn must return real tensors .*; output 0 is float"):
        check_autograd(lambda t: 3.0, _x())
    with pytest.raises(sd.ArgumentTypeError, match="at least one floating-point tensor; got .*int64"):
        check_autograd(lambda t: t.argmax(), _x())


def test_integer_outputs_are_left_out_as_gradcheck_leaves_them():
    # was: torch.max(x, dim) (values and indices) refused as "not floating-point"
    x = _x()
    fn = lambda t: torch.max(t, dim=1)
    assert torch.autograd.gradcheck(fn, (x,), raise_exception=False)
    r = check_autograd(fn, x)
    assert r.passed and r.numerical.shape == (2, 6)
    assert r.worst[0].label.startswith("J[") and "∂out0[" in r.worst[0].label


class Scale(torch.autograd.Function):
    """x·w in the setup_context style (forward without ctx), with w's gradient forgotten."""

    @staticmethod
    def forward(x, w):
        return x * w

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, g):
        _, w = ctx.saved_tensors
        return g * w, torch.zeros_like(w)


def test_entries_are_named_after_the_parameters_of_the_functions_forward():
    # was: "input0[...]" for every custom autograd.Function (apply takes *args)
    gen = torch.Generator().manual_seed(3)
    x, w = (torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(2))
    assert not torch.autograd.gradcheck(Scale.apply, (x, w), raise_exception=False)
    r = check_autograd(Scale.apply, x, w)
    assert not r.passed and r.kinds[0] == "zero" and "for inputs x[3] 'w[0]'" in r.hint
    assert "∂out[" in r.worst[0].label and "/∂w[" in r.worst[0].label


def _one_entry_off(m, n, i, j, pct, seed):
    gen = torch.Generator().manual_seed(seed)
    W = torch.randn(m, n, generator=gen, dtype=torch.float64)
    M = torch.ones(m, n, dtype=torch.float64)
    M[i, j] += pct

    class TanhLayer(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.tanh(W @ x)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return ((1 - torch.tanh(W @ x) ** 2)[:, None] * W * M).T @ g

    return TanhLayer.apply, torch.randn(n, generator=gen, dtype=torch.float64).mul(0.5).requires_grad_(True)


def test_strict_fails_wherever_gradcheck_does_and_the_default_still_names_the_entry():
    # a 0.5 % error in one of 400 entries: gradcheck (per entry, rtol 1e-3) fails, and so does
    # check_autograd by default (strict, to agree with gradcheck); the norm rule (strict=False)
    # averages it to 4e-6 and passes, but marks the entry and says strict would fail it
    fn, x = _one_entry_off(40, 10, 17, 4, 0.005, seed=5)
    assert not torch.autograd.gradcheck(fn, (x,), raise_exception=False)
    for strict in (check_autograd(fn, x), check_autograd(fn, x, strict=True)):
        assert not strict.passed and strict.worst[0].index == (17, 4)
        assert "one entry, J[17,4]" in strict.hint
    default = check_autograd(fn, x, strict=False)
    assert default.passed and default.relative_error < 1e-5
    assert default.worst[0].index == (17, 4) and default.mismatched.sum() == 1
    assert "strict=True would fail them" in str(default) and "one entry, J[17,4]" in str(default)
    ok_fn, x = _one_entry_off(40, 10, 17, 4, 0.0, seed=5)
    assert torch.autograd.gradcheck(ok_fn, (x,), raise_exception=False)
    assert check_autograd(ok_fn, x, strict=True).passed


def test_relative_error_takes_tensors_that_require_grad():
    # was: RuntimeError "Can't call numpy() on Tensor that requires grad"
    a = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    assert sd.relative_error(a, 2 * a) == pytest.approx(1 / 3)
    with pytest.raises(sd.ArgumentTypeError, match="relative_error needs two arrays of real numbers; b is"):
        sd.relative_error(a, [1j, 2.0])


def test_check_gradient_takes_a_grad_that_returns_a_tensor():
    # was: RuntimeError from np.asarray on a tensor that requires grad
    def grad(x):
        t = torch.tensor(x, requires_grad=True)
        (g,) = torch.autograd.grad((t**3).sum(), t)
        return g * (1 + 0 * t)  # still attached to the graph
    x = np.array([0.5, -1.2])
    assert sd.check_gradient(lambda x: float(np.sum(x**3)), grad, x).passed


def test_the_example_runs_and_says_what_each_planted_bug_is(capsys):
    _example.numpy_journey()  # in this process: torch is loaded already
    _example.torch_journey()
    out = capsys.readouterr().out
    assert "correct gradient: excellent" in out
    assert "hint: analytical − numerical = -1·x on every entry" in out  # the flipped L2 term
    assert "hint: shifted by 1" in out
    assert "Softmax: torch.autograd.gradcheck says pass, simdiff says excellent" in out
    assert "ForgetfulSoftmax: torch.autograd.gradcheck says FAIL, simdiff says bug" in out
    assert "rank-one matrix u·vᵀ with u ∝ v" in out


def _function(forward, backward):
    class Op(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return forward(a, b)

        @staticmethod
        def backward(ctx, g):
            return backward(g, *ctx.saved_tensors)

    return Op.apply


_matmul = (lambda a, b: a @ b)
MULTI = {  # name: (fn, correct, the input whose gradient is wrong)
    "matmul": (_function(_matmul, lambda g, a, b: (g @ b.T, a.T @ g)), True, None),
    "matmul, grad b negated": (_function(_matmul, lambda g, a, b: (g @ b.T, -(a.T @ g))), False, "b"),
    "matmul, grad a doubled": (_function(_matmul, lambda g, a, b: (2 * g @ b.T, a.T @ g)), False, "a"),
    "a*b + sin(a), cos forgotten": (_function(lambda a, b: a * b + torch.sin(a),
                                              lambda g, a, b: (g * b, g * a)), False, "a"),
}


@pytest.mark.parametrize("name", list(MULTI))
def test_multi_input_functions_agree_with_gradcheck_and_name_the_wrong_input(name):
    fn, correct, wrong = MULTI[name]
    gen = torch.Generator().manual_seed(11)
    shapes = ((3, 4), (4, 2)) if name.startswith("matmul") else ((3, 2), (3, 2))
    a, b = (torch.randn(*s, generator=gen, dtype=torch.float64, requires_grad=True) for s in shapes)
    torch_says = torch.autograd.gradcheck(fn, (a, b), raise_exception=False)
    r = check_autograd(fn, a, b)
    assert torch_says is correct and r.passed is correct, str(r)
    if not correct:
        bad_inputs = {e.label.split("/∂")[-1].split("[")[0] for e in r.worst if e.status == "mismatch"}
        assert bad_inputs == {wrong}, bad_inputs


def test_a_float32_module_runs_as_a_float64_copy():
    # was: RuntimeError "mat1 and mat2 must have the same dtype" (inputs float64, weights float32)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh())
    x = torch.randn(4, 3)
    r = check_autograd(model, x)
    assert r.passed and r.verdict == "excellent" and "∂input[" in r.worst[0].label  # forward(input)
    assert next(model.parameters()).dtype == torch.float32  # the caller's module untouched
