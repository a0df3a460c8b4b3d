"""The k-means speed model: each micro-batch moves centres toward the points assigned to them.

Spark's StreamingKMeans rule, vectorised (:func:`headwater.kmeans_math.update_centers`): a centre
with weight N that receives n new points with mean m moves to ``c + n/(a·N + n)·(m − c)`` and its
weight becomes ``a·N + n``, where ``a`` is the decay per batch or per point
(``headwater.kmeans.decay-factor``, or ``half-life`` in ``time-unit``s). The UP payloads are the
moved centres' new positions (``["C", index, [floats], count]``); the speed layer's runner
publishes them, and the serving layer applies them to its copy exactly as written here.

>>> import pyarrow as pa
>>> from headwater.kmeans_clusters import KMeansClusters
>>> model = KMeansSpeedModel(KMeansClusters(["x", "y"], [[0.0, 0.0], [10.0, 10.0]], [1, 1]))
>>> model.learn_many(pa.table({"line_index": [0, 1], "x": [2.0, 10.0], "y": [0.0, 12.0]}))
[['C', 0, [1.0, 0.0], 2.0], ['C', 1, [10.0, 11.0], 2.0]]
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from headwater.config import Config
from headwater.kmeans_clusters import ARTIFACT_NAME, KMeansClusters
from headwater.kmeans_math import decay_factor


def decay_settings(config: Config) -> tuple[float, str]:
    """(decay per time unit, time unit): ``half-life`` when set, else ``decay-factor``."""
    section = config.section("headwater.kmeans")
    half_life = section.get("half-life")
    decay = decay_factor(half_life) if half_life is not None else float(section.get("decay-factor", 1.0))
    return decay, section.get("time-unit", "batches")


class KMeansSpeedModel:
    """A :class:`~headwater.kmeans_clusters.KMeansClusters` that learns from parsed input tables."""

    def __init__(self, clusters: KMeansClusters, decay: float = 1.0, time_unit: str = "batches"):
        self.clusters = clusters
        self.decay = decay
        self.time_unit = time_unit

    @classmethod
    def from_registered(cls, registered, config: Config) -> KMeansSpeedModel:
        return cls(KMeansClusters.load(Path(registered.path) / ARTIFACT_NAME), *decay_settings(config))

    def learn_many(self, parsed: pa.Table) -> list[list]:
        return self.clusters.learn(self.clusters.points(parsed), self.decay, self.time_unit)

    def apply_update(self, payload) -> None:
        self.clusters.apply_update(payload)

    def copy(self) -> KMeansSpeedModel:
        return KMeansSpeedModel(self.clusters.copy(), self.decay, self.time_unit)

    def to_artifacts(self, directory: Path) -> None:
        self.clusters.save(Path(directory) / ARTIFACT_NAME)

    def python_model(self):
        from batch_layer.kmeans_pyfunc import KMeansPyfunc

        return KMeansPyfunc()

    def __repr__(self) -> str:
        return f"KMeansSpeedModel({self.clusters!r}, decay={self.decay}, time_unit={self.time_unit!r})"


SPEED_MODEL = KMeansSpeedModel
