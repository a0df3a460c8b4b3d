"""The k-means model as every layer holds it: centres, their weights, and the features they span.

The batch layer writes a :class:`KMeansClusters`; the speed layer folds micro-batches into it
(:meth:`KMeansClusters.learn`) and publishes one UP payload per changed centre; the serving layer
and other speed layers apply those payloads (:meth:`KMeansClusters.apply_update`).

UP payload: ``["C", index, [floats], count]``, the centre's new position and weight. Both are
absolute values, not increments, so applying a payload twice (a replayed update topic) leaves the
model as applying it once does.

Only numeric predictors of ``headwater.input-schema`` are clustered; id columns ride along in the
input and are ignored, and a categorical predictor is a configuration error (as in Oryx).

>>> clusters = KMeansClusters(["x", "y"], [[0.0, 0.0], [10.0, 10.0]], [4, 4])
>>> clusters.assign(np.array([[1.0, 1.0], [9.0, 8.0]]))[0].tolist()
[0, 1]
>>> payloads = clusters.learn(np.array([[2.0, 2.0]]))
>>> payloads
[['C', 0, [0.4, 0.4], 5.0]]
>>> other = KMeansClusters(["x", "y"], [[0.0, 0.0], [10.0, 10.0]], [4, 4])
>>> for _ in range(2): other.apply_update(payloads[0])  # twice: same result
>>> other.centers.tolist() == clusters.centers.tolist(), other.counts.tolist()
(True, [5.0, 4.0])
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from headwater.config import ConfigError
from headwater.input_format import InputSchema
from headwater.kmeans_math import nearest_centers, update_centers

UPDATE_KIND = "C"
ARTIFACT_NAME = "clusters"  # the registry artifact holding a saved KMeansClusters


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

    def learn(self, points: np.ndarray, decay: float = 1.0, time_unit: str = "batches") -> list[list]:
        """Move centres toward their newly assigned points; the UP payloads of every centre that changed.

        With decay < 1 every centre's weight changes each batch, so every centre gets a payload.
        """
        if len(points) == 0:
            return []
        assignment = self.assign(points)[0]
        self.centers, counts = update_centers(self.centers, self.counts, points, decay, time_unit, assignment)
        changed = np.flatnonzero(counts != self.counts)
        self.counts = counts
        return [self.payload(int(i)) for i in changed]

    def payload(self, index: int) -> list:
        return [UPDATE_KIND, index, self.centers[index].tolist(), float(self.counts[index])]

    def apply_update(self, payload) -> None:
        """Set one centre from an UP payload (idempotent); raises ValueError for one that does not fit."""
        kind, index, center, count = payload
        if kind != UPDATE_KIND:
            raise ValueError(f"not a k-means update: kind {kind!r}")
        if not isinstance(index, int) or not 0 <= index < self.k:
            raise ValueError(f"centre index {index!r} is not in [0, {self.k})")
        center = np.asarray(center, dtype=np.float64)
        if center.shape != (len(self.features),):
            raise ValueError(f"centre {index} has {center.size} values, the model has {len(self.features)}")
        # copy-on-write: a reader holding the old arrays never sees a half-written centre
        centers, counts = self.centers.copy(), self.counts.copy()
        centers[index], counts[index] = center, float(count)
        self.centers, self.counts = centers, counts

    def __repr__(self) -> str:
        return f"KMeansClusters(k={self.k}, features={len(self.features)}, points={self.counts.sum():.0f})"


__all__ = ["ARTIFACT_NAME", "UPDATE_KIND", "KMeansClusters", "clustering_features"]
