"""The ALS batch app (Oryx's ALSUpdate): biases, then Spark ML ALS, evaluated in numpy.

- ``split``: the newest ``test-fraction`` of events by event time is the test part; each part is
  aggregated on its own as Oryx does (:mod:`headwater.apps.als.aggregation`);
- ``prepare``: integer ids for the train part (Spark's StringIndexer); the train pairs (for the biases
  and the baseline), the test pairs and the train pairs with a positive value collected once for every
  candidate;
- ``build_model``: explicit feedback learns μ, b_u, b_i first (:func:`~headwater.apps.als.solves.fit_biases`,
  prior ``bias-lambda``), then ``pyspark.ml.recommendation.ALS`` on the residuals ``v − μ − b_u − b_i``;
  implicit feedback is ALS with ``alpha`` on the (log) strengths. rank = features, regParam = lambda,
  ``headwater.als.iterations``; the model comes back to the driver as an
  :class:`~headwater.apps.als.factors.ALSFactors` carrying the settings it was trained with;
- ``evaluate``: :mod:`headwater.apps.als.evaluation` (AUC or RMSE, precision/recall/NDCG@10);
- ``baseline``: most popular items (implicit) or biases only (explicit), judged by the same evaluation;
- ``all_training_data``: every event of the version, aggregated, for the refit of the chosen candidate;
- ``save_model``: the model with every user's stored values in the full data version (not thresholded:
  the speed layer applies the threshold as time goes on), the users and items only those values name
  added with zero vectors, and the reference time the values are decayed to.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from batch_layer.hyperparams import first_value
from headwater.api import BatchApp, SplitData
from headwater.apps.als import aggregation
from headwater.apps.als.evaluation import biases_model, evaluate_factors, popularity_model
from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.apps.als.ratings import RatingStore
from headwater.apps.als.solves import fit_biases
from headwater.apps.als.strengths import effective_values


@dataclass
class ALSSplit(SplitData):
    indexed_train: Any           # train pairs with integer user_index / item_index columns
    user_ids: list[str]          # position n is the id with integer index n
    item_ids: list[str]
    train_rows: tuple[np.ndarray, np.ndarray, np.ndarray]  # user index, item index, value
    test_pairs: pd.DataFrame     # user, item, value
    train_known: pd.DataFrame    # user, item of the train pairs with a positive value
    newest_ms: int | None        # the newest event of the data version: the values' reference time


class ALSUpdate(BatchApp):
    """Builds and evaluates ALS candidates; settings from ``headwater.als.*`` and ``headwater.ml.eval.*``."""

    def __init__(self, config):
        super().__init__(config)
        self.implicit = config.get("headwater.als.implicit")
        self.log_strength = config.get("headwater.als.log-strength")
        self.decay_factor = config.get("headwater.als.decay.factor")
        self.zero_threshold = config.get("headwater.als.decay.zero-threshold")

    def hyperparameter_space(self) -> dict[str, list]:
        space = {"features": self.config.get("headwater.als.hyperparams.features"),
                 "lambda": self.config.get("headwater.als.hyperparams.lambda")}
        if self.implicit:
            space["alpha"] = self.config.get("headwater.als.hyperparams.alpha")
        else:
            space["bias-lambda"] = self.config.get("headwater.als.hyperparams.bias-lambda")
        if self.log_strength:
            space["epsilon"] = self.config.get("headwater.als.hyperparams.epsilon")
        return space

    def aggregate(self, events, newest_ms: int | None = None, zero_threshold: float | None = None):
        threshold = self.zero_threshold if zero_threshold is None else zero_threshold
        return aggregation.aggregate_strengths(events, self.implicit, self.decay_factor, threshold, newest_ms)

    def _newest(self, data) -> int | None:
        return aggregation.newest_event_ms(data) if self.decay_factor < 1.0 else None

    def split(self, data):
        newest = self._newest(data)
        train_events, test_events = aggregation.time_split(data, self.config.get("headwater.ml.eval.test-fraction"))
        return self.aggregate(train_events, newest), self.aggregate(test_events, newest)

    def all_training_data(self, data):
        return self.aggregate(data, self._newest(data))

    def prepare(self, data, train, test) -> ALSSplit:
        from pyspark.ml.feature import StringIndexer

        indexer = StringIndexer(inputCols=["user", "item"], outputCols=["user_index", "item_index"],
                                stringOrderType="alphabetAsc").fit(train)
        user_ids, item_ids = (list(labels) for labels in indexer.labelsArray)
        indexed = indexer.transform(train)
        rows = indexed.select("user_index", "item_index", "value").toArrow()
        train_rows = (rows.column("user_index").to_numpy().astype(np.int64),
                      rows.column("item_index").to_numpy().astype(np.int64),
                      rows.column("value").to_numpy().astype(np.float64))
        return ALSSplit(data, train, test, indexed, user_ids, item_ids, train_rows,
                        test.select("user", "item", "value").toPandas(),
                        train.where("value > 0").select("user", "item").toPandas(),
                        aggregation.newest_event_ms(data))

    def settings(self, hyperparams: dict[str, Any]) -> ALSSettings:
        epsilon = hyperparams.get("epsilon")
        return ALSSettings(self.implicit, float(hyperparams["lambda"]), float(hyperparams.get("bias-lambda", 0.0)),
                           float(hyperparams.get("alpha", 1.0)), None if epsilon is None else float(epsilon),
                           self.decay_factor, self.zero_threshold)

    def build_model(self, split: ALSSplit, hyperparams: dict[str, Any]) -> ALSFactors:
        from pyspark.ml.recommendation import ALS
        from pyspark.sql import functions as F

        settings = self.settings(hyperparams)
        ratings = split.indexed_train
        if settings.epsilon is not None:
            ratings = aggregation.log_strength(ratings, settings.epsilon)
        mu, user_bias, item_bias = 0.0, None, None
        if not self.implicit:
            mu, user_bias, item_bias = self._biases(split, settings)
            ratings = _residuals(ratings, mu, user_bias, item_bias)
        # Spark's default of 10 blocks per side is arbitrary; one per core suits small and large data.
        blocks = max(1, ratings.sparkSession.sparkContext.defaultParallelism)
        als = ALS(rank=int(hyperparams["features"]), regParam=settings.regularization, alpha=settings.alpha,
                  implicitPrefs=self.implicit, maxIter=self.config.get("headwater.als.iterations"),
                  seed=self.config.get("headwater.ml.eval.seed"), userCol="user_index", itemCol="item_index",
                  ratingCol="value", coldStartStrategy="drop", numUserBlocks=blocks, numItemBlocks=blocks)
        model = als.fit(ratings.select(F.col("user_index").cast("int"), F.col("item_index").cast("int"), "value"))
        X = _collect_factors(model.userFactors, len(split.user_ids), int(hyperparams["features"]))
        Y = _collect_factors(model.itemFactors, len(split.item_ids), int(hyperparams["features"]))
        return ALSFactors(split.user_ids, X, split.item_ids, Y, {}, settings, mu, user_bias, item_bias)

    def _biases(self, split: ALSSplit, settings: ALSSettings):
        users, items, values = split.train_rows
        if settings.epsilon is not None:
            values, _ = effective_values(values, None, None, epsilon=settings.epsilon)
        return fit_biases(users, items, values, settings.bias_regularization, len(split.user_ids),
                          len(split.item_ids))

    def evaluate(self, model: ALSFactors, split: ALSSplit) -> dict[str, float]:
        return evaluate_factors(model, split.test_pairs, split.train_known)

    def baseline(self, split: ALSSplit) -> ALSFactors:
        """Most popular items (implicit) or μ + b_u + b_i with the first (or middle) ``bias-lambda`` (explicit)."""
        users, items, values = split.train_rows
        if self.implicit:
            return popularity_model(split.user_ids, split.item_ids,
                                    np.bincount(items[values > 0], minlength=len(split.item_ids)))
        bias_lambda = first_value(self.config.get("headwater.als.hyperparams.bias-lambda"))
        hyperparams = {"lambda": 0.0, "bias-lambda": bias_lambda}
        if self.log_strength:
            hyperparams["epsilon"] = first_value(self.config.get("headwater.als.hyperparams.epsilon"))
        return biases_model(split.user_ids, split.item_ids, *self._biases(split, self.settings(hyperparams)))

    def save_model(self, model: ALSFactors, split: ALSSplit, directory: Path) -> None:
        values = self.aggregate(split.data, split.newest_ms if self.decay_factor < 1.0 else None,
                                zero_threshold=0.0).toArrow()
        user_ids = model.user_ids + sorted(set(values.column("user").to_pylist()) - set(model.user_ids))
        item_ids = model.item_ids + sorted(set(values.column("item").to_pylist()) - set(model.item_ids))
        extra_users, extra_items = len(user_ids) - len(model.user_ids), len(item_ids) - len(model.item_ids)
        users = pd.Index(user_ids).get_indexer(values.column("user").to_pandas())
        items = pd.Index(item_ids).get_indexer(values.column("item").to_pandas())
        ratings = RatingStore.from_pairs(len(user_ids), users, items, values.column("value").to_numpy())
        ALSFactors(user_ids, np.vstack([model.X, np.zeros((extra_users, model.features))]),
                   item_ids, np.vstack([model.Y, np.zeros((extra_items, model.features))]), ratings, model.settings,
                   model.mu, np.r_[model.user_bias, np.zeros(extra_users)],
                   np.r_[model.item_bias, np.zeros(extra_items)], split.newest_ms).save(directory)

    def model_signature(self, model: ALSFactors):
        from headwater.apps.als.pyfunc import signature

        return signature()

    def drift_profile(self, split: ALSSplit) -> dict[str, Any]:
        """New-user and new-item rates and the event strengths, of the events before and after the time split."""
        from headwater.apps.als.drift import als_profile_from_spark

        fraction = self.config.get("headwater.ml.eval.test-fraction")
        train_events, test_events = aggregation.time_split(split.data, fraction)
        return als_profile_from_spark(train_events.where("strength IS NOT NULL"), test_events)

    def describe(self, model: ALSFactors) -> dict[str, Any]:
        return {"users": len(model.user_ids), "items": len(model.item_ids), "features": model.features,
                "implicit": model.implicit}


def _residuals(ratings, mu: float, user_bias: np.ndarray, item_bias: np.ndarray):
    """``value − μ − b_u − b_i`` (the biases joined in as two small frames, the pairs stay in Spark)."""
    from pyspark.sql import functions as F

    spark = ratings.sparkSession
    users = spark.createDataFrame(pd.DataFrame({"user_index": np.arange(len(user_bias), dtype=np.float64),
                                                "b_user": user_bias}))
    items = spark.createDataFrame(pd.DataFrame({"item_index": np.arange(len(item_bias), dtype=np.float64),
                                                "b_item": item_bias}))
    joined = ratings.join(F.broadcast(users), "user_index").join(F.broadcast(items), "item_index")
    return joined.withColumn("value", F.col("value") - F.lit(mu) - F.col("b_user") - F.col("b_item"))


def _collect_factors(factors, n: int, features: int) -> np.ndarray:
    """The (n, features) matrix of an ALS factor DataFrame (integer id = the indexer's position; an id
    Spark returns no row for keeps a zero vector)."""
    rows = factors.toArrow()
    matrix = np.zeros((n, features), dtype=np.float32)
    ids = rows.column("id").to_numpy()
    matrix[ids] = np.array(rows.column("features").to_pylist(), dtype=np.float32).reshape(len(ids), features)
    return matrix


__all__ = ["ALSUpdate"]
