"""The Evaluator an optimizer hands to the derivative functions: memory, counting, budget.

Every point an optimizer needs — a line-search trial, a stencil of a gradient, a simplex
vertex — goes through one ``Tally``. It is itself an Evaluator (``evaluate(sim, X) -> Batch``),
so ``simdiff.gradient(sim, x, evaluator=tally)`` plans its stencil as usual and the Tally

* answers points it has already seen from memory (f(x) of an accepted line-search point is
  never run again when the forward stencil at x asks for it);
* adds the points queued in ``extra`` (speculative line-search points) to the batch, so that
  one parallel round does more than one thing;
* sends everything new to the user's Evaluator in ONE batch with ``on_failure="skip"``, and
  counts ``nfev`` (simulator runs, as the Evaluator reports them: retries in, cache hits out)
  and ``nrounds`` (batches handed on);
* refuses a point outside the bounds (an internal error: the optimizers never plan one);
* stops the optimizer with ``BudgetExhausted`` before a batch would take the number of distinct
  points sent on past ``maxfev``. The budget counts points, not runs, so a run resumed from a
  cache follows the same path and stops at the same place.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..evaluate import Batch, Failure

__all__ = ["BudgetExhausted", "Tally"]


class BudgetExhausted(Exception):
    """Raised inside an optimizer when the next batch would exceed ``maxfev``."""


class Tally:
    """Memory, counting and budget in front of an Evaluator (see the module docstring).

    Parameters
    ----------
    sim : Simulator
        The simulator every batch evaluates.
    inner : Evaluator
        Where the points run; its ``on_failure`` is set to "skip" while the Tally is open.
    bounds : (lower, upper) or None
        No point outside is ever sent on.
    maxfev : int or None
        The budget of distinct points.
    """

    on_failure = "skip"

    def __init__(self, sim: Any, inner: Any, bounds: Any = None, maxfev: int | None = None) -> None:
        self.sim = sim
        self.inner = inner
        self.bounds = bounds
        self.maxfev = maxfev
        self.memo: dict[bytes, Any] = {}  # x bytes -> ndarray (m,) or a Failure cause
        self.extra: list[np.ndarray] = []
        self.nfev = 0
        self.npoints = 0
        self.nrounds = 0
        self.nfailed = 0
        self.scalar: bool | None = None
        self.m: int | None = None
        self.best_x: np.ndarray | None = None
        self.best_f = np.inf
        self._saved_on_failure = None

    # the Tally sets the inner Evaluator's failure policy for as long as it is in use
    def __enter__(self) -> Tally:
        self._saved_on_failure = getattr(self.inner, "on_failure", None)
        if self._saved_on_failure is not None:
            self.inner.on_failure = "skip"
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._saved_on_failure is not None:
            self.inner.on_failure = self._saved_on_failure

    @property
    def remaining(self) -> float:
        return np.inf if self.maxfev is None else self.maxfev - self.npoints

    def known(self, x: np.ndarray) -> bool:
        return np.asarray(x, dtype=float).tobytes() in self.memo

    def _inside(self, X: np.ndarray) -> None:
        if self.bounds is None:
            return
        lo, hi = self.bounds
        bad = np.any((X < lo) | (X > hi), axis=1)
        if bad.any():  # pragma: no cover - a planning bug, never a user error
            raise AssertionError(f"optimizer planned a point outside the bounds: {X[bad][0]!r}")

    def evaluate(self, sim: Any, X: Any) -> Batch:
        """The Evaluator protocol: values of every row of X, new rows in one inner batch."""
        X = np.asarray(X, dtype=float)
        if X.ndim == 1:
            X = X[None, :]
        todo: list[int] = []
        seen: set[bytes] = set()
        keys = [row.tobytes() for row in X]
        for i, key in enumerate(keys):
            if key not in self.memo and key not in seen:
                seen.add(key)
                todo.append(i)
        if todo and len(todo) > self.remaining:
            raise BudgetExhausted
        whole = not self.extra and 0 < len(todo) == len(X)  # every row new: X as it is
        new = None if whole else [X[i] for i in todo]
        for p in self.extra:
            p = np.asarray(p, dtype=float)
            key = p.tobytes()
            if key not in self.memo and key not in seen and len(new) < self.remaining:
                seen.add(key)
                new.append(p)
        self.extra = []
        if whole or new:
            P = X if whole else np.array(new)
            self._inside(P)
            batch = self.inner.evaluate(self.sim, P)
            self.nrounds += 1
            self.nfev += batch.nfev
            self.npoints += len(P)
            if self.scalar is None and batch.ok.any():
                self.scalar = bool(batch.scalar)
                self.m = batch.values.shape[1]
            V = np.array(batch.values, dtype=float)  # the memo's rows: views of this copy
            ok = batch.ok
            every = bool(ok.all())
            memo = self.memo
            new_keys = keys if whole else [keys[i] for i in todo] + [p.tobytes() for p in P[len(todo):]]
            if every:
                memo.update(zip(new_keys, V))
            else:
                causes = {f.index: f.cause for f in batch.failures}
                for j, key in enumerate(new_keys):
                    memo[key] = V[j] if ok[j] else _Failed(causes.get(j, "failed"))
                self.nfailed += int(len(P) - ok.sum())
            if V.shape[1] == 1 and (every or ok.any()):
                j = int(V[:, 0].argmin() if every else np.argmin(np.where(ok, V[:, 0], np.inf)))
                if V[j, 0] < self.best_f:  # the first of the least, as a row-by-row scan finds
                    self.best_f, self.best_x = float(V[j, 0]), P[j].copy()
            if len(todo) == len(X) and every and V.shape[1] == (self.m or 1):
                # every row new, distinct, evaluated: the batch answers them as they are
                return Batch(values=V[:len(X)].copy(), ok=np.ones(len(X), dtype=bool),
                             failures=[], nfev=0,
                             scalar=True if self.scalar is None else self.scalar)
        return self._answer(X, keys)

    def _answer(self, X: np.ndarray, keys: list) -> Batch:
        m = self.m or 1
        values = np.full((len(X), m), np.nan)
        ok = np.zeros(len(X), dtype=bool)
        failures = []
        for i, key in enumerate(keys):
            v = self.memo.get(key)
            if isinstance(v, _Failed) or v is None:
                failures.append(Failure(i, X[i].copy(), v.cause if v is not None else "failed"))
            elif v.shape[0] != m:
                from ..errors import OutputError

                raise OutputError(
                    f"the length of f's output changed between points: {m} values before, "
                    f"{v.shape[0]} at x={X[i]!r}; f must return the same shape at every point")
            else:
                values[i], ok[i] = v, True
        return Batch(values=values, ok=ok, failures=failures, nfev=0,
                     scalar=True if self.scalar is None else self.scalar)

    def lookup(self, x: np.ndarray) -> float | None:
        """f(x) of a scalar simulator from the memo (no evaluation): None if x was never
        evaluated or failed there (``value`` without its batch)."""
        v = self.memo.get(np.asarray(x, dtype=float).tobytes())
        if v is None or isinstance(v, _Failed):
            return None
        return float(v[0])

    def values(self, X: Any, extra: Any = ()) -> tuple[np.ndarray, np.ndarray]:
        """(values (k, m), ok (k,)) of the rows of X, in one round with the points ``extra``."""
        self.extra = [np.asarray(p, dtype=float) for p in extra]
        b = self.evaluate(self.sim, X)
        return b.values, b.ok

    def value(self, x: Any) -> float | None:
        """f(x) for a scalar simulator, None if the point failed."""
        vals, ok = self.values(np.asarray(x, dtype=float)[None, :])
        return float(vals[0, 0]) if ok[0] else None


class _Failed:
    __slots__ = ("cause",)

    def __init__(self, cause: Any) -> None:
        self.cause = cause
