"""The k-means UP message, one encoder and one decoder for the speed and serving layers.

``["C", index, [floats], weight]``: one centre's new position and weight. Both are absolute values,
not increments, so applying a message twice (a replayed update topic) leaves a model as applying it
once does.

>>> payload = encode(CentreUpdate(1, np.array([0.5, 2.0]), 12.0))
>>> payload
['C', 1, [0.5, 2.0], 12.0]
>>> decode(payload).index, decode(payload).weight
(1, 12.0)
>>> decode(["C", -1, [0.5], 1.0])
Traceback (most recent call last):
...
ValueError: a k-means UP payload's centre index must be an int >= 0, got -1
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

KIND = "C"


@dataclass(frozen=True, eq=False)
class CentreUpdate:
    index: int
    centre: np.ndarray
    weight: float


def encode(update: CentreUpdate) -> list:
    return [KIND, int(update.index), np.asarray(update.centre, dtype=np.float64).tolist(), float(update.weight)]


def decode(payload) -> CentreUpdate:
    """A checked CentreUpdate; ValueError naming what is wrong with a payload that is not one."""
    if not isinstance(payload, list) or len(payload) != 4:
        raise ValueError(f"a k-means UP payload is ['C', index, centre, weight], got {payload!r:.100}")
    kind, index, centre, weight = payload
    if kind != KIND:
        raise ValueError(f"not a k-means update: kind {kind!r}")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ValueError(f"a k-means UP payload's centre index must be an int >= 0, got {index!r:.50}")
    try:
        centre = np.asarray(centre, dtype=np.float64)
        weight = float(weight)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"centre {index}'s position and weight must be numbers") from None
    if centre.ndim != 1 or not np.isfinite(centre).all() or not math.isfinite(weight) or weight < 0:
        raise ValueError(f"centre {index} needs a flat list of finite numbers and a finite weight >= 0")
    return CentreUpdate(index, centre, weight)


__all__ = ["KIND", "CentreUpdate", "decode", "encode"]
