"""The ALS model as the serving layer holds it: growable factor tables, known items, exact top-N.

Reads never lock: each :class:`FactorTable` publishes an immutable view (vectors, ids, norms of the
first n rows) by swapping one reference, and a reader uses the view it took. The single writer
(the update-topic tail) fills a row before publishing it; capacity grows geometrically so adding
items from UP messages copies the table O(log n) times, not per message. A vector overwritten in
place may be read half-updated by a concurrent request, which only blurs one score for one query.

>>> import numpy as np
>>> from headwater.als_factors import ALSFactors
>>> model = ALSServingModel(ALSFactors(["u"], [[1.0, 0.0]], ["a", "b", "c"],
...                                    [[0.9, 0.0], [0.1, 0.0], [0.5, 0.5]], {"u": {"a"}}, True))
>>> model.top_n(model.users.vector("u"), 2, exclude=model.known_rows("u"))
[('c', 0.5), ('b', 0.10000000149011612)]
>>> model.apply_update(["Y", "d", [2.0, 0.0], None])
>>> model.top_n(model.users.vector("u"), 1)
[('d', 2.0)]
"""
from __future__ import annotations

import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

from headwater.als_factors import ALSFactors, GramianSolver, target_estimates

GROWTH = 1.5


class TableView(NamedTuple):
    vectors: np.ndarray   # (n, k) float32, a view of the table's buffer
    ids: np.ndarray       # (n,) numpy str array
    norms: np.ndarray     # (n,) float32


class IdIndex:
    """id -> row without a Python string and dict entry per row.

    The ids loaded with a model live in one sorted numpy array searched with ``searchsorted``
    (a million ids take ~30 MB instead of ~110 MB as str objects in a dict); ids added later by
    UP messages, a small minority, go to a dict.

    >>> index = IdIndex(np.array(["b", "a", "c"]))
    >>> index.get("c"), index.get("z")
    (2, None)
    >>> index.add("z", 3); index.get("z")
    3
    """

    def __init__(self, ids: np.ndarray):
        self._order = np.argsort(ids, kind="stable")
        self._sorted = ids[self._order]
        self._added: dict[str, int] = {}

    def get(self, id_: str) -> int | None:
        row = self._added.get(id_)
        if row is not None or not len(self._sorted):
            return row
        at = int(np.searchsorted(self._sorted, id_))
        if at < len(self._sorted) and self._sorted[at] == id_:
            return int(self._order[at])
        return None

    def __contains__(self, id_: str) -> bool:
        return self.get(id_) is not None

    def add(self, id_: str, row: int) -> None:
        self._added[id_] = row


class FactorTable:
    """Rows of float32 vectors keyed by id, appendable without copying on every append."""

    def __init__(self, ids, vectors: np.ndarray):
        n, k = vectors.shape
        self._ids = np.asarray(ids, dtype=str) if len(ids) else np.empty(0, dtype="<U1")
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._norms = np.linalg.norm(self._vectors, axis=1).astype(np.float32)
        self.index = IdIndex(self._ids)
        self.features = k
        self.version = 0  # bumped on every write, so caches derived from the table know they are stale
        self._publish(n)

    def _publish(self, n: int) -> None:
        self.view = TableView(self._vectors[:n], self._ids[:n], self._norms[:n])

    def __len__(self) -> int:
        return len(self.view.ids)

    def vector(self, id_: str) -> np.ndarray | None:
        row = self.index.get(id_)
        return None if row is None else self._vectors[row]

    def rows(self, ids: Iterable[str]) -> np.ndarray:
        found = (self.index.get(i) for i in ids)
        return np.fromiter((row for row in found if row is not None), dtype=np.intp)

    def upsert(self, id_: str, vector) -> None:
        """Set one row (single writer); idempotent for the same (id, vector)."""
        vector = np.asarray(vector, dtype=np.float32)
        if vector.shape != (self.features,):
            raise ValueError(f"vector of {id_!r} has {vector.size} values, the model has {self.features} features")
        row = self.index.get(id_)
        if row is None:
            row = len(self)
            if row == len(self._ids) or len(id_) > self._ids.dtype.itemsize // 4:
                self._grow(max(16, int(row * GROWTH)) if row == len(self._ids) else len(self._ids), len(id_))
            self._ids[row] = id_
        self._vectors[row] = vector
        self._norms[row] = np.linalg.norm(vector)
        self.version += 1
        if row == len(self):
            self.index.add(id_, row)
            self._publish(row + 1)

    def _grow(self, capacity: int, id_length: int) -> None:
        n = len(self)
        vectors = np.empty((capacity, self.features), dtype=np.float32)
        vectors[:n] = self._vectors[:n]
        # numpy str arrays have a fixed width: widen it when a longer id arrives
        width = max(id_length, self._ids.dtype.itemsize // 4, 1)
        ids = np.empty(capacity, dtype=f"<U{width}")
        ids[:n] = self._ids[:n]
        norms = np.empty(capacity, dtype=np.float32)
        norms[:n] = self._norms[:n]
        # readers keep the old buffers through their views; the new ones are published with the next row
        self._vectors, self._ids, self._norms = vectors, ids, norms


def top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest finite scores, best first, without sorting all of them.

    The k-th largest of a strided sample is a lower bound of the k-th largest overall, so every
    true top-k score is ≥ it; only those few candidates are ranked (about 20x faster than
    ``argpartition`` over a million scores).
    """
    n = len(scores)
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.intp)
    sample = scores[:: max(1, n // 4096)]
    candidates = None
    if len(sample) > 4 * k:
        bound = np.partition(sample, len(sample) - k)[len(sample) - k]
        if np.isfinite(bound):
            candidates = np.flatnonzero(scores >= bound)
    if candidates is None:
        candidates = np.flatnonzero(np.isfinite(scores))
    chosen = candidates[np.argsort(-scores[candidates], kind="stable")[:k]]
    return chosen[np.isfinite(scores[chosen])]


class ScoreBuffers:
    """Reused score arrays for scoring the whole item matrix, lent to at most ``slots`` requests at once.

    A fresh 4 MB score array per request (1M items) made glibc keep ~80 MB of freed heap across
    the server's threads (bench/serving_als.py), and more concurrent matrix products than cores only
    queue up for memory bandwidth: so requests borrow one of ``slots`` buffers (one per core).
    """

    def __init__(self, slots: int = 0):
        self._free: queue.LifoQueue = queue.LifoQueue()
        for _ in range(slots or os.cpu_count() or 2):
            self._free.put(np.empty(0, dtype=np.float32))

    @contextmanager
    def borrow(self, n: int):
        buffer = self._free.get()
        if len(buffer) < n:
            buffer = np.empty(int(n * GROWTH) + 16, dtype=np.float32)
        try:
            yield buffer[:n]
        finally:
            self._free.put(buffer)


Rescorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


class ALSServingModel:
    """User and item factor tables plus known items; answers top-N, estimates and fold-ins."""

    def __init__(self, factors: ALSFactors, version: int | None = None):
        self.version = version
        self.implicit = factors.implicit
        self.regularization = factors.regularization
        self.users = FactorTable(factors.user_ids, factors.X)
        self.items = FactorTable(factors.item_ids, factors.Y)
        self.known_items: dict[str, frozenset[str]] = {u: frozenset(s) for u, s in factors.known_items.items()}
        self.updates_applied = 0
        self.last_update_time: float | None = None
        self._solver: tuple[int, GramianSolver] | None = None
        self._counts: tuple[int, Counter, Counter] | None = None
        self._write_lock = threading.Lock()
        self._buffers = ScoreBuffers()

    @classmethod
    def from_registered(cls, registered) -> ALSServingModel:
        return cls(ALSFactors.load(registered.path / "factors"), version=registered.version)

    @property
    def features(self) -> int:
        return self.items.features

    def ready_reason(self) -> str | None:
        if not len(self.items) or not len(self.users):
            return "the model has no users or no items yet"
        return None

    # --- updates ------------------------------------------------------------------------------
    def apply_update(self, payload) -> None:
        """Apply one UP payload ``["X"|"Y", id, [floats], [ids] | None]``; applying it twice is harmless."""
        kind, id_, vector = payload[0], str(payload[1]), payload[2]
        others = payload[3] if len(payload) > 3 else None
        with self._write_lock:
            if kind == "X":
                self.users.upsert(id_, vector)
                if others is not None:
                    self.known_items[id_] = frozenset(map(str, others))
            elif kind == "Y":
                self.items.upsert(id_, vector)
                for user in map(str, others or ()):
                    if id_ not in self.known_items.get(user, ()):
                        self.known_items[user] = self.known_items.get(user, frozenset()) | {id_}
            else:
                raise ValueError(f"UP payload must start with 'X' or 'Y', got {kind!r}")
            self.updates_applied += 1
            self.last_update_time = time.time()

    # --- queries ------------------------------------------------------------------------------
    def known_rows(self, *users: str, extra: Iterable[str] = ()) -> np.ndarray:
        ids = set(extra)
        for user in users:
            ids |= self.known_items.get(user, frozenset())
        return self.items.rows(ids)

    def top_n(self, query, how_many: int, exclude: np.ndarray | None = None, cosine: bool = False,
              rescorer: Rescorer | None = None) -> list[tuple[str, float]]:
        """The ``how_many`` best items for a query vector by dot product (or cosine), best first."""
        view = self.items.view
        with self._buffers.borrow(len(view.ids)) as scores:
            np.matmul(view.vectors, np.asarray(query, dtype=np.float32), out=scores)
            if cosine:
                with np.errstate(divide="ignore", invalid="ignore"):
                    scores /= view.norms
                scores[~np.isfinite(scores)] = 0.0
            if exclude is not None and len(exclude):
                scores[exclude[exclude < len(scores)]] = -np.inf
            if rescorer is not None:
                scores = np.asarray(rescorer(view.ids, scores), dtype=np.float64)
                scores = np.where(np.isnan(scores), -np.inf, scores)
            top = top_indices(scores, how_many)
            return list(zip(view.ids[top].tolist(), scores[top].astype(float).tolist()))

    def estimate(self, user_vector, item_ids: list[str]) -> list[float]:
        return [0.0 if (v := self.items.vector(i)) is None else float(np.dot(user_vector, v)) for i in item_ids]

    def cosine_to(self, vector, item_ids: list[str]) -> list[tuple[str, float]]:
        norm = float(np.linalg.norm(vector))
        result = []
        for item in item_ids:
            other = self.items.vector(item)
            denominator = norm * float(np.linalg.norm(other)) if other is not None else 0.0
            result.append((item, float(np.dot(vector, other)) / denominator if denominator else 0.0))
        return result

    def solver(self) -> GramianSolver:
        """(YᵀY + λI)⁻¹ of the current items, rebuilt only after items changed."""
        cached = self._solver
        if cached is None or cached[0] != self.items.version:
            version = self.items.version
            cached = (version, GramianSolver(self.items.view.vectors, self.regularization))
            self._solver = cached
        return cached[1]

    def anonymous_vector(self, item_values: list[tuple[str, float]], start=None) -> np.ndarray | None:
        """A user vector built by folding in (item, value) pairs one by one (Oryx's buildTemporaryUserVector)."""
        solver = self.solver()
        x = None if start is None else np.asarray(start, dtype=np.float64)
        for item, value in item_values:
            y = self.items.vector(item)
            if y is None:
                continue
            current = 0.0 if x is None else float(x @ y)
            target = target_estimates(self.implicit, [value], [0.5 if x is None else current])[0]
            if np.isnan(target):
                continue
            x = (np.zeros(self.features) if x is None else x) + solver.solve((target - current) * y)
        return None if x is None else x.astype(np.float32)

    def popularity(self) -> tuple[Counter, Counter]:
        """(users per item, items per user), recounted only after updates."""
        cached = self._counts
        if cached is None or cached[0] != self.updates_applied:
            stamp = self.updates_applied
            known = list(self.known_items.items())  # one C-level copy: safe against the writer
            items = Counter(i for _, s in known for i in s)
            cached = (stamp, items, Counter({u: len(s) for u, s in known}))
            self._counts = cached
        return cached[1], cached[2]

    def __repr__(self) -> str:
        return (f"ALSServingModel(version={self.version}, users={len(self.users)}, items={len(self.items)}, "
                f"features={self.features}, implicit={self.implicit})")
