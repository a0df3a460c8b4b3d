"""The k-means speed model: each micro-batch moves centres toward the points assigned to them.

Spark's StreamingKMeans rule, vectorised (:func:`headwater.apps.kmeans.streaming.update_centers`): a
centre with weight N that receives n new points with mean m moves to ``c + n/(a·N + n)·(m − c)`` and
its weight becomes ``a·N + n``, where ``a`` is the decay per batch or per point
(``headwater.kmeans.decay-factor``, or ``half-life`` in ``time-unit``s); a centre whose weight falls
below ``dying-cluster-share`` of the heaviest is re-seated by splitting the heaviest. The UP messages
are the changed centres' new positions and weights (:mod:`headwater.apps.kmeans.updates`), which the
serving layer applies to its copy exactly as written here.

>>> import pyarrow as pa
>>> model = KMeansSpeedModel(KMeansClusters(["x", "y"], [[0.0, 0.0], [10.0, 10.0]], [1, 1]))
>>> model.learn_many(pa.table({"line_index": [0, 1], "x": [2.0, 10.0], "y": [0.0, 12.0]}))
[['C', 0, [1.0, 0.0], 2.0], ['C', 1, [10.0, 11.0], 2.0]]
>>> model.score_many(pa.table({"x": [1.0], "y": [3.0]}))["distance"].tolist()
[3.0]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from headwater.apps.kmeans import updates
from headwater.apps.kmeans.clusters import KMeansClusters
from headwater.apps.kmeans.streaming import decay_settings


class KMeansSpeedModel:
    """A :class:`~headwater.apps.kmeans.clusters.KMeansClusters` that learns from parsed input tables."""

    def __init__(self, clusters: KMeansClusters, decay: float = 1.0, time_unit: str = "batches",
                 dying_share: float | None = None):
        self.clusters = clusters
        self.decay = decay
        self.time_unit = time_unit
        self.dying_share = dying_share
        self._scored: tuple | None = None   # the speed layer scores a batch, then learns it: assign once

    @classmethod
    def from_registered(cls, registered, config) -> KMeansSpeedModel:
        return cls(KMeansClusters.load(registered.path), *decay_settings(config),
                   config.get("headwater.kmeans.dying-cluster-share"))

    def learn_many(self, parsed: pa.Table) -> list[list]:
        scored, self._scored = self._scored, None
        if scored is not None and scored[0] is parsed and scored[1] is self.clusters.centers:
            points, assignment = scored[2:]
        else:
            points, assignment = self.clusters.points(parsed), None
        changes = self.clusters.learn(points, self.decay, self.time_unit, self.dying_share, assignment)
        return [updates.encode(change) for change in changes]

    def score_many(self, parsed: pa.Table) -> dict[str, np.ndarray]:
        """The distance of each point to its nearest centre, before learning."""
        points = self.clusters.points(parsed)
        assignment, distance = self.clusters.assign(points)
        self._scored = (parsed, self.clusters.centers, points, assignment)
        return {"distance": distance}

    def apply_update(self, payload) -> None:
        self.clusters.apply_update(updates.decode(payload))

    def copy(self) -> KMeansSpeedModel:
        return KMeansSpeedModel(self.clusters.copy(), self.decay, self.time_unit, self.dying_share)

    def save(self, directory: Path) -> None:
        self.clusters.save(directory)

    def state_summary(self) -> dict:
        return self.clusters.summary()

    def __repr__(self) -> str:
        return f"KMeansSpeedModel({self.clusters!r}, decay={self.decay}, time_unit={self.time_unit!r})"


__all__ = ["KMeansSpeedModel"]
