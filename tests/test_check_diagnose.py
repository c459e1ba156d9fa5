"""simdiff.diagnose on synthetic pairs (analytical A, numerical N): each pattern and its message."""

import numpy as np
import pytest

from simdiff.diagnose import diagnose, format_factor

RNG = np.random.default_rng(7)
N0 = RNG.normal(size=(4, 6))


def _run(A, N, gradient=False, use=None):
    E = np.full(N.shape, 1e-13)
    use = np.ones(N.shape, bool) if use is None else use
    mism = np.abs(A - N) > 1e-8 * (np.abs(A) + np.abs(N) + 1e-3)
    labels = {"entry_label": lambda ij: f"J[{ij[0]},{ij[1]}]", "in_label": lambda j: f"x[{j}]",
              "out_label": lambda i: f"f[{i}]"}
    return diagnose(A, N, E, mism, use, gradient=gradient, **labels)


@pytest.mark.parametrize("c,text", [(2.0, "×2"), (0.5, "×1/2 (0.5)"), (-3.0, "×-3"), (1.37, "×1.37"),
                                    (2 / 3, "×2/3 (0.6667)")])
def test_format_factor(c, text):
    assert format_factor(c) == text


def test_nothing_mismatched_gives_no_hint():
    assert _run(N0.copy(), N0) == []


def test_spurious_dependence():
    N = N0.copy()
    N[:, 2] = 0.0  # f does not depend on x[2]
    A = N.copy()
    A[:, 2] = 0.3
    h = _run(A, N)
    assert h[0].kind == "spurious" and "for input x[2]" in h[0].message


def test_offset_on_some_entries():
    A = N0.copy()
    A[0, [1, 4]] += 1.0
    h = _run(A, N0)
    assert h[0].kind == "offset" and "+1" in h[0].message and "J[0,1]" in h[0].message


def test_permuted_outputs():
    A = N0[[1, 0, 2, 3]]  # ([0, 2, 1, 3] would be a 2×2 output read transposed)
    h = _run(A, N0)
    assert h[0].kind == "permuted" and "swapped outputs" in h[0].message
    assert "f[0] and f[1]" in h[0].message


def test_a_pair_swapped_at_n_2_is_called_swapped_not_shifted():
    N = np.array([[1.0, -3.0], [0.5, 2.0], [4.0, 0.25]])
    h = _run(N[:, ::-1].copy(), N)
    assert h[0].kind == "permuted" and "swapped inputs" in h[0].message, h[0].message
    assert "shifted" not in h[0].message
    A = N[[1, 2, 0]].copy()  # three outputs in a cycle: not a swap
    h = _run(A, N)
    assert "swapped" not in h[0].message


def test_rows_shifted_over_the_outputs_without_wrapping():
    A = np.vstack([N0[1:], np.zeros((1, 6))])
    h = _run(A, N0)
    assert h[0].kind == "shifted" and "over the outputs" in h[0].message


def test_a_wrong_diagonal():
    N = RNG.normal(size=(5, 5))
    A = N + np.diag(RNG.uniform(1, 2, size=5))
    assert _run(A, N)[0].kind == "diagonal"


def test_rank_one_difference_not_symmetric():
    u, v = RNG.normal(size=4), RNG.normal(size=6)
    h = _run(N0 + np.outer(u, v), N0)
    assert h[0].kind == "rank-1" and "u ∝ v" not in h[0].message


def test_factor_confined_to_a_column():
    A = N0.copy()
    A[:, 3] *= 2
    h = _run(A, N0)
    assert h[0].kind == "factor" and "×2" in h[0].message and "for input x[3]" in h[0].message


def test_unexplained_mismatch_names_the_worst_entries_first():
    A = N0 + RNG.normal(size=N0.shape) * np.array([1e-3] * 5 + [1.0])
    h = _run(A, N0)
    assert h[0].kind == "entries"
    worst = np.unravel_index(np.argmax(np.abs(A - N0)), A.shape)
    assert f"worst: J[{worst[0]},{worst[1]}]" in h[0].message


def test_left_out_entries_do_not_count():
    A = N0.copy()
    A[1, 1] = -A[1, 1]
    use = np.ones(N0.shape, bool)
    use[1, 1] = False  # e.g. a kink there
    assert _run(A, N0, use=use) == []


def _softmax_jac(X, axis):
    """Jacobian of softmax(X, axis) flattened, by the closed form, for X (B, d)."""
    B, d = X.shape
    E = np.exp(X - X.max(axis=axis, keepdims=True))
    S = E / E.sum(axis=axis, keepdims=True)
    J = np.zeros((B * d, B * d))
    for r in range(B * d):
        b, i = divmod(r, d)
        for c in range(B * d):
            bb, ii = divmod(c, d)
            same = (b == bb) if axis == 1 else (i == ii)
            if same:
                delta = float(r == c)
                J[r, c] = S[b, i] * (delta - S[bb, ii])
    return J


def test_batch_mixed_softmax_over_the_wrong_axis():
    X = RNG.normal(size=(3, 4))
    N, A = _softmax_jac(X, axis=1), _softmax_jac(X, axis=0)
    h = _run(A, N)
    assert h[0].kind == "batch" and "batch dimension mixed" in h[0].message
    assert "3 independent samples" in h[0].message and "4×4 blocks" in h[0].message
