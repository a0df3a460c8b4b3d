"""Forgetting in the forest's leaves: exponential decay per batch, per point or per unit of event time.

A leaf's statistics are a sum of row contributions weighted ``a ** (now − row time)`` with
``a = 0.5 ** (1 / half-life)``. Aging is lazy: every node keeps ``asof``, the time its statistics
were last aged to, and only the leaves a micro-batch reaches are aged (``stats *= a ** (now − asof)``)
before the batch's weighted rows are added, so an untouched leaf is exact whenever it is next read
(:meth:`Decay.age`). Predictions never need aging: each tree's leaf is normalised (class fractions,
or sum / count), which a common factor does not change.

Clocks: ``batches`` counts micro-batches (every row of a batch at the batch's time); ``points``
counts rows (rows ``clock + 1 … clock + n``); ``event-time`` reads each row's time from a feature.

>>> decay = Decay.from_half_life(2.0, "points")
>>> now, times = decay.clock(10.0, 3)
>>> now, times.tolist(), decay.weights(now, times).round(3).tolist()
(13.0, [11.0, 12.0, 13.0], [0.5, 0.707, 1.0])
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

UNITS = ("batches", "points", "event-time")


@dataclass(frozen=True)
class Decay:
    """``factor`` per unit of ``unit`` (1.0: no forgetting)."""

    factor: float = 1.0
    unit: str = "points"

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValueError(f"the decay's time unit must be one of {UNITS}, got {self.unit!r}")
        if not 0.0 < self.factor <= 1.0:
            raise ValueError(f"a decay factor must be in (0, 1], got {self.factor}")

    @classmethod
    def from_half_life(cls, half_life: float | None, unit: str = "points") -> Decay:
        if half_life is None or math.isinf(half_life):
            return cls(1.0, unit)
        if half_life <= 0:
            raise ValueError(f"half-life must be > 0, got {half_life}")
        return cls(0.5 ** (1.0 / half_life), unit)

    @classmethod
    def from_config(cls, config) -> Decay:
        """``headwater.rdf``: ``half-life`` (in ``time-unit``s) when set, else ``decay-factor``."""
        section = config.section("headwater.rdf")
        unit = section.get("time-unit", "points")
        if section.get("half-life") is not None:
            return cls.from_half_life(float(section["half-life"]), unit)
        return cls(float(section.get("decay-factor", 1.0)), unit)

    def clock(self, clock: float, rows: int, times: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """(the clock after a micro-batch of ``rows`` rows, each row's time) in this unit."""
        if self.unit == "batches":
            return clock + 1.0, np.full(rows, clock + 1.0)
        if self.unit == "points":
            return clock + rows, clock + 1.0 + np.arange(rows, dtype=np.float64)
        if times is None:
            raise ValueError("event-time decay needs each row's event time")
        times = np.asarray(times, dtype=np.float64)
        return max(clock, float(times.max())) if len(times) else clock, times

    def weights(self, now: float, times: np.ndarray) -> np.ndarray:
        """Each row's weight at ``now``."""
        if self.factor == 1.0:
            return np.ones(len(times))
        return self.factor ** (now - np.asarray(times, dtype=np.float64))

    def age(self, now: float, asof: np.ndarray) -> np.ndarray:
        """The factor that brings statistics last aged at ``asof`` to ``now``."""
        return self.weights(now, asof)


def fold_rows(forest, leaves: np.ndarray, y: np.ndarray, weights: np.ndarray, now: float, decay: Decay) -> np.ndarray:
    """Add weighted rows to the leaves they reached (``leaves``: rows × trees of ``forest``), aging each
    touched leaf to ``now`` first; the touched leaves. One weighted ``bincount`` per statistic."""
    nodes = len(forest.feature)
    flat = leaves.ravel()
    w = np.repeat(weights, leaves.shape[1])
    touched = np.flatnonzero(np.bincount(flat, minlength=nodes))
    if forest.task == "classification":
        k = forest.stats.shape[1]
        labels = np.repeat(y.astype(np.int64), leaves.shape[1])
        increments = np.bincount(flat * k + labels, weights=w, minlength=nodes * k).reshape(nodes, k)[touched]
    else:
        values = np.repeat(y.astype(np.float64), leaves.shape[1])
        increments = np.stack([np.bincount(flat, weights=w, minlength=nodes),
                               np.bincount(flat, weights=w * values, minlength=nodes),
                               np.bincount(flat, weights=w * values * values, minlength=nodes)], axis=1)[touched]
    if decay.factor != 1.0:
        forest.stats[touched] *= decay.age(now, forest.asof[touched])[:, None]
    forest.stats[touched] += increments
    forest.asof[touched] = now
    return touched


__all__ = ["UNITS", "Decay", "fold_rows"]
