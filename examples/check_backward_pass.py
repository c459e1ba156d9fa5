"""Is my backward pass right? Check a hand-written gradient and a custom torch autograd.Function.

Two user journeys, each with a planted bug that simdiff finds, locates and names:

1. a numpy loss with a hand-written gradient (a wrong sign on one term, then an off-by-one index),
   checked with ``simdiff.check_gradient`` at random points of both signs;
2. a custom ``torch.autograd.Function`` softmax whose backward forgets the ``−(g·s)`` term,
   checked with ``simdiff.torch.check_autograd`` beside ``torch.autograd.gradcheck`` (skipped
   when torch is not installed: ``pip install "simdiff[torch]"``).

Run:  python examples/check_backward_pass.py
"""

import numpy as np

import simdiff as sd

# -- 1. numpy: a hand-written gradient ---------------------------------------------------------

def loss(w):
    """A smoothed regression loss: Σ log cosh(X w − y) + ½ λ ‖w‖²."""
    r = X @ w - y
    return float(np.sum(np.log(np.cosh(r))) + 0.5 * LAM * w @ w)


def loss_grad(w):
    return X.T @ np.tanh(X @ w - y) + LAM * w


def buggy_sign(w):  # the regularizer's sign flipped
    return X.T @ np.tanh(X @ w - y) - LAM * w


def buggy_index(w):  # an off-by-one: entry j reports entry j + 1
    return np.roll(loss_grad(w), -1)


rng = np.random.default_rng(0)
X, y, LAM = rng.normal(size=(20, 6)), rng.normal(size=20), 0.5
w0 = rng.normal(size=6)


def numpy_journey():
    print("== a hand-written numpy gradient ==")
    ok = sd.check_gradient(loss, loss_grad, w0, points=3, seed=1)
    print(f"correct gradient: {ok.verdict}, relative error {ok.relative_error:.1e} "
          f"(checked at {len(ok.reports)} random points of both signs)\n")
    for name, grad in (("a wrong term: the regularizer's sign flipped", buggy_sign),
                       ("an off-by-one index", buggy_index)):
        r = sd.check_gradient(loss, grad, w0, max_rows=4)
        print(f"-- {name} --")
        print(r, end="\n\n")


# -- 2. torch: a custom autograd.Function ------------------------------------------------------

try:
    import torch
except ImportError:  # the numpy journey runs without it
    torch = None

if torch is not None:

    class Softmax(torch.autograd.Function):
        """Row softmax with the correct backward: s ⊙ (g − (g·s))."""

        @staticmethod
        def forward(ctx, logits):
            s = torch.softmax(logits, dim=-1)
            ctx.save_for_backward(s)
            return s

        @staticmethod
        def backward(ctx, g):
            (s,) = ctx.saved_tensors
            return s * (g - (g * s).sum(-1, keepdim=True))

    class ForgetfulSoftmax(Softmax):
        """The classic bug: the backward forgets the −(g·s) term."""

        @staticmethod
        def backward(ctx, g):
            (s,) = ctx.saved_tensors
            return s * g


def torch_journey():
    if torch is None:
        print("(torch not installed: pip install \"simdiff[torch]\" to run the autograd check)")
        return
    from simdiff.torch import check_autograd

    print("== a custom torch autograd.Function ==")
    logits = torch.randn(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0),
                         requires_grad=True)
    for fn in (Softmax, ForgetfulSoftmax):
        torch_says = torch.autograd.gradcheck(fn.apply, (logits,), raise_exception=False)
        r = check_autograd(fn.apply, logits, max_rows=5)
        print(f"-- {fn.__name__}: torch.autograd.gradcheck says {'pass' if torch_says else 'FAIL'}, "
              f"simdiff says {r.verdict} --")
        print(r, end="\n\n")


if __name__ == "__main__":
    numpy_journey()
    torch_journey()
