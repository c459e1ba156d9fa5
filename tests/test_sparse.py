"""jacobian(sparsity=S): the colouring is valid, the sparse Jacobian equals the dense one,
costs 2 × groups (central), and comes back sparse when S is sparse."""

import numpy as np
import pytest
import scipy.sparse as sp

import simdiff as sd
from simdiff.sparsity import colour_columns, pattern


def banded(x):
    """y_i = x_i^3 + sin(x_{i+1})·x_i + exp(x_{i-1}/3): a tridiagonal Jacobian."""
    y = x**3
    y[:-1] += np.sin(x[1:]) * x[:-1]
    y[1:] += np.exp(x[:-1] / 3)
    return y


def banded_jac(x):
    n = len(x)
    J = np.diag(3 * x**2)
    J[np.arange(n - 1), np.arange(n - 1)] += np.sin(x[1:])
    J[np.arange(n - 1), np.arange(1, n)] += np.cos(x[1:]) * x[:-1]
    J[np.arange(1, n), np.arange(n - 1)] += np.exp(x[:-1] / 3) / 3
    return J


def arrow(x):
    """y_0 = Σ x², y_i = x_0·x_i (i ≥ 1): an arrowhead pattern (full first row and column)."""
    return np.concatenate([[np.sum(x**2)], x[0] * x[1:]])


def arrow_jac(x):
    n = len(x)
    J = np.zeros((n, n))
    J[0] = 2 * x
    J[1:, 0] = x[1:]
    J[np.arange(1, n), np.arange(1, n)] = x[0]
    return J


class Counter:
    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, x):
        self.n += 1
        return self.f(x)


def tridiag(n):
    return sp.diags_array([np.ones(n - 1), np.ones(n), np.ones(n - 1)], offsets=[-1, 0, 1],
                          format="csr").astype(bool)


def test_colouring_is_valid_and_small():
    rng = np.random.default_rng(1)
    for _ in range(20):
        m, n = rng.integers(3, 30, size=2)
        S = rng.random((m, n)) < 0.15
        rows, cols, mm, _, _ = pattern(S, n)
        groups = colour_columns(rows, cols, mm, n)
        seen = np.concatenate(groups) if groups else np.array([], int)
        assert sorted(seen) == sorted(set(np.flatnonzero(S.any(axis=0))))  # each once
        for g in groups:  # structurally orthogonal: no row touched twice in a group
            assert np.all(S[:, g].sum(axis=1) <= 1)
    # a tridiagonal pattern needs exactly 3 groups whatever n
    rows, cols, m, _, _ = pattern(tridiag(40), 40)
    assert len(colour_columns(rows, cols, m, 40)) == 3


@pytest.mark.parametrize("method, per_group, extra", [
    ("central", 2, 1), ("forward", 1, 1), ("five-point", 4, 0), ("complex", 1, 0),
])
def test_sparse_equals_dense_at_the_stated_cost(method, per_group, extra):
    n = 25
    x = np.linspace(-1.0, 1.2, n)
    c = Counter(banded)
    J, info = sd.jacobian(c, x, method=method, sparsity=tridiag(n), full_output=True)
    assert sp.issparse(J) and isinstance(J, sp.sparray) and J.shape == (n, n)
    assert len(info.groups) == info.n_groups == 3
    assert c.n == info.nfev == per_group * 3 + extra + info.pattern_nfev  # + the pattern's J·v check
    assert info.pattern_nfev >= 2  # one jvp
    assert info.pattern_check is None
    dense = sd.jacobian(banded, x, method=method)
    tol = {"central": 1e-9, "forward": 1e-6, "five-point": 1e-11, "complex": 1e-14}[method]
    assert np.max(np.abs(J.toarray() - banded_jac(x))) <= tol * 10
    assert np.max(np.abs(J.toarray() - dense)) <= tol * 10
    # the grouped estimates are as honest as the per-column ones
    _, dense_info = sd.jacobian(banded, x, method=method, full_output=True)
    S = tridiag(n).toarray()
    cov = np.mean((np.abs(J.toarray() - banded_jac(x)) <= info.error.toarray() + 1e-15)[S])
    cov_dense = np.mean((np.abs(dense - banded_jac(x)) <= dense_info.error + 1e-15)[S])
    assert cov >= cov_dense - 0.02
    if method in ("five-point", "complex"):  # measured (embedded) or exact-rounding estimates
        assert cov == 1.0


def test_dense_pattern_gives_dense_result_and_arrowhead():
    n = 8
    x = np.linspace(0.5, 2.0, n)
    S = arrow_jac(np.ones(n)) != 0
    c = Counter(arrow)
    J, info = sd.jacobian(c, x, sparsity=S, full_output=True)
    assert isinstance(J, np.ndarray) and J.shape == (n, n)
    assert len(info.groups) == n  # the full first row forces every column apart
    assert c.n == 2 * n + 1  # no group holds two columns (the pattern check is free), and f(x)
    assert np.max(np.abs(J - arrow_jac(x))) <= 1e-9


def test_sparse_matrix_input_gives_sparse_matrix():
    n = 10
    x = np.linspace(-1, 1, n)
    J = sd.jacobian(banded, x, sparsity=sp.csr_matrix(tridiag(n)))
    assert sp.issparse(J) and not isinstance(J, sp.sparray)


def test_adaptive_sparse():
    n = 12
    x = np.linspace(-1.0, 1.2, n)
    c = Counter(banded)
    J, info = sd.jacobian(c, x, step="adaptive", sparsity=tridiag(n), full_output=True)
    t = banded_jac(x)
    assert np.max(np.abs(J.toarray() - t)) <= 1e-12 * np.max(np.abs(t))
    assert c.n <= 12 * 3  # a search of 8–12 evaluations per group, 3 groups


def test_bounds_with_groups():
    n = 9
    x = np.linspace(0.0, 1.0, n)
    lo, hi = x - np.r_[0.0, np.full(n - 1, 1.0)], x + np.r_[np.full(n - 1, 1.0), 0.0]
    pts = []

    def f(v):
        pts.append(v.copy())
        return banded(v)

    J = sd.jacobian(f, x, sparsity=tridiag(n), bounds=(lo, hi))
    P = np.array(pts)
    assert np.all(P >= lo) and np.all(P <= hi)
    assert np.max(np.abs(J.toarray() - banded_jac(x))) <= 1e-6


@pytest.mark.parametrize("S, match", [
    (np.ones((4, 3), bool), "column"),
    (np.ones(5, bool), "2-D"),
    (np.ones((3, 5), bool), "rows"),
])
def test_bad_pattern(S, match):
    with pytest.raises(sd.ArgumentError, match=match):
        sd.jacobian(banded, np.linspace(0, 1, 5), sparsity=S)


@pytest.mark.parametrize("m, n", [(7, 5), (3, 9), (1, 6)])
@pytest.mark.parametrize("fmt", ["dense", "csr_matrix", "csc_matrix", "coo_matrix", "csr_array",
                                 "coo_array"])
def test_rectangular_patterns_in_every_format(m, n, fmt):
    rng = np.random.default_rng(m * n)
    S = rng.random((m, n)) < 0.4
    S[0, :] |= rng.random(n) < 0.3
    S[:, 2] = False  # an empty column: no group, derivative 0 by the pattern
    A = np.where(S, rng.normal(size=(m, n)), 0.0)
    x = rng.uniform(-1, 1, n)
    c = Counter(lambda v: A @ np.sin(v))
    Sf = S if fmt == "dense" else getattr(sp, fmt)(S)
    J, info = sd.jacobian(c, x, sparsity=Sf, full_output=True)
    assert sp.issparse(J) == (fmt != "dense") and J.shape == (m, n)
    if fmt.endswith("_array"):
        assert isinstance(J, sp.sparray)
    Jd = J.toarray() if sp.issparse(J) else J
    assert np.max(np.abs(Jd - A * np.cos(x))) <= 1e-9
    assert np.all(Jd[:, 2] == 0) and 2 not in np.concatenate(info.groups)
    assert c.n == info.nfev == 2 * info.n_groups + 1 + info.pattern_nfev  # f(x) and the pattern's J·v check
    assert info.pattern_nfev >= 2  # one jvp


def test_a_pattern_that_misses_nonzeros_is_warned_about():
    """A diagonal pattern for an upper-bidiagonal Jacobian: the J·v check along a random
    direction (3 evaluations) sees it, warns and says so in info; a right pattern is silent."""
    from simdiff.sparsity import SparsityWarning

    n = 8
    A = np.diag(np.arange(1.0, n + 1)) + np.diag(np.full(n - 1, 0.5), 1)
    x = np.linspace(-1.0, 1.0, n)
    with pytest.warns(SparsityWarning, match=r"misses nonzeros.*row\(s\) 0, 1"):
        J, info = sd.jacobian(lambda v: A @ np.sin(v), x, sparsity=np.eye(n, dtype=bool), full_output=True)
    assert "misses nonzeros" in info.pattern_check and info.nfev == 3 + info.pattern_nfev  # x ± h·u and f(x)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", SparsityWarning)
        J, info = sd.jacobian(lambda v: A @ np.sin(v), x, sparsity=A != 0, full_output=True)
    assert info.pattern_check is None
    np.testing.assert_allclose(J, A * np.cos(x), atol=1e-9)
