"""The random decision forest batch app (Oryx's RDFUpdate): Spark ML forests, converted to numpy arrays.

- ``split``: a random ``headwater.ml.eval.test-fraction`` of the rows with a target is the test part;
- ``prepare``: fits the one :class:`~headwater.apps.forest.encoding.CategoricalEncoding` of this
  data version (sorted distinct values of every categorical feature), which every candidate uses;
- ``build_model``: ``RandomForestClassifier`` / ``RandomForestRegressor`` on a feature vector whose
  Spark ML attributes mark the categorical predictors as nominal with the encoding's values (so
  Spark splits them by category sets) and a label whose attribute fixes the number of classes;
  hyperparameters numTrees, maxDepth, maxBins, impurity, minInstancesPerNode, minInfoGain
  (``headwater.rdf.*``); the fitted forest becomes a :class:`~headwater.apps.forest.model.ForestModel`;
- ``evaluate``: numpy predictions of the ForestModel over the test rows (``mapInArrow``, so the
  test data never has to fit on the driver): accuracy (plus AUC for two classes) with score =
  accuracy, or RMSE and R² with score = -RMSE. The champion is evaluated the same way with its own
  encoding (rows with a category it never saw are left out and counted as ``skipped_test_rows``);
- ``baseline``: one leaf holding the train part's class counts (the majority class) or its mean;
- ``save_model``: the ForestModel (forest and encoding); version tags carry the tree sizes and
  Spark's feature importances.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from batch_layer.recency import weight_column
from headwater.api import BatchApp, SplitData
from headwater.apps.forest.encoding import CategoricalEncoding
from headwater.apps.forest.model import ForestModel
from headwater.config import Config
from headwater.constraints import ConfigError
from headwater.evaluation_metrics import mean_auc, rmse
from headwater.input_format import InputSchema

FEATURES, LABEL = "features", "label"
DEFAULT_IMPURITY = {"classification": "entropy", "regression": "variance"}
TASK_OF_APP = {"rdf-classification": "classification", "rdf-regression": "regression"}


def forest_task(config: Config, schema: InputSchema) -> str:
    """classification when the target is categorical, regression when numeric (Oryx's rule), checked
    against the app's name."""
    if schema.target is None:
        raise ConfigError("headwater.input-schema.target-feature must name the feature a forest predicts")
    task = "classification" if schema.target in schema.categorical else "regression"
    expected = TASK_OF_APP.get(config.get("headwater.app"))
    if expected is not None and expected != task:
        kind = "categorical" if expected == "classification" else "numeric"
        raise ConfigError(f"headwater.input-schema.target-feature {schema.target!r} must be {kind} for app "
                          f"{config.get('headwater.app')!r} (in {config.source_of('headwater.input-schema')})")
    return task


@dataclass
class ForestSplit(SplitData):
    encoding: CategoricalEncoding


class RandomForestUpdate(BatchApp):
    """Builds and evaluates forest candidates; settings from ``headwater.rdf.*`` and ``headwater.ml.eval.*``."""

    def __init__(self, config: Config):
        super().__init__(config)
        self.schema = InputSchema.from_config(config)
        self.task = forest_task(config, self.schema)

    def hyperparameter_space(self) -> dict[str, list]:
        hp = self.config.section("headwater.rdf.hyperparams")
        return {"numTrees": self.config.get("headwater.rdf.num-trees"),
                "maxDepth": hp["max-depth"],
                "maxBins": hp["max-split-candidates"],
                "impurity": hp.get("impurity") or [DEFAULT_IMPURITY[self.task]],
                "minInstancesPerNode": hp["min-node-size"],
                "minInfoGain": hp["min-info-gain"]}

    def split(self, data):
        from pyspark.sql import functions as F

        columns = [*self.schema.predictors, self.schema.target, *filter(None, [weight_column(data)])]
        data = data.select(*columns).where(F.col(self.schema.target).isNotNull())
        fraction = self.config.get("headwater.ml.eval.test-fraction")
        train, test = data.randomSplit([1.0 - fraction, fraction], seed=self.config.get("headwater.ml.eval.seed"))
        return train, test

    def prepare(self, data, train, test) -> ForestSplit:
        # every row the split kept: the encoding knows each category of the train and the test part
        return ForestSplit(data, train, test, fit_encoding(train.unionByName(test), self.schema))

    def build_model(self, split: ForestSplit, hyperparams: dict[str, Any]) -> ForestModel:
        from pyspark.ml.classification import RandomForestClassifier
        from pyspark.ml.regression import RandomForestRegressor

        from headwater.apps.forest.arrays import ForestArrays

        estimator = RandomForestClassifier if self.task == "classification" else RandomForestRegressor
        largest_category = max(split.encoding.categorical_predictors.values(), default=0)
        forest = estimator(
            featuresCol=FEATURES, labelCol=LABEL, seed=self.config.get("headwater.ml.eval.seed"),
            numTrees=int(hyperparams["numTrees"]), maxDepth=int(hyperparams["maxDepth"]),
            maxBins=max(int(hyperparams["maxBins"]), largest_category), impurity=str(hyperparams["impurity"]),
            minInstancesPerNode=int(hyperparams["minInstancesPerNode"]),
            minInfoGain=float(hyperparams["minInfoGain"]))
        weight = weight_column(split.train)
        if weight:
            forest.setWeightCol(weight)
        fitted = forest.fit(spark_training_frame(split.train, split.encoding, weight))
        with tempfile.TemporaryDirectory(prefix="headwater-forest-") as directory:
            return ForestModel(ForestArrays.from_spark_model(fitted, directory), split.encoding)

    def evaluate(self, model: ForestModel, split: ForestSplit) -> dict[str, float]:
        return evaluate_forest(model, split.test)

    def baseline(self, split: ForestSplit) -> ForestModel:
        from pyspark.sql import functions as F

        from headwater.apps.forest.arrays import ForestArrays

        labels = spark_training_frame(split.train, split.encoding).select(LABEL)
        if self.task == "classification":
            stats = np.zeros(len(split.encoding.classes))
            for row in labels.groupBy(LABEL).count().collect():
                stats[int(row[LABEL])] = row["count"]
        else:
            count, total, squares = labels.agg(F.count(LABEL), F.sum(LABEL), F.sum(F.col(LABEL) ** 2)).first()
            stats = [count, total or 0.0, squares or 0.0]
        leaf = dict(id=0, feature=-1, threshold=0.0, categories=None, left=-1, right=-1, stats=list(stats))
        return ForestModel(ForestArrays.from_nodes(self.task, len(split.encoding.predictors), [[leaf]]),
                           split.encoding)

    def model_signature(self, model: ForestModel):
        from headwater.apps.forest.pyfunc import signature

        return signature(model.encoding)

    def drift_profile(self, split: ForestSplit) -> dict[str, Any]:
        from headwater.drift_profile import profile_from_spark

        predictors = self.schema.predictors
        return profile_from_spark(split.train, [f for f in predictors if self.schema.is_numeric(f)],
                                  [f for f in predictors if not self.schema.is_numeric(f)])

    def describe(self, model: ForestModel) -> dict[str, Any]:
        importances = sorted(model.importances.items(), key=lambda item: -item[1])
        return {"task": model.task, "trees": model.forest.num_trees, "nodes": len(model.forest.feature),
                "structure_id": model.forest.structure_id,
                "feature_importances": json.dumps({k: round(v, 6) for k, v in importances})[:5000]}


def fit_encoding(data, schema: InputSchema) -> CategoricalEncoding:
    """The encoding of one data version: every categorical column's distinct values, in one Spark job."""
    from pyspark.sql import functions as F

    categorical = [name for name in [*schema.predictors, schema.target] if name in schema.categorical]
    distinct = data.agg(*[F.collect_set(name).alias(name) for name in categorical]).first() if categorical else {}
    return CategoricalEncoding(schema.predictors, {name: sorted(distinct[name]) for name in categorical},
                               target=schema.target)


def spark_training_frame(rows, encoding: CategoricalEncoding, weight: str | None = None):
    """``features`` (vector, categorical predictors marked nominal) and ``label`` (class index or value),
    plus the ``weight`` column when given."""
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import functions as F

    def encoded(name: str):
        if not encoding.is_categorical(name):
            return F.col(name).cast("double").alias(name)
        values = F.array(*[F.lit(v) for v in encoding.categories[name]])
        return (F.array_position(values, F.col(name)) - 1).cast("double").alias(name)

    kept = [weight] if weight else []
    frame = rows.select(*[encoded(n) for n in encoding.predictors], encoded(encoding.target_name).alias(LABEL), *kept)
    frame = VectorAssembler(inputCols=encoding.predictors, outputCol=FEATURES).transform(frame)
    attributes: dict[str, list] = {"numeric": [], "nominal": []}
    for index, name in enumerate(encoding.predictors):
        if encoding.is_categorical(name):
            attributes["nominal"].append({"idx": index, "name": name, "vals": encoding.categories[name]})
        else:
            attributes["numeric"].append({"idx": index, "name": name})
    frame = frame.withMetadata(FEATURES, {"ml_attr": {"attrs": {k: v for k, v in attributes.items() if v},
                                                      "num_attrs": len(encoding.predictors)}})
    if encoding.classes is not None:
        frame = frame.withMetadata(LABEL, {"ml_attr": {"type": "nominal", "name": LABEL, "vals": encoding.classes}})
    return frame.select(FEATURES, LABEL, *kept)


def evaluate_forest(model: ForestModel, test) -> dict[str, float]:
    """Metrics of ``model`` on the test rows, predicted in numpy next to the data."""
    classification = model.task == "classification"

    def predict(batches):
        for batch in batches:
            rows = pa.Table.from_batches([batch])
            X, _, known = model.encoding.known_rows(rows)
            predicted, positive = np.full(len(known), np.nan), np.full(len(known), np.nan)
            if known.any() and classification:
                probabilities = model.forest.predict_proba(X)
                predicted[known], positive[known] = probabilities.argmax(axis=1), probabilities[:, -1]
            elif known.any():
                predicted[known] = positive[known] = model.forest.predict(X)
            yield pa.RecordBatch.from_pydict({"y": model.encoding.target(rows), "predicted": predicted,
                                              "positive": positive})

    result = test.mapInArrow(predict, "y double, predicted double, positive double").toArrow()
    y, predicted, positive = (result.column(c).to_numpy(zero_copy_only=False) for c in ("y", "predicted", "positive"))
    counted = ~np.isnan(predicted)
    metrics = forest_metrics(model.task, y[counted], predicted[counted], positive[counted], len(model.classes or ()))
    if not counted.all():  # only the champion can meet a category it never saw
        metrics["skipped_test_rows"] = float((~counted).sum())
    return metrics


def forest_metrics(task: str, y: np.ndarray, predicted: np.ndarray, positive: np.ndarray,
                   num_classes: int) -> dict[str, float]:
    """accuracy (and AUC of the second class for two classes) or RMSE and R²; ``score`` first.

    >>> metrics = forest_metrics("regression", np.array([1.0, 3.0]), np.array([1.0, 2.0]), None, 0)
    >>> {name: round(value, 3) for name, value in metrics.items()}
    {'score': -0.707, 'rmse': 0.707, 'r2': 0.5}
    """
    if task == "classification":
        accuracy = float(np.mean(predicted == y)) if len(y) else float("nan")
        metrics = {"score": accuracy, "accuracy": accuracy}
        if num_classes == 2:
            metrics["auc"] = mean_auc(positive[None, :], (y == 1)[None, :])
    else:
        error = rmse(predicted, y)
        variance = float(np.var(y)) if len(y) else float("nan")
        metrics = {"score": -error, "rmse": error,
                   "r2": 1.0 - error ** 2 / variance if variance > 0 else float("nan")}
    return metrics
