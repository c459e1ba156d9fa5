"""The hook specifications of the simdiff plugin host.

One string, ``"simdiff"``, names the plugin manager, both markers and the entry-point group.
A plugin is a module (or any object) with functions marked ``@simdiff.hookimpl`` whose names
are the hooks below; pluggy lets an implementation accept fewer arguments than its spec, so a
hook grows arguments rather than the host growing hooks.
"""

from __future__ import annotations

import pluggy

from .simulator import Simulator

__all__ = ["PROJECT", "hookspec", "simdiff_adapters"]

#: The project name: plugin manager, hook markers and entry-point group.
PROJECT = "simdiff"

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def simdiff_adapters() -> list[type[Simulator]]:  # type: ignore[empty-body]
    """Return the simulator adapter classes this plugin provides.

    Called once, when the host first builds its adapter registry (on the first
    ``simdiff.available()`` or ``simdiff.load()``), for every plugin that was not blocked by
    ``SIMDIFF_DISABLE_PLUGINS`` and imported cleanly.

    Returns
    -------
    list of type[Simulator]
        Subclasses of ``simdiff.Simulator``. Each sets a class attribute ``name`` (the name
        ``simdiff.load`` takes, unique across all plugins), a one-line class docstring (the
        description ``simdiff.available`` shows) and takes its configuration as constructor
        keywords.
    """
