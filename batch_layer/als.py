"""The ALS batch app (Oryx's ALSUpdate): Spark ML ALS over aggregated events, evaluated in numpy.

- ``split``: the newest ``test-fraction`` of events by event time is the test part; each part is
  aggregated on its own as Oryx does (:mod:`headwater.apps.als.aggregation`);
- ``prepare``: integer ids for the train part (Spark's StringIndexer), and the test pairs and the
  train pairs with a positive value collected once for every candidate's evaluation;
- ``build_model``: ``pyspark.ml.recommendation.ALS`` with rank = features, regParam = lambda, alpha,
  implicitPrefs, ``headwater.als.iterations``; the factors come back to the driver as an
  :class:`~headwater.apps.als.factors.ALSFactors` (float32), the form every other layer uses;
- ``evaluate``: from the factors (:mod:`headwater.apps.als.evaluation`): AUC (implicit) or RMSE
  (explicit) plus precision@10 and NDCG@10;
- ``save_model``: the ALSFactors with every user's known items in the full data.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from headwater.api import BatchApp, SplitData
from headwater.apps.als import aggregation
from headwater.apps.als.evaluation import evaluate_factors
from headwater.apps.als.factors import ALSFactors


@dataclass
class ALSSplit(SplitData):
    indexed_train: Any           # train pairs with integer user_index / item_index columns
    user_ids: list[str]          # position n is the id with integer index n
    item_ids: list[str]
    test_pairs: pd.DataFrame     # user, item, value
    train_known: pd.DataFrame    # user, item of the train pairs with a positive value


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
        if self.log_strength:
            space["epsilon"] = self.config.get("headwater.als.hyperparams.epsilon")
        return space

    def aggregate(self, events, newest_ms: int | None = None):
        return aggregation.aggregate_strengths(events, self.implicit, self.decay_factor, self.zero_threshold,
                                               newest_ms)

    def split(self, data):
        newest = aggregation.newest_event_ms(data) if self.decay_factor < 1.0 else None
        train_events, test_events = aggregation.time_split(data, self.config.get("headwater.ml.eval.test-fraction"))
        return self.aggregate(train_events, newest), self.aggregate(test_events, newest)

    def prepare(self, data, train, test) -> ALSSplit:
        from pyspark.ml.feature import StringIndexer

        indexer = StringIndexer(inputCols=["user", "item"], outputCols=["user_index", "item_index"],
                                stringOrderType="alphabetAsc").fit(train)
        user_ids, item_ids = (list(labels) for labels in indexer.labelsArray)
        return ALSSplit(data, train, test, indexer.transform(train), user_ids, item_ids,
                        test.select("user", "item", "value").toPandas(),
                        train.where("value > 0").select("user", "item").toPandas())

    def build_model(self, split: ALSSplit, hyperparams: dict[str, Any]) -> ALSFactors:
        from pyspark.ml.recommendation import ALS
        from pyspark.sql import functions as F

        train = split.indexed_train
        ratings = aggregation.log_strength(train, hyperparams["epsilon"]) if self.log_strength else train
        # Spark's default of 10 blocks per side is arbitrary; one per core suits small and large data.
        blocks = max(1, train.sparkSession.sparkContext.defaultParallelism)
        als = ALS(rank=int(hyperparams["features"]), regParam=float(hyperparams["lambda"]),
                  alpha=float(hyperparams.get("alpha", 1.0)), implicitPrefs=self.implicit,
                  maxIter=self.config.get("headwater.als.iterations"), seed=self.config.get("headwater.ml.eval.seed"),
                  userCol="user_index", itemCol="item_index", ratingCol="value", coldStartStrategy="drop",
                  numUserBlocks=blocks, numItemBlocks=blocks)
        model = als.fit(ratings.select(F.col("user_index").cast("int"), F.col("item_index").cast("int"), "value"))
        user_ids, X = _collect_factors(model.userFactors, split.user_ids)
        item_ids, Y = _collect_factors(model.itemFactors, split.item_ids)
        return ALSFactors(user_ids, X, item_ids, Y, {}, self.implicit, float(hyperparams["lambda"]))

    def evaluate(self, model: ALSFactors, split: ALSSplit) -> dict[str, float]:
        return evaluate_factors(model, split.test_pairs, split.train_known, self.implicit)

    def save_model(self, model: ALSFactors, split: ALSSplit, directory: Path) -> None:
        known = aggregation.positive_items_by_user(self.aggregate(split.data))
        ALSFactors(model.user_ids, model.X, model.item_ids, model.Y, known, model.implicit,
                   model.regularization).save(directory)

    def model_signature(self, model: ALSFactors):
        from headwater.apps.als.pyfunc import signature

        return signature()

    def describe(self, model: ALSFactors) -> dict[str, Any]:
        return {"users": len(model.user_ids), "items": len(model.item_ids), "features": model.features,
                "implicit": model.implicit}


def _collect_factors(factors, labels: list[str]) -> tuple[list[str], np.ndarray]:
    """(ids, matrix) from an ALS factor DataFrame (integer id, features) and the indexer's labels."""
    rows = factors.toPandas()
    matrix = np.array(rows["features"].tolist(), dtype=np.float32).reshape(len(rows), -1)
    return [labels[n] for n in rows["id"]], matrix


__all__ = ["ALSUpdate"]
