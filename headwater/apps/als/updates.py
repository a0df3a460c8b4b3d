"""The ALS UP messages, one encoder and one decoder for the speed and serving layers.

``["X", user, [floats], bias, {item: value | null}]``: a user's new vector and bias, and the values of
the user's pairs that changed (stored values, see :mod:`headwater.apps.als.strengths`; null: the pair
was removed, e.g. by a delete). ``["Y", item, [floats], bias]``: an item's new vector and bias.
Every part is absolute — the vector, the bias, each pair's value — so applying a message twice leaves a
model as applying it once does, and each pair's change travels once, with its user.

>>> payload = encode(VectorUpdate("X", "u1", np.array([0.5, 1.0]), 0.25, {"i2": 3.0, "i1": float("nan")}))
>>> payload
['X', 'u1', [0.5, 1.0], 0.25, {'i1': None, 'i2': 3.0}]
>>> decode(payload) == decode(payload)
True
>>> decode(["Z", "u1", [0.5], 0.0])
Traceback (most recent call last):
...
ValueError: an ALS UP payload starts with 'X' or 'Y', got 'Z'
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from headwater.apps.als.factors import FoldIn

USER, ITEM = "X", "Y"


@dataclass(frozen=True, eq=False)
class VectorUpdate:
    """One user's (``side`` X) or item's (``side`` Y) new vector and bias; a user's changed values."""

    side: str
    id: str
    vector: np.ndarray
    bias: float = 0.0
    values: dict[str, float] | None = None   # item -> stored value, NaN for a removed pair (X only)

    def __eq__(self, other) -> bool:
        return (isinstance(other, VectorUpdate)
                and (self.side, self.id, self.bias) == (other.side, other.id, other.bias)
                and np.array_equal(self.vector, other.vector) and _same_values(self.values, other.values))


def _same_values(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def encode(update: VectorUpdate) -> list:
    # tolist() gives the same Python floats as float(v) per element, ~10x faster
    payload = [update.side, update.id, np.asarray(update.vector).tolist(), float(update.bias)]
    if update.side == USER:
        values = update.values or {}
        payload.append({item: None if math.isnan(v) else float(v) for item, v in sorted(values.items())})
    return payload


def decode(payload) -> VectorUpdate:
    """A checked VectorUpdate; ValueError naming what is wrong with a payload that is not one."""
    if not isinstance(payload, list) or not 4 <= len(payload) <= 5:
        raise ValueError(f"an ALS UP payload is [side, id, vector, bias(, values)], got {payload!r:.100}")
    side, id_, vector, bias = payload[:4]
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
    if not _is_number(bias) or not math.isfinite(bias):
        raise ValueError(f"the bias of {side} {id_!r} must be a finite number, got {bias!r:.100}")
    values = payload[4] if len(payload) == 5 else None
    if side == USER:
        if not isinstance(values, dict) or not all(v is None or (_is_number(v) and math.isfinite(v))
                                                   for v in values.values()):
            raise ValueError(f"the values of user {id_!r} must be an object of item: number or null")
        values = {str(item): math.nan if v is None else float(v) for item, v in values.items()}
    elif values is not None:
        raise ValueError(f"an item's UP payload has no values, got them for item {id_!r}")
    return VectorUpdate(side, str(id_), vector, float(bias), values)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fold_in_updates(fold: FoldIn) -> list[VectorUpdate]:
    """The messages announcing a fold-in, users first."""
    users = [VectorUpdate(USER, u, v, float(b), values) for u, v, b, values in
             zip(fold.user_ids, fold.user_vectors, fold.user_biases, fold.user_values)]
    return users + [VectorUpdate(ITEM, i, v, float(b)) for i, v, b in zip(fold.item_ids, fold.item_vectors,
                                                                          fold.item_biases)]


__all__ = ["ITEM", "USER", "VectorUpdate", "decode", "encode", "fold_in_updates"]
