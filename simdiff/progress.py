"""The progress bar of a long batch (tqdm, extra ``simdiff[progress]``).

``progress=None`` (the default) shows a bar only where someone can see it and it is worth
showing: stderr is a terminal and the batch is expected to take more than ``SHOW_AFTER`` seconds
(the expectation is remaining points × seconds per evaluation ÷ parallel slots, known once the
first evaluations have been timed). ``True`` always shows it (and needs tqdm); ``False`` never.
"""

from __future__ import annotations

import sys
from typing import Any

from .errors import require

__all__ = ["PROGRESS", "SHOW_AFTER", "Progress"]

SHOW_AFTER = 2.0  # seconds
PROGRESS = (None, True, False)


class Progress:
    """A bar over ``total`` evaluations that opens itself when the batch turns out long."""

    def __init__(self, total: int, mode: bool | None, desc: str = "simdiff") -> None:
        self.total = int(total)
        self.mode = mode
        self.desc = desc
        self.done = 0
        self.bar: Any = None
        if mode is True and total > 0:
            self._open()

    def _open(self) -> None:
        tqdm = require("tqdm", "progress")
        self.bar = tqdm.tqdm(total=self.total, initial=self.done, desc=self.desc, unit="eval",
                             file=sys.stderr, leave=False)

    def _worth_showing(self, expected_seconds: float | None) -> bool:
        if self.mode is not None or expected_seconds is None or expected_seconds <= SHOW_AFTER:
            return False
        try:
            if not sys.stderr.isatty():
                return False
            import tqdm  # noqa: F401 - the bar is optional when not asked for
        except (ImportError, AttributeError, ValueError):
            return False
        return True

    def update(self, n: int = 1, expected_seconds: float | None = None) -> None:
        """``n`` more evaluations done; ``expected_seconds``: the estimated time still to go."""
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.done < self.total and self._worth_showing(expected_seconds):
            self._open()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
