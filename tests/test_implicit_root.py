"""simdiff.implicit.root (the solver's answer kept per θ) and simdiff.torch.implicit (a torch
layer whose backward is the implicit VJP)."""

import numpy as np
import pytest
from scipy.optimize import OptimizeResult, brentq
from scipy.optimize import root as scipy_root

import simdiff as sd


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def F(y, th):
    """A nonlinear 3×3 system with parameters (a, b): a small steady-state model."""
    a, b = th
    return np.array([
        3 * y[0] - np.cos(y[1] * y[2]) - a,
        y[0] ** 2 - 81 * (y[1] + 0.1) ** 2 + np.sin(y[2]) + b,
        np.exp(-y[0] * y[1]) + 20 * y[2] + (10 * np.pi - 3) / 3,
    ])


def dF(y, th):
    Jy = np.array([
        [3, y[2] * np.sin(y[1] * y[2]), y[1] * np.sin(y[1] * y[2])],
        [2 * y[0], -162 * (y[1] + 0.1), np.cos(y[2])],
        [-y[1] * np.exp(-y[0] * y[1]), -y[0] * np.exp(-y[0] * y[1]), 20],
    ])
    Jth = np.array([[-1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    return Jy, Jth


class Solver:
    """scipy.optimize.root (hybr) counting its runs."""

    def __init__(self, tol=1e-13):
        self.runs, self.tol = 0, tol

    def __call__(self, th):
        self.runs += 1
        return scipy_root(F, np.array([0.5, 0.0, -0.5]), args=(th,), method="hybr",
                          jac=lambda y, t: dF(y, t)[0], tol=self.tol)


def truth(th):
    y = scipy_root(F, np.array([0.5, 0.0, -0.5]), args=(th,), jac=lambda y, t: dF(y, t)[0],
                   tol=1e-14).x
    for _ in range(3):  # polish with Newton
        y = y - np.linalg.solve(dF(y, th)[0], F(y, th))
    Jy, Jth = dF(y, th)
    return y, -np.linalg.solve(Jy, Jth)


def test_root_runs_the_solver_once_per_theta():
    solver = Solver()
    solve = sd.implicit.root(solver, F)
    th = np.array([0.5, 1.06])
    y = solve(th)
    assert solver.runs == 1 and solve.nsolves == 1
    y2 = solve(th.copy())
    assert solver.runs == 1
    np.testing.assert_array_equal(y, y2)
    J = solve.jacobian(th)
    solve.jvp(th, [1.0, 0.0])
    solve.vjp(th, [1.0, 0.0, 0.0])
    assert solver.runs == 1
    _, Jt = truth(th)
    assert rel(J, Jt) < 1e-8
    th2 = th + 0.01
    solve.jacobian(th2)  # a new θ: the solver runs once more, no more
    assert solver.runs == 2


def test_root_no_less_accurate_than_fd_through_the_solver():
    th = np.array([0.5, 1.06])
    _, Jt = truth(th)
    for tol in (1e-6, 1e-10):
        solver = Solver(tol)
        solve = sd.implicit.root(solver, F, on_residual="warn")
        Jfd = sd.jacobian(sd.implicit.root(Solver(tol), F), th)  # Root is a Simulator
        Ji = solve.jacobian(th)
        assert solver.runs == 1
        assert rel(Ji, Jt) <= max(rel(Jfd, Jt), 1e-8)


def test_chain_rule_vjp_equals_gradient_through_solver():
    th = np.array([0.5, 1.06])
    solve = sd.implicit.root(Solver(), F)
    w = np.array([1.0, -2.0, 0.5])
    loss = lambda y: float(np.sum(w * y**2))  # noqa: E731
    g_fd = sd.gradient(lambda t: loss(solve(t)), th)
    y = solve(th)
    g_imp = solve.vjp(th, 2 * w * y)
    _, Jt = truth(th)
    assert rel(g_imp, (2 * w * y) @ Jt) < 1e-8
    assert rel(g_fd, g_imp) < 1e-5


def test_root_optimize_result_failure_warns():
    def bad(th):
        return OptimizeResult(x=np.array([np.sqrt(th[0])]), success=False, message="gave up")

    solve = sd.implicit.root(bad, lambda y, th: y**2 - th)
    with pytest.warns(sd.SimdiffWarning, match="gave up"):
        solve([4.0])


def test_root_fixed_point_and_argmin_kinds():
    from scipy.special import lambertw

    def fp_solver(th):
        y = 0.5
        for _ in range(200):
            y = np.exp(-th[0] * y)
        return np.array([y])

    solve = sd.implicit.root(fp_solver, lambda y, th: np.exp(-th * y), kind="fixed_point")
    t = 0.8
    y = float(np.real(lambertw(t))) / t
    assert rel(solve.jacobian([t])[0, 0], -y**2 / (1 + t * y)) < 1e-8
    assert rel(solve.jvp([t], [2.0]), [-2 * y**2 / (1 + t * y)]) < 1e-8

    solve = sd.implicit.root(lambda th: np.array([th[0] + np.log(th[1])]),
                             lambda y, th: np.exp(y[0] - th[0]) - th[1] * y[0], kind="argmin")
    J, info = solve.jacobian([0.3, 2.5], full_output=True)
    assert rel(J, [[1.0, 0.4]]) < 1e-6
    assert rel(solve.vjp([0.3, 2.5], [2.0]), [2.0, 0.8]) < 1e-6
    assert solve.nsolves == 1


def test_root_rejects_bad_arguments():
    with pytest.raises(sd.ArgumentTypeError, match="solver must be callable"):
        sd.implicit.root(3, F)
    with pytest.raises(sd.ArgumentError, match="kind"):
        sd.implicit.root(Solver(), F, kind="minimum")
    solve = sd.implicit.root(Solver(), F)
    with pytest.raises(sd.ArgumentError, match="v must have shape"):
        solve.jvp([0.5, 1.06], [1.0])


# --- torch ---------------------------------------------------------------------------------


def kepler(E, p):
    return E - p[1] * np.sin(E) - p[0]


def kepler_solver(p):
    return np.array([brentq(lambda E: E - p[1] * np.sin(E) - p[0], -50, 50, xtol=1e-15)])


def test_torch_layer_gradcheck_and_backward():
    torch = pytest.importorskip("torch")
    layer = sd.torch.implicit(kepler_solver, kepler)
    th = torch.tensor([1.2, 0.6], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (th,))
    E = layer(th)
    (3 * E).sum().backward()
    e = float(kepler_solver([1.2, 0.6])[0])
    d = 1 - 0.6 * np.cos(e)
    assert rel(th.grad.numpy(), 3 * np.array([1 / d, np.sin(e) / d])) < 1e-8


def test_torch_layer_in_a_model_multi_output():
    torch = pytest.importorskip("torch")
    layer = sd.torch.implicit(lambda t: Solver()(t.copy()), F)
    lin = torch.nn.Linear(2, 2).double()
    x = torch.tensor([0.3, -0.2], dtype=torch.float64)
    th = lin(x) * 0.1 + torch.tensor([0.5, 1.06], dtype=torch.float64)
    y = layer(th)
    loss = (y**2).sum()
    loss.backward()
    thv = th.detach().numpy()
    yv, Jt = truth(thv)
    dth = (2 * yv) @ Jt
    assert rel(lin.bias.grad.numpy(), 0.1 * dth) < 1e-7
    assert torch.autograd.gradcheck(layer, (th.detach().clone().requires_grad_(True),))
    with pytest.raises(sd.ArgumentTypeError, match="torch.Tensor"):
        layer(np.array([0.5, 1.06]))


def test_example_circuit_runs(capsys):
    import pathlib
    import runpy

    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "implicit_circuit.py"
    runpy.run_path(str(path), run_name="__main__")  # asserts inside: implicit beats FD
    assert "relative error: implicit" in capsys.readouterr().out
