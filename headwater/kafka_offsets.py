"""Offsets of the ``headwater-kafka`` source: their checkpoint form, a trigger's budget, one task's range.

Kept apart from the reader because the batch layer's ingest checkpoint reads the same offsets
(:func:`decode_offsets`) without needing PySpark's streaming reader.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql.datasource import InputPartition


def fair_shares(available: dict[int, int], budget: int) -> dict[int, int]:
    """Split ``budget`` records over partitions: equal shares, a partition's unused share goes to the others.

    >>> fair_shares({0: 10, 1: 100, 2: 100}, 90)
    {0: 10, 1: 40, 2: 40}
    >>> fair_shares({0: 5, 1: 5}, 3)
    {0: 2, 1: 1}
    """
    shares = dict.fromkeys(available, 0)
    left = {p: n for p, n in available.items() if n > 0}
    while budget > 0 and left:
        each = max(budget // len(left), 1)
        for p in sorted(left):
            take = min(each, left[p], budget)
            shares[p] += take
            left[p] -= take
            budget -= take
        left = {p: n for p, n in left.items() if n > 0}
    return shares


def encode_offsets(offsets: dict[int, int]) -> dict[str, int]:
    """Checkpoint form: string keys in partition order, so equal offsets serialise to equal JSON."""
    return {str(p): offsets[p] for p in sorted(offsets)}


def decode_offsets(offsets: dict[str, int]) -> dict[int, int]:
    return {int(p): int(o) for p, o in offsets.items()}


@dataclass
class OffsetRange(InputPartition):
    """Records ``start`` (inclusive) to ``end`` (exclusive) of one topic partition: one Spark task."""

    topic: str
    partition: int
    start: int
    end: int

