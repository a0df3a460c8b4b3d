"""ALS through every layer on the real broker, local Spark and an MLflow sqlite registry.

MovieLens lines on ``<id>.input`` → ingest into Delta → batch generation (champion, MODEL notice) →
speed layer and serving app started → a brand-new user's events, sent to Kafka, make that user's
recommendations appear; ``DELETE /pref`` makes the preference disappear from ``/knownItems`` and
lets the item be recommended again; no batch generation runs after the first.
"""
from __future__ import annotations

from batch_layer.ingest import run_ingest
from batch_layer.runner import run_batch_once
from headwater.kafka_admin import ensure_topics
from headwater.kafka_producer import LineProducer
from serving_layer.app import create_app
from speed_layer.runner import SpeedLayer
from tests.integration.test_batch_als import sample_lines
from tests.integration.test_speed_layer import wait_for

# the sample has no implicit signal to beat popularity with (see test_batch_als.py): no baseline gate
SETTINGS = {"als.hyperparams.features": [6], "als.iterations": 5, "ml.eval.candidates": 1,
            "ml.eval.beat-baseline": False,
            "speed.trigger-interval-sec": 0.5, "speed.snapshot-interval-sec": 600,
            "kafka.input-partitions": 2, "kafka.poll-timeout-ms": 200}


def known_items(client, user: str) -> list[str] | None:
    response = client.get(f"/knownItems/{user}", headers={"Accept": "application/json"})
    return response.get_json() if response.status_code == 200 else None


def test_new_user_appears_and_deleted_preference_disappears_without_a_batch_run(broker_config, spark):
    config = broker_config(**SETTINGS)
    bootstrap = config.get("headwater.kafka.bootstrap-servers")
    ensure_topics(bootstrap, {config.input_topic: 2, config.update_topic: 1})
    with LineProducer(bootstrap) as producer:
        producer.send_lines(config.input_topic, sample_lines())
    assert run_ingest(config, once=True).events == 1501
    result = run_batch_once(config)
    assert result.promoted, result.reason
    # the champion remembers where its data ends in <id>.input: the speed layer starts there, so
    # events sent before its query runs are folded in too
    with LineProducer(bootstrap) as producer:
        producer.send_lines(config.input_topic, ["newcomer,m1,5", "newcomer,m2,5", "newcomer,m3,4"])

    layer = SpeedLayer(config).start()
    app = create_app(config)
    client = app.test_client()
    try:
        wait_for(lambda: client.get("/ready").status_code == 200, "the serving layer to load the champion")
        wait_for(lambda: known_items(client, "newcomer") == ["m1", "m2", "m3"], "the new user's UP")
        recommended = client.get("/recommend/newcomer?howMany=5", headers={"Accept": "application/json"})
        assert recommended.status_code == 200
        ids = [entry["id"] for entry in recommended.get_json()]
        assert len(ids) == 5 and not {"m1", "m2", "m3"} & set(ids), "known items are not recommended"

        assert client.delete("/pref/newcomer/m2").status_code == 200  # through <id>.input, like any event
        wait_for(lambda: known_items(client, "newcomer") == ["m1", "m3"], "the delete to reach serving")
        everything = client.get("/recommend/newcomer?howMany=1000", headers={"Accept": "application/json"})
        assert "m2" in {entry["id"] for entry in everything.get_json()}
        assert app.extensions["headwater.models"].model.version == result.registered.version
    finally:
        app.extensions["headwater.models"].stop()
        layer.stop()
