"""The ALS batch app (Oryx's ALSUpdate): Spark ML ALS over aggregated events, evaluated in numpy.

- ``split``: the newest ``test-fraction`` of events by event time is the test part; each part is
  aggregated on its own as Oryx does (:mod:`batch_layer.als_data`), the train part gets integer ids;
- ``build_model``: ``pyspark.ml.recommendation.ALS`` with rank = features, regParam = lambda, alpha,
  implicitPrefs, ``headwater.als.iterations``; the factors come back to the driver as an
  :class:`~headwater.als_factors.ALSFactors` (float32), the form every other layer uses;
- ``evaluate``: from the factors, for the test users: AUC (implicit) or RMSE (explicit) plus
  precision@10 and NDCG@10, where a user's relevant items are the test items with a positive value
  and the items the user already had in the training data are not ranked. ``score`` is AUC or -RMSE;
- artifacts: the ALSFactors directory ``factors`` with every user's known items in the full data.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from batch_layer import als_data
from batch_layer.metrics import factor_metrics, rmse
from batch_layer.ml_update import MLApp
from headwater.registry import RegisteredModel

TOP_K = 10


class ALSUpdate(MLApp):
    """Builds and evaluates ALS candidates; settings from ``headwater.als.*`` and ``headwater.ml.eval.*``."""

    def __init__(self, config):
        super().__init__(config)
        self.implicit = config.get("headwater.als.implicit")
        self.log_strength = config.get("headwater.als.log-strength")
        self.decay_factor = config.get("headwater.als.decay.factor")
        self.zero_threshold = config.get("headwater.als.decay.zero-threshold")
        # the integer index -> id of the train split, set by split()
        self._user_ids: list[str] = []
        self._item_ids: list[str] = []
        self._evaluation_cache: dict[tuple[int, int], tuple[pd.DataFrame, pd.DataFrame]] = {}
        self._cache_lock = threading.Lock()

    def hyperparameter_space(self) -> dict[str, list]:
        space = {"features": self.config.get("headwater.als.hyperparams.features"),
                 "lambda": self.config.get("headwater.als.hyperparams.lambda")}
        if self.implicit:
            space["alpha"] = self.config.get("headwater.als.hyperparams.alpha")
        if self.log_strength:
            space["epsilon"] = self.config.get("headwater.als.hyperparams.epsilon")
        return space

    def aggregate(self, events, newest_ms: int | None = None):
        return als_data.aggregate_strengths(events, self.implicit, self.decay_factor, self.zero_threshold, newest_ms)

    def split(self, data):
        from pyspark.ml.feature import StringIndexer

        newest = als_data.newest_event_ms(data) if self.decay_factor < 1.0 else None
        train_events, test_events = als_data.time_split(data, self.config.get("headwater.ml.eval.test-fraction"))
        train = self.aggregate(train_events, newest)
        indexer = StringIndexer(inputCols=["user", "item"], outputCols=["user_index", "item_index"],
                                stringOrderType="alphabetAsc")
        indexer_model = indexer.fit(train)
        # position n of a label list is the id with integer index n
        self._user_ids, self._item_ids = (list(labels) for labels in indexer_model.labelsArray)
        return indexer_model.transform(train), self.aggregate(test_events, newest)

    def build_model(self, train, hyperparams: dict[str, Any]):
        from pyspark.ml.recommendation import ALS
        from pyspark.sql import functions as F

        ratings = als_data.log_strength(train, hyperparams["epsilon"]) if self.log_strength else train
        # Spark's default of 10 blocks per side is arbitrary; one per core suits small and large data.
        blocks = max(1, train.sparkSession.sparkContext.defaultParallelism)
        als = ALS(rank=int(hyperparams["features"]), regParam=float(hyperparams["lambda"]),
                  alpha=float(hyperparams.get("alpha", 1.0)), implicitPrefs=self.implicit,
                  maxIter=self.config.get("headwater.als.iterations"), seed=self.config.get("headwater.ml.eval.seed"),
                  userCol="user_index", itemCol="item_index", ratingCol="value", coldStartStrategy="drop",
                  numUserBlocks=blocks, numItemBlocks=blocks)
        model = als.fit(ratings.select(F.col("user_index").cast("int"), F.col("item_index").cast("int"), "value"))
        user_ids, X = _collect_factors(model.userFactors, self._user_ids)
        item_ids, Y = _collect_factors(model.itemFactors, self._item_ids)
        from headwater.als_factors import ALSFactors

        return ALSFactors(user_ids, X, item_ids, Y, {}, self.implicit, float(hyperparams["lambda"]))

    def evaluate(self, model, test, train) -> dict[str, float]:
        test_pairs, train_known = self._evaluation_data(test, train)
        return evaluate_factors(model, test_pairs, train_known, self.implicit)

    def evaluate_registered(self, registered: RegisteredModel, test, train) -> dict[str, float]:
        from headwater.als_factors import ALSFactors

        return self.evaluate(ALSFactors.load(registered.path / "factors"), test, train)

    def to_artifacts(self, model, data, directory: Path) -> None:
        from headwater.als_factors import ALSFactors

        known = als_data.positive_items_by_user(self.aggregate(data))
        ALSFactors(model.user_ids, model.X, model.item_ids, model.Y, known, model.implicit,
                   model.regularization).save(directory / "factors")

    def pyfunc_model(self):
        from batch_layer.als_pyfunc import ALSPyfuncModel

        return ALSPyfuncModel()

    def model_signature(self):
        from batch_layer.als_pyfunc import signature

        return signature()

    def describe(self, model) -> dict[str, Any]:
        return {"users": len(model.user_ids), "items": len(model.item_ids), "features": model.features,
                "implicit": model.implicit}

    def _evaluation_data(self, test, train) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Test pairs and the train pairs with a positive value, collected once per split."""
        key = (id(test), id(train))
        with self._cache_lock:
            if key not in self._evaluation_cache:
                test_pairs = test.select("user", "item", "value").toPandas()
                known = train.where("value > 0").select("user", "item").toPandas()
                self._evaluation_cache[key] = (test_pairs, known)
            return self._evaluation_cache[key]


def _collect_factors(factors, labels: list[str]) -> tuple[list[str], np.ndarray]:
    """(ids, matrix) from an ALS factor DataFrame (integer id, features) and the indexer's labels."""
    rows = factors.toPandas()
    matrix = np.array(rows["features"].tolist(), dtype=np.float32).reshape(len(rows), -1)
    return [labels[n] for n in rows["id"]], matrix


def evaluate_factors(factors, test_pairs: pd.DataFrame, train_known: pd.DataFrame, implicit: bool,
                     k: int = TOP_K) -> dict[str, float]:
    """The ALS metrics of ``factors`` on test pairs (user, item, value); train pairs are not ranked."""
    test = _indexed(test_pairs, factors)
    relevant = test[test["value"] > 0]
    users = np.unique(relevant["u"].to_numpy())
    row_of = {u: r for r, u in enumerate(users)}
    known = _indexed(train_known, factors)
    known = known[known["u"].isin(row_of)]
    shape = (len(users), len(factors.item_ids))
    metrics = factor_metrics(factors.X[users], factors.Y, _mask(relevant, row_of, shape),
                             _mask(known, row_of, shape), k)
    metrics = {"auc": metrics["auc"], f"precision_at_{k}": metrics["precision_at_k"],
               f"ndcg_at_{k}": metrics["ndcg_at_k"], "evaluated_users": metrics["evaluated_users"]}
    if implicit:
        return {"score": metrics["auc"], **metrics}
    predicted = np.einsum("ij,ij->i", factors.X[test["u"].to_numpy()], factors.Y[test["i"].to_numpy()])
    error = rmse(predicted, test["value"].to_numpy())
    return {"score": -error, "rmse": error, **{k: v for k, v in metrics.items() if k != "auc"}}


def _indexed(pairs: pd.DataFrame, factors) -> pd.DataFrame:
    """Pairs with row indices ``u`` and ``i`` into X and Y; pairs with an id the model lacks are dropped."""
    u = pairs["user"].map(factors.user_index)
    i = pairs["item"].map(factors.item_index)
    keep = u.notna() & i.notna()
    return pairs[keep].assign(u=u[keep].astype(np.int64), i=i[keep].astype(np.int64))


def _mask(pairs: pd.DataFrame, row_of: dict[int, int], shape: tuple[int, int]) -> csr_matrix:
    rows = pairs["u"].map(row_of).to_numpy(dtype=np.int64)
    return csr_matrix((np.ones(len(rows), dtype=bool), (rows, pairs["i"].to_numpy(dtype=np.int64))), shape=shape)
