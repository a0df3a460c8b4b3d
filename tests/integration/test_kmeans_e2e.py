"""k-means through every layer on the real broker, local Spark and an MLflow sqlite registry.

Iris lines on ``<id>.input`` → ingest into Delta → batch generation (search over k, champion, MODEL
notice) → speed layer and serving app started → new points posted to ``/add`` travel through Kafka,
the speed layer moves their centre and publishes UPs, the serving layer applies them: ``/assign``
and ``/distanceToNearest`` change, the serving copy equals the speed layer's, and the registry's
``speed`` snapshot holds the moved centre. Then the demo's live step runs against the same layers.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
import waitress

from batch_layer.ingest import run_ingest
from batch_layer.runner import run_batch_once
from headwater import registry
from headwater.apps.kmeans.clusters import KMeansClusters
from headwater.apps.kmeans.demo import (
    PROBE,
    history_lines,
    iris_rows,
    points_near,
    show_live_learning,
)
from headwater.embedded import free_port
from headwater.kafka_admin import ensure_topics
from headwater.kafka_producer import LineProducer
from serving_layer.app import create_app
from speed_layer.runner import SpeedLayer
from tests.integration.test_speed_layer import TIMEOUT, wait_for

IRIS = {"input-schema.feature-names": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
        "kmeans.hyperparams.k": [2, 3], "ml.eval.candidates": 2, "ml.eval.search": "grid",
        "ml.eval.test-fraction": 0.2, "kmeans.evaluation-strategy": "davies-bouldin",
        "speed.trigger-interval-sec": 0.5, "speed.snapshot-interval-sec": 2,
        "kafka.input-partitions": 2, "kafka.poll-timeout-ms": 200,
        # no forgetting, so the moved centre can be checked by arithmetic (decay: tests/test_kmeans_speed.py)
        "kmeans.half-life": None, "kmeans.dying-cluster-share": None,
        # the 30 points posted below are one drift window; all near one probe, far from the iris mix
        "speed.drift.window-rows": 20}


def answer(client, path: str) -> float:
    response = client.get(path, headers={"Accept": "application/json"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # one datum: a bare value


def test_points_streamed_through_kafka_move_the_served_centre(broker_config, spark):
    config = broker_config(app="kmeans", **IRIS)
    bootstrap = config.get("headwater.kafka.bootstrap-servers")
    ensure_topics(bootstrap, {config.input_topic: 2, config.update_topic: 1})
    with LineProducer(bootstrap) as producer:
        producer.send_lines(config.input_topic, history_lines() + ["not,a,number,row", "1,2,3"])
    totals = run_ingest(config, once=True)
    assert (totals.events, totals.rejected) == (150, 2)
    result = run_batch_once(config)
    assert result.promoted, result.reason
    champion = KMeansClusters.load(result.registered.path)

    layer = SpeedLayer(config).start()
    app = create_app(config)
    client = app.test_client()
    server = None
    try:
        wait_for(lambda: client.get("/ready").status_code == 200, "the serving layer's model")
        assert layer.wait_ready(TIMEOUT), "the speed layer did not load the champion"
        wait_for(lambda: layer.query.lastProgress is not None, "the speed query's first trigger")

        datum = ",".join(map(str, PROBE))
        cluster = answer(client, f"/assign/{datum}")
        before = answer(client, f"/distanceToNearest/{datum}")
        setosa = champion.assign(iris_rows()[:50])[0]
        assert (setosa == cluster).all(), "the probe should belong to setosa's cluster"

        new_lines = points_near(PROBE, 30)
        assert client.post("/add", data="\n".join(new_lines)).get_json() == {"sent": 30}

        after = wait_for(lambda: (d := answer(client, f"/distanceToNearest/{datum}")) < 0.8 * before and d,
                         "the served centre to move toward the new points")
        assert answer(client, f"/assign/{datum}") == cluster
        # the rule, computed directly: with no decay, every batch split gives the weighted mean
        new_points = np.array([[float(v) for v in line.split(",")] for line in new_lines])
        n, weight = len(new_points), champion.counts[cluster]
        expected = (weight * champion.centers[cluster] + new_points.sum(axis=0)) / (weight + n)
        served = app.extensions["headwater.models"].model.clusters
        np.testing.assert_allclose(served.centers[cluster], expected, rtol=1e-9)
        assert served.counts[cluster] == weight + n
        assert after == pytest.approx(np.linalg.norm(expected - np.array(PROBE)))
        # the champion's training profile went with it; the speed layer's window of the 30 points alarms,
        # and serving's /metrics has the drift per feature of that version
        profile = registry.run_json(config, result.registered.run_id, registry.DRIFT_PROFILE_ARTIFACT)
        assert [f["name"] for f in profile["features"]] == IRIS["input-schema.feature-names"]
        version = result.registered.version
        metrics = wait_for(lambda: (m := client.get("/metrics").get_data(as_text=True))
                           and f'headwater_drift_alarm{{version="{version}"}} 1.0' in m and m, "a drift alarm")
        for feature in IRIS["input-schema.feature-names"]:
            assert f'headwater_drift_score{{feature="{feature}",version="{version}"}}' in metrics
        # speed and serving hold the same model
        with layer.state.lock:
            np.testing.assert_array_equal(layer.state.live.clusters.centers, served.centers)

        def moved_snapshot():
            snapshot = registry.download_alias(config, "speed")
            if snapshot is None or snapshot.tags.get("base_version") != str(result.registered.version):
                return None
            clusters = KMeansClusters.load(snapshot.path)
            return clusters if clusters.counts[cluster] == weight + n else None

        snapshot = wait_for(moved_snapshot, "a speed snapshot with the moved centre")
        np.testing.assert_allclose(snapshot.centers[cluster], expected, rtol=1e-9)

        # the demo's live step, over real HTTP: it streams the same kind of points again
        server = waitress.create_server(app, host="127.0.0.1", port=free_port())
        threading.Thread(target=server.run, daemon=True).start()
        assert show_live_learning(config, f"http://127.0.0.1:{server.effective_port}", timeout=TIMEOUT)
        assert layer.query.exception() is None
    finally:
        if server is not None:
            server.close()
        app.extensions["headwater.models"].stop()
        producer = app.extensions.get("headwater.producer")
        if producer is not None:
            producer.close()
        layer.stop()
