"""The speed layer's exact fold-in: a micro-batch of events → new values → exact solves of the touched entities.

A :class:`FoldInState` is an :class:`~headwater.apps.als.factors.ALSFactors` made to learn: the factors and
biases, both sides' values (:class:`~headwater.apps.als.ratings.RatingStore` by user and by item) and,
implicit, the cached Gramians XᵀX and YᵀY. One :meth:`FoldInState.learn`

1. merges the batch's events into one absolute value per (user, item), as the batch aggregation does
   (events in time order; a delete clears what came before; implicit strengths after the last delete
   add to the stored value, explicit keeps the last rating), each strength decayed to the model's
   reference time (:mod:`headwater.apps.als.strengths`);
2. writes them into both stores;
3. re-solves every touched user against the current items, then every touched item against the new
   users (:mod:`headwater.apps.als.solves`), with the values transformed as the batch model's were
   (decay to the newest event, zero threshold, log strength with the model's ε);
4. returns the change as a :class:`~headwater.apps.als.factors.FoldIn` for the UP messages.

A brand-new user or item starts from a zero vector and zero bias, so its first solve is exact too:
after one rating a new user's estimates are μ + b_i plus what that one rating says.

>>> from headwater.apps.als.factors import ALSFactors, ALSSettings
>>> factors = ALSFactors(["u1"], [[0.5, 0.0]], ["i1", "i2"], [[1.0, 0.0], [0.0, 1.0]], {"u1": {"i1": 4.0}},
...                      ALSSettings(implicit=False, regularization=0.1, bias_regularization=1.0), mu=3.0)
>>> state = FoldInState(factors)
>>> change = state.learn(["new"], ["i2"], [5.0])
>>> change.user_ids, change.user_values, change.item_ids
(['new'], [{'i2': 5.0}], ['i2'])
>>> float(state.estimates(["new", "new"], ["i2", "i1"])[0]) > 3.0 + 0.5   # the one rating lifts its item most
True
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from headwater.apps.als.factors import ALSFactors, FoldIn, estimate_rows, summarize
from headwater.apps.als.solves import explicit_solve, implicit_solve
from headwater.apps.als.strengths import effective_values, stored_values

# Recompute the cached Gramians from scratch this often: the incremental updates accumulate rounding.
GRAM_REFRESH_BATCHES = 100


class IdMap:
    """External id → row, vectorised with a pandas hash index; new ids get the next rows."""

    def __init__(self, ids):
        self.index = pd.Index(np.asarray(list(ids), dtype=object))

    def __len__(self) -> int:
        return len(self.index)

    def rows(self, ids, add: bool = False) -> np.ndarray:
        """Rows of ``ids`` (−1 for unknown ones, or new rows when ``add``)."""
        ids = pd.Index(np.asarray(ids, dtype=object))
        found = self.index.get_indexer(ids)
        if add and (found < 0).any():
            self.index = self.index.append(pd.Index(pd.unique(ids[found < 0])))
            found = self.index.get_indexer(ids)
        return found

    def ids(self, rows) -> list[str]:
        return self.index[np.asarray(rows, dtype=np.int64)].tolist()

    def copy(self) -> IdMap:
        other = IdMap.__new__(IdMap)
        other.index = self.index  # immutable: adding ids makes a new one
        return other


def batch_pair_values(users: np.ndarray, items: np.ndarray, stored: np.ndarray, implicit: bool, previous_of):
    """One absolute value per (user row, item row) touched by events in time order (NaN: removed).

    ``previous_of(users, items)`` gives the stored values before the batch (implicit strengths add to it
    unless the batch deleted the pair first). Returns (user rows, item rows, values), sorted by user.
    """
    key = users.astype(np.int64) * (int(items.max(initial=0)) + 1) + items
    pairs, first, pair = np.unique(key, return_index=True, return_inverse=True)
    position = np.arange(len(stored))
    deleted = np.isnan(stored)
    last_delete = np.full(len(pairs), -1)
    np.maximum.at(last_delete, pair[deleted], position[deleted])
    last_event = np.full(len(pairs), -1)
    np.maximum.at(last_event, pair, position)
    pair_users, pair_items = users[first], items[first]
    if not implicit:
        return pair_users, pair_items, stored[last_event]
    live = position > last_delete[pair]
    added = np.zeros(len(pairs))
    np.add.at(added, pair[live], stored[live])
    before = np.where(last_delete >= 0, 0.0, np.nan_to_num(previous_of(pair_users, pair_items), nan=0.0))
    ends_deleted = last_delete == last_event
    return pair_users, pair_items, np.where(ends_deleted, np.nan, before + added)


class FoldInState:
    """The live form of an :class:`ALSFactors`: learns micro-batches, applies other processes' changes."""

    def __init__(self, factors: ALSFactors):
        self.settings = factors.settings
        self.mu = factors.mu
        self.users = IdMap(factors.user_ids)
        self.items = IdMap(factors.item_ids)
        self.X = factors.X.copy()
        self.Y = factors.Y.copy()
        self.user_bias = factors.user_bias.copy()
        self.item_bias = factors.item_bias.copy()
        self.by_user = factors.ratings.copy()
        self.by_item = self.by_user.transposed(len(self.items))
        self.reference_time_ms = factors.reference_time_ms
        self.newest_event_ms = factors.newest_event_ms
        self._grams: list[np.ndarray] | None = None
        self._batches = 0

    @property
    def features(self) -> int:
        return self.Y.shape[1]

    # --- learning -----------------------------------------------------------------------------------
    def learn(self, users, items, strengths, event_ms=None) -> FoldIn:
        """Fold events (in time order; strength NaN = delete; ``event_ms`` NaN = now) in; the change."""
        strengths = np.asarray(strengths, dtype=np.float64)
        times = np.full(len(strengths), np.nan) if event_ms is None else np.asarray(event_ms, dtype=np.float64)
        if len(times) and not np.isnan(times).all():
            newest = int(np.nanmax(times))
            self.newest_event_ms = newest if self.newest_event_ms is None else max(newest, self.newest_event_ms)
        u = self.users.rows(users, add=True)
        i = self.items.rows(items, add=True)
        self._grow()
        now = np.nan if self.newest_event_ms is None else float(self.newest_event_ms)
        stored = stored_values(strengths, np.where(np.isnan(times), now, times), self.reference_time_ms,
                               self.settings.decay_factor)
        pair_users, pair_items, values = batch_pair_values(u, i, stored, self.settings.implicit,
                                                           self.by_user.lookup)
        previous = self.by_user.replace(pair_users, pair_items, values)
        self.by_item.replace(pair_items, pair_users, values, previous)
        touched_users, touched_items = np.unique(pair_users), np.unique(pair_items)
        self._solve(touched_users, users_side=True)
        self._solve(touched_items, users_side=False)
        self._batches += 1
        if self._batches % GRAM_REFRESH_BATCHES == 0:
            self._grams = None
        return self._change(touched_users, touched_items, pair_users, pair_items, values)

    def _grow(self) -> None:
        for matrix, bias, ids in (("X", "user_bias", self.users), ("Y", "item_bias", self.items)):
            extra = len(ids) - len(getattr(self, matrix))
            if extra > 0:
                setattr(self, matrix, np.vstack([getattr(self, matrix), np.zeros((extra, self.features), np.float32)]))
                setattr(self, bias, np.concatenate([getattr(self, bias), np.zeros(extra, np.float32)]))
        self.by_user.grow(len(self.users))
        self.by_item.grow(len(self.items))

    def grams(self) -> list[np.ndarray]:
        """[XᵀX, YᵀY] in float64 (implicit feedback's shared term), kept up to date by every write."""
        if self._grams is None:
            self._grams = [m.T.astype(np.float64) @ m.astype(np.float64) for m in (self.X, self.Y)]
        return self._grams

    def _solve(self, rows: np.ndarray, users_side: bool) -> None:
        s = self.settings
        store, own, own_bias, other, other_bias = (
            (self.by_user, self.X, self.user_bias, self.Y, self.item_bias) if users_side else
            (self.by_item, self.Y, self.item_bias, self.X, self.user_bias))
        seg, cols, stored = store.gather(rows)
        values, kept = effective_values(stored, self.newest_event_ms, self.reference_time_ms, s.decay_factor,
                                        s.zero_threshold, s.epsilon)
        seg, cols = seg[kept], cols[kept]
        if s.implicit:
            vectors = implicit_solve(seg, len(rows), other[cols], values, self.grams()[1 if users_side else 0],
                                     s.regularization, s.alpha)
            self._set_rows(own, rows, vectors, gram=0 if users_side else 1)
        else:
            vectors, biases = explicit_solve(seg, len(rows), other[cols], other_bias[cols], values, self.mu,
                                             s.regularization, s.bias_regularization)
            own[rows] = vectors
            own_bias[rows] = biases

    def _set_rows(self, matrix: np.ndarray, rows: np.ndarray, vectors, gram: int) -> None:
        old = matrix[rows].astype(np.float64)
        matrix[rows] = vectors
        if self._grams is not None:
            new = matrix[rows].astype(np.float64)
            self._grams[gram] += new.T @ new - old.T @ old

    def _change(self, touched_users, touched_items, pair_users, pair_items, values) -> FoldIn:
        item_ids = self.items.ids(pair_items)
        starts = np.searchsorted(pair_users, touched_users)
        ends = np.r_[starts[1:], len(pair_users)]
        user_values = [dict(zip(item_ids[a:b], values[a:b].astype(np.float32).tolist()))
                       for a, b in zip(starts, ends)]
        return FoldIn(self.users.ids(touched_users), self.X[touched_users], self.user_bias[touched_users],
                      user_values, self.items.ids(touched_items), self.Y[touched_items],
                      self.item_bias[touched_items])

    # --- other processes' changes ------------------------------------------------------------------
    def apply_user(self, user: str, vector, bias: float, values: dict[str, float]) -> None:
        """One user's new vector and bias and changed values, as an UP message carries them."""
        row = self.users.rows([user], add=True)
        cols = self.items.rows(list(values), add=True)
        self._grow()
        self._set_row(self.X, self.user_bias, row, vector, bias, gram=0)
        written = np.array(list(values.values()), dtype=np.float64)
        rows = np.repeat(row, len(cols))
        previous = self.by_user.replace(rows, cols, written)
        self.by_item.replace(cols, rows, written, previous)

    def apply_item(self, item: str, vector, bias: float) -> None:
        row = self.items.rows([item], add=True)
        self._grow()
        self._set_row(self.Y, self.item_bias, row, vector, bias, gram=1)

    def _set_row(self, matrix, biases, row, vector, bias, gram: int) -> None:
        if self.settings.implicit:
            self._set_rows(matrix, row, np.asarray(vector, np.float32)[None, :], gram)
        else:
            matrix[row] = vector
        biases[row] = bias

    # --- reading -----------------------------------------------------------------------------------
    def estimates(self, users, items) -> np.ndarray:
        """μ + b_u + b_i + x·y (parts the model does not know count 0)."""
        return estimate_rows(self.mu, self.X, self.Y, self.user_bias, self.item_bias, self.users.rows(users),
                             self.items.rows(items))

    def known_items(self, user: str) -> list[str]:
        """The user's items with a positive value."""
        row = self.users.rows([user])[0]
        if row < 0:
            return []
        cols, values = self.by_user.row_values(row)
        return sorted(self.items.ids(cols[values > 0]))

    def to_factors(self) -> ALSFactors:
        """The saved form (the arrays are shared, the values copied)."""
        return ALSFactors(self.users.ids(np.arange(len(self.users))), self.X,
                          self.items.ids(np.arange(len(self.items))), self.Y, self.by_user.copy(), self.settings,
                          self.mu,
                          self.user_bias, self.item_bias, self.reference_time_ms, self.newest_event_ms)

    def copy(self) -> FoldInState:
        other = FoldInState.__new__(FoldInState)
        other.__dict__.update(self.__dict__)
        for name in ("users", "items", "X", "Y", "user_bias", "item_bias", "by_user", "by_item"):
            setattr(other, name, getattr(self, name).copy())
        other._grams = None if self._grams is None else [g.copy() for g in self._grams]
        return other

    def state_summary(self) -> dict:
        users, items = self.users.ids(np.arange(len(self.users))), self.items.ids(np.arange(len(self.items)))
        seg, cols, values = self.by_user.gather(np.arange(len(self.users)))
        ratings: dict[str, dict[str, float]] = {}
        for row, col, value in zip(seg.tolist(), cols.tolist(), values.tolist()):
            ratings.setdefault(users[row], {})[items[col]] = value
        return summarize(dict(zip(users, np.column_stack([self.X, self.user_bias]))),
                         dict(zip(items, np.column_stack([self.Y, self.item_bias]))), ratings)

    def memory_bytes(self) -> dict[str, int]:
        """Bytes of the values (both sides) and of everything else, and the number of values."""
        arrays = sum(a.nbytes for a in (self.X, self.Y, self.user_bias, self.item_bias))
        return {"values": self.by_user.nbytes() + self.by_item.nbytes(), "factors": arrays,
                "stored_values": len(self.by_user)}


__all__ = ["FoldInState", "IdMap", "batch_pair_values"]
