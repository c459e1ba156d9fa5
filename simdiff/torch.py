"""Checking a torch backward pass: ``check_autograd(fn, *inputs)`` (extra ``torch``).

The function runs in float64 (an ``nn.Module`` in float32 as a float64 copy). The numerical
Jacobian comes from ``simdiff.jacobian`` on x ↦ fn(*inputs(x)) evaluated under
``torch.no_grad()`` (so through simdiff's Evaluator, with every
option of ``simdiff.check_jacobian``), the analytical one from ``torch.autograd.functional.jacobian``,
which runs fn's backward (a custom ``autograd.Function``'s ``backward`` included) once per output.
The report is the one ``check_jacobian`` returns (``check_gradient`` for a single output), with the
entries named after the inputs and outputs: ``J[i,j] ∂out[2]/∂x[0,1]``.

Which inputs are differentiated: the tensors with ``requires_grad=True``; if there are none, every
floating-point tensor. Other arguments (ints, masks, non-float tensors) are passed unchanged.
Of fn's outputs, the floating-point tensors are compared; integer and bool ones (the indices
``torch.max(x, dim)`` returns beside the values) are left out, as gradcheck leaves them.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from .check import CheckReport, check_gradient, check_jacobian
from .errors import ArgumentError, ArgumentTypeError, require

__all__ = ["check_autograd", "implicit", "ImplicitLayer"]


def check_autograd(fn: Callable, *inputs: Any, **opts: Any) -> CheckReport:
    """Compare the autograd Jacobian of ``fn(*inputs)`` with simdiff's numerical one.

    Parameters
    ----------
    fn : callable taking ``inputs`` and returning a tensor or a tuple/list of tensors
        (a custom ``torch.autograd.Function``'s ``apply`` works).
    *inputs : the arguments of fn; floating tensors are converted to float64.
    **opts : the options of ``simdiff.check_jacobian`` (tol, points, seed, nonsmooth, method,
        n_jobs, …). ``strict`` defaults to True here (see Notes).

    Returns
    -------
    CheckReport over x = the differentiated inputs flattened and concatenated, in order.

    Notes
    -----
    Agreement with ``torch.autograd.gradcheck`` (which fails when some entry has
    |A − N| > 1e-5 + 1e-3·|N|): on correct functions both pass, except at a kink, where
    gradcheck's central difference disagrees with torch's one-sided choice and simdiff names the
    kink instead. On buggy ones, ``strict=True`` — the default of this function, because its
    verdict is meant to agree with gradcheck's per-entry test — fails whenever gradcheck does
    (every such entry scores ≥ 5e-4 relative, or ≥ 1e-5 of the typical entry when that is
    ≤ 100) and also catches errors below gradcheck's rtol. ``strict=False`` applies the norm rule
    ‖A − N‖/(‖A‖ + ‖N‖) of ``check_jacobian``'s contract, which can pass a 0.3–1 % error confined
    to one entry of a large Jacobian where gradcheck fails (the report still names that entry).
    """
    torch = require("torch", "torch")
    opts.setdefault("strict", True)
    if not callable(fn):
        raise ArgumentTypeError(f"fn must be callable; got {type(fn).__name__} {fn!r}")
    fn = _in_float64(torch, fn)
    is_t = [isinstance(a, torch.Tensor) for a in inputs]
    diff = [i for i, a in enumerate(inputs) if is_t[i] and a.requires_grad]
    if not diff:
        diff = [i for i, a in enumerate(inputs) if is_t[i] and a.is_floating_point()]
    if not diff:
        got = [f"Tensor {a.dtype}" if is_t[i] else type(a).__name__ for i, a in enumerate(inputs)]
        raise ArgumentError(f"check_autograd needs at least one real floating-point tensor among the "
                            f"inputs (the ones differentiated); got {got}")
    for i in diff:
        if inputs[i].is_complex():
            raise ArgumentTypeError(f"input {i} is complex ({inputs[i].dtype}); allowed: real tensors")
    base = [a.detach().to(torch.float64) if is_t[i] and a.is_floating_point() else a
            for i, a in enumerate(inputs)]
    shapes = [tuple(base[i].shape) for i in diff]
    sizes = [int(np.prod(s)) for s in shapes]
    cuts = np.cumsum([0] + sizes)
    x0 = np.concatenate([base[i].reshape(-1).numpy() for i in diff])

    def args_at(x: np.ndarray, grad: bool = False) -> list:
        args = list(base)
        for k, i in enumerate(diff):
            t = torch.tensor(x[cuts[k]:cuts[k + 1]], dtype=torch.float64).reshape(shapes[k])
            args[i] = t.requires_grad_(grad)
        return args

    def f(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return _flat(torch, fn(*args_at(x))).numpy()

    def jac(x: np.ndarray) -> np.ndarray:
        args = args_at(x, grad=True)

        def g(*d):
            a = list(args)
            for i, t in zip(diff, d):
                a[i] = t
            return _flat(torch, fn(*a))

        Js = torch.autograd.functional.jacobian(g, tuple(args[i] for i in diff))
        m = Js[0].shape[0] if Js[0].ndim else 1
        return np.hstack([J.reshape(m, -1).detach().numpy() for J in Js])

    out0 = fn(*args_at(x0))
    names_in = _input_names(torch, fn, diff, shapes)
    names_out = _output_names(torch, out0)
    if len(names_out) == 1:
        return check_gradient(lambda x: float(f(x)[0]), lambda x: jac(x)[0], x0,
                              inputs=opts.pop("inputs", names_in), **opts)
    return check_jacobian(f, jac, x0, inputs=opts.pop("inputs", names_in),
                          outputs=opts.pop("outputs", names_out), **opts)


def _in_float64(torch, fn: Callable) -> Callable:
    """An ``nn.Module`` with parameters or buffers in another floating dtype runs as a float64
    copy (the caller's module is left as it is); any other fn unchanged."""
    if isinstance(fn, torch.nn.Module):
        tensors = list(fn.parameters()) + list(fn.buffers())
        if any(t.is_floating_point() and t.dtype != torch.float64 for t in tensors):
            return copy.deepcopy(fn).double()
    return fn


def _outputs(torch, out) -> list[tuple[int, Any]]:
    """The differentiable outputs (position, tensor): floating-point tensors. Integer and bool
    tensors (indices, masks, as ``torch.max(x, dim)`` returns) are left out, as gradcheck does."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    for k, o in enumerate(outs):
        if not isinstance(o, torch.Tensor) or o.is_complex():
            raise ArgumentTypeError(f"fn must return real tensors (or a tuple of them); output {k} is "
                                    f"{type(o).__name__} {getattr(o, 'dtype', '')}".rstrip())
    kept = [(k, o) for k, o in enumerate(outs) if o.is_floating_point()]
    if not kept:
        raise ArgumentTypeError(f"fn must return at least one floating-point tensor; got "
                                f"{[str(o.dtype) for o in outs]}")
    return kept


def _flat(torch, out) -> Any:
    return torch.cat([o.reshape(-1).to(torch.float64) for _, o in _outputs(torch, out)])


def _element_names(name: str, shape: tuple) -> list[str]:
    if len(shape) == 0:
        return [name]
    return [f"{name}[{','.join(map(str, ix))}]" for ix in np.ndindex(*shape)]


def _parameters(torch, fn) -> list[str]:
    """fn's positional parameter names; for ``SomeFunction.apply`` those of its ``forward``
    (without ``ctx``, unless the Function defines ``setup_context`` and forward takes no ctx)."""
    owner = getattr(fn, "__self__", None)
    skip = 0
    if isinstance(fn, torch.nn.Module):
        fn = fn.forward
    elif isinstance(owner, type) and issubclass(owner, torch.autograd.Function):
        own_setup = getattr(owner, "setup_context", None) is not getattr(
            torch.autograd.Function, "setup_context", None)
        fn, skip = owner.forward, 0 if own_setup else 1
    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return []
    return params[skip:]


def _input_names(torch, fn, diff, shapes) -> list[str]:
    params = _parameters(torch, fn)
    names = []
    for k, i in enumerate(diff):
        base = params[i] if i < len(params) else f"input{i}"
        names += _element_names(base, shapes[k])
    return names


def _output_names(torch, out) -> list[str]:
    kept = _outputs(torch, out)
    if not isinstance(out, (tuple, list)):
        return _element_names("out", tuple(out.shape))
    names = []
    for k, o in kept:
        names += _element_names(f"out{k}", tuple(o.shape))
    return names


class ImplicitLayer:
    """θ ↦ y*(θ) as a torch function: forward runs the solver (once per θ), backward is the
    implicit VJP −λᵀ∂F/∂θ with (∂F/∂y)ᵀλ = g (``simdiff.implicit.vjp``), so the solver's
    iterations are never differentiated. Built by ``simdiff.torch.implicit``.

    Attributes: ``root`` (the ``simdiff.implicit.Root``: ``nsolves``, ``answers``),
    ``function`` (the ``torch.autograd.Function`` subclass).
    """

    def __init__(self, solver: Callable, F: Any, kind: str = "root", **options: Any) -> None:
        torch = require("torch", "torch")
        from .implicit import Root

        self.root = solve = Root(solver, F, kind=kind, **options)

        class ImplicitFunction(torch.autograd.Function):
            @staticmethod
            def forward(ctx, theta):
                th = theta.detach().to("cpu", torch.float64).reshape(-1).numpy().copy()
                y = solve.solve(th)
                ctx.theta, ctx.shape = th, theta.shape
                return torch.as_tensor(y, dtype=theta.dtype, device=theta.device)

            @staticmethod
            def backward(ctx, grad):
                g = grad.detach().to("cpu", torch.float64).reshape(-1).numpy()
                w = solve.vjp(ctx.theta, g)
                return torch.as_tensor(w, dtype=grad.dtype, device=grad.device).reshape(ctx.shape)

        self.function = ImplicitFunction
        self._torch = torch

    def __call__(self, theta: Any) -> Any:
        torch = self._torch
        if not isinstance(theta, torch.Tensor):
            raise ArgumentTypeError(f"theta must be a torch.Tensor; got {type(theta).__name__}")
        if theta.is_complex() or not theta.is_floating_point():
            raise ArgumentTypeError(f"theta must be a real floating-point tensor; got {theta.dtype}")
        if theta.ndim > 1:
            raise ArgumentError(f"theta must be a tensor of shape (p,) or a scalar; got shape "
                                f"{tuple(theta.shape)}")
        return self.function.apply(theta)

    def __repr__(self) -> str:
        return f"ImplicitLayer({self.root!r})"


def implicit(solver: Callable, F: Any, kind: str = "root", **options: Any) -> ImplicitLayer:
    """A black-box solver as a differentiable torch function of θ.

    ``layer = simdiff.torch.implicit(solver, F)``; ``y = layer(theta)`` runs
    ``solver(theta) -> y*`` (numpy, float64) once per θ; ``y.backward(g)`` gives θ.grad =
    gᵀ·dy*/dθ by implicit differentiation of F at y* (``simdiff.implicit.vjp``; ``kind``
    "fixed_point" or "argmin" as in ``simdiff.implicit.root``). ``options`` go to every VJP
    (method, step, tol, linear_solver, sparsity, n_jobs, …). ``torch.autograd.gradcheck``
    passes through it in float64 when the solver is accurate to well below its step (1e-6).
    Not twice differentiable (the backward is numpy).
    """
    return ImplicitLayer(solver, F, kind=kind, **options)
