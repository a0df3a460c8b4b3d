"""One tree of a forest on its own (tree-local node ids, root 0), and trees grown by scikit-learn in that form.

The speed layer replaces a tree after a drift with one grown on recent rows by scikit-learn's
``DecisionTree{Classifier,Regressor}`` (vectorised C, milliseconds for thousands of rows), converted
here to the node layout of :class:`~headwater.apps.forest.arrays.ForestArrays`, leaf statistics as
Spark's ``impurityStats`` (weighted class counts, or [count, sum, sum of squares]).

Categorical features are split by category sets, as Spark's batch forests split them: scikit-learn
has no categorical splits, so each categorical feature is handed to it as the rank of its category
in the window's target order (Breiman's ordering, which Spark also uses for binary classification
and regression: categories sorted by mean target, or by the share of the window's most frequent
class), and a threshold on the rank becomes the set of categories at or below it. A category the
window never saw ranks last and goes right. Routing is then by membership, exactly as for the
batch trees, and the serving layer needs no second kind of split.

>>> from sklearn.tree import DecisionTreeRegressor
>>> X = np.array([[0.0, 2.0], [1.0, 0.0], [2.0, 1.0], [3.0, 2.0]])   # feature 1 is categorical
>>> y = np.array([5.0, 1.0, 1.0, 5.0])
>>> tree = grow_tree(DecisionTreeRegressor(max_depth=1), X, y, "regression", 0, {1: 3})
>>> tree.feature.tolist(), np.flatnonzero(tree.categories[0]).tolist()   # {0, 1} left: mean 1 < 5
([1, -1, -1], [0, 1])
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class Tree:
    """Node arrays of one tree; ``left``/``right`` are tree-local ids, -1 at a leaf."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    categories: np.ndarray     # (nodes, width) bool: category c goes left; width 0 when none is categorical
    stats: np.ndarray
    asof: np.ndarray = field(default=None)
    sid: str = ""

    def __post_init__(self):
        self.feature = np.asarray(self.feature, dtype=np.int32)
        self.threshold = np.asarray(self.threshold, dtype=np.float64)
        self.left = np.asarray(self.left, dtype=np.int32)
        self.right = np.asarray(self.right, dtype=np.int32)
        self.categories = np.asarray(self.categories, dtype=bool).reshape(len(self.feature), -1)
        self.stats = np.asarray(self.stats, dtype=np.float64)
        self.asof = np.zeros(len(self.feature)) if self.asof is None else np.asarray(self.asof, dtype=np.float64)
        if not self.sid:
            self.sid = self.fingerprint()

    def __len__(self) -> int:
        return len(self.feature)

    def fingerprint(self, salt: str = "") -> str:
        """A shape id: crc32 of the split arrays (and ``salt``, so a regrown shape gets a new id too)."""
        crc = zlib.crc32(salt.encode())
        width = np.flatnonzero(self.categories.any(axis=0)).max() + 1 if self.categories.any() else 0
        for array in (self.feature, self.threshold, self.left, self.right, self.categories[:, :width]):
            crc = zlib.crc32(np.ascontiguousarray(array).tobytes(), crc)
        return f"{crc:08x}"

    def body(self) -> dict:
        """The tree as the arrays of a tree UP (:class:`~headwater.apps.forest.updates.TreeUpdate`)."""
        categories = [np.flatnonzero(row).tolist() if row.any() else None for row in self.categories]
        return {"feature": self.feature, "threshold": self.threshold, "left": self.left, "right": self.right,
                "categories": categories, "stats": self.stats}

    @classmethod
    def from_body(cls, body: dict, as_of: float, sid: str) -> Tree:
        width = max((max(c) + 1 for c in body["categories"] if c), default=0)
        categories = np.zeros((len(body["feature"]), width), bool)
        for node, left in enumerate(body["categories"]):
            if left:
                categories[node, left] = True
        return cls(body["feature"], body["threshold"], body["left"], body["right"], categories, body["stats"],
                   np.full(len(body["feature"]), float(as_of)), sid)


def category_ranks(X: np.ndarray, y: np.ndarray, task: str, num_classes: int,
                   categorical: dict[int, int]) -> dict[int, np.ndarray]:
    """Per categorical feature, each category's rank in the window's target order (unseen ones last)."""
    if task == "classification":
        top = np.argmax(np.bincount(y.astype(np.int64), minlength=max(num_classes, 1)))
        target = (y == top).astype(np.float64)
    else:
        target = y.astype(np.float64)
    ranks = {}
    for feature, count in categorical.items():
        codes = X[:, feature].astype(np.int64)
        seen = np.bincount(codes, minlength=count)[:count]
        total = np.bincount(codes, weights=target, minlength=count)[:count]
        mean = np.where(seen > 0, total / np.maximum(seen, 1), np.inf)
        order = np.lexsort((np.arange(count), mean))        # by mean, ties by code: deterministic
        ranks[feature] = np.empty(count, np.float64)
        ranks[feature][order] = np.arange(count, dtype=np.float64)
    return ranks


def grow_tree(estimator, X: np.ndarray, y: np.ndarray, task: str, num_classes: int,
              categorical: dict[int, int], sample_weight: np.ndarray | None = None, as_of: float = 0.0) -> Tree:
    """Fit ``estimator`` (an unfitted scikit-learn decision tree) on the rows and convert it to a :class:`Tree`.

    ``categorical`` maps a predictor index to its number of categories (codes 0..n-1 in ``X``).
    """
    ranks = category_ranks(X, y, task, num_classes, categorical)
    ranked = X.copy()
    for feature, rank in ranks.items():
        ranked[:, feature] = rank[X[:, feature].astype(np.int64)]
    estimator.fit(ranked, y.astype(np.int64) if task == "classification" else y, sample_weight=sample_weight)
    return sklearn_tree(estimator, task, num_classes, ranks, as_of)


def sklearn_tree(estimator, task: str, num_classes: int, ranks: dict[int, np.ndarray] | None = None,
                 as_of: float = 0.0) -> Tree:
    """A fitted scikit-learn decision tree as a :class:`Tree`; ``ranks`` says how categories were ranked."""
    fitted = estimator.tree_
    leaf = fitted.children_left < 0
    weight = fitted.weighted_n_node_samples
    if task == "classification":
        value = fitted.value[:, 0, :]
        sums = value.sum(axis=1, keepdims=True)
        fractions = np.divide(value, sums, out=np.zeros_like(value), where=sums > 0)
        stats = np.zeros((len(leaf), num_classes))
        stats[:, np.asarray(estimator.classes_, dtype=np.int64)] = fractions * weight[:, None]
    else:
        mean, variance = fitted.value[:, 0, 0], fitted.impurity
        stats = np.stack([weight, weight * mean, weight * (variance + mean * mean)], axis=1)
    feature = np.where(leaf, -1, fitted.feature)
    threshold = np.where(leaf, 0.0, fitted.threshold)
    ranks = ranks or {}
    width = max((len(r) for r in ranks.values()), default=0)
    categories = np.zeros((len(leaf), width), bool)
    for node in np.flatnonzero(~leaf & np.isin(feature, list(ranks))):
        categories[node, :len(ranks[feature[node]])] = ranks[feature[node]] <= threshold[node]
        threshold[node] = 0.0
    return Tree(feature, threshold, np.where(leaf, -1, fitted.children_left), np.where(leaf, -1, fitted.children_right),
                categories, stats, np.full(len(leaf), float(as_of)))


__all__ = ["Tree", "category_ranks", "grow_tree", "sklearn_tree"]
