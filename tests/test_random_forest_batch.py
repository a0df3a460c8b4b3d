"""The forest batch app: metrics match plain Spark ML, one generation registers a champion whose pyfunc predicts."""
from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from batch_layer.ml_update import MLUpdate
from batch_layer.random_forest import RandomForestUpdate
from headwater import registry
from headwater.apps.forest.model import ForestModel
from headwater.apps.forest.pyfunc import ForestPyfuncModel
from headwater.config import ConfigError
from tests.forest_helpers import demo_config, demo_frame, demo_rows

HYPERPARAMS = {"rdf.num-trees": [20], "rdf.hyperparams.max-depth": [5], "rdf.hyperparams.max-split-candidates": [32],
               "ml.eval.candidates": 1, "ml.eval.test-fraction": 0.25}


def plain_spark_metrics(train, test, config) -> dict[str, float]:
    """The same forest trained and evaluated the textbook Spark ML way (StringIndexer, VectorAssembler, evaluators)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.evaluation import (
        BinaryClassificationEvaluator,
        MulticlassClassificationEvaluator,
        RegressionEvaluator,
    )
    from pyspark.ml.feature import StringIndexer, VectorAssembler
    from pyspark.ml.regression import RandomForestRegressor

    schema = config.section("headwater.input-schema")
    target, categorical = schema["target-feature"], schema["categorical-features"]
    predictors = [f for f in schema["feature-names"] if f != target]
    indexed = [f"{f}_index" if f in categorical else f for f in predictors]
    stages = [StringIndexer(inputCol=f, outputCol=f"{f}_index") for f in categorical if f != target]
    classification = target in categorical
    if classification:
        stages.append(StringIndexer(inputCol=target, outputCol="label"))
    forest_class = RandomForestClassifier if classification else RandomForestRegressor
    stages += [VectorAssembler(inputCols=indexed, outputCol="features"),
               forest_class(featuresCol="features", labelCol="label" if classification else target, numTrees=20,
                            maxDepth=5, maxBins=32, seed=config.get("headwater.ml.eval.seed"),
                            **({"impurity": "entropy"} if classification else {}))]
    scored = Pipeline(stages=stages).fit(train).transform(test)
    if classification:
        return {"accuracy": MulticlassClassificationEvaluator(metricName="accuracy").evaluate(scored),
                "auc": BinaryClassificationEvaluator(metricName="areaUnderROC").evaluate(scored)}
    regression = RegressionEvaluator(labelCol=target)
    return {"rmse": regression.evaluate(scored, {regression.metricName: "rmse"}),
            "r2": regression.evaluate(scored, {regression.metricName: "r2"})}


@pytest.mark.parametrize("app, metric_names", [("rdf-classification", ["accuracy", "auc"]),
                                               ("rdf-regression", ["rmse", "r2"])])
def test_metrics_within_two_percent_of_plain_spark(spark, make_config, app, metric_names):
    config = demo_config(make_config, app, **HYPERPARAMS)
    update = RandomForestUpdate(config)
    data = demo_frame(spark, config)
    train, test = update.split(data)
    split = update.prepare(data, train, test)
    hyperparams = {k: v[0] for k, v in update.hyperparameter_space().items()}
    ours = update.evaluate(update.build_model(split, hyperparams), split)
    plain = plain_spark_metrics(train, test, config)
    assert "skipped_test_rows" not in ours
    for name in metric_names:
        assert ours[name] == pytest.approx(plain[name], rel=0.02), (name, ours, plain)
    assert ours["score"] == (ours["accuracy"] if app == "rdf-classification" else -ours["rmse"])


def test_one_generation_registers_a_champion_with_a_working_pyfunc(spark, make_config):
    config = demo_config(make_config, "rdf-regression", **HYPERPARAMS)
    notices = []
    result = MLUpdate(RandomForestUpdate(config), config, notices.append).run(demo_frame(spark, config), 0)
    assert result.promoted and notices[0].version == result.registered.version
    champion = registry.download_alias(config, "champion")
    assert champion.version == result.registered.version
    assert champion.tags["task"] == "regression" and champion.tags["trees"] == "20"
    importances = json.loads(champion.tags["feature_importances"])
    assert set(importances) == {"age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"}
    assert sum(importances.values()) == pytest.approx(1.0, abs=1e-3)

    model = ForestModel.load(champion.path)
    rows = demo_rows(config)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{champion.name}@champion")
    frame = rows.to_pandas()
    predicted = pyfunc.predict(frame.drop(columns=["progression"]))
    np.testing.assert_allclose(predicted["prediction"].to_numpy(), model.predict(rows))
    with pytest.raises(Exception, match="sex"):
        pyfunc.predict(frame.drop(columns=["progression"]).assign(sex="3"))


def test_classification_pyfunc_returns_class_names_and_probabilities(spark, make_config, tmp_path):
    config = demo_config(make_config, "rdf-classification", **HYPERPARAMS)
    update = RandomForestUpdate(config)
    data = demo_frame(spark, config)
    split = update.prepare(data, *update.split(data))
    model = update.build_model(split, {k: v[0] for k, v in update.hyperparameter_space().items()})

    answer = ForestPyfuncModel(model).predict(None, demo_rows(config).to_pandas().head(50))
    assert list(answer.columns) == ["prediction", "benign", "malignant"]
    assert set(answer["prediction"]) <= {"benign", "malignant"}
    np.testing.assert_allclose(answer[["benign", "malignant"]].sum(axis=1), 1.0)
    truth = demo_rows(config).column("diagnosis").to_pylist()[:50]
    assert np.mean(answer["prediction"] == pd.Series(truth)) > 0.85


def test_a_target_of_the_wrong_kind_is_a_config_error(make_config):
    config = demo_config(make_config, "rdf-regression", **{"input-schema.categorical-features": ["sex", "progression"]})
    with pytest.raises(ConfigError, match="'progression' must be numeric"):
        RandomForestUpdate(config)


def test_a_champion_skips_test_rows_with_categories_it_never_saw(spark):
    from batch_layer.random_forest import evaluate_forest
    from headwater.apps.forest.example import random_forest_model, small_lines

    lines = small_lines("classification", 40) + ["n,0.1,0.2,0.3,purple,yes", "m,0.1,0.2,0.3,red,maybe"]
    names = ["id", "x0", "x1", "x2", "colour", "label"]
    rows = pd.DataFrame([line.split(",") for line in lines], columns=names)
    test = spark.createDataFrame(rows.astype({"x0": float, "x1": float, "x2": float}).drop(columns=["id"]))
    metrics = evaluate_forest(random_forest_model("classification"), test)
    assert metrics["skipped_test_rows"] == 2.0
    assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["auc"] <= 1.0
