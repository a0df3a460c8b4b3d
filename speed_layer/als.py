"""The ALS speed model: fold micro-batches of events into user and item vectors (Oryx's ALSSpeedModelManager).

The math is the shared fold-in of :mod:`headwater.als_factors`, the same the serving layer uses, so
this module only orders a batch, hands it over, applies the result to its own copy and turns it into
UP payloads. Events are ordered by their timestamp (events without one keep their arrival order, after
the timed ones), as Oryx sorts each batch, because deletes and explicit ratings depend on order.

>>> import numpy as np
>>> from headwater.als_factors import ALSFactors
>>> from headwater.input_format import ALSFormat
>>> model = ALSSpeedModel(ALSFactors(["u1"], [[0.5, 0.0]], ["i1", "i2"], np.eye(2), {"u1": {"i1"}}, True))
>>> batch = ALSFormat().parse(["u1,i2", "u9,i1"]).table
>>> sorted((kind, id_) for kind, id_, _, _ in model.learn_many(batch))
[('X', 'u1'), ('X', 'u9'), ('Y', 'i2')]
>>> sorted(model.factors.known_items["u1"]), model.factors.user_ids
(['i1', 'i2'], ['u1', 'u9'])

(``i1`` does not move: its only new event comes from a user who had no vector yet.)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater.als_factors import ALSFactors, FoldIn, fold_in, user_payload


class ALSSpeedModel:
    """An :class:`ALSFactors` that learns from parsed ALS events and applies UP payloads."""

    def __init__(self, factors: ALSFactors):
        self.factors = factors

    @classmethod
    def from_registered(cls, registered, config=None) -> ALSSpeedModel:
        """The registered version's factors; ``config`` has nothing to add (the factors say implicit or not)."""
        return cls(ALSFactors.load(Path(registered.path) / "factors"))

    def learn_many(self, parsed: pa.Table) -> list[list]:
        """Fold the events of ``parsed`` (ALSFormat columns) into the model; the UP payloads of the change."""
        if parsed.num_rows == 0:
            return []
        # nulls sort last by default: untimed events after the timed ones, in arrival order
        order = pc.sort_indices(parsed, sort_keys=[("event_time_ms", "ascending"), ("line_index", "ascending")])
        events = parsed.take(order)
        update = fold_in(self.factors,
                         events.column("user").to_numpy(zero_copy_only=False),
                         events.column("item").to_numpy(zero_copy_only=False),
                         # a null strength (a delete) becomes NaN, which the fold-in reads as a delete
                         events.column("strength").to_numpy(zero_copy_only=False))
        # A delete may change a user's known items without moving the vector; the fold-in's own
        # payloads cover moved vectors only, so such users get an X message with their vector as is.
        moved = set(update.user_ids)
        relisted = [u for u, items in update.known_items.items()
                    if u not in moved and u in self.factors.user_index and items != self.factors.known_items.get(u)]
        self.factors.apply(update)
        f = self.factors
        return update.up_payloads() + [user_payload(u, f.X[f.user_index[u]], f.known_items[u]) for u in relisted]

    def apply_update(self, payload) -> None:
        """Apply ``["X", user, vector, known items | None]`` or ``["Y", item, vector, users | None]``."""
        kind, id_, vector = payload[0], str(payload[1]), np.asarray([payload[2]], dtype=np.float32)
        others = payload[3] if len(payload) > 3 else None
        if vector.shape[1] != self.factors.features:
            raise ValueError(f"UP payload for {kind} {id_!r} has {vector.shape[1]} features, "
                             f"the model has {self.factors.features}")
        if kind == "X":
            known = {} if others is None else {id_: set(map(str, others))}
            self.factors.apply(FoldIn(user_ids=[id_], user_vectors=vector, known_items=known))
        elif kind == "Y":
            known = {u: self.factors.known_items.get(u, set()) | {id_} for u in map(str, others or ())}
            self.factors.apply(FoldIn(item_ids=[id_], item_vectors=vector, known_items=known))
        else:
            raise ValueError(f"UP payload must start with 'X' or 'Y', got {kind!r}")

    def copy(self) -> ALSSpeedModel:
        f = self.factors
        # The constructor copies the id lists and known-item sets; the matrices it would share.
        return ALSSpeedModel(ALSFactors(f.user_ids, f.X.copy(), f.item_ids, f.Y.copy(), f.known_items,
                                        f.implicit, f.regularization))

    def to_artifacts(self, directory: Path) -> None:
        self.factors.save(Path(directory) / "factors")

    def python_model(self):
        from batch_layer.als_pyfunc import ALSPyfuncModel

        return ALSPyfuncModel()

    def __repr__(self) -> str:
        return f"ALSSpeedModel({self.factors!r})"


SPEED_MODEL = ALSSpeedModel

__all__ = ["SPEED_MODEL", "ALSSpeedModel"]
