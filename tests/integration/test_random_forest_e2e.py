"""The forest app end to end through the real broker, Delta, local Spark and the MLflow registry.

Breast cancer rows → ``<id>.input`` → ingest into Delta → one batch generation registers the champion
→ the speed layer and the serving layer load it → labelled rows that contradict a prediction are
POSTed to ``/train`` → the speed layer's leaf UPs reach the serving layer and the same ``/predict``
answers differently, with no batch run in between → a speed snapshot carries the new leaf statistics.
"""
from __future__ import annotations

import numpy as np
import pytest

from batch_layer.ingest import run_ingest
from batch_layer.runner import run_batch_once
from headwater import registry
from headwater.apps.forest.demo import contradicting_lines, history_lines
from headwater.apps.forest.model import ForestModel
from headwater.kafka_producer import LineProducer
from serving_layer.app import create_app
from speed_layer.runner import SpeedLayer
from tests.forest_helpers import demo_config
from tests.integration.test_speed_layer import TIMEOUT, wait_for


def test_streamed_examples_change_predictions_without_a_batch_run(broker_config, spark):
    config = demo_config(broker_config, "rdf-classification", **{
        "rdf.num-trees": [10], "rdf.hyperparams.max-depth": [4], "rdf.hyperparams.impurity": ["gini"],
        "ml.eval.candidates": 1, "speed.trigger-interval-sec": 0.5, "speed.snapshot-interval-sec": 2,
        "kafka.input-partitions": 2, "kafka.poll-timeout-ms": 200,
        # plain counting, so the snapshot's statistics can be checked by arithmetic (forgetting and tree
        # replacement: tests/test_forest_learning.py)
        "rdf.half-life": None, "rdf.drift.detector": "none"})
    lines = history_lines("rdf-classification")
    with LineProducer(config.get("headwater.kafka.bootstrap-servers")) as producer:
        producer.send_lines(config.input_topic, lines)
    assert run_ingest(config, once=True).events == len(lines)
    result = run_batch_once(config)
    assert result.promoted and result.best.metrics["accuracy"] > 0.85 and result.best.metrics["auc"] > 0.9
    champion = registry.download_alias(config, "champion")

    layer = SpeedLayer(config).start()
    app = create_app(config)
    client = app.test_client()
    try:
        assert layer.wait_ready(TIMEOUT), "the speed layer did not load the champion"
        wait_for(lambda: layer.query.lastProgress is not None, "the speed query's first trigger")
        wait_for(lambda: client.get("/ready").status_code == 200, "the serving layer's /ready")

        datum = lines[0]
        before = client.get(f"/predict/{datum}").text.strip()
        distribution_before = client.get(f"/classificationDistribution/{datum}").text
        assert before in ("benign", "malignant")
        sent = client.post("/train", data="\n".join(contradicting_lines("rdf-classification", datum, before, 300)))
        assert sent.get_json() == {"sent": 300}

        after = wait_for(lambda: (answer := client.get(f"/predict/{datum}").text.strip()) != before and answer,
                         "the served prediction to follow the streamed examples")
        assert after != before
        assert client.get(f"/classificationDistribution/{datum}").text != distribution_before
        served = app.extensions["headwater.models"].model
        assert served.version == champion.version and served.updates_ignored == 0

        snapshot = wait_for(lambda: (s := registry.download_alias(config, "speed")) and
                            s.tags.get("base_version") == str(champion.version) and s, "a speed snapshot")
        batch_model, speed_model = ForestModel.load(champion.path), ForestModel.load(snapshot.path)
        assert speed_model.forest.structure_id == batch_model.forest.structure_id
        added = speed_model.forest.stats.sum() - batch_model.forest.stats.sum()
        assert added == pytest.approx(300 * 10)  # every example counted once in each of the 10 trees
        np.testing.assert_array_equal(served.model.forest.stats, speed_model.forest.stats)
        assert layer.query.exception() is None
    finally:
        layer.stop()
        app.extensions["headwater.models"].stop()
