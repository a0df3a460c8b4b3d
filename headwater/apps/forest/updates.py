"""The forest UP message, one encoder and one decoder for the speed and serving layers.

``["L", structure_id, [node indices], [[statistics], ...]]`` carries the *new* statistics of some
leaves (class counts, or [count, sum, sum of squares]), so applying a message twice is harmless.
``structure_id`` fingerprints the trees' shape: node indices mean nothing in another forest, so a
message built on a previous champion is ignored by a forest trained since.

>>> payload = encode(LeafUpdate("1a2b3c4d", np.array([3, 5]), np.array([[1.0, 2.0], [0.0, 4.0]])))
>>> payload
['L', '1a2b3c4d', [3, 5], [[1.0, 2.0], [0.0, 4.0]]]
>>> decode(payload).nodes.tolist()
[3, 5]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KIND = "L"
# Leaves per UP message: keeps a message far below Kafka's default 1 MB record limit.
LEAVES_PER_MESSAGE = 2000


@dataclass(frozen=True, eq=False)
class LeafUpdate:
    structure_id: str
    nodes: np.ndarray   # (n,) int64 leaf indices
    stats: np.ndarray   # (n, statistics) float64


def encode(update: LeafUpdate) -> list:
    return [KIND, update.structure_id, np.asarray(update.nodes).tolist(), np.asarray(update.stats).tolist()]


def decode(payload) -> LeafUpdate:
    """A checked LeafUpdate; ValueError naming what is wrong with a payload that is not one."""
    if not isinstance(payload, list) or len(payload) != 4:
        raise ValueError(f"a forest UP payload is ['L', structure id, nodes, statistics], got {payload!r:.100}")
    kind, structure_id, nodes, stats = payload
    if kind != KIND:
        raise ValueError(f"a forest UP payload starts with {KIND!r}, got {kind!r}")
    try:
        nodes = np.asarray(nodes, dtype=np.int64)
        stats = np.asarray(stats, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("a forest UP payload's nodes and statistics must be numbers") from None
    if nodes.ndim != 1 or stats.ndim != 2 or len(stats) != len(nodes) or not np.isfinite(stats).all():
        raise ValueError("a forest UP payload needs one row of finite statistics per node")
    return LeafUpdate(str(structure_id), nodes, stats)


def chunked(structure_id: str, nodes: np.ndarray, stats: np.ndarray) -> list[LeafUpdate]:
    """Leaf updates of at most LEAVES_PER_MESSAGE leaves each."""
    return [LeafUpdate(structure_id, nodes[i:i + LEAVES_PER_MESSAGE], stats[i:i + LEAVES_PER_MESSAGE])
            for i in range(0, len(nodes), LEAVES_PER_MESSAGE)]


__all__ = ["KIND", "LEAVES_PER_MESSAGE", "LeafUpdate", "chunked", "decode", "encode"]
