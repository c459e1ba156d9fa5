"""Optimizers built on simdiff's gradients and Evaluator: minimize, least_squares, as_scipy.

Modules: ``minimize.py`` (the front door and its methods), ``quasi_newton.py`` (the default
FD-BFGS), ``linesearch.py``, ``spsa.py``, ``gradient_descent.py``, ``scipy_methods.py``
(Nelder–Mead, COBYQA, Powell through the Evaluator), ``least_squares.py`` (trust-region
Gauss–Newton with Broyden updates), ``as_scipy.py``, ``tally.py`` (memory and counting in front of
the Evaluator), ``fdgrad.py``, ``options.py``, ``result.py``.
"""

from .minimize import METHODS, minimize

__all__ = ["METHODS", "minimize"]
from .least_squares import least_squares  # noqa: E402

__all__ += ["least_squares"]
from .as_scipy import as_scipy  # noqa: E402

__all__ += ["as_scipy"]
