"""Each user's values as the serving layer holds them: the champion's CSR, plus the users UP messages changed.

The values a model was loaded with stay in its compact :class:`~headwater.apps.als.ratings.RatingStore`
(12 bytes per value, columns = the item table's rows, which never move); a user changed by an UP message
gets a dict of its own (written whole, so a reader sees the old or the new one). Known items are every
pair with a value, negative and zero too (Oryx's: only a delete removes one); popularity counts (users
per item, items per user) are recounted only after writes.

>>> from headwater.apps.als.ratings import RatingStore
>>> values = UserValues(["u1", "u2"], ["a", "b"], RatingStore.from_pairs(2, [0, 0, 1], [0, 1, 1], [4.0, -1.0, 2.0]))
>>> values.of("u1"), values.known("u1")
({'a': 4.0, 'b': -1.0}, ['a', 'b'])
>>> values.apply("u1", {"a": float("nan"), "c": 1.0}); values.of("u1"), values.known("u9")
({'b': -1.0, 'c': 1.0}, [])
>>> values.popularity()[0].most_common(1)
[('b', 2)]
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from headwater.apps.als.ratings import RatingStore


class UserValues:
    """Per-user values: the loaded CSR for users no UP changed, a dict for those it did."""

    def __init__(self, user_ids: Sequence[str], item_ids: Sequence[str], base: RatingStore):
        base.compact()
        self._base = base
        self._base_row = {u: n for n, u in enumerate(user_ids)}
        self._item_ids = np.asarray(item_ids, dtype=object)
        self._changed: dict[str, dict[str, float]] = {}
        self.writes = 0
        self._counts: tuple[int, Counter, Counter] | None = None

    def has(self, user: str) -> bool:
        return user in self._changed or user in self._base_row

    def of(self, user: str) -> dict[str, float]:
        """The user's values by item ({} for an unknown user)."""
        changed = self._changed.get(user)
        if changed is not None:
            return changed
        row = self._base_row.get(user)
        if row is None:
            return {}
        cols, values = self._base.row_values(row)
        return dict(zip(self._item_ids[cols].tolist(), values.tolist()))

    def known(self, user: str) -> list[str]:
        """The items the user has a value for (any sign: Oryx's known items), sorted."""
        return sorted(self.of(user))

    def apply(self, user: str, values: dict[str, float]) -> None:
        """Write a user's changed values (NaN removes a pair); single writer."""
        current = dict(self.of(user))
        for item, value in values.items():
            if math.isnan(value):
                current.pop(item, None)
            else:
                current[item] = value
        self._changed[user] = current
        self.writes += 1

    def popularity(self) -> tuple[Counter, Counter]:
        """(users per item, items per user) over the known pairs, recounted only after writes."""
        cached = self._counts
        if cached is None or cached[0] != self.writes:
            stamp = self.writes
            changed = list(self._changed.items())  # one C-level copy: safe against the writer
            overridden = np.zeros(self._base.n_rows, dtype=bool)
            overridden[[self._base_row[u] for u, _ in changed if u in self._base_row]] = True
            rows = np.repeat(np.arange(self._base.n_rows), np.diff(self._base.indptr))
            kept = ~overridden[rows]
            items = Counter(dict(zip(self._item_ids.tolist(), np.bincount(
                self._base.cols[kept], minlength=len(self._item_ids)).tolist())))
            per_user = np.bincount(rows[kept], minlength=self._base.n_rows)
            users = Counter(dict(zip(self._base_row, per_user.tolist())))
            for user, values in changed:
                items.update(values.keys())  # one per known item (a mapping would add its values)
                users[user] = len(values)
            cached = (stamp, +items, +users)  # unary + drops zero counts
            self._counts = cached
        return cached[1], cached[2]

    def all(self) -> dict[str, dict[str, float]]:
        """Every user's values (for state comparisons)."""
        return {user: self.of(user) for user in [*self._base_row, *self._changed]}


__all__ = ["UserValues"]
