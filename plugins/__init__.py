"""The adapters that ship with simdiff.

Each subpackage is a plugin declared in the root ``pyproject.toml`` under
``[project.entry-points.simdiff]`` and loaded by the host exactly as a third-party plugin is.
"""
