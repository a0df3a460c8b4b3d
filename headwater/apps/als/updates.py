"""The ALS UP messages (Oryx's format), one encoder and one decoder for the speed and serving layers.

``["X", user, [floats], [items] | None]``: a user's new vector and, when given, the user's *complete*
known-item set after the update (so deletes propagate). ``["Y", item, [floats], [users] | None]``: an
item's new vector and users who now know it. Both carry absolute values, so applying a message twice
leaves a model as applying it once does.

>>> payload = encode(VectorUpdate("X", "u1", np.array([0.5, 1.0]), ("i2", "i1")))
>>> payload
['X', 'u1', [0.5, 1.0], ['i1', 'i2']]
>>> decode(payload) == decode(payload)
True
>>> decode(["Z", "u1", [0.5]])
Traceback (most recent call last):
...
ValueError: an ALS UP payload starts with 'X' or 'Y', got 'Z'
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from headwater.apps.als.factors import FoldIn

USER, ITEM = "X", "Y"


@dataclass(frozen=True, eq=False)
class VectorUpdate:
    """One user's (``side`` X) or item's (``side`` Y) new vector, plus known items (X) or new knowers (Y)."""

    side: str
    id: str
    vector: np.ndarray
    others: tuple[str, ...] | None = None

    def __eq__(self, other) -> bool:
        return (isinstance(other, VectorUpdate) and (self.side, self.id, self.others) ==
                (other.side, other.id, other.others) and np.array_equal(self.vector, other.vector))


def encode(update: VectorUpdate) -> list:
    # tolist() gives the same Python floats as float(v) per element, ~10x faster
    others = None if update.others is None else sorted(update.others)
    return [update.side, update.id, np.asarray(update.vector).tolist(), others]


def decode(payload) -> VectorUpdate:
    """A checked VectorUpdate; ValueError naming what is wrong with a payload that is not one."""
    if not isinstance(payload, list) or not 3 <= len(payload) <= 4:
        raise ValueError(f"an ALS UP payload is [side, id, vector, ids], got {payload!r:.100}")
    side, id_, vector = payload[0], payload[1], payload[2]
    if side not in (USER, ITEM):
        raise ValueError(f"an ALS UP payload starts with 'X' or 'Y', got {side!r}")
    if not isinstance(id_, (str, int)) or isinstance(id_, bool):
        raise ValueError(f"an ALS UP payload's id must be a string, got {id_!r:.100}")
    try:
        vector = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"the vector of {side} {id_!r} is not a list of numbers") from None
    if vector.ndim != 1 or not np.isfinite(vector).all():
        raise ValueError(f"the vector of {side} {id_!r} must be a flat list of finite numbers")
    others = payload[3] if len(payload) == 4 else None
    if others is not None and not isinstance(others, list):
        raise ValueError(f"the ids of {side} {id_!r} must be a list or null")
    return VectorUpdate(side, str(id_), vector, None if others is None else tuple(map(str, others)))


def fold_in_updates(fold: FoldIn) -> list[VectorUpdate]:
    """The messages announcing a fold-in, users first."""
    users = [VectorUpdate(USER, u, v, _ids(fold.known_items.get(u))) for u, v in zip(fold.user_ids, fold.user_vectors)]
    return users + [VectorUpdate(ITEM, i, v) for i, v in zip(fold.item_ids, fold.item_vectors)]


def _ids(ids: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if ids is None else tuple(sorted(ids))


__all__ = ["ITEM", "USER", "VectorUpdate", "decode", "encode", "fold_in_updates"]
