"""Mutation suite for gradient checkers: simdiff vs scipy.optimize.check_grad vs torch.autograd.gradcheck.

Twelve functions of a batch X (B samples × d features, flattened into x), six with a scalar loss
(a gradient) and six with per-sample outputs (a block-diagonal Jacobian). Each has a correct
analytical derivative written as a sum of terms, and seven planted bugs:

=============  ============================================================================
sign           the derivative with respect to sample 1's inputs negated
factor ×2      the whole derivative doubled
missing term   one term of the derivative left out (the classic one per function)
shifted        an off-by-one feature index: entry i of each sample reports entry i+1
transposed     Jᵀ for a Jacobian that is not symmetric; otherwise (a gradient, or the symmetric
               Jacobians of softmax and normalization) the (B, d) derivative laid out as (d, B)
batch-summed   gradient: every sample gets the sum over the batch; Jacobian: each output
               sample's block is repeated under every input sample
entry 0.1 %    one random non-zero entry off by 0.1 %
=============  ============================================================================

Four more functions are checked with their *correct* derivative at a kink (relu at 0, leaky
relu at 0, |x| at 0 with sign(0) = 0, the max of a row at a tie): a flag there is a false alarm,
and simdiff should name the kink ("f is not smooth at x[j]") instead.

Every checker sees the same f, the same (mutated) derivative and the same point x ~ N(0, 1)ⁿ:

* simdiff: ``sd.check_gradient`` / ``sd.check_jacobian`` with defaults (tol 1e-5); detected =
  ``not report.passed`` (the contract: relative_error ≥ tol); "strict" = what ``strict=True``
  would decide on the same report (the worse of relative_error and the worst entry's error); named = the report's worst entry is one of the planted faulty entries;
  hint = the first hint's kind is the planted kind (sign, factor, shifted, transposed, batch,
  confined-to-one-entry; "missing term" has no single right kind and is not scored).
* scipy: ``scipy.optimize.check_grad`` (forward difference, step √ε) returns ‖A − N‖; detected =
  check_grad(f, grad, x) > 1e-5 · max(1, ‖A‖), the same relative tolerance as simdiff's. It names
  no entry.
* torch: ``torch.autograd.gradcheck`` (defaults: eps 1e-6, atol 1e-5, rtol 1e-3) on a custom
  ``autograd.Function`` whose forward is f and whose backward is gᵀ·A; detected = it returns
  False. It prints both matrices but names no entry.

Run: ``python benchmarks/gradcheck.py``.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

import simdiff as sd

RNG = np.random.default_rng(20261201)


def _softmax(X):
    E = np.exp(X - X.max(axis=-1, keepdims=True))
    return E / E.sum(axis=-1, keepdims=True)


def _blockdiag(blocks):
    B, k, d = blocks.shape
    J = np.zeros((B * k, B * d))
    for b in range(B):
        J[b * k:(b + 1) * k, b * d:(b + 1) * d] = blocks[b]
    return J


class Fn:
    """f(x) with X = x.reshape(B, d); ``terms(X)`` sum to the analytical derivative.

    Gradient functions give terms of shape (B, d); Jacobian functions give per-sample blocks
    (B, d, d). ``missing`` is the index of the term the "missing term" bug forgets.
    """

    def __init__(self, name, B, d, jac, f, terms, missing):
        self.name, self.B, self.d, self.jac = name, B, d, jac
        self._f, self._terms, self.missing = f, terms, missing

    @property
    def n(self):
        return self.B * self.d

    def f(self, x):
        return self._f(np.asarray(x).reshape(self.B, self.d))

    def terms(self, x):
        ts = self._terms(np.asarray(x).reshape(self.B, self.d))
        if self.jac:
            return [_blockdiag(t) for t in ts]
        return [t.reshape(1, -1) for t in ts]


def _functions():
    fns = []
    # -- scalar losses --------------------------------------------------------------------
    B, d = 3, 4
    y = RNG.integers(0, d, size=B)
    onehot = np.eye(d)[y]
    fns.append(Fn("softmax x-entropy", B, d, False,
                  lambda X: float(np.sum(np.log(np.exp(X).sum(1)) - X[np.arange(len(X)), y])),
                  lambda X: [_softmax(X), -onehot], missing=1))
    B, d = 4, 3
    w, t, lam = RNG.normal(size=d), RNG.choice([-1.0, 1.0], size=B), 0.3
    sig = lambda z: 1 / (1 + np.exp(-z))
    fns.append(Fn("logistic + L2", B, d, False,
                  lambda X: float(np.sum(np.log1p(np.exp(-t * (X @ w)))) + 0.5 * lam * np.sum(X**2)),
                  lambda X: [-(t * sig(-t * (X @ w)))[:, None] * w, lam * X], missing=1))
    B, d = 2, 5
    fns.append(Fn("rosenbrock rows", B, d, False,
                  lambda X: float(np.sum(100 * (X[:, 1:] - X[:, :-1] ** 2) ** 2 + (1 - X[:, :-1]) ** 2)),
                  lambda X: [np.pad(-400 * X[:, :-1] * (X[:, 1:] - X[:, :-1] ** 2), ((0, 0), (0, 1))),
                             np.pad(200 * (X[:, 1:] - X[:, :-1] ** 2), ((0, 0), (1, 0))),
                             np.pad(-2 * (1 - X[:, :-1]), ((0, 0), (0, 1)))], missing=1))
    B, d, k = 3, 4, 5
    W, T = RNG.normal(size=(k, d)), RNG.normal(size=(B, k))
    fns.append(Fn("matrix factorization", B, d, False,
                  lambda X: float(0.5 * np.sum((X @ W.T - T) ** 2)),
                  lambda X: [X @ W.T @ W, -T @ W], missing=1))
    B, d = 4, 3
    Q, c = RNG.normal(size=(d, d)), RNG.normal(size=d)
    fns.append(Fn("quadratic form + sin", B, d, False,
                  lambda X: float(0.5 * np.einsum("bi,ij,bj->", X, Q, X) + np.sum(c * np.sin(X))),
                  lambda X: [0.5 * X @ Q.T, 0.5 * X @ Q, c * np.cos(X)], missing=1))
    B, d = 3, 5
    wv = RNG.uniform(0.5, 2.0, size=d)

    def cvar_terms(X):
        g = 2 * wv * (X - X.mean(1, keepdims=True))
        return [g, -np.broadcast_to(g.mean(1, keepdims=True), X.shape)]
    fns.append(Fn("weighted centred variance", B, d, False,
                  lambda X: float(np.sum(wv * (X - X.mean(1, keepdims=True)) ** 2)),
                  cvar_terms, missing=1))
    # -- per-sample outputs (block-diagonal Jacobians) -------------------------------------
    B, d = 3, 4
    fns.append(Fn("softmax rows", B, d, True,
                  lambda X: _softmax(X).ravel(),
                  lambda X: [np.stack([np.diag(s) for s in _softmax(X)]),
                             -np.stack([np.outer(s, s) for s in _softmax(X)])], missing=1))
    B, d = 2, 5
    W2, P = RNG.normal(size=(d, d)) / 2, RNG.normal(size=(d, d)) / 2
    fns.append(Fn("tanh layer + skip", B, d, True,
                  lambda X: (np.tanh(X @ W2.T) + X @ P.T).ravel(),
                  lambda X: [np.stack([(1 - np.tanh(W2 @ xb) ** 2)[:, None] * W2 for xb in X]),
                             np.stack([P] * len(X))], missing=0))
    B, d = 4, 3
    fns.append(Fn("normalize rows", B, d, True,
                  lambda X: (X / np.linalg.norm(X, axis=1, keepdims=True)).ravel(),
                  lambda X, d=d: [np.stack([np.eye(d) / np.linalg.norm(xb) for xb in X]),
                             -np.stack([np.outer(xb, xb) / np.linalg.norm(xb) ** 3 for xb in X])],
                  missing=1))
    B, d = 3, 4
    L = np.tril(np.ones((d, d)))
    fns.append(Fn("x * cumsum(x)", B, d, True,
                  lambda X: (X * np.cumsum(X, axis=1)).ravel(),
                  lambda X: [np.stack([np.diag(np.cumsum(xb)) for xb in X]),
                             np.stack([xb[:, None] * L for xb in X])], missing=1))
    B, d = 4, 2
    dt, g_l, fr = 0.05, 9.81, 0.3

    def pend(X):
        th, om = X[:, 0], X[:, 1]
        return np.stack([th + dt * om, om - dt * g_l * np.sin(th) - dt * fr * om], 1).ravel()
    fns.append(Fn("pendulum Euler step", B, d, True, pend,
                  lambda X: [np.stack([np.eye(2)] * len(X)),
                             np.stack([dt * np.array([[0, 1], [0, -fr]])] * len(X)),
                             np.stack([dt * np.array([[0, 0], [-g_l * np.cos(xb[0]), 0]]) for xb in X])],
                  missing=2))
    B, d = 2, 5
    fns.append(Fn("log-softmax rows", B, d, True,
                  lambda X: (X - np.log(np.exp(X).sum(1, keepdims=True))).ravel(),
                  lambda X, d=d: [np.stack([np.eye(d)] * len(X)),
                             -np.stack([np.outer(np.ones(d), s) for s in _softmax(X)])], missing=1))
    return fns


def _kinked():
    """Correct derivatives at points where f has a kink: (Fn, x). Not bugs; a checker that flags
    them raises a false alarm (simdiff names them "not smooth" and keeps them out)."""
    out = []
    B, d = 3, 4
    w = RNG.normal(size=d)
    x = RNG.normal(size=B * d)
    x[::3] = 0.0  # relu exactly at its kink, where (X > 0) gives 0
    out.append((Fn("relu loss at 0", B, d, False, lambda X: float(np.sum(np.maximum(X, 0) * w)),
                   lambda X: [(X > 0) * w], missing=0), x))
    x = RNG.normal(size=B * d)
    x[1::4] = 0.0
    out.append((Fn("leaky relu rows at 0", B, d, True, lambda X: np.where(X > 0, X, 0.1 * X).ravel(),
                   lambda X, d=d: [np.stack([np.diag(np.where(xb > 0, 1.0, 0.1)) for xb in X])],
                   missing=0), x))
    x = RNG.normal(size=B * d)
    x[2::4] = 0.0  # |x| at 0 with sign(0) = 0: the central difference agrees, the kink is silent
    out.append((Fn("abs loss at 0, sign(0) = 0", B, d, False, lambda X: float(np.sum(np.abs(X) * w)),
                   lambda X: [np.sign(X) * w], missing=0), x))
    B, d = 4, 3
    X = RNG.normal(size=(B, d))
    X[:, 1] = X[:, 0]  # ties: max is not differentiable there; argmax picks the first
    out.append((Fn("max of each row at a tie", B, d, False, lambda X: float(np.sum(X.max(1))),
                   lambda X: [np.eye(X.shape[1])[X.argmax(1)]], missing=0), X.ravel()))
    return out


# -- the planted bugs ------------------------------------------------------------------------

def _mutate(fn: Fn, kind: str, A: np.ndarray, terms, x, rng) -> np.ndarray:
    B, d = fn.B, fn.d
    A = A.copy()
    if kind == "correct":
        return A
    if kind == "sign":
        A[:, d:2 * d] *= -1
    elif kind == "factor ×2":
        A *= 2
    elif kind == "missing term":
        A = sum(t for k, t in enumerate(terms) if k != fn.missing)
    elif kind == "shifted":
        A = np.roll(A.reshape(A.shape[0], B, d), -1, axis=2).reshape(A.shape)
    elif kind == "transposed":
        if fn.jac and not np.allclose(A, A.T):
            A = A.T.copy()
        else:  # the (B, d) derivative laid out as (d, B): a .T before flattening
            A = A.reshape(A.shape[0], B, d).transpose(0, 2, 1).reshape(A.shape)
    elif kind == "batch-summed":
        if fn.jac:
            blocks = [A[b * d:(b + 1) * d, b * d:(b + 1) * d] for b in range(B)]
            A = np.vstack([np.hstack([blocks[b]] * B) for b in range(B)])
        else:
            A = np.tile(A.reshape(B, d).sum(0), B)[None, :]
    elif kind == "entry 0.1 %":
        nz = np.argwhere(np.abs(A) > 1e-8 * np.abs(A).max())
        i, j = nz[rng.integers(len(nz))]
        A[i, j] *= 1.001
    else:  # pragma: no cover
        raise ValueError(kind)
    return A


KINDS = ["sign", "factor ×2", "missing term", "shifted", "transposed", "batch-summed", "entry 0.1 %"]
EXPECTED_HINT = {"sign": "sign", "factor ×2": "factor", "shifted": "shifted", "transposed": "transposed",
                 "batch-summed": "batch", "entry 0.1 %": "confined"}
SCIPY_RTOL = 1e-5


def _faulty(A_true, A_bug):
    diff = np.abs(A_bug - A_true) > 1e-12 * max(1.0, np.abs(A_true).max())
    return {tuple(map(int, ij)) for ij in np.argwhere(diff)}


def _simdiff(fn, A_bug, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sd.check.NonSmoothWarning)
        if fn.jac:
            r = sd.check_jacobian(fn.f, lambda _x: A_bug, x)
        else:
            r = sd.check_gradient(fn.f, lambda _x: A_bug[0], x)
    idx = r.worst[0].index
    return r, (idx if fn.jac else (0, idx))


def _scipy(fn, A_bug, x):
    from scipy.optimize import check_grad

    grad = (lambda _x: A_bug) if fn.jac else (lambda _x: A_bug[0])
    err = check_grad(fn.f, grad, x)
    return err > SCIPY_RTOL * max(1.0, np.linalg.norm(A_bug))


def _torch(fn, A_bug, x):
    torch = sd.errors.require("torch", "torch")

    class Op(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            out = fn.f(t.detach().numpy())
            return torch.as_tensor(np.atleast_1d(out), dtype=torch.float64)

        @staticmethod
        def backward(ctx, g):
            return torch.as_tensor(g.numpy() @ A_bug, dtype=torch.float64)

    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return not torch.autograd.gradcheck(Op.apply, (t,), raise_exception=False)


def run(seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = {k: {"cases": 0, "sd": 0, "strict": 0, "named": 0, "hint": 0, "scipy": 0, "torch": 0,
                "nfev": 0} for k in ["correct"] + KINDS}
    misses = []
    t0 = time.perf_counter()
    for fn in _functions():
        x = rng.normal(size=fn.n)
        terms = fn.terms(x)
        A_true = sum(terms)
        for kind in ["correct"] + KINDS:
            A_bug = _mutate(fn, kind, A_true, terms, x, rng)
            row = rows[kind]
            row["cases"] += 1
            r, worst = _simdiff(fn, A_bug, x)
            flagged = not r.passed
            strict = max(r.relative_error, r.entry_error) >= r.tol
            row["sd"] += flagged
            row["strict"] += strict
            row["nfev"] += r.nfev
            row["scipy"] += _scipy(fn, A_bug, x)
            row["torch"] += _torch(fn, A_bug, x)
            if kind == "correct":
                if flagged:
                    misses.append(f"false alarm: {fn.name}: {r.summary()}")
                continue
            faulty = _faulty(A_true, A_bug)
            assert faulty, f"{fn.name} / {kind}: the planted bug changes nothing"
            row["named"] += worst in faulty
            hint_ok = kind in EXPECTED_HINT and r.kinds[:1] == [EXPECTED_HINT[kind]]
            row["hint"] += hint_ok
            if not strict or worst not in faulty or (kind in EXPECTED_HINT and not hint_ok):
                misses.append(f"{fn.name} / {kind}: passed={r.passed} worst={worst} "
                              f"hint={r.hint!r}")
    kink = rows["correct at a kink"] = {"cases": 0, "sd": 0, "strict": 0, "named": 0, "hint": 0,
                                        "scipy": 0, "torch": 0, "nfev": 0}
    for fn, x in _kinked():
        A = sum(fn.terms(x))
        r, _ = _simdiff(fn, A, x)
        kink["cases"] += 1
        kink["sd"] += not r.passed
        kink["strict"] += max(r.relative_error, r.entry_error) >= r.tol
        kink["nfev"] += r.nfev
        kink["named"] += bool(r.nonsmooth)  # reported "f is not smooth at x[j]"
        kink["scipy"] += _scipy(fn, A, x)
        kink["torch"] += _torch(fn, A, x)
        if not r.passed or not r.nonsmooth:
            misses.append(f"kink: {fn.name}: {r.summary()} nonsmooth={r.nonsmooth}")
    seconds = time.perf_counter() - t0
    return rows, misses, seconds


def table(rows) -> str:
    head = ("planted bug", "cases", "simdiff detected", "simdiff strict", "worst entry named", "right hint",
            "scipy check_grad", "torch gradcheck", "simdiff nfev/check")
    out = [head]
    tot = dict.fromkeys(("cases", "sd", "strict", "named", "hint", "hint_cases", "scipy", "torch"), 0)
    for kind, r in rows.items():
        c = r["cases"]
        if kind in ("correct", "correct at a kink"):
            label = "none (false alarms)" if kind == "correct" else "none, at a kink (false alarms)"
            named = "" if kind == "correct" else f"{r['named']}/{c} kinks named"
            out.append((label, str(c), f"{r['sd']}/{c}", f"{r['strict']}/{c}", named, "", f"{r['scipy']}/{c}",
                        f"{r['torch']}/{c}", f"{r['nfev'] / c:.0f}"))
            continue
        hint = f"{r['hint']}/{c}" if kind in EXPECTED_HINT else "(not scored)"
        out.append((kind, str(c), f"{r['sd']}/{c}", f"{r['strict']}/{c}", f"{r['named']}/{c}", hint,
                    f"{r['scipy']}/{c}",
                    f"{r['torch']}/{c}", f"{r['nfev'] / c:.0f}"))
        for key in ("cases", "sd", "strict", "named", "scipy", "torch"):
            tot[key] += r[key]
        if kind in EXPECTED_HINT:
            tot["hint"] += r["hint"]
            tot["hint_cases"] += c
    c = tot["cases"]
    out.append(("all bugs", str(c), f"{tot['sd']}/{c} ({100 * tot['sd'] / c:.0f}%)",
                f"{tot['strict']}/{c} ({100 * tot['strict'] / c:.0f}%)",
                f"{tot['named']}/{c} ({100 * tot['named'] / c:.0f}%)",
                f"{tot['hint']}/{tot['hint_cases']} ({100 * tot['hint'] / tot['hint_cases']:.0f}%)",
                f"{tot['scipy']}/{c} ({100 * tot['scipy'] / c:.0f}%)",
                f"{tot['torch']}/{c} ({100 * tot['torch'] / c:.0f}%)", ""))
    w = [max(len(r[i]) for r in out) for i in range(len(head))]
    lines = ["| " + " | ".join(r[i].ljust(w[i]) for i in range(len(head))) + " |" for r in out]
    lines.insert(1, "|" + "|".join("-" * (w[i] + 2) for i in range(len(head))) + "|")
    return "\n".join(lines)


def main():
    rows, misses, seconds = run()
    n_fn = len(_functions())
    print(f"gradient-check mutation suite: {n_fn} functions × {len(KINDS)} planted bugs + the correct "
          f"versions, x ~ N(0, 1)")
    print(f"scipy check_grad flagged when ‖A − N‖ > {SCIPY_RTOL:g}·max(1, ‖A‖); torch gradcheck with "
          "its defaults (eps 1e-6, atol 1e-5, rtol 1e-3); simdiff tol 1e-5")
    print(table(rows))
    print(f"({seconds:.1f} s for all three checkers)")
    for line in misses:
        print("miss:", line)


if __name__ == "__main__":
    main()
