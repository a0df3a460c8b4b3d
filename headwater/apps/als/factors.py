"""The ALS model state every layer holds: user matrix X, item matrix Y, their ids, known items, λ.

The batch layer saves an :class:`ALSFactors` as a registry version's artifacts (:meth:`save`); the
speed layer, the serving layer, the pyfunc model and the batch layer's champion evaluation all load it
with :meth:`load`. A :class:`FoldIn` is one micro-batch's change (new vectors, complete known-item sets),
which :meth:`ALSFactors.apply` writes in.

>>> import numpy as np, tempfile
>>> factors = ALSFactors(["u1"], [[0.5, 0.0]], ["i1", "i2"], np.eye(2), {"u1": {"i1"}}, implicit=True)
>>> factors.apply(FoldIn(user_ids=["u2"], user_vectors=np.ones((1, 2), np.float32), known_items={"u2": {"i2"}}))
>>> directory = tempfile.mkdtemp()
>>> factors.save(directory)
>>> ALSFactors.load(directory).user_ids, sorted(ALSFactors.load(directory).known_items["u2"])
(['u1', 'u2'], ['i2'])
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np


class ALSFactors:
    """X (users × k), Y (items × k) float32 with their ids, known items per user, implicit or not."""

    def __init__(self, user_ids: Sequence[str], X, item_ids: Sequence[str], Y,
                 known_items: Mapping[str, Iterable[str]], implicit: bool, regularization: float = 0.0):
        self.user_ids = [str(u) for u in user_ids]
        self.item_ids = [str(i) for i in item_ids]
        self.X = np.ascontiguousarray(X, dtype=np.float32).reshape(len(self.user_ids), -1)
        self.Y = np.ascontiguousarray(Y, dtype=np.float32).reshape(len(self.item_ids), -1)
        if self.X.shape[1] != self.Y.shape[1] and len(self.user_ids) and len(self.item_ids):
            raise ValueError(f"X has {self.X.shape[1]} features but Y has {self.Y.shape[1]}")
        self.known_items = {str(u): set(map(str, items)) for u, items in known_items.items()}
        self.implicit = bool(implicit)
        # The λ of the batch model; it keeps (YᵀY + λI) invertible when Y has fewer rows than features.
        self.regularization = float(regularization)

    # Built on first use: the serving layer never needs them and they cost ~100 MB per million ids.
    @cached_property
    def user_index(self) -> dict[str, int]:
        return {u: n for n, u in enumerate(self.user_ids)}

    @cached_property
    def item_index(self) -> dict[str, int]:
        return {i: n for n, i in enumerate(self.item_ids)}

    @property
    def features(self) -> int:
        return self.Y.shape[1] if len(self.item_ids) else self.X.shape[1]

    def save(self, directory) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "X.npy", self.X)
        np.save(directory / "Y.npy", self.Y)
        (directory / "user_ids.json").write_text(json.dumps(self.user_ids))
        (directory / "item_ids.json").write_text(json.dumps(self.item_ids))
        known = {u: sorted(items) for u, items in self.known_items.items()}
        (directory / "known_items.json").write_text(json.dumps(known))
        meta = {"implicit": self.implicit, "features": self.features, "lambda": self.regularization}
        (directory / "meta.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory) -> ALSFactors:
        directory = Path(directory)
        meta = json.loads((directory / "meta.json").read_text())
        return cls(json.loads((directory / "user_ids.json").read_text()), np.load(directory / "X.npy"),
                   json.loads((directory / "item_ids.json").read_text()), np.load(directory / "Y.npy"),
                   json.loads((directory / "known_items.json").read_text()), meta["implicit"],
                   meta.get("lambda", 0.0))

    def copy(self) -> ALSFactors:
        """An independent copy (the constructor copies the id lists and known-item sets, this the matrices)."""
        return ALSFactors(self.user_ids, self.X.copy(), self.item_ids, self.Y.copy(), self.known_items,
                          self.implicit, self.regularization)

    def apply(self, update: FoldIn) -> None:
        """Write a fold-in's vectors and known items into this model (new ids are appended)."""
        self.X = _upsert(self.X, self.user_ids, self.user_index, update.user_ids, update.user_vectors)
        self.Y = _upsert(self.Y, self.item_ids, self.item_index, update.item_ids, update.item_vectors)
        self.known_items.update({u: set(items) for u, items in update.known_items.items()})

    def __repr__(self) -> str:
        return (f"ALSFactors(users={len(self.user_ids)}, items={len(self.item_ids)}, "
                f"features={self.features}, implicit={self.implicit})")


def _upsert(matrix, ids, index, new_ids, vectors):
    if not len(new_ids):
        return matrix
    rows = np.array([index.get(i, -1) for i in new_ids])
    fresh = rows < 0
    matrix[rows[~fresh]] = vectors[~fresh]
    for i in np.asarray(new_ids, dtype=object)[fresh]:
        index[i] = len(ids)
        ids.append(i)
    return np.concatenate([matrix, vectors[fresh].astype(np.float32)]) if fresh.any() else matrix


@dataclass
class FoldIn:
    """Vectors and complete known-item sets that changed in one micro-batch."""

    user_ids: list[str] = field(default_factory=list)
    user_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    item_ids: list[str] = field(default_factory=list)
    item_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    known_items: dict[str, set[str]] = field(default_factory=dict)


def summarize(user_ids, X, item_ids, Y, known_items) -> dict:
    """Vectors by id and known items, independent of row order (the speed and serving layers' common view)."""
    return {"users": {u: np.array(x, np.float32) for u, x in zip(user_ids, X)},
            "items": {i: np.array(y, np.float32) for i, y in zip(item_ids, Y)},
            "known_items": {u: set(items) for u, items in known_items.items() if items}}


__all__ = ["ALSFactors", "FoldIn", "summarize"]
