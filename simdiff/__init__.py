"""simdiff: numerical derivatives of black-box simulators.

The public names, re-exported from the modules that define them.
"""

from .errors import (
    ArgumentError,
    ArgumentTypeError,
    BoundsError,
    ConfigError,
    DuplicateAdapterError,
    EvaluationTimeout,
    MissingDependencyError,
    OutputError,
    PluginError,
    SimdiffError,
    SimulationError,
    SimdiffWarning,
    UnknownAdapterError,
)
from .simulator import Simulator, as_simulator
from .evaluate import Batch, Evaluator, SerialEvaluator
from .host import AdapterInfo, adapter_info, available, hookimpl, load, register_plugin
from .differentiate import derivative, gradient, jacobian, jvp
from .hessians import hessian
from .sweep import SweepResult, step_sweep
from .check import CheckReport, check_gradient, check_jacobian, relative_error
from . import testing, torch  # simdiff.testing, simdiff.torch (torch itself is imported lazily)

__version__ = "0.1.0"

__all__ = [
    "AdapterInfo",
    "adapter_info",
    "available",
    "hookimpl",
    "load",
    "register_plugin",
    "ArgumentError",
    "ArgumentTypeError",
    "Batch",
    "CheckReport",
    "Evaluator",
    "BoundsError",
    "ConfigError",
    "DuplicateAdapterError",
    "EvaluationTimeout",
    "MissingDependencyError",
    "OutputError",
    "PluginError",
    "SerialEvaluator",
    "SimdiffError",
    "SimulationError",
    "SimdiffWarning",
    "Simulator",
    "UnknownAdapterError",
    "as_simulator",
    "check_gradient",
    "check_jacobian",
    "derivative",
    "gradient",
    "jacobian",
    "hessian",
    "jvp",
    "step_sweep",
    "SweepResult",
    "relative_error",
]

from . import implicit  # noqa: E402  simdiff.implicit: dy*/dθ of F(y*, θ) = 0 (issue 12)
from .optimize import as_scipy, least_squares, minimize  # noqa: E402  (issue 11: the optimizers)

__all__ += ["minimize", "least_squares", "as_scipy"]
from .noise import NoiseEstimate, NoiseWarning, noise_level  # noqa: E402  (issue 10)
from .sweep import SweepSet  # noqa: E402  (issue 10)

__all__ += ["NoiseEstimate", "NoiseWarning", "noise_level", "SweepSet"]
