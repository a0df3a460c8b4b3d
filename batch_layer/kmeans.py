"""The k-means batch app (Oryx's KMeansUpdate): Spark ML KMeans over the events' numeric features.

- ``split``: the clustered feature columns of the events, split at random (``test-fraction``, ``seed``);
- ``prepare``: the exact silhouette's sample of at most ``silhouette-sample`` test rows, drawn once
  for every candidate;
- ``build_model``: ``pyspark.ml.clustering.KMeans`` with k from ``headwater.kmeans.hyperparams.k``,
  ``iterations`` and ``initialization-strategy`` ("k-means||" or "random"); the centres come back to
  the driver as a :class:`~headwater.apps.kmeans.clusters.KMeansClusters`, the form every layer uses;
- ``evaluate``: on the test part, from the centres alone (so the champion is judged by the same code):
  per-cluster statistics summed in Spark give SSE and Davies-Bouldin, and the exact silhouette is
  taken on at most ``silhouette-sample`` rows. ``score`` is the silhouette, −Davies-Bouldin or
  −(mean squared distance) or the Dunn index as ``evaluation-strategy`` says (higher is better for the gate). With no
  test rows at all (a tiny data set), the training rows are evaluated instead;
- ``baseline``: one cluster at the mean of the train part (its silhouette is undefined, so with the
  default evaluation strategy it is logged but cannot gate; SSE and Davies-Bouldin can);
- ``save_model``: the clusters (centres, counts of every event assigned to each centre, feature
  names), which the speed layer starts from, and ``cluster_sizes.png``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from batch_layer.recency import weight_column
from headwater.api import BatchApp, SplitData
from headwater.apps.kmeans.clusters import KMeansClusters, clustering_features
from headwater.apps.kmeans.quality import ClusterStatistics, davies_bouldin, dunn_index, silhouette
from headwater.constraints import option_name
from headwater.input_format import InputSchema

VECTOR_COLUMN = "_features"
SIZES_PLOT = "cluster_sizes.png"


@dataclass
class KMeansSplit(SplitData):
    evaluated: Any              # the rows evaluated: the test part, or the train part when it has no rows
    silhouette_rows: np.ndarray  # (n, features) sample of them for the exact silhouette


class KMeansUpdate(BatchApp):
    """Builds and evaluates k-means candidates; settings from ``headwater.kmeans.*`` and ``headwater.ml.eval.*``."""

    def __init__(self, config):
        super().__init__(config)
        self.features = clustering_features(InputSchema.from_config(config))
        settings = config.section("headwater.kmeans")
        self.iterations = settings["iterations"]
        self.initialization = option_name(settings["initialization-strategy"])
        self.strategy = option_name(settings["evaluation-strategy"])
        self.silhouette_sample = settings["silhouette-sample"]
        self.seed = config.get("headwater.ml.eval.seed")

    def hyperparameter_space(self) -> dict[str, list]:
        return {"k": self.config.get("headwater.kmeans.hyperparams.k")}

    def feature_rows(self, data):
        """Only the clustered columns (and the recency weight, if any), rows with a missing value dropped."""
        return data.select(*self.features, *filter(None, [weight_column(data)])).dropna()

    def split(self, data):
        fraction = self.config.get("headwater.ml.eval.test-fraction")
        train, test = self.feature_rows(data).randomSplit([1.0 - fraction, fraction], seed=self.seed)
        return train, test

    def prepare(self, data, train, test) -> KMeansSplit:
        sample = self._silhouette_sample(test)
        if len(sample) == 0:  # so little data that the random split left no test rows
            return KMeansSplit(data, train, test, train, self._silhouette_sample(train))
        return KMeansSplit(data, train, test, test, sample)

    def build_model(self, split: KMeansSplit, hyperparams: dict[str, Any]) -> KMeansClusters:
        from pyspark.ml.clustering import KMeans
        from pyspark.ml.feature import VectorAssembler

        vectors = VectorAssembler(inputCols=self.features, outputCol=VECTOR_COLUMN).transform(split.train)
        estimator = KMeans(k=int(hyperparams["k"]), maxIter=self.iterations, initMode=self.initialization,
                           seed=self.seed, featuresCol=VECTOR_COLUMN)
        if weight_column(split.train):
            estimator.setWeightCol(weight_column(split.train))
        model = estimator.fit(vectors)
        centers = np.array(model.clusterCenters(), dtype=np.float64)
        return KMeansClusters(self.features, centers, model.summary.clusterSizes)

    def evaluate(self, model: KMeansClusters, split: KMeansSplit) -> dict[str, float]:
        if model.features != self.features:  # a champion trained before the input schema changed
            raise ValueError(f"the model clusters features {model.features}, the input schema now "
                             f"names {self.features}")
        sample = split.silhouette_rows
        stats = cluster_statistics(split.evaluated, model.centers, self.features)
        metrics = {
            "silhouette": silhouette(sample, model.assign(sample)[0]) if len(sample) else float("nan"),
            "davies_bouldin": davies_bouldin(model.centers, stats),
            "dunn": dunn_index(model.centers, stats),
            "mean_squared_distance": stats.mean_squared_distance,
            "sse": stats.sse,
            "empty_clusters": float((stats.counts == 0).sum()),
        }
        score = {"silhouette": metrics["silhouette"], "davies-bouldin": -metrics["davies_bouldin"],
                 "dunn": metrics["dunn"],
                 "sse": -metrics["mean_squared_distance"]}[self.strategy]
        return {"score": score, **metrics}

    def baseline(self, split: KMeansSplit) -> KMeansClusters | None:
        from pyspark.sql import functions as F

        count, *mean = split.train.agg(F.count(F.lit(1)), *(F.avg(f) for f in self.features)).first()
        return KMeansClusters(self.features, np.array([mean], dtype=np.float64), [count]) if count else None

    def save_model(self, model: KMeansClusters, split: KMeansSplit, directory: Path) -> None:
        # The weight of each centre is every event it owns, not just the training part's: the speed
        # layer's updates weigh new points against it.
        counts = cluster_statistics(self.feature_rows(split.data), model.centers, self.features).counts
        KMeansClusters(model.features, model.centers, counts).save(directory)
        cluster_sizes_figure(counts).savefig(directory / SIZES_PLOT)

    def model_signature(self, model: KMeansClusters):
        from headwater.apps.kmeans.pyfunc import signature

        return signature(self.features)

    def drift_profile(self, split: KMeansSplit) -> dict[str, Any]:
        from headwater.drift_profile import profile_from_spark

        return profile_from_spark(split.train, self.features)

    def describe(self, model: KMeansClusters) -> dict[str, Any]:
        return {"k": model.k, "features": len(model.features)}

    def _silhouette_sample(self, rows_frame) -> np.ndarray:
        """At most ``silhouette-sample`` rows of a frame as a (rows, features) matrix."""
        rows, sample = rows_frame.count(), rows_frame
        if rows > self.silhouette_sample:
            # oversample a little so the sample rarely falls short of the wanted size
            fraction = min(1.0, 1.1 * self.silhouette_sample / rows)
            sample = rows_frame.sample(fraction=fraction, seed=self.seed).limit(self.silhouette_sample)
        table = sample.toArrow()
        return np.column_stack([table.column(f).to_numpy(zero_copy_only=False) for f in self.features]
                               ).astype(np.float64).reshape(table.num_rows, len(self.features))


def cluster_statistics(frame, centers: np.ndarray, features: list[str]) -> ClusterStatistics:
    """Per-cluster count, distance sum and squared-distance sum over a DataFrame, summed in Spark.

    Each Arrow batch is assigned in numpy (:func:`headwater.apps.kmeans.streaming.nearest_centers`) and reduced
    to k rows on the executor, so only k rows per batch cross to the driver's aggregation.
    """
    from pyspark.sql import functions as F

    k = len(centers)

    def batch_statistics(batches):
        import pyarrow as pa

        for batch in batches:
            points = np.column_stack([batch.column(f).to_numpy(zero_copy_only=False) for f in features])
            stats = ClusterStatistics.of(centers, points.astype(np.float64))
            yield pa.RecordBatch.from_pydict({
                "cluster": pa.array(np.arange(k), pa.int32()), "count": stats.counts,
                "distance_sum": stats.distance_sums, "squared_sum": stats.squared_sums})

    rows = (frame.select(*features)
            .mapInArrow(batch_statistics, "cluster int, count double, distance_sum double, squared_sum double")
            .groupBy("cluster").agg(*(F.sum(c).alias(c) for c in ("count", "distance_sum", "squared_sum")))
            .collect())
    sums = np.zeros((3, k))
    for row in rows:
        sums[:, row["cluster"]] = row["count"], row["distance_sum"], row["squared_sum"]
    return ClusterStatistics(*sums)


def cluster_sizes_figure(counts: np.ndarray):
    """A bar chart of how many events each centre owns (matplotlib ``Figure``, no pyplot state)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(4.0, 0.25 * len(counts) + 2), 3.0), layout="constrained")
    axes = figure.add_subplot()
    axes.bar(np.arange(len(counts)), counts, color="tab:blue")
    axes.set_xlabel("cluster")
    axes.set_ylabel("events")
    axes.set_title(f"cluster sizes (k={len(counts)}, {int(counts.sum())} events)")
    return figure
