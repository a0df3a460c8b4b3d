"""The k-means model as every layer holds it: centres, their weights, and the features they span.

The batch layer saves a :class:`KMeansClusters`; the speed layer folds micro-batches into it
(:meth:`KMeansClusters.learn`) and publishes one UP message per changed centre
(:mod:`headwater.apps.kmeans.updates`); the serving layer and other speed layers apply those
(:meth:`KMeansClusters.apply_update`).

Only numeric predictors of ``headwater.input-schema`` are clustered; id columns ride along in the
input and are ignored, and a categorical predictor is a configuration error (as in Oryx).

>>> clusters = KMeansClusters(["x", "y"], [[0.0, 0.0], [10.0, 10.0]], [4, 4])
>>> clusters.assign(np.array([[1.0, 1.0], [9.0, 8.0]]))[0].tolist()
[0, 1]
>>> changes = clusters.learn(np.array([[2.0, 2.0]]))
>>> from headwater.apps.kmeans.updates import encode
>>> [encode(change) for change in changes]
[['C', 0, [0.4, 0.4], 5.0]]
>>> other = KMeansClusters(["x", "y"], [[0.0, 0.0], [10.0, 10.0]], [4, 4])
>>> for _ in range(2): other.apply_update(changes[0])  # twice: same result
>>> other.centers.tolist() == clusters.centers.tolist(), other.counts.tolist()
(True, [5.0, 4.0])
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from headwater.apps.kmeans.streaming import nearest_centers, split_dying, update_centers
from headwater.apps.kmeans.updates import CentreUpdate
from headwater.constraints import ConfigError
from headwater.input_format import InputSchema


def clustering_features(schema: InputSchema) -> list[str]:
    """The predictors k-means clusters on, in schema order; categorical ones are refused."""
    categorical = [f for f in schema.predictors if not schema.is_numeric(f)]
    if categorical:
        raise ConfigError(f"k-means clusters numeric features only; headwater.input-schema has "
                          f"categorical predictors {categorical} (list them as ignored-features)")
    if not schema.predictors:
        raise ConfigError("headwater.input-schema has no numeric predictors to cluster")
    return list(schema.predictors)


class KMeansClusters:
    """``centers`` (k, d) float64, ``counts`` (k,) float64 weights, ``features`` the d column names."""

    def __init__(self, features: Sequence[str], centers, counts):
        self.features = [str(f) for f in features]
        self.centers = np.array(centers, dtype=np.float64, ndmin=2)
        self.counts = np.array(counts, dtype=np.float64)
        if self.centers.shape[1] != len(self.features):
            raise ValueError(f"centres have {self.centers.shape[1]} dimensions but {len(self.features)} "
                             "features are named")
        if self.counts.shape != (len(self.centers),):
            raise ValueError(f"{len(self.counts)} counts for {len(self.centers)} centres")

    @property
    def k(self) -> int:
        return len(self.centers)

    def save(self, directory) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "clusters.npz", centers=self.centers, counts=self.counts)
        (directory / "features.json").write_text(json.dumps(self.features))

    @classmethod
    def load(cls, directory) -> KMeansClusters:
        directory = Path(directory)
        with np.load(directory / "clusters.npz") as arrays:
            centers, counts = arrays["centers"], arrays["counts"]
        return cls(json.loads((directory / "features.json").read_text()), centers, counts)

    def copy(self) -> KMeansClusters:
        return KMeansClusters(self.features, self.centers, self.counts)

    def points(self, table: pa.Table) -> np.ndarray:
        """The (n, d) float64 matrix of a parsed table's feature columns, in this model's order."""
        missing = [f for f in self.features if f not in table.column_names]
        if missing:
            raise ValueError(f"the input has no column(s) {missing} that the model was trained on")
        if table.num_rows == 0:
            return np.empty((0, len(self.features)))
        return np.column_stack([table.column(f).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
                                for f in self.features])

    def assign(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(nearest centre index, Euclidean distance to it) of each point."""
        return nearest_centers(self.centers, points)

    def learn(self, points: np.ndarray, decay: float = 1.0, time_unit: str = "batches",
              dying_share: float | None = None, assignment: np.ndarray | None = None) -> list[CentreUpdate]:
        """Move centres toward their newly assigned points; the new state of every centre that changed.

        With decay < 1 every centre's weight changes each batch, so every centre gets a payload. With
        ``dying_share``, a centre whose weight fell below that share of the heaviest is re-seated by
        splitting the heaviest (:func:`~headwater.apps.kmeans.streaming.split_dying`). ``assignment``: the
        points' nearest centres when already known.
        """
        if len(points) == 0:
            return []
        assignment = self.assign(points)[0] if assignment is None else assignment
        centers, counts = update_centers(self.centers, self.counts, points, decay, time_unit, assignment)
        centers, counts, split = split_dying(centers, counts, dying_share)
        changed = np.union1d(np.flatnonzero(counts != self.counts), split).astype(int)
        self.centers, self.counts = centers, counts
        return [CentreUpdate(int(i), self.centers[i].copy(), float(self.counts[i])) for i in changed]

    def apply_update(self, update: CentreUpdate) -> None:
        """Set one centre (idempotent); raises ValueError for an update that does not fit this model."""
        if not update.index < self.k:
            raise ValueError(f"centre index {update.index} is not in [0, {self.k})")
        if update.centre.shape != (len(self.features),):
            raise ValueError(f"centre {update.index} has {update.centre.size} values, the model has "
                             f"{len(self.features)}")
        # copy-on-write: a reader holding the old arrays never sees a half-written centre
        centers, counts = self.centers.copy(), self.counts.copy()
        centers[update.index], counts[update.index] = update.centre, update.weight
        self.centers, self.counts = centers, counts

    def summary(self) -> dict:
        """Centres and weights as plain arrays (what the speed and serving layers compare)."""
        return {"centers": self.centers.copy(), "counts": self.counts.copy()}

    def __repr__(self) -> str:
        return f"KMeansClusters(k={self.k}, features={len(self.features)}, points={self.counts.sum():.0f})"


__all__ = ["KMeansClusters", "clustering_features"]
