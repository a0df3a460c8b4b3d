"""The ALS model as the serving layer holds it: factor tables, known items, exact top-N, anonymous fold-in.

>>> import numpy as np
>>> from headwater.apps.als.factors import ALSFactors
>>> model = ALSServingModel(ALSFactors(["u"], [[1.0, 0.0]], ["a", "b", "c"],
...                                    [[0.9, 0.0], [0.1, 0.0], [0.5, 0.5]], {"u": {"a"}}, True))
>>> model.top_n(model.users.vector("u"), 2, exclude=model.known_rows("u"))
[('c', 0.5), ('b', 0.10000000149011612)]
>>> model.apply_update(["Y", "d", [2.0, 0.0], None])
>>> model.top_n(model.users.vector("u"), 1)
[('d', 2.0)]
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np

from headwater.apps.als import updates
from headwater.apps.als.factors import ALSFactors, summarize
from headwater.apps.als.fold_in import GramianSolver, target_estimates
from headwater.input_bounds import DEFAULT_BOUNDS, InputBounds
from serving_layer.vector_store import FactorTable, ScoreBuffers, top_indices

Rescorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


class ALSServingModel:
    """User and item factor tables plus known items; answers top-N, estimates and fold-ins."""

    def __init__(self, factors: ALSFactors, version: int | None = None,
                 max_id_length: int = DEFAULT_BOUNDS.max_id_length):
        self.version = version
        self.implicit = factors.implicit
        self.regularization = factors.regularization
        self.users = FactorTable(factors.user_ids, factors.X, max_id_length)
        self.items = FactorTable(factors.item_ids, factors.Y, max_id_length)
        self.known_items: dict[str, frozenset[str]] = {u: frozenset(s) for u, s in factors.known_items.items()}
        self.updates_applied = 0
        self.last_update_time: float | None = None
        self.recent_users: set[str] = set()  # users UPs added after the load (see retain_recent)
        self._solver: tuple[int, GramianSolver] | None = None
        self._counts: tuple[int, Counter, Counter] | None = None
        self._write_lock = threading.Lock()
        self._buffers = ScoreBuffers()

    @classmethod
    def from_registered(cls, registered, config=None) -> ALSServingModel:
        bounds = DEFAULT_BOUNDS if config is None else InputBounds.from_config(config)
        return cls(ALSFactors.load(registered.path), version=registered.version, max_id_length=bounds.max_id_length)

    @property
    def features(self) -> int:
        return self.items.features

    def ready_reason(self) -> str | None:
        if not len(self.items) or not len(self.users):
            return "the model has no users or no items yet"
        return None

    # --- updates ------------------------------------------------------------------------------
    def apply_update(self, payload) -> None:
        """Apply one UP payload (:mod:`headwater.apps.als.updates`); applying it twice is harmless."""
        update = updates.decode(payload)
        with self._write_lock:
            if update.side == updates.USER:
                if update.id not in self.users.index:
                    self.recent_users.add(update.id)
                self.users.upsert(update.id, update.vector)
                if update.others is not None:
                    self.known_items[update.id] = frozenset(update.others)
            else:
                self.items.upsert(update.id, update.vector)
                for user in update.others or ():
                    if update.id not in self.known_items.get(user, ()):
                        self.known_items[user] = self.known_items.get(user, frozenset()) | {update.id}
            self.updates_applied += 1
            self.last_update_time = time.time()

    def retain_recent(self, previous: ALSServingModel) -> int:
        """Carry over the users ``previous`` learned from UPs that this (new) model lacks; how many.

        Oryx's "retain recent": a user the speed layer learned after the new champion's data cut-off
        is not in it, and would answer 404 until the speed layer's UPs on the new champion arrive. So
        such a user gets a vector folded in from its known items on this model's items (as for an
        anonymous user) until those UPs replace it.
        """
        carried = 0
        for user in sorted(previous.recent_users):
            known = previous.known_items.get(user)
            if user in self.users.index or not known:
                continue
            vector = self.anonymous_vector([(item, 1.0) for item in sorted(known)])
            if vector is None:
                continue
            self.users.upsert(user, vector)
            self.known_items[user] = known
            self.recent_users.add(user)
            carried += 1
        return carried

    def state_summary(self) -> dict:
        users, items = self.users.view, self.items.view
        return summarize(users.ids.tolist(), users.vectors, items.ids.tolist(), items.vectors, self.known_items)

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
