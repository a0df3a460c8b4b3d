"""Batch recency: the window keeps the youngest events, age weights halve every half-life, and the forest and
k-means adapters train with those weights."""
from __future__ import annotations

import numpy as np
import pytest

from batch_layer.kmeans import KMeansUpdate
from batch_layer.random_forest import RandomForestUpdate
from batch_layer.recency import WEIGHT_COLUMN, recent_events
from tests.forest_helpers import demo_config, demo_rows


def events(spark, rows: int = 40):
    """Two partitions; Kafka timestamps tie in pairs, so the order needs the partition and offset too."""
    data = [(float(n), n // 2, n % 2, n // 2) for n in range(rows)]
    return spark.createDataFrame(data, "x double, kafka_timestamp_ms long, partition int, offset long")


def test_off_by_default_the_data_is_unchanged(spark, make_config):
    data = events(spark)
    assert recent_events(make_config(app="kmeans"), data) == (data, {})


def test_the_window_keeps_the_youngest_events_and_the_half_life_weights_them_by_age(spark, make_config):
    config = make_config(app="kmeans", **{"batch.window": 10, "batch.half-life": 4.0})
    recent, logged = recent_events(config, events(spark))
    frame = recent.toPandas().sort_values("x", ascending=False)
    assert frame["x"].tolist() == [float(n) for n in range(39, 29, -1)]
    np.testing.assert_allclose(frame[WEIGHT_COLUMN], 0.5 ** (np.arange(10) / 4.0))
    assert logged == {"batch_window": 10, "batch_half_life": 4.0, "window_rows": 10,
                      "window_first_kafka_timestamp_ms": 15, "window_last_kafka_timestamp_ms": 19}


@pytest.mark.parametrize("app", ["rdf-classification", "kmeans"])
def test_forest_and_kmeans_train_with_the_weights(spark, make_config, app):
    from headwater.apps.kmeans.demo import history_lines
    from headwater.input_format import InputSchema, SchemaCSVFormat

    config = demo_config(make_config, app, **{"batch.half-life": 50.0, "ml.eval.test-fraction": 0.2})
    if app == "kmeans":
        rows = SchemaCSVFormat(InputSchema.from_config(config)).parse(history_lines()).table.to_pandas()
    else:
        rows = demo_rows(config).to_pandas()
    rows["kafka_timestamp_ms"], rows["partition"], rows["offset"] = np.arange(len(rows)), 0, np.arange(len(rows))
    data, _ = recent_events(config, spark.createDataFrame(rows))
    update = (RandomForestUpdate if app != "kmeans" else KMeansUpdate)(config)
    train, test = update.split(data)
    assert WEIGHT_COLUMN in train.columns
    split = update.prepare(data, train, test)
    params = {"numTrees": 5, "maxDepth": 3, "maxBins": 16, "impurity": "gini", "minInstancesPerNode": 1,
              "minInfoGain": 0.0} if app != "kmeans" else {"k": 3}
    model = update.build_model(split, params)
    assert update.evaluate(model, split)["score"] > (0.6 if app != "kmeans" else 0.0)
