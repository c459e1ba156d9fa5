"""A disk cache of simulator evaluations that survives a crash.

Each evaluation is one file, written the moment it completes, so a run killed in the middle of a
gradient leaves every finished point behind and a second run evaluates only the rest.

Key
    ``sha256(fingerprint(sim) | dtype | shape | bytes of x)``, where the fingerprint is the
    simulator's ``identity()`` (its class and configuration). A point of another simulator, of
    another configuration, or the same numbers in another dtype (a complex-step point next to a
    real one) therefore never shares an entry.

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

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArgumentTypeError
from .simulator import CallableSimulator, Simulator

__all__ = ["DiskCache", "as_cache", "fingerprint"]


def fingerprint(sim: Simulator) -> str:
    """The text that names a simulator and its configuration in cache keys.

    ``sim.identity()``; for a plain callable that cannot be imported by name (a lambda, a
    closure) the identity is a qualified name shared by every such function, so the bytes of the
    function itself (cloudpickle: code, defaults and captured values) are hashed into it.
    """
    ident = sim.identity()
    if isinstance(sim, CallableSimulator):
        qual = getattr(sim.fun, "__qualname__", "")
        if "<" in qual or not qual:  # <lambda>, <locals>, or an object without a name
            import cloudpickle

            try:
                blob = cloudpickle.dumps(sim.fun)
            except Exception:  # noqa: BLE001 - unpicklable: fall back to the object's id
                blob = repr(id(sim.fun)).encode()
            ident += ":" + hashlib.sha256(blob).hexdigest()
    return ident


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
