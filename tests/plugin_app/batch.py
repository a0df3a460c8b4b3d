"""The key-means batch layer: per-key counts and sums in Spark, judged by RMSE on a random test part."""
from __future__ import annotations

import numpy as np

from headwater.api import BatchApp, SplitData
from tests.plugin_app.state import KeyMeans


class KeyMeansUpdate(BatchApp):
    def hyperparameter_space(self) -> dict[str, list]:
        return {"prior": self.config.get("headwater.key-means.hyperparams.prior")}

    def split(self, data):
        return data.randomSplit([0.8, 0.2], seed=self.config.get("headwater.ml.eval.seed"))

    def build_model(self, split: SplitData, hyperparams) -> KeyMeans:
        rows = split.train.groupBy("key").agg({"value": "sum", "*": "count"}).collect()
        return KeyMeans({r["key"]: float(r["count(1)"]) for r in rows},
                        {r["key"]: float(r["sum(value)"]) for r in rows}, hyperparams["prior"])

    def evaluate(self, model: KeyMeans, split: SplitData) -> dict[str, float]:
        test = split.test.select("key", "value").toPandas()
        predicted = np.array([model.estimate(k) for k in test["key"]], dtype=float)
        known = ~np.isnan(predicted)
        rmse = float(np.sqrt(np.mean((predicted[known] - test["value"].to_numpy()[known]) ** 2))) if known.any() \
            else float("nan")
        return {"score": -rmse, "rmse": rmse}
