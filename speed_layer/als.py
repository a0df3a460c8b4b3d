"""The ALS speed model: fold micro-batches of events into user and item vectors (Oryx's ALSSpeedModelManager).

The math is the app's fold-in (:mod:`headwater.apps.als.fold_in`), which the serving layer's
anonymous queries use too, and the messages are the app's (:mod:`headwater.apps.als.updates`), which
the serving layer decodes the same way; this module orders a batch, hands it over, applies the result
to its own copy and encodes it. Events are ordered by their timestamp (events without one keep their
arrival order, after the timed ones), as Oryx sorts each batch, because deletes and explicit ratings
depend on order.

>>> import numpy as np
>>> from headwater.apps.als.events import ALSFormat
>>> model = ALSSpeedModel(ALSFactors(["u1"], [[0.5, 0.0]], ["i1", "i2"], np.eye(2), {"u1": {"i1"}}, True))
>>> batch = ALSFormat().parse(["u1,i2", "u9,i1"]).table
>>> sorted((side, id_) for side, id_, _, _ in model.learn_many(batch))
[('X', 'u1'), ('X', 'u9'), ('Y', 'i2')]
>>> sorted(model.factors.known_items["u1"]), model.factors.user_ids
(['i1', 'i2'], ['u1', 'u9'])

(``i1`` does not move: its only new event comes from a user who had no vector yet.)
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from headwater.apps.als import updates
from headwater.apps.als.factors import ALSFactors, FoldIn, summarize
from headwater.apps.als.fold_in import fold_in


class ALSSpeedModel:
    """An :class:`ALSFactors` that learns from parsed ALS events and applies UP payloads."""

    def __init__(self, factors: ALSFactors):
        self.factors = factors

    @classmethod
    def from_registered(cls, registered, config=None) -> ALSSpeedModel:
        """The registered version's factors; ``config`` has nothing to add (the factors say implicit or not)."""
        return cls(ALSFactors.load(registered.path))

    def learn_many(self, parsed: pa.Table) -> list[list]:
        """Fold the events of ``parsed`` (ALSFormat columns) into the model; the UP payloads of the change."""
        if parsed.num_rows == 0:
            return []
        # nulls sort last by default: untimed events after the timed ones, in arrival order
        order = pc.sort_indices(parsed, sort_keys=[("event_time_ms", "ascending"), ("line_index", "ascending")])
        events = parsed.take(order)
        fold = fold_in(self.factors,
                       events.column("user").to_numpy(zero_copy_only=False),
                       events.column("item").to_numpy(zero_copy_only=False),
                       # a null strength (a delete) becomes NaN, which the fold-in reads as a delete
                       events.column("strength").to_numpy(zero_copy_only=False))
        # A delete may change a user's known items without moving the vector; the fold-in's own
        # messages cover moved vectors only, so such users get an X message with their vector as is.
        moved = set(fold.user_ids)
        f = self.factors
        relisted = [u for u, items in fold.known_items.items()
                    if u not in moved and u in f.user_index and items != f.known_items.get(u)]
        f.apply(fold)
        relisted_updates = [updates.VectorUpdate(updates.USER, u, f.X[f.user_index[u]], tuple(sorted(f.known_items[u])))
                            for u in relisted]
        return [updates.encode(u) for u in updates.fold_in_updates(fold) + relisted_updates]

    def apply_update(self, payload) -> None:
        update = updates.decode(payload)
        if update.vector.shape[0] != self.factors.features:
            raise ValueError(f"UP payload for {update.side} {update.id!r} has {update.vector.shape[0]} features, "
                             f"the model has {self.factors.features}")
        vector = update.vector[None, :]
        if update.side == updates.USER:
            known = {} if update.others is None else {update.id: set(update.others)}
            self.factors.apply(FoldIn(user_ids=[update.id], user_vectors=vector, known_items=known))
        else:
            known = {u: self.factors.known_items.get(u, set()) | {update.id} for u in update.others or ()}
            self.factors.apply(FoldIn(item_ids=[update.id], item_vectors=vector, known_items=known))

    def copy(self) -> ALSSpeedModel:
        return ALSSpeedModel(self.factors.copy())

    def save(self, directory: Path) -> None:
        self.factors.save(directory)

    def state_summary(self) -> dict:
        f = self.factors
        return summarize(f.user_ids, f.X, f.item_ids, f.Y, f.known_items)

    def __repr__(self) -> str:
        return f"ALSSpeedModel({self.factors!r})"


__all__ = ["ALSSpeedModel"]
