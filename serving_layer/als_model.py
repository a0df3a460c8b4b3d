"""The ALS model as the serving layer holds it: factor tables with biases, each user's values, exact top-N,
and exact solves for anonymous users and users with context.

Scores are the model's estimates, μ + b_u + b_i + x·y (implicit feedback has no biases: x·y), and a
ranking orders items by that same score. An anonymous user (``/recommendToAnonymous``) or a user with
context items (``/recommendWithContext``) is solved exactly as the speed layer solves a user
(:mod:`headwater.apps.als.solves`), from the given (item, value) pairs — and, with context, the user's
own values — against the current item vectors.

>>> from headwater.apps.als.factors import ALSFactors, ALSSettings
>>> model = ALSServingModel(ALSFactors(["u"], [[1.0, 0.0]], ["a", "b", "c"],
...                                    [[0.9, 0.0], [0.1, 0.0], [0.5, 0.5]], {"u": {"a"}}, ALSSettings(True)))
>>> query = model.user_query("u")
>>> model.top_n(query, 2, exclude=model.known_rows("u"))
[('c', 0.5), ('b', 0.10000000149011612)]
>>> model.apply_update(["Y", "d", [2.0, 0.0], 0.0])
>>> model.top_n(query, 1)
[('d', 2.0)]
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from headwater.apps.als import updates
from headwater.apps.als.factors import ALSFactors, summarize
from headwater.apps.als.ratings import RatingStore
from headwater.apps.als.solves import explicit_solve, implicit_solve
from headwater.apps.als.strengths import effective_values, stored_values
from headwater.input_bounds import DEFAULT_BOUNDS, InputBounds
from serving_layer.als_values import UserValues
from serving_layer.item_ranking import ItemRanker, RankingSettings, Rescorer
from serving_layer.vector_store import FactorTable


class Query(NamedTuple):
    """A user to rank items for: its vector and what its estimates add to b_i + x·y (μ + b_u)."""

    vector: np.ndarray
    offset: float = 0.0


class ALSServingModel:
    """User and item factor tables, each user's values; answers top-N, estimates and exact solves."""

    def __init__(self, factors: ALSFactors, version: int | None = None, ranking: RankingSettings | None = None,
                 max_id_length: int = DEFAULT_BOUNDS.max_id_length, no_known_items: bool = False):
        self.version = version
        self.settings = factors.settings
        self.implicit = factors.implicit
        self.mu = factors.mu
        self.reference_time_ms, self.newest_event_ms = factors.reference_time_ms, factors.newest_event_ms
        self.users = FactorTable(factors.user_ids, factors.X, factors.user_bias, max_id_length)
        self.items = FactorTable(factors.item_ids, factors.Y, factors.item_bias, max_id_length)
        # no-known-items (Oryx's, for memory): no user's values are kept, so no item is known to anyone
        self.no_known_items = no_known_items
        ratings = RatingStore.from_pairs(len(factors.user_ids), [], [], []) if no_known_items else factors.ratings
        self.values = UserValues(factors.user_ids, factors.item_ids, ratings)
        self.updates_applied = 0
        self.last_update_time: float | None = None
        self.recent_users: set[str] = set()  # users UPs added after the load (see retain_recent)
        self._gram: tuple[int, np.ndarray] | None = None
        self._write_lock = threading.Lock()
        self.ranker = ItemRanker(self.items, ranking, None if self.implicit else lambda: self.items.view.biases)

    @classmethod
    def from_registered(cls, registered, config=None) -> ALSServingModel:
        bounds = DEFAULT_BOUNDS if config is None else InputBounds.from_config(config)
        return cls(ALSFactors.load(registered.path), version=registered.version,
                   ranking=RankingSettings.from_config(config), max_id_length=bounds.max_id_length,
                   no_known_items=config is not None and config.get("headwater.als.no-known-items"))

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
            table = self.users if update.side == updates.USER else self.items
            if update.side == updates.USER and table.index.get(update.id) is None:
                self.recent_users.add(update.id)
            table.upsert(update.id, update.vector, update.bias)
            if update.values and not self.no_known_items:
                self.values.apply(update.id, update.values)
            self.updates_applied += 1
            self.last_update_time = time.time()

    def retain_recent(self, previous: ALSServingModel) -> int:
        """Carry over the users ``previous`` learned from UPs that this (new) model lacks; how many.

        Oryx's "retain recent": a user the speed layer learned after the new champion's data cut-off
        is not in it, and would answer 404 until the speed layer's UPs on the new champion arrive. So
        such a user is solved from its values on this model's items (as an anonymous user is) until
        those UPs replace it.
        """
        carried = 0
        for user in sorted(previous.recent_users):
            values = previous.values.of(user)
            if self.has_user(user) or not values:
                continue
            query = self._solve(values)
            if query is None:
                continue
            with self._write_lock:
                self.users.upsert(user, query.vector, 0.0 if self.implicit else query.offset - self.mu)
                self.values.apply(user, values)
                self.recent_users.add(user)
            carried += 1
        return carried

    def state_summary(self) -> dict:
        users, items = self.users.view, self.items.view
        return summarize(dict(zip(users.ids.tolist(), np.column_stack([users.vectors, users.biases]))),
                         dict(zip(items.ids.tolist(), np.column_stack([items.vectors, items.biases]))),
                         self.values.all())

    # --- queries ------------------------------------------------------------------------------
    def has_user(self, user: str) -> bool:
        return self.users.vector(user) is not None or self.values.has(user)

    def known_items(self, user: str) -> list[str]:
        return self.values.known(user)

    def known_rows(self, *users: str, extra: Iterable[str] = ()) -> np.ndarray:
        ids = set(extra)
        for user in users:
            ids.update(self.values.known(user))
        return self.items.rows(ids)

    def user_query(self, user: str) -> Query | None:
        """The user's vector and μ + b_u, or None for a user without a vector."""
        vector = self.users.vector(user)
        return None if vector is None else Query(vector, self.mu + self.users.bias(user))

    def top_n(self, query: Query | np.ndarray, how_many: int, exclude: np.ndarray | None = None,
              cosine: bool = False, rescorer: Rescorer | None = None) -> list[tuple[str, float]]:
        """The ``how_many`` best items for a query, best first: by estimate for a :class:`Query`, by dot
        product (or cosine) for a bare vector."""
        if not isinstance(query, Query):
            return self.ranker.top_n(query, how_many, exclude, cosine, rescorer)
        # the ranker adds b_i (its item term); μ + b_u is the same for every item, so it orders nothing
        # and is added to what the rescorer sees, or to the result
        offset = 0.0 if self.implicit or cosine else query.offset
        if rescorer is not None and offset:
            rescore = rescorer
            return self.ranker.top_n(query.vector, how_many, exclude, cosine,
                                     lambda ids, scores: rescore(ids, scores + offset))
        top = self.ranker.top_n(query.vector, how_many, exclude, cosine, rescorer)
        return [(item, score + offset) for item, score in top] if offset else top

    def estimates(self, query: Query | None, item_ids: list[str]) -> list[float]:
        """μ + b_u + b_i + x·y per item; an item the model does not know is 0 (as Oryx), and so is what the model
        does not know of a user (no query: μ + b_i)."""
        result = []
        for item in item_ids:
            vector = self.items.vector(item)
            if vector is None:
                result.append(0.0)
                continue
            estimate = self.mu if query is None else query.offset + float(np.dot(query.vector, vector))
            result.append(float(estimate + self.items.bias(item)))
        return result

    def cosine_to(self, vector, item_ids: list[str]) -> list[tuple[str, float]]:
        norm = float(np.linalg.norm(vector))
        result = []
        for item in item_ids:
            other = self.items.vector(item)
            denominator = norm * float(np.linalg.norm(other)) if other is not None else 0.0
            result.append((item, float(np.dot(vector, other)) / denominator if denominator else 0.0))
        return result

    def item_gram(self) -> np.ndarray:
        """YᵀY of the current items (implicit solves), recomputed only after items changed."""
        cached = self._gram
        if cached is None or cached[0] != self.items.version:
            version, vectors = self.items.version, self.items.view.vectors.astype(np.float64)
            cached = (version, vectors.T @ vectors)
            self._gram = cached
        return cached[1]

    def solve_user(self, item_values: list[tuple[str, float]], user: str | None = None) -> Query | None:
        """The exact vector (and μ + b) of a user whose values are ``item_values`` — added to the values of
        ``user`` when given (implicit strengths add, an explicit rating replaces) — against the current
        items; None when no item is in the model."""
        s = self.settings
        values = dict(self.values.of(user)) if user is not None else {}
        for item, value in item_values:
            # a query's values are "now": stored as an event at the newest time the model has seen
            stored = float(stored_values([value], [self.newest_event_ms or 0], self.reference_time_ms,
                                         s.decay_factor)[0])
            values[item] = values.get(item, 0.0) + stored if s.implicit else stored
        return self._solve(values)

    def _solve(self, values: dict[str, float]) -> Query | None:
        """The exact vector (and μ + b) of a user with these stored values, or None without a known item."""
        s = self.settings
        rows = self.items.rows(values)
        known = [item for item in values if self.items.index.get(item) is not None]
        if not len(rows):
            return None
        transformed, kept = effective_values(np.array([values[i] for i in known]), self.newest_event_ms,
                                             self.reference_time_ms, s.decay_factor, s.zero_threshold, s.epsilon)
        rows = rows[kept]
        vectors = self.items.view.vectors[rows]
        seg = np.zeros(len(rows), dtype=np.int64)
        if s.implicit:
            x = implicit_solve(seg, 1, vectors, transformed, self.item_gram(), s.regularization, s.alpha)[0]
            return Query(x.astype(np.float32), 0.0)
        x, b = explicit_solve(seg, 1, vectors, self.items.view.biases[rows], transformed, self.mu,
                              s.regularization, s.bias_regularization)
        return Query(x[0].astype(np.float32), self.mu + float(b[0]))

    def popularity(self) -> tuple[Counter, Counter]:
        """(users per item, items per user), recounted only after updates."""
        return self.values.popularity()

    def __repr__(self) -> str:
        return (f"ALSServingModel(version={self.version}, users={len(self.users)}, items={len(self.items)}, "
                f"features={self.features}, implicit={self.implicit})")
