"""A disk cache of simulator evaluations that survives a crash.

Each evaluation is one file, written the moment it completes, so a run killed in the middle of a
gradient leaves every finished point behind and a second run evaluates only the rest.

Key
    ``sha256(fingerprint(sim) | dtype | shape | bytes of x)``. The fingerprint hashes the
    simulator *by value* (``fingerprint``): the same in every process for equal simulators,
    different when their code or configuration differs. A point of another simulator, of
    another configuration, of edited code, or the same numbers in another dtype (a
    complex-step point next to a real one) therefore never shares an entry.

Write
    ``np.savez`` into a temporary file in the same directory, then ``os.replace`` onto the
    entry's name: a reader sees either no entry or a whole one, never half of one.

Read
    The entry stores the fingerprint and x next to the value and both are compared, so even a
    hash collision cannot return another point's value. An entry that does not load (truncated,
    overwritten with garbage) or does not match is ignored: the point is evaluated again and the
    entry rewritten. Entries are read with ``allow_pickle=False``: a cache directory never runs
    code.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArgumentTypeError
from .simulator import CallableSimulator, Simulator

__all__ = ["DiskCache", "as_cache", "fingerprint"]


FINGERPRINT_VERSION = "simdiff-cache-2"


def fingerprint(sim: Any) -> str:
    """The text that names a simulator, its code and its configuration in cache keys.

    Rule: a SHA-256 over a canonical walk of the simulator, the same in every process for
    equal simulators (no memory address, no hash-randomized order enters it):

    * user code (a function or class whose module lives outside the Python installation and
      its site-packages) by value: the bytecode, constants, names, defaults, the values its
      closure captured and the globals it reads, recursively (editing ``x**2`` to ``x**3``,
      or a module constant it reads, changes the key); a class by its methods and class
      attributes, bases included;
    * installed code (numpy, the standard library) and simdiff's own code (its adapters
      included) by module, name and the distribution's version;
    * ``functools.partial`` by its function, arguments and keywords; a bound method by its
      function and instance; a ``Simulator`` (or any callable object) by its class and its
      whole instance state (``__getstate__``; or the text of its own ``identity()`` when the
      subclass overrides it), so a constructor keyword stored under another name
      (``self._scale = scale``) still counts; the attributes a class lists in
      ``cache_ignore`` (settings that cannot change a value: a work directory, a time-out)
      are left out;
    * data by value: numbers, strings, containers (sets sorted), arrays by dtype, shape and
      bytes; any other object through ``__reduce_ex__`` (what pickle would store).

    Something that cannot be read (an object that neither reduces nor has a ``__dict__``)
    enters by its type name only, with a RuntimeWarning naming it: two simulators differing
    only there would share entries.
    """
    walker = _Fingerprint()
    walker.feed(sim)
    if walker.unreadable:
        import warnings

        warnings.warn(
            f"simdiff cache: part of simulator {sim!r} cannot be read for its cache key "
            f"({', '.join(walker.unreadable[:3])}); simulators differing only there share "
            "cache entries",
            RuntimeWarning,
            stacklevel=3,
        )
    return f"{FINGERPRINT_VERSION}:{type(sim).__name__}:{walker.hexdigest()}"


def _installed_roots() -> tuple[str, ...]:
    import site
    import sys
    import sysconfig

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            roots.add(sysconfig.get_paths()[key])
        except KeyError:  # pragma: no cover
            pass
    try:
        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except AttributeError:  # pragma: no cover - virtualenv's old site.py
        pass
    return tuple(os.path.realpath(r) + os.sep for r in roots if r)


def _is_user_module(modname: str | None) -> bool:
    """True for code written by the user: __main__, or a module file outside the installation."""
    import sys

    if not modname:
        return False
    if modname == "__main__":
        return True
    mod = sys.modules.get(modname)
    file = getattr(mod, "__file__", None)
    if mod is None or file is None or modname.split(".")[0] in _OWN:
        return False  # built-in, namespace, or simdiff itself: by name and version
    real = os.path.realpath(file)
    return not any(real.startswith(root) for root in _INSTALLED)


_INSTALLED = _installed_roots()
_OWN = ("simdiff", "simdiff_plugins")  # simdiff's own code: by name and version


@functools.lru_cache(maxsize=None)
def _version(modname: str) -> str:
    """The version of the distribution holding module ``modname`` (else Python's)."""
    import sys

    top = (modname or "").split(".")[0]
    if top in _OWN:
        top = "simdiff"
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return sys.version.split()[0]
    mod = sys.modules.get(top)
    v = getattr(mod, "__version__", None)
    if isinstance(v, str):
        return v
    try:
        from importlib.metadata import version

        dists = _distributions().get(top) or [top]
        return version(dists[0])
    except Exception:  # noqa: BLE001 - the standard library, or no metadata
        return sys.version.split()[0]


@functools.lru_cache(maxsize=1)
def _distributions() -> dict:
    from importlib.metadata import packages_distributions

    return packages_distributions()


class _Fingerprint:
    """The canonical walk behind ``fingerprint``: tokens fed to one SHA-256."""

    _SCALARS = (type(None), bool, int, float, complex, str, bytes)

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self._seen: dict[int, int] = {}  # id -> position, for shared and cyclic references
        self._keep: list = []  # objects whose id is in _seen stay alive during the walk
        self.unreadable: list[str] = []
        self._versions: dict[str, str] = {}

    def hexdigest(self) -> str:
        return self._h.hexdigest()

    def _t(self, *tokens: Any) -> None:
        for tok in tokens:
            b = tok if isinstance(tok, bytes) else str(tok).encode("utf-8", "surrogatepass")
            self._h.update(len(b).to_bytes(8, "little") + b)

    def _ref(self, obj: Any) -> bool:
        """Whether obj was walked already (then its position is fed instead)."""
        key = id(obj)
        if key in self._seen:
            self._t("ref", self._seen[key])
            return True
        self._seen[key] = len(self._seen)
        self._keep.append(obj)
        return False

    def _named(self, kind: str, modname: str | None, qualname: str | None) -> None:
        modname = modname or "?"
        if modname not in self._versions:
            self._versions[modname] = _version(modname)
        self._t(kind, modname, qualname, self._versions[modname])

    def feed(self, obj: Any, path: str = "sim") -> None:
        import types

        if isinstance(obj, self._SCALARS):
            self._t(type(obj).__name__, repr(obj))
            return
        if isinstance(obj, (np.generic,)):
            self._t("npscalar", obj.dtype.str, np.asarray(obj).tobytes())
            return
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                self._t("ndarray-object", obj.shape)
                for i, v in enumerate(obj.reshape(-1).tolist()):
                    self.feed(v, f"{path}[{i}]")
                return
            self._t("ndarray", obj.dtype.str, obj.shape)
            data = obj if obj.flags.c_contiguous else np.ascontiguousarray(obj)
            self._h.update(data.nbytes.to_bytes(8, "little"))
            self._h.update(memoryview(data.reshape(-1)).cast("B"))  # no copy of a big array
            return
        if isinstance(obj, np.dtype):
            self._t("dtype", obj.str)
            return
        if isinstance(obj, re.Pattern):
            self._t("re", obj.pattern, obj.flags)
            return
        if isinstance(obj, types.MappingProxyType):
            obj = dict(obj)
        if self._ref(obj):
            return
        if isinstance(obj, (list, tuple)):
            self._t(type(obj).__name__, len(obj))
            for i, v in enumerate(obj):
                self.feed(v, f"{path}[{i}]")
            return
        if isinstance(obj, dict):
            self._t(type(obj).__name__, len(obj))
            for k, v in obj.items():
                self.feed(k, path)
                self.feed(v, f"{path}[{k!r}]")
            return
        if isinstance(obj, (set, frozenset)):
            parts = sorted(_sub_digest(v) for v in obj)
            self._t(type(obj).__name__, *parts)
            return
        if isinstance(obj, types.ModuleType):
            self._named("module", obj.__name__, None)
            return
        if isinstance(obj, functools.partial):
            self._t("partial")
            self.feed(obj.func, f"{path}.func")
            self.feed(obj.args, f"{path}.args")
            self.feed(obj.keywords, f"{path}.keywords")
            return
        if isinstance(obj, types.MethodType):
            self._t("method", obj.__func__.__name__)
            self.feed(obj.__func__, f"{path}.__func__")
            self.feed(obj.__self__, f"{path}.__self__")
            return
        if isinstance(obj, types.FunctionType):
            self._function(obj, path)
            return
        if isinstance(obj, types.CodeType):
            self._code(obj, path, {})
            return
        if isinstance(obj, type):
            self._class(obj, path)
            return
        if isinstance(obj, (types.BuiltinFunctionType, types.BuiltinMethodType)) or (
            callable(obj) and hasattr(obj, "__qualname__") and not hasattr(obj, "__dict__")
            and not hasattr(obj, "__reduce_ex__")
        ):
            self._named("builtin", getattr(obj, "__module__", None), getattr(obj, "__qualname__", None))
            return
        if isinstance(obj, (staticmethod, classmethod, property)):
            self._t(type(obj).__name__)
            for attr in ("__func__", "fget", "fset", "fdel"):
                if hasattr(obj, attr):
                    self.feed(getattr(obj, attr), f"{path}.{attr}")
            return
        self._instance(obj, path)

    def _function(self, fn: Any, path: str) -> None:
        mod = getattr(fn, "__module__", None)
        if not _is_user_module(mod):
            self._named("function", mod, fn.__qualname__)
            return
        self._t("function", mod, fn.__qualname__)
        self._code(fn.__code__, path, fn.__globals__)
        self.feed(fn.__defaults__, f"{path}.__defaults__")
        self.feed(fn.__kwdefaults__, f"{path}.__kwdefaults__")
        cells = []
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            try:
                cells.append((name, cell.cell_contents))
            except ValueError:  # an empty cell
                cells.append((name, "<empty cell>"))
        for name, value in cells:
            self._t("closure", name)
            self.feed(value, f"{path} (captured {name})")

    def _code(self, code: Any, path: str, globs: dict) -> None:
        import types

        self._t("code", code.co_argcount, code.co_kwonlyargcount, code.co_flags, code.co_code,
                code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)
        for c in code.co_consts:
            if isinstance(c, types.CodeType):
                self._code(c, path, globs)
            else:
                self.feed(c, path)
        # the globals it reads (attribute names share co_names; only real globals count)
        for name in _global_names(code):
            if name in globs:
                value = globs[name]
                self._t("global", name)
                self.feed(value, f"{path} (global {name})")
                if isinstance(value, types.ModuleType) and _is_user_module(value.__name__):
                    # mymodule.helper(x): the attributes of a user module the code may read
                    for attr in code.co_names:
                        if attr != name and hasattr(value, attr):
                            self._t("module-attr", attr)
                            self.feed(getattr(value, attr), f"{path} ({name}.{attr})")

    def _class(self, cls: type, path: str) -> None:
        mod = getattr(cls, "__module__", None)
        if not _is_user_module(mod):
            self._named("class", mod, cls.__qualname__)
            return
        self._t("class", mod, cls.__qualname__)
        for base in cls.__bases__:
            self.feed(base, f"{path}.__bases__")
        for name in sorted(vars(cls)):
            if name in _CLASS_SKIP or name.startswith("_abc_"):  # bookkeeping, caches
                continue
            self._t("attr", name)
            self.feed(vars(cls)[name], f"{cls.__qualname__}.{name}")

    def _instance(self, obj: Any, path: str) -> None:
        cls = type(obj)
        self._t("instance")
        self.feed(cls, f"{path}.__class__")
        if isinstance(obj, Simulator) and type(obj).identity is not Simulator.identity \
                and not isinstance(obj, CallableSimulator):
            self._t("identity", obj.identity())  # the subclass says what identifies it
            return
        state: Any = _NOTHING
        if isinstance(obj, Simulator) or (cls.__reduce_ex__ is object.__reduce_ex__):
            try:
                state = obj.__getstate__() if hasattr(obj, "__getstate__") else vars(obj)
            except Exception:  # noqa: BLE001
                state = _NOTHING
            if state is None and not hasattr(obj, "__dict__") and not hasattr(obj, "__slots__"):
                state = _NOTHING
        if isinstance(obj, Simulator) and isinstance(state, dict):
            # where runs happen and how long they may take does not change their values
            ignore = set(getattr(cls, "cache_ignore", ()) or ())
            state = {k: v for k, v in state.items() if k not in ignore}
        if state is _NOTHING:
            try:
                red = obj.__reduce_ex__(4)
            except Exception:  # noqa: BLE001 - not picklable
                red = None
            if isinstance(red, str):  # a global, pickled by name
                self._named("global", getattr(obj, "__module__", None) or cls.__module__, red)
                return
            if isinstance(red, tuple):
                self._t("reduce", len(red))
                for i, part in enumerate(red):
                    if i == 3 or i == 4:  # list/dict item iterators
                        part = None if part is None else list(part)
                    self.feed(part, f"{path}.__reduce__[{i}]")
                return
            if hasattr(obj, "__dict__"):
                state = vars(obj)
            else:
                self.unreadable.append(f"{path}: {cls.__module__}.{cls.__qualname__}")
                self._t("unreadable", cls.__qualname__)
                return
        self._t("state")
        self.feed(state, path)


_NOTHING = object()
_CLASS_SKIP = frozenset({"__dict__", "__weakref__", "__module__", "__doc__", "__qualname__",
                         "__abstractmethods__", "__annotations__", "__slotnames__",
                         "__parameters__", "__orig_bases__", "__firstlineno__",
                         "__static_attributes__"})


def _sub_digest(obj: Any) -> str:
    w = _Fingerprint()
    w.feed(obj)
    return w.hexdigest()


def _global_names(code: Any) -> list[str]:
    """Names a code object (and its nested code) loads as globals, in first-use order."""
    import dis
    import types

    out: list[str] = []
    stack = [code]
    while stack:
        c = stack.pop(0)
        for ins in dis.get_instructions(c):
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL") and isinstance(ins.argval, str):
                if ins.argval not in out:
                    out.append(ins.argval)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return out


class DiskCache:
    """Evaluations stored one file each under ``path`` (created when missing).

    Parameters
    ----------
    path : str or os.PathLike
        The cache directory. Several processes may share it.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"DiskCache({str(self.path)!r})"

    @staticmethod
    def key(ident: str, x: np.ndarray) -> str:
        """The entry name of point ``x`` of the simulator whose fingerprint is ``ident``."""
        x = np.ascontiguousarray(x)
        h = hashlib.sha256()
        h.update(ident.encode())
        h.update(b"\0" + x.dtype.str.encode() + b"\0" + repr(x.shape).encode() + b"\0")
        h.update(x.tobytes())
        return h.hexdigest()

    def _file(self, key: str) -> Path:
        return self.path / key[:2] / f"{key}.npz"

    def get(self, ident: str, x: np.ndarray) -> np.ndarray | None:
        """The stored value of ``x``, or None when missing, corrupt or not this point's."""
        file = self._file(self.key(ident, x))
        try:
            with np.load(file, allow_pickle=False) as data:
                if bytes(data["ident"]) != ident.encode():
                    return None
                stored_x = data["x"]
                if stored_x.dtype != x.dtype or stored_x.shape != x.shape:
                    return None
                if stored_x.tobytes() != np.ascontiguousarray(x).tobytes():
                    return None
                value = np.array(data["value"])
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 - a corrupt entry is ignored and recomputed
            return None
        if value.dtype.kind not in "biufc" or value.ndim > 1:
            return None
        return value

    def put(self, ident: str, x: np.ndarray, value: np.ndarray) -> None:
        """Store ``value`` for ``x`` atomically (temporary file, then ``os.replace``)."""
        file = self._file(self.key(ident, x))
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=file.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(
                    fh,
                    ident=np.frombuffer(ident.encode(), dtype=np.uint8),
                    x=np.ascontiguousarray(x),
                    value=np.asarray(value),
                )
            os.replace(tmp, file)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def __len__(self) -> int:
        return sum(1 for _ in self.path.glob("*/*.npz"))

    def clear(self) -> None:
        """Remove every entry."""
        for f in self.path.glob("*/*.npz"):
            f.unlink(missing_ok=True)


def as_cache(cache: Any) -> DiskCache | None:
    """The ``cache=`` option as a DiskCache: None, a directory path, or a DiskCache."""
    if cache is None or cache is False:
        return None
    if isinstance(cache, DiskCache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return DiskCache(cache)
    raise ArgumentTypeError(
        f"cache must be None, a directory path (str or os.PathLike) or a simdiff DiskCache; "
        f"got {type(cache).__name__} {cache!r}"
    )
