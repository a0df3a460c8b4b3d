"""Random decision forests as compact numpy arrays, shared by the batch, speed and serving layers.

Every tree of a Spark ML forest is flattened into one set of node arrays (split feature, threshold
or category set, children, leaf statistics), so prediction is a vectorised walk over rows × trees
with no JVM, and the speed layer can update leaf statistics in place. Leaf statistics follow Spark's
``impurityStats``: class counts for classification, ``[count, sum, sum of squares]`` for regression.
``structure_id`` fingerprints the batch forest's shape and each tree has a shape id of its own
(``tree_sids``), which the UP messages (:mod:`.updates`) carry: a tree the speed layer replaces gets a
new tree id while the forest's ``structure_id`` stays. Every node has ``asof``, the decay clock its
statistics were last aged to (:mod:`.decay`), and ``clock`` is the newest of them.

>>> forest = ForestArrays.from_nodes("regression", num_features=1, trees=[[
...     dict(id=0, feature=0, threshold=0.5, categories=None, left=1, right=2, stats=[4, 10, 30]),
...     dict(id=1, feature=-1, threshold=0.0, categories=None, left=-1, right=-1, stats=[2, 2, 2]),
...     dict(id=2, feature=-1, threshold=0.0, categories=None, left=-1, right=-1, stats=[2, 8, 32])]])
>>> forest.predict(np.array([[0.0], [1.0]]))
array([1., 4.])
>>> leaves = forest.leaves(np.array([[1.0]]))
>>> forest.stats[leaves[0]] += [1, 7, 49]
>>> forest.predict(np.array([[1.0]]))
array([5.])
"""
from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from headwater.apps.forest.trees import Tree
from headwater.apps.forest.updates import LEAVES_PER_MESSAGE, LeafGroup, LeafUpdate, TreeUpdate

TASKS = ("classification", "regression")


class Walk(NamedTuple):
    """Rows ``X`` walked through ``forest``: the leaves they reached (rows × trees)."""

    forest: ForestArrays
    X: np.ndarray
    leaves: np.ndarray


class ForestArrays:
    """A forest's nodes in flat arrays; ``roots[t]`` is the index of tree ``t``'s root."""

    def __init__(self, task: str, num_features: int, feature: np.ndarray, threshold: np.ndarray,
                 left: np.ndarray, right: np.ndarray, category_mask: np.ndarray, stats: np.ndarray,
                 roots: np.ndarray, importances: np.ndarray | None = None, asof: np.ndarray | None = None,
                 tree_sids: Sequence[str] | None = None, structure_id: str | None = None, clock: float = 0.0):
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.task = task
        self.num_features = int(num_features)
        self.feature = np.asarray(feature, dtype=np.int32)
        self.threshold = np.asarray(threshold, dtype=np.float64)
        self.left = np.asarray(left, dtype=np.int32)
        self.right = np.asarray(right, dtype=np.int32)
        # category_mask[node, c]: category c goes left; width 0 when no split is categorical
        self.category_mask = np.asarray(category_mask, dtype=bool)
        self.stats = np.asarray(stats, dtype=np.float64)
        self.roots = np.asarray(roots, dtype=np.int32)
        self.importances = (np.zeros(num_features) if importances is None
                            else np.asarray(importances, dtype=np.float64))
        self.asof = np.zeros(len(self.feature)) if asof is None else np.asarray(asof, dtype=np.float64)
        self.clock = float(clock)
        # trees are stored one after another: tree t is nodes offsets[t]:offsets[t + 1]
        self.offsets = np.append(self.roots, len(self.feature)).astype(np.intp)
        self._categorical = self.category_mask.any(axis=1) if self.category_mask.size else None
        self._depth = self._max_depth()
        self._prepare_walk()
        self.structure_id = structure_id or self._fingerprint()
        self.tree_sids = [""] * self.num_trees      # tree(t) without a sid fingerprints the tree
        self.tree_sids = list(tree_sids) if tree_sids is not None else [self.tree(t).sid for t in range(self.num_trees)]

    @property
    def num_trees(self) -> int:
        return len(self.roots)

    @property
    def num_classes(self) -> int:
        return self.stats.shape[1] if self.task == "classification" else 0

    @classmethod
    def from_nodes(cls, task: str, num_features: int, trees: Sequence[Sequence[dict]],
                   importances: Sequence[float] | None = None) -> ForestArrays:
        """Build from per-tree node dicts (``id``, ``feature`` (-1 at a leaf), ``threshold``,
        ``categories`` (left-going category indices or None), ``left``/``right`` (ids in the tree), ``stats``)."""
        offsets, roots, nodes = {}, [], []
        for t, tree in enumerate(trees):
            ordered = sorted(tree, key=lambda n: n["id"])
            roots.append(len(nodes))
            offsets[t] = len(nodes) - ordered[0]["id"]
            nodes.extend((t, n) for n in ordered)
        width = max((int(max(n["categories"])) + 1 for _, n in nodes if n["categories"]), default=0)
        count = len(nodes)
        feature, threshold = np.full(count, -1, np.int32), np.zeros(count)
        left, right = np.full(count, -1, np.int32), np.full(count, -1, np.int32)
        mask = np.zeros((count, width), bool)
        stats = np.array([n["stats"] for _, n in nodes], dtype=np.float64)
        for i, (t, n) in enumerate(nodes):
            if n["feature"] < 0:
                continue
            feature[i] = n["feature"]
            threshold[i] = n["threshold"]
            left[i], right[i] = n["left"] + offsets[t], n["right"] + offsets[t]
            if n["categories"] is not None:
                mask[i, np.asarray(n["categories"], dtype=int)] = True
        return cls(task, num_features, feature, threshold, left, right, mask, stats, np.array(roots), importances)

    @classmethod
    def from_spark_model(cls, model, directory: str | Path) -> ForestArrays:
        """Convert a fitted Spark ML RandomForest{Classification,Regression}Model.

        Spark's own saved format (Parquet ``nodeData`` per tree) is read back with pyarrow: one save
        instead of a py4j call per node.
        """
        import pyarrow.parquet as pq

        task = "classification" if "Classification" in type(model).__name__ else "regression"
        path = Path(directory) / "spark-forest"
        model.write().overwrite().save(str(path))
        rows = pq.read_table(str(path / "data")).to_pylist()
        trees: dict[int, list[dict]] = {}
        for row in rows:
            node, split = row["nodeData"], row["nodeData"]["split"]
            is_leaf = node["leftChild"] < 0
            categorical = split["numCategories"] >= 0
            trees.setdefault(row["treeID"], []).append({
                "id": node["id"], "feature": -1 if is_leaf else split["featureIndex"],
                "threshold": 0.0 if is_leaf or categorical else split["leftCategoriesOrThreshold"][0],
                "categories": split["leftCategoriesOrThreshold"] if categorical and not is_leaf else None,
                "left": node["leftChild"], "right": node["rightChild"], "stats": node["impurityStats"]})
        return cls.from_nodes(task, model.numFeatures, [trees[t] for t in sorted(trees)],
                              model.featureImportances.toArray())

    def _fingerprint(self) -> str:
        crc = 0
        for array in (self.feature, self.threshold, self.left, self.right, self.category_mask, self.roots):
            crc = zlib.crc32(np.ascontiguousarray(array).tobytes(), crc)
        return f"{crc:08x}"

    def copy(self) -> ForestArrays:
        """Shares the (immutable) tree shape, copies the leaf statistics and their times."""
        return ForestArrays(self.task, self.num_features, self.feature, self.threshold, self.left, self.right,
                            self.category_mask, self.stats.copy(), self.roots, self.importances, self.asof.copy(),
                            self.tree_sids, self.structure_id, self.clock)

    # --- single trees ----------------------------------------------------------------------------
    def tree(self, t: int) -> Tree:
        """Tree ``t`` on its own (tree-local ids; statistics and times copied)."""
        start, end = self.offsets[t], self.offsets[t + 1]
        local = lambda child: np.where(child >= 0, child - start, -1)  # noqa: E731
        return Tree(self.feature[start:end], self.threshold[start:end], local(self.left[start:end]),
                    local(self.right[start:end]), self.category_mask[start:end], self.stats[start:end].copy(),
                    self.asof[start:end].copy(), self.tree_sids[t])

    def with_trees(self, replaced: dict[int, Tree]) -> ForestArrays:
        """A new forest with trees replaced (the other trees' statistics copied, so this one is untouched)."""
        trees = [replaced[i] if i in replaced else self.tree(i) for i in range(self.num_trees)]
        clock = max([self.clock, *(float(x.asof.max(initial=self.clock)) for x in replaced.values())])
        return ForestArrays.from_trees(self.task, self.num_features, trees, self.importances, self.structure_id, clock)

    @classmethod
    def from_trees(cls, task: str, num_features: int, trees: Sequence[Tree], importances: np.ndarray | None = None,
                   structure_id: str | None = None, clock: float = 0.0) -> ForestArrays:
        """One forest of :class:`~headwater.apps.forest.trees.Tree` s, stored one after another."""
        sizes = np.array([len(x) for x in trees])
        roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
        width = max(x.categories.shape[1] for x in trees)
        shift = lambda child, root: np.where(child >= 0, child + root, -1)  # noqa: E731
        mask = np.zeros((sizes.sum(), width), bool)
        for x, root in zip(trees, roots):
            mask[root:root + len(x), :x.categories.shape[1]] = x.categories
        return cls(task, num_features, np.concatenate([x.feature for x in trees]),
                   np.concatenate([x.threshold for x in trees]),
                   np.concatenate([shift(x.left, r) for x, r in zip(trees, roots)]),
                   np.concatenate([shift(x.right, r) for x, r in zip(trees, roots)]), mask,
                   np.concatenate([x.stats for x in trees]), roots, importances,
                   np.concatenate([x.asof for x in trees]), [x.sid for x in trees], structure_id, clock)

    def _max_depth(self) -> int:
        depth, frontier = 0, self.roots
        while True:
            frontier = frontier[self.feature[frontier] >= 0]
            if not len(frontier):
                return depth
            frontier = np.concatenate([self.left[frontier], self.right[frontier]])
            depth += 1

    def _prepare_walk(self) -> None:
        # A leaf is walked as a node that sends every row to itself (threshold +inf, both children
        # itself), so the walk needs no leaf test; children[2 * node + goes_left] is the next node.
        leaf = self.feature < 0
        self._walk_feature = np.where(leaf, 0, self.feature).astype(np.intp)
        self._walk_threshold = np.where(leaf, np.inf, self.threshold)
        itself = np.arange(len(self.feature), dtype=np.int32)
        self._children = np.stack([np.where(leaf, itself, self.right), np.where(leaf, itself, self.left)],
                                  axis=1).ravel()
        self._categorical_nodes = None if self._categorical is None else self._categorical & ~leaf

    def leaves(self, X: np.ndarray, trees: np.ndarray | None = None) -> np.ndarray:
        """The leaf each row reaches in each tree: an int array of shape (rows, trees); with ``trees``
        (tree indices), in those trees only, one column each."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if X.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} features, got {X.shape[1]}")
        flat = X.ravel()
        row_start = (np.arange(len(X), dtype=np.intp) * self.num_features)[:, None]
        roots = self.roots if trees is None else self.roots[trees]
        node = np.broadcast_to(roots, (len(X), len(roots))).copy()
        # np.take and in-place arithmetic: half the time of fancy indexing with fresh arrays per step
        for _ in range(self._depth):
            index = np.take(self._walk_feature, node)
            index += row_start
            value = np.take(flat, index)
            goes_left = value <= np.take(self._walk_threshold, node)
            if self._categorical_nodes is not None:
                categorical = np.take(self._categorical_nodes, node)
                if categorical.any():
                    width = self.category_mask.shape[1]
                    at, category = node[categorical], value[categorical]
                    # a category past the widest left set is in no left set: it goes right
                    goes_left[categorical] = (self.category_mask[at, np.clip(category, 0, width - 1).astype(np.intp)]
                                              & (category < width))
            node *= 2
            node += goes_left
            node = np.take(self._children, node)
        return node

    def leaves_sharing(self, X: np.ndarray, walked: Walk | None) -> np.ndarray:
        """:meth:`leaves` of ``X``, copied from an earlier walk of the same rows through another version
        of this forest for every tree the two have in common (same position, id and size); only the
        others are walked. The speed layer walks each micro-batch through the live forest and then the
        champion alone, which differ only in the trees replaced since the champion."""
        if (walked is None or walked.forest.structure_id != self.structure_id
                or walked.forest.num_trees != self.num_trees or walked.X.shape != X.shape
                or not (walked.X is X or np.array_equal(walked.X, X))):
            return self.leaves(X)
        other = walked.forest
        same = (np.array([a == b for a, b in zip(self.tree_sids, other.tree_sids)], dtype=bool)
                & (np.diff(self.offsets) == np.diff(other.offsets)))
        if other is self or same.all():
            shift = (self.roots - other.roots).astype(walked.leaves.dtype)
            return walked.leaves + shift if shift.any() else walked.leaves
        leaves = np.empty((len(X), self.num_trees), dtype=walked.leaves.dtype)
        leaves[:, same] = walked.leaves[:, same] + (self.roots[same] - other.roots[same])
        leaves[:, ~same] = self.leaves(X, np.flatnonzero(~same))
        return leaves

    def leaf_stats(self, leaves: np.ndarray) -> np.ndarray:
        """The statistics of the leaves rows reached (rows × trees × statistics): what the predictions below
        read, and take as ``stats`` instead of ``leaves`` (a caller predicting twice gathers them once)."""
        return np.take(self.stats, leaves, axis=0)      # a tenth of the time of self.stats[leaves]

    def predict_proba(self, X: np.ndarray, leaves: np.ndarray | None = None,
                      stats: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities as Spark computes them: the mean of each tree's normalised leaf counts."""
        if self.task != "classification":
            raise ValueError("predict_proba is for classification forests")
        counts = self.leaf_stats(self.leaves(X) if leaves is None else leaves) if stats is None else stats
        # sums over the short class axis as products (a tenth of the time of .sum(axis=2)), and Σ over
        # trees of the normalised counts in one pass, without a second rows × trees × classes array
        totals = counts @ np.ones(counts.shape[2])
        share = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
        votes = np.einsum("rtk,rt->rk", counts, share)
        norm = votes.sum(axis=1, keepdims=True)
        return np.divide(votes, norm, out=np.zeros_like(votes), where=norm > 0)

    def predict(self, X: np.ndarray, leaves: np.ndarray | None = None, stats: np.ndarray | None = None) -> np.ndarray:
        """Class index (classification) or the mean of the trees' leaf means (regression)."""
        if self.task == "classification":
            return np.argmax(self.predict_proba(X, leaves, stats), axis=1).astype(np.float64)
        leaf = self.leaf_stats(self.leaves(X) if leaves is None else leaves) if stats is None else stats
        return np.divide(leaf[..., 1], leaf[..., 0], out=np.zeros(leaf.shape[:2]),
                         where=leaf[..., 0] > 0).mean(axis=1)

    def tree_predictions(self, leaves: np.ndarray, stats: np.ndarray | None = None) -> np.ndarray:
        """Each tree's own prediction for rows that reached ``leaves`` (rows × trees): class index or leaf mean."""
        stats = self.leaf_stats(leaves) if stats is None else stats
        if self.task == "classification":
            # argmax over the short class axis, one comparison per class (strict: ties keep the
            # first class, as argmax does) — a tenth of the time of np.argmax(stats, axis=2)
            best, predicted = stats[..., 0], np.zeros(stats.shape[:2], np.intp)
            for k in range(1, stats.shape[2]):
                predicted[stats[..., k] > best] = k
                best = np.maximum(best, stats[..., k])
            return predicted
        return np.divide(stats[..., 1], stats[..., 0], out=np.zeros(stats.shape[:2]), where=stats[..., 0] > 0)

    def leaf_update(self, nodes: np.ndarray) -> list[LeafUpdate]:
        """UP messages with the current statistics of leaves ``nodes`` (forest indices), as of ``clock``."""
        nodes = np.asarray(nodes, dtype=np.int64)
        if len(nodes) and not (np.diff(nodes) > 0).all():   # the speed layer's are sorted and distinct already
            nodes = np.unique(nodes)
        nodes = nodes[self.feature[nodes] < 0]
        messages = []
        for i in range(0, len(nodes), LEAVES_PER_MESSAGE):
            chunk = nodes[i:i + LEAVES_PER_MESSAGE]
            tree_of = np.searchsorted(self.offsets, chunk, side="right") - 1
            bounds = np.flatnonzero(np.diff(tree_of)) + 1      # chunk is sorted: trees are runs
            groups = [LeafGroup(int(trees[0]), self.tree_sids[trees[0]], run - self.offsets[trees[0]], self.stats[run])
                      for run, trees in zip(np.split(chunk, bounds), np.split(tree_of, bounds))]
            messages.append(LeafUpdate(self.structure_id, self.clock, groups))
        return messages

    def apply_leaf_update(self, update: LeafUpdate) -> bool:
        """Set the leaf statistics an update carries; False (nothing changed) if built on another forest.

        A group for a tree replaced since it was built is skipped, and so is a leaf already newer
        than the update (a replayed topic never moves a leaf back in time).
        """
        if update.structure_id != self.structure_id:
            return False
        checked = []
        for group in update.groups:
            if group.tree >= self.num_trees:
                raise ValueError(f"a forest UP payload names tree {group.tree}; the forest has {self.num_trees}")
            if group.sid != self.tree_sids[group.tree]:
                continue
            start, end = self.offsets[group.tree], self.offsets[group.tree + 1]
            nodes = group.nodes + start
            if group.stats.shape[1:] != self.stats.shape[1:]:
                raise ValueError(f"a forest UP payload has {group.stats.shape[1]} statistics per leaf, the forest "
                                 f"{self.stats.shape[1]}")
            if len(nodes) and (group.nodes.min() < 0 or nodes.max() >= end or (self.feature[nodes] >= 0).any()):
                raise ValueError("a forest UP payload names a node that is not a leaf of its tree")
            checked.append((nodes, group.stats))
        for nodes, stats in checked:
            fresh = self.asof[nodes] <= update.as_of
            self.stats[nodes[fresh]] = stats[fresh]
            self.asof[nodes[fresh]] = update.as_of
        self.clock = max(self.clock, update.as_of)
        return bool(checked)

    def tree_update(self, t: int, old_sid: str) -> TreeUpdate:
        """The UP message that makes tree ``t`` of a forest whose tree had ``old_sid`` this forest's tree ``t``."""
        return TreeUpdate(self.structure_id, self.clock, t, old_sid, self.tree_sids[t], self.tree(t).body())

    def applied_tree_update(self, update: TreeUpdate) -> ForestArrays | None:
        """This forest with the update's tree swapped in; ``self`` when it is in already, None when stale
        (tree ``t`` is neither the update's old nor its new tree) or built on another forest."""
        if update.structure_id != self.structure_id:
            return None
        if update.tree >= self.num_trees:
            raise ValueError(f"a forest tree UP names tree {update.tree}; the forest has {self.num_trees}")
        current = self.tree_sids[update.tree]
        if current == update.new_sid:
            return self
        if current != update.old_sid:
            return None
        tree = Tree.from_body(update.body, update.as_of, update.new_sid)
        if tree.stats.shape[1:] != self.stats.shape[1:]:
            raise ValueError(f"a forest tree UP has {tree.stats.shape[1]} statistics per leaf, the forest "
                             f"{self.stats.shape[1]}")
        if (tree.feature >= self.num_features).any():
            raise ValueError(f"a forest tree UP splits on a feature past the forest's {self.num_features}")
        return self.with_trees({update.tree: tree})

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "forest.npz", feature=self.feature, threshold=self.threshold, left=self.left,
                 right=self.right, category_mask=self.category_mask, stats=self.stats, roots=self.roots,
                 importances=self.importances, asof=self.asof)
        (directory / "forest.json").write_text(json.dumps({
            "task": self.task, "num_features": self.num_features, "structure_id": self.structure_id,
            "tree_sids": self.tree_sids, "clock": self.clock}))

    @classmethod
    def load(cls, directory: str | Path) -> ForestArrays:
        directory = Path(directory)
        meta = json.loads((directory / "forest.json").read_text())
        with np.load(directory / "forest.npz") as arrays:
            return cls(meta["task"], meta["num_features"], **{k: arrays[k] for k in arrays.files},
                       tree_sids=meta.get("tree_sids"), structure_id=meta.get("structure_id"),
                       clock=meta.get("clock", 0.0))
