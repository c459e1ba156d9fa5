"""A dict whose keys are also attributes: the records simdiff hands back (``info`` of
``full_output=True``, failure records) read as ``info.error`` or ``info["error"]`` alike."""

from __future__ import annotations

from typing import Any

__all__ = ["AttrDict"]


class AttrDict(dict):
    """``d.key`` is ``d["key"]`` (AttributeError for a missing key), ``d.key = v`` sets it."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value
