"""The plugin host: finds simulator adapters and builds configured simulators from them.

Plugins are found through the entry-point group ``"simdiff"`` (``importlib.metadata``), the
built-in adapters of ``plugins/`` exactly like a third-party distribution's::

    [project.entry-points.simdiff]
    myplugin = "my_package.plugin_module"

The plugin manager is built lazily, on the first ``available()``/``load()``, and is the one
piece of module-level state in simdiff (``reset()`` drops it). While it is built:

1. names listed in ``SIMDIFF_DISABLE_PLUGINS`` (comma separated entry-point names) are blocked
   before their module is imported;
2. every other entry point is imported; one that fails (any exception, ``sys.exit`` too) is
   skipped with a ``PluginLoadWarning`` naming the plugin and its error, and the others still
   load;
3. each plugin's ``simdiff_adapters()`` hook returns its adapter classes; an adapter that takes
   the name of a built-in one is skipped with a ``PluginLoadWarning`` naming both plugins (the
   built-in keeps it), and two third-party adapters with one name are both skipped with a
   warning naming both (``SIMDIFF_DISABLE_PLUGINS`` blocks one): the other adapters, and every
   command, still work. A name in
   ``SIMDIFF_DISABLE_PLUGINS`` that is an adapter's rather than a plugin's (``projectile`` of
   the plugin ``physics``) leaves out that adapter alone.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import os
import warnings
from dataclasses import dataclass
from typing import Any

import pluggy

from . import hookspecs
from .errors import ConfigError, PluginError, UnknownAdapterError
from .hookspecs import PROJECT
from .simulator import Simulator

__all__ = [
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "AdapterInfo",
    "PluginLoadWarning",
    "adapter_info",
    "available",
    "get_plugin_manager",
    "hookimpl",
    "load",
    "register_plugin",
    "reset",
]

ENTRY_POINT_GROUP = PROJECT
DISABLE_ENV = "SIMDIFF_DISABLE_PLUGINS"

#: The marker a plugin module puts on its ``simdiff_adapters`` function.
hookimpl = pluggy.HookimplMarker(PROJECT)


class PluginLoadWarning(UserWarning):
    """A plugin could not be imported, or its hook failed; it was skipped."""


@dataclass(frozen=True)
class AdapterInfo:
    """One registered adapter: its name, description, and the plugin that provides it."""

    name: str
    description: str
    plugin: str
    version: str
    cls: type


def _warn(message: str) -> None:
    warnings.warn(message, PluginLoadWarning, stacklevel=5)


def _description(cls: type) -> str:
    """The first line of the class's own docstring (an inherited one does not describe it)."""
    doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "")
    return doc.splitlines()[0].strip() if doc else ""


def _is_builtin(cls: type) -> bool:
    """An adapter shipped with simdiff (``plugins/``, installed as ``simdiff_plugins``)."""
    return cls.__module__.split(".")[0] in ("simdiff_plugins", "simdiff")


def _disabled_names() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


class _Host:
    """The plugin manager plus what the host learnt while filling it."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.versions: dict[str, str] = {}
        self.origins: dict[str, str] = {}
        self.blocked: list[str] = []
        self.broken: dict[str, str] = {}
        self.clashes: dict[str, list[str]] = {}  # adapter name -> plugins left out for it
        self._adapters: dict[str, AdapterInfo] | None = None

    def load_entry_points(self) -> None:
        disabled = _disabled_names()
        for name in sorted(disabled):
            self.pm.set_blocked(name)
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            origin = f"{ep.value} from {dist.name if dist else 'an unknown distribution'}"
            if ep.name in disabled:
                self.blocked.append(ep.name)
                continue
            if ep.name in self.origins:
                raise PluginError(
                    f"two plugins are both named {ep.name!r}: {self.origins[ep.name]} and "
                    f"{origin}; rename one's entry point (its key under "
                    f"[project.entry-points.simdiff]) or uninstall one ({DISABLE_ENV}={ep.name} "
                    "would block both)"
                )
            try:
                module = ep.load()
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - any import failure isolates the plugin
                self._skip(ep.name, f"{ep.value} failed to import: {type(exc).__name__}: {exc}")
                continue
            try:
                self.register(module, ep.name, dist.version if dist else "", origin)
            except pluggy.PluginValidationError as exc:  # a hook whose signature is wrong
                self._skip(ep.name, f"its hooks do not match the specification: {exc}")
            except ValueError:  # pluggy: this module is registered under another name
                other = self.pm.get_name(module)
                self._skip(ep.name, f"{ep.value} is already loaded as the plugin {other!r}")
        self._warn_unknown_hooks()

    def _skip(self, plugin: str, why: str) -> None:
        self.broken[plugin] = why
        _warn(f"simdiff plugin {plugin!r} is skipped: {why}")

    def _warn_unknown_hooks(self) -> None:
        """A hookimpl whose name no spec has (a typo such as ``simdiff_adapter``) is never
        called; say so instead of silently providing no adapters."""
        for hook_name in dir(self.pm.hook):
            caller = getattr(self.pm.hook, hook_name)
            if hook_name.startswith("_") or not hasattr(caller, "has_spec") or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                _warn(
                    f"simdiff plugin {impl.plugin_name!r} implements {hook_name!r}, which is not a "
                    "simdiff hook (known: simdiff_adapters); it is never called"
                )

    def register(self, plugin: Any, name: str | None, version: str = "", origin: str = "") -> str:
        name = name or getattr(plugin, "__name__", None) or repr(plugin)
        if self.pm.is_blocked(name):
            self.blocked.append(name)
            return name
        if self.pm.has_plugin(name):
            raise PluginError(
                f"a plugin named {name!r} is already registered ({self.origins.get(name, '?')}); "
                "give this one another name"
            )
        self.pm.register(plugin, name=name)
        self.versions[name] = version or str(getattr(plugin, "__version__", ""))
        self.origins[name] = origin or getattr(plugin, "__name__", repr(plugin))
        self._adapters = None
        return name

    def _clash(self, name: str, first: AdapterInfo, second: AdapterInfo,
               found: dict[str, AdapterInfo]) -> None:
        """Two plugins give adapters one name: a built-in keeps its name and the other is
        skipped; between two third-party plugins neither is used (which one was meant cannot
        be known). A warning names both and the way out."""
        def where(a: AdapterInfo) -> str:
            return f"plugin {a.plugin!r} ({a.cls.__module__}.{a.cls.__qualname__})"

        builtin = [a for a in (first, second) if _is_builtin(a.cls)]
        if len(builtin) == 1:
            kept = builtin[0]
            other = second if kept is first else first
            found[name] = kept
            self.clashes.setdefault(name, [])
            _warn(f"simdiff adapter {name!r} of {where(other)} is skipped: the name is the "
                  f"built-in adapter's of {where(kept)}; rename the adapter (its class's `name`)")
            return
        found.pop(name, None)
        self.clashes[name] = [first.plugin, second.plugin]
        _warn(f"simdiff adapter name {name!r} is registered twice: by {where(first)} and by "
              f"{where(second)}; both are skipped; block one with {DISABLE_ENV}={second.plugin}")

    def adapters(self) -> dict[str, AdapterInfo]:
        if self._adapters is not None:
            return self._adapters
        found: dict[str, AdapterInfo] = {}
        self.clashes = {}
        disabled = _disabled_names()
        # Called impl by impl (not through the joined hook) to know which plugin gave what.
        for impl in self.pm.hook.simdiff_adapters.get_hookimpls():
            plugin = impl.plugin_name
            try:
                classes = list(impl.function() or [])
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - a failing hook isolates its plugin
                self._skip(plugin, f"simdiff_adapters() raised {type(exc).__name__}: {exc}")
                continue
            for cls in classes:
                if not (isinstance(cls, type) and issubclass(cls, Simulator)):
                    _warn(
                        f"simdiff plugin {plugin!r} returned {cls!r}, which is not a subclass of "
                        "simdiff.Simulator; skipped"
                    )
                    continue
                name = getattr(cls, "name", "")
                if not isinstance(name, str) or not name:
                    _warn(
                        f"simdiff plugin {plugin!r}: adapter class {cls.__qualname__} has no "
                        "`name`; skipped"
                    )
                    continue
                if name in disabled:
                    self.blocked.append(name)
                    continue
                if name in found:
                    other = found[name]
                    if other.cls is cls:  # the same class listed twice
                        continue
                    self._clash(name, other, AdapterInfo(
                        name, _description(cls), plugin, self.versions.get(plugin, ""), cls), found)
                    continue
                if name in self.clashes:
                    self.clashes[name].append(plugin)
                    continue
                found[name] = AdapterInfo(
                    name, _description(cls), plugin, self.versions.get(plugin, ""), cls
                )
        self._adapters = dict(sorted(found.items()))
        return self._adapters


_HOST: _Host | None = None


def _host() -> _Host:
    global _HOST
    if _HOST is None:
        host = _Host()
        host.load_entry_points()
        _HOST = host
    return _HOST


def get_plugin_manager() -> pluggy.PluginManager:
    """The ``pluggy.PluginManager("simdiff")``, built (entry points loaded) on first use."""
    return _host().pm


def reset() -> None:
    """Forget the plugin manager; the next call rebuilds it (re-reading entry points and
    ``SIMDIFF_DISABLE_PLUGINS``). For tests and for plugins installed at run time."""
    global _HOST
    _HOST = None


def register_plugin(plugin: Any, name: str | None = None) -> str:
    """Register a plugin object (a module or instance with ``@hookimpl`` functions) in-process.

    For plugins that live in a notebook or a script rather than an installed distribution.
    Returns the name it was registered under (``name``, else the module's ``__name__``).
    """
    return _host().register(plugin, name)


def adapter_info() -> list[AdapterInfo]:
    """Every registered adapter with its description, plugin and the plugin's version."""
    return list(_host().adapters().values())


def available() -> dict[str, str]:
    """``{adapter name: one-line description}`` of every registered adapter, sorted by name."""
    return {a.name: a.description for a in adapter_info()}


def load(name: str, **config: Any) -> Simulator:
    """A configured Simulator from the adapter registered under ``name``.

    Parameters
    ----------
    name : str
        An adapter name, one of ``available()``.
    **config
        The adapter's constructor keywords.

    Raises
    ------
    UnknownAdapterError
        No adapter has that name; the message lists the known ones.
    ConfigError
        A key the adapter's constructor does not take, or a required one missing; the message
        lists the allowed keys.
    """
    host = _host()
    adapters = host.adapters()
    if name not in adapters:
        known = ", ".join(adapters) or "(none)"
        close = difflib.get_close_matches(str(name), list(adapters), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        notes = []
        if host.blocked:
            notes.append(f"plugins blocked by {DISABLE_ENV}: {', '.join(sorted(set(host.blocked)))}")
        if host.broken:
            notes.append(f"plugins that failed to load: {', '.join(sorted(host.broken))}")
        clash = host.clashes.get(name)
        if clash:
            notes.append(f"{name!r} is registered by both plugins {clash[0]!r} and {clash[1]!r}, "
                         f"so neither is used; block one with {DISABLE_ENV}={clash[1]}")
        extra = f" ({'; '.join(notes)})" if notes else ""
        raise UnknownAdapterError(f"no adapter named {name!r}; known adapters: {known}{hint}{extra}")
    cls = adapters[name].cls
    check_config(cls, config, name)
    return cls(**config)


def check_config(cls: type, config: dict[str, Any], name: str) -> None:
    """Refuse keys ``cls``'s constructor does not take, and missing required ones."""
    params = inspect.signature(cls).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    by_kw = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    allowed = [p.name for p in by_kw]
    listing = ", ".join(allowed) or "(none)"
    unknown = [k for k in config if k not in allowed]
    if unknown:
        close = difflib.get_close_matches(unknown[0], allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"adapter {name!r} has no configuration key {unknown[0]!r}"
            f"{' (nor ' + ', '.join(map(repr, unknown[1:])) + ')' if unknown[1:] else ''}; "
            f"allowed: {listing}{hint}"
        )
    missing = [p.name for p in by_kw if p.default is p.empty and p.name not in config]
    if missing:
        raise ConfigError(
            f"adapter {name!r} needs the configuration key(s) {', '.join(missing)}; "
            f"allowed: {listing}"
        )
