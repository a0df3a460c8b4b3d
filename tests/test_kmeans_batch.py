"""The k-means batch app: quality against plain Spark KMeans, search over k, registry, gate and pyfunc.

Data: scikit-learn's bundled digits (1,797 rows × 64 pixels) written as a Delta ``events`` table the
way ingestion writes it, and well-separated blobs where the right k is known.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score

from batch_layer.kmeans import KMeansUpdate, cluster_statistics
from batch_layer.runner import run_batch_once
from headwater.apps.kmeans.clusters import KMeansClusters
from headwater.apps.kmeans.quality import ClusterStatistics, dunn_index, silhouette
from headwater.apps.kmeans.streaming import nearest_centers
from headwater.delta_tables import events_schema, read_table_version
from headwater.input_format import InputSchema, SchemaCSVFormat

DIGIT_FEATURES = [f"p{n}" for n in range(64)]


def write_events(uri: str, features: list[str], rows: np.ndarray) -> None:
    """Rows as CSV lines, parsed by the app's input format, stored with ingestion's columns."""
    from deltalake import write_deltalake

    lines = [",".join(repr(float(v)) for v in row) for row in rows]
    parsed = SchemaCSVFormat(InputSchema(features)).parse(lines)
    assert not parsed.rejected
    now = dt.datetime.now(dt.UTC)
    n = len(lines)
    columns = {"line": lines, **{f: parsed.table.column(f) for f in features},
               "topic": ["t.input"] * n, "partition": pa.array([0] * n, pa.int32()),
               "offset": pa.array(range(n), pa.int64()), "kafka_timestamp_ms": pa.array([0] * n, pa.int64()),
               "ingest_time": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
               "ingest_date": pa.array([now.date()] * n, pa.date32())}
    schema = events_schema(SchemaCSVFormat(InputSchema(features)).schema)
    write_deltalake(uri, pa.table(columns, schema=schema), partition_by=["ingest_date"])


def blobs(seed: int = 3, per_blob: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    return np.concatenate([rng.normal(m, 0.7, (per_blob, 2)) for m in means])


def test_quality_within_two_percent_of_plain_spark_kmeans(make_config, spark):
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.feature import VectorAssembler

    digits = load_digits().data
    config = make_config(app="kmeans", **{"input-schema.feature-names": DIGIT_FEATURES,
                                          "kmeans.hyperparams.k": [10], "kmeans.iterations": 20,
                                          "ml.eval.test-fraction": 0.1})
    write_events(config.table_uri("events"), DIGIT_FEATURES, digits)

    result = run_batch_once(config, publish=list().append)
    assert result.promoted, result.reason
    ours = KMeansClusters.load(result.registered.path)

    # plain Spark KMeans on the very rows our candidate trained on (same Delta version, same split)
    events, _ = read_table_version(spark, config.table_uri("events"))
    train, _ = KMeansUpdate(config).split(events)
    vectors = VectorAssembler(inputCols=DIGIT_FEATURES, outputCol="v").transform(train)
    plain = KMeans(k=10, maxIter=20, seed=42, initMode="k-means||", featuresCol="v").fit(vectors)
    plain_centers = np.array(plain.clusterCenters(), dtype=np.float64)

    ours_sse = ClusterStatistics.of(ours.centers, digits).sse
    plain_sse = ClusterStatistics.of(plain_centers, digits).sse
    assert ours_sse <= 1.02 * plain_sse, (ours_sse, plain_sse)
    ours_silhouette = silhouette(digits, ours.assign(digits)[0])
    plain_silhouette = silhouette(digits, nearest_centers(plain_centers, digits)[0])
    assert ours_silhouette >= plain_silhouette - 0.02 * abs(plain_silhouette), (ours_silhouette, plain_silhouette)
    # and the clusters mean something: they recover the digit classes about as well as k-means can
    assert adjusted_rand_score(load_digits().target, ours.assign(digits)[0]) > 0.5
    # the weights the speed layer starts from are every event each centre owns
    assert ours.counts.sum() == len(digits)


@pytest.mark.parametrize("strategy", ["silhouette", "DUNN"])  # Oryx spells its strategies in upper case
def test_search_over_k_finds_the_three_blobs(make_config, mlflow_uri, strategy):
    # (davies-bouldin chooses k in the end-to-end test)
    from mlflow import MlflowClient

    config = make_config(app="kmeans", **{"input-schema.feature-names": ["x", "y"],
                                          "kmeans.hyperparams.k": [2, 3, 6], "kmeans.evaluation-strategy": strategy,
                                          "ml.eval.candidates": 3, "ml.eval.search": "grid",
                                          "ml.eval.test-fraction": 0.3})
    write_events(config.table_uri("events"), ["x", "y"], blobs())

    result = run_batch_once(config, publish=list().append)

    assert result.promoted and result.best.hyperparams == {"k": 3}, [c.metrics for c in result.candidates]
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    nested = client.search_runs([client.get_run(result.run_id).info.experiment_id],
                                filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert sorted(run.data.params["k"] for run in nested) == ["2", "3", "6"]
    assert all({"silhouette", "davies_bouldin", "sse", "score"} <= set(run.data.metrics) for run in nested)
    scored_by = "dunn" if strategy == "DUNN" else "silhouette"
    assert all(run.data.metrics["score"] == pytest.approx(run.data.metrics[scored_by]) for run in nested)
    champion = client.get_model_version_by_alias(config.app_id, "champion")
    assert champion.tags["k"] == "3" and champion.tags["delta_version"] == "0"
    assert (result.registered.path / "cluster_sizes.png").stat().st_size > 1000


def test_second_generation_is_gated_against_the_champion_and_pyfunc_scores(make_config):
    import mlflow.pyfunc
    import pandas as pd

    config = make_config(app="kmeans", **{"input-schema.feature-names": ["x", "y"],
                                          "kmeans.hyperparams.k": [3], "ml.eval.max-regression": 0.0})
    write_events(config.table_uri("events"), ["x", "y"], blobs())
    first = run_batch_once(config, publish=list().append)
    second = run_batch_once(config, publish=list().append)

    assert first.promoted and second.champion_version == first.registered.version
    # the same data and seed give the same centres, so the champion is matched, not beaten
    assert second.champion_metrics["score"] == pytest.approx(second.best.score)
    assert second.promoted, second.reason

    scorer = mlflow.pyfunc.load_model(f"models:/{config.app_id}@champion")
    clusters = KMeansClusters.load(second.registered.path)
    answer = scorer.predict(pd.DataFrame({"x": [0.1, 9.8, 0.2], "y": [0.0, 0.3, 10.1]}))
    assert answer.tolist() == clusters.assign(np.array([[0.1, 0.0], [9.8, 0.3], [0.2, 10.1]]))[0].tolist()
    assert len(set(answer)) == 3


def test_cluster_statistics_in_spark_match_numpy(spark):
    points = blobs(per_blob=40)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [50.0, 50.0]])
    frame = spark.createDataFrame([tuple(map(float, p)) for p in points], ["x", "y"]).repartition(3)
    in_spark = cluster_statistics(frame, centers, ["x", "y"])
    direct = ClusterStatistics.of(centers, points)
    np.testing.assert_allclose(in_spark.counts, direct.counts)
    np.testing.assert_allclose(in_spark.distance_sums, direct.distance_sums)
    np.testing.assert_allclose(in_spark.squared_sums, direct.squared_sums)
    assert in_spark.counts[3] == 0


def test_categorical_predictors_are_a_config_error(make_config):
    from headwater.config import ConfigError

    config = make_config(app="kmeans", **{"input-schema.feature-names": ["x", "colour"],
                                          "input-schema.categorical-features": ["colour"]})
    with pytest.raises(ConfigError, match="colour"):
        KMeansUpdate(config)


def test_without_test_rows_the_training_rows_are_evaluated(make_config, spark):
    app = KMeansUpdate(make_config(app="kmeans", **{"input-schema.feature-names": ["x", "y"]}))
    train = spark.createDataFrame([tuple(map(float, p)) for p in blobs(per_blob=5)], ["x", "y"])
    split = app.prepare(train, train, train.limit(0))
    metrics = app.evaluate(app.build_model(split, {"k": 3}), split)
    assert metrics["score"] == metrics["silhouette"] > 0.8 and metrics["sse"] > 0


def test_dunn_index_is_oryx_s_smallest_centre_gap_over_largest_mean_distance():
    points = blobs()
    right = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    stats = ClusterStatistics.of(right, points)
    expected = 10.0 / (stats.distance_sums / stats.counts).max()
    assert dunn_index(right, stats) == pytest.approx(expected)
    merged = np.array([[5.0, 0.0], [0.0, 10.0]])  # two blobs under one centre: worse (lower)
    assert dunn_index(merged, ClusterStatistics.of(merged, points)) < dunn_index(right, stats) / 4
    one = np.array([[3.0, 3.0]])
    assert np.isnan(dunn_index(one, ClusterStatistics.of(one, points)))
