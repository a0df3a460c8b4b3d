"""The forest UP messages, one encoder and one decoder for the speed and serving layers.

Two kinds, both carrying absolute values so that applying one twice is harmless:

* leaves: ``["L", structure_id, as_of, [[tree, tree_sid, [local leaf ids], [[statistics], ...]], ...]]``
  — the statistics (class counts, or [count, sum, sum of squares]) of some leaves, aged to ``as_of``
  (the speed layer's decay clock), grouped by tree with tree-local node ids (root 0). Applied to a
  tree only while its current ``tree_sid`` is the one named, and only to leaves not newer than
  ``as_of``, so a replay never moves a leaf back in time;
* a whole tree: ``["T", structure_id, as_of, tree, old_sid, new_sid, {"feature": [...],
  "threshold": [...], "left": [...], "right": [...], "categories": [null | [left categories], ...],
  "stats": [[...], ...]}]`` — a replacement grown by the speed layer after a drift; applied when the
  tree's current sid is ``old_sid`` and a no-op when it is already ``new_sid``.

``structure_id`` names the batch forest (it does not change when trees are replaced): node ids mean
nothing in another forest, so a message built on a previous champion is ignored by one trained since.

>>> update = LeafUpdate("1a2b3c4d", 7.0, [LeafGroup(0, "00ff", np.array([3]), np.array([[1.0, 2.0]]))])
>>> encode(update)
['L', '1a2b3c4d', 7.0, [[0, '00ff', [3], [[1.0, 2.0]]]]]
>>> decode(encode(update)).groups[0].nodes.tolist()
[3]
"""
from __future__ import annotations

import gc
import math
from dataclasses import dataclass

import numpy as np

LEAF_KIND, TREE_KIND = "L", "T"
# Leaves per UP message: keeps a message far below Kafka's default 1 MB record limit.
LEAVES_PER_MESSAGE = 2000
TREE_FIELDS = ("feature", "threshold", "left", "right", "categories", "stats")


@dataclass(frozen=True, eq=False)
class LeafGroup:
    tree: int
    sid: str
    nodes: np.ndarray   # (n,) int64 tree-local leaf ids
    stats: np.ndarray   # (n, statistics) float64


@dataclass(frozen=True, eq=False)
class LeafUpdate:
    structure_id: str
    as_of: float
    groups: list[LeafGroup]


@dataclass(frozen=True, eq=False)
class TreeUpdate:
    structure_id: str
    as_of: float
    tree: int
    old_sid: str
    new_sid: str
    body: dict   # TREE_FIELDS -> numpy arrays ("categories": a list of None or int lists)


def encode(update: LeafUpdate | TreeUpdate) -> list:
    if isinstance(update, TreeUpdate):
        body = {name: (update.body[name] if name == "categories" else np.asarray(update.body[name]).tolist())
                for name in TREE_FIELDS}
        return [TREE_KIND, update.structure_id, float(update.as_of), int(update.tree), update.old_sid,
                update.new_sid, body]
    return [LEAF_KIND, update.structure_id, float(update.as_of),
            [[int(g.tree), g.sid, np.asarray(g.nodes).tolist(), np.asarray(g.stats).tolist()] for g in update.groups]]


def encode_all(changes) -> list[list]:
    """:func:`encode` of every update of a micro-batch, with Python's cyclic garbage collector paused.

    A micro-batch's leaf UPs are tens of thousands of small lists of numbers, which cannot form
    reference cycles. Built with the collector running, they set off dozens of young-generation
    passes and, once promoted, full passes over the whole heap: about a third of the speed layer's
    time in ``bench/random_forest.py``. Reference counting frees them once published either way.

    >>> encode_all([LeafUpdate("1a2b3c4d", 7.0, [])]), gc.isenabled()
    ([['L', '1a2b3c4d', 7.0, []]], True)
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return [encode(change) for change in changes]
    finally:
        if enabled:
            gc.enable()


def decode(payload) -> LeafUpdate | TreeUpdate:
    """A checked update; ValueError naming what is wrong with a payload that is not one."""
    if not isinstance(payload, list) or not payload or payload[0] not in (LEAF_KIND, TREE_KIND):
        raise ValueError(f"a forest UP payload starts with {LEAF_KIND!r} or {TREE_KIND!r}, got {payload!r:.100}")
    if payload[0] == TREE_KIND:
        return _decode_tree(payload)
    if len(payload) != 4 or not isinstance(payload[3], list):
        raise ValueError(f"a forest leaf UP is ['L', structure id, as of, [[tree, sid, nodes, statistics], ...]], "
                         f"got {payload!r:.100}")
    _, structure_id, as_of, groups = payload
    return LeafUpdate(str(structure_id), _time(as_of), [_decode_group(group) for group in groups])


def _time(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"a forest UP payload's 'as of' time must be a finite number, got {value!r:.50}")
    return float(value)


def _tree_index(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"a forest UP payload's tree index must be an int >= 0, got {value!r:.50}")
    return value


def _decode_group(group) -> LeafGroup:
    if not isinstance(group, list) or len(group) != 4:
        raise ValueError(f"a forest leaf group is [tree, sid, nodes, statistics], got {group!r:.100}")
    tree, sid, nodes, stats = group
    try:
        nodes = np.asarray(nodes, dtype=np.int64)
        stats = np.asarray(stats, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("a forest UP payload's nodes and statistics must be numbers") from None
    if nodes.ndim != 1 or stats.ndim != 2 or len(stats) != len(nodes) or not np.isfinite(stats).all():
        raise ValueError("a forest UP payload needs one row of finite statistics per node")
    return LeafGroup(_tree_index(tree), str(sid), nodes, stats)


def _decode_tree(payload) -> TreeUpdate:
    if len(payload) != 7 or not isinstance(payload[6], dict) or set(payload[6]) != set(TREE_FIELDS):
        raise ValueError(f"a forest tree UP is ['T', structure id, as of, tree, old sid, new sid, "
                         f"{{{', '.join(TREE_FIELDS)}}}], got {payload!r:.100}")
    _, structure_id, as_of, tree, old_sid, new_sid, raw = payload
    try:
        body = {"feature": np.asarray(raw["feature"], dtype=np.int32),
                "threshold": np.asarray(raw["threshold"], dtype=np.float64),
                "left": np.asarray(raw["left"], dtype=np.int32), "right": np.asarray(raw["right"], dtype=np.int32),
                "stats": np.asarray(raw["stats"], dtype=np.float64),
                "categories": [None if c is None else [int(v) for v in c] for c in raw["categories"]]}
    except (TypeError, ValueError, OverflowError):
        raise ValueError("a forest tree UP's arrays must be numbers") from None
    nodes = len(body["feature"])
    if (nodes == 0 or any(body[k].shape != (nodes,) for k in ("threshold", "left", "right"))
            or body["stats"].ndim != 2 or len(body["stats"]) != nodes or len(body["categories"]) != nodes
            or not np.isfinite(body["stats"]).all() or not np.isfinite(body["threshold"]).all()):
        raise ValueError("a forest tree UP needs one feature, threshold, children, categories and statistics "
                         "row per node")
    inner = body["feature"] >= 0
    children = np.concatenate([body["left"][inner], body["right"][inner]])
    if len(children) and (children.min() < 1 or children.max() >= nodes):
        raise ValueError("a forest tree UP's children must be node ids of the tree (root 0)")
    return TreeUpdate(str(structure_id), _time(as_of), _tree_index(tree), str(old_sid), str(new_sid), body)


__all__ = ["LEAF_KIND", "LEAVES_PER_MESSAGE", "TREE_KIND", "LeafGroup", "LeafUpdate", "TreeUpdate",
           "decode", "encode", "encode_all"]
