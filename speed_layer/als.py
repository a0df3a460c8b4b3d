"""The ALS speed model: exact fold-in of micro-batches (Oryx's ALSSpeedModelManager, with exact solves).

The math is the app's (:mod:`headwater.apps.als.fold_in`: exact per-entity solves given the other side,
with the values of every touched user and item), the messages are the app's
(:mod:`headwater.apps.als.updates`), which the serving layer decodes the same way, and the prequential
losses are the app's (:mod:`headwater.apps.als.prequential`); this module orders a batch, hands it over
and encodes the result. Events are ordered by their timestamp (events without one keep their arrival
order, after the timed ones), as Oryx sorts each batch, because deletes and explicit ratings depend on order.

>>> from headwater.apps.als.events import ALSFormat
>>> from headwater.apps.als.factors import ALSFactors, ALSSettings
>>> factors = ALSFactors(["u1"], [[0.5, 0.0]], ["i1", "i2"], [[1.0, 0.0], [0.0, 1.0]], {"u1": {"i1": 1.0}},
...                      ALSSettings(implicit=True, regularization=0.1))
>>> model = ALSSpeedModel.from_factors(factors)
>>> batch = ALSFormat().parse(["u1,i2", "u9,i1"]).table
>>> sorted(model.score_many(batch)["miss_at_10"].tolist())     # two items: both are in every top 10
[0.0, 0.0]
>>> sorted((payload[0], payload[1]) for payload in model.learn_many(batch))
[('X', 'u1'), ('X', 'u9'), ('Y', 'i1'), ('Y', 'i2')]
>>> model.state.known_items("u1")
['i1', 'i2']
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater.apps.als import updates
from headwater.apps.als.factors import ALSFactors
from headwater.apps.als.fold_in import FoldInState
from headwater.apps.als.prequential import prequential_losses


class ALSSpeedModel:
    """A :class:`FoldInState` that learns from parsed ALS events and applies UP payloads."""

    def __init__(self, state: FoldInState):
        self.state = state

    @classmethod
    def from_factors(cls, factors: ALSFactors) -> ALSSpeedModel:
        return cls(FoldInState(factors))

    @classmethod
    def from_registered(cls, registered, config=None) -> ALSSpeedModel:
        """The registered version's state; ``config`` has nothing to add (the model carries its settings)."""
        return cls.from_factors(ALSFactors.load(registered.path))

    def learn_many(self, parsed: pa.Table) -> list[list]:
        """Fold the events of ``parsed`` (ALSFormat columns) into the model; the UP payloads of the change."""
        if parsed.num_rows == 0:
            return []
        # nulls sort last by default: untimed events after the timed ones, in arrival order
        order = pc.sort_indices(parsed, sort_keys=[("event_time_ms", "ascending"), ("line_index", "ascending")])
        events = parsed.take(order)
        users, items, strengths = _columns(events)
        times = events.column("event_time_ms").to_numpy(zero_copy_only=False).astype(np.float64)
        change = self.state.learn(users, items, strengths, times)
        return [updates.encode(update) for update in updates.fold_in_updates(change)]

    def score_many(self, parsed: pa.Table) -> dict[str, np.ndarray]:
        """Per-event losses before learning: squared and absolute error (explicit), miss at 10 (implicit)."""
        return prequential_losses(self.state, *_columns(parsed))

    def apply_update(self, payload) -> None:
        update = updates.decode(payload)
        if update.vector.shape[0] != self.state.features:
            raise ValueError(f"UP payload for {update.side} {update.id!r} has {update.vector.shape[0]} features, "
                             f"the model has {self.state.features}")
        if update.side == updates.USER:
            self.state.apply_user(update.id, update.vector, update.bias, update.values)
        else:
            self.state.apply_item(update.id, update.vector, update.bias)

    def known_ids(self):
        """(users, items) the model knows now, for the drift alarms' new-user and new-item rates."""
        return self.state.users.index, self.state.items.index

    def copy(self) -> ALSSpeedModel:
        return ALSSpeedModel(self.state.copy())

    def save(self, directory: Path) -> None:
        self.state.to_factors().save(directory)

    def state_summary(self) -> dict:
        return self.state.state_summary()

    def __repr__(self) -> str:
        return f"ALSSpeedModel(users={len(self.state.users)}, items={len(self.state.items)})"


def _columns(events: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, items, strengths) as numpy; a null strength (a delete) becomes NaN."""
    return (events.column("user").to_numpy(zero_copy_only=False), events.column("item").to_numpy(zero_copy_only=False),
            events.column("strength").to_numpy(zero_copy_only=False).astype(np.float64))


__all__ = ["ALSSpeedModel"]
