"""A template simdiff plugin: one adapter, ``rosenbrock``."""

__version__ = "0.1.0"
