"""The serving layer's model manager against the real broker and registry: resume point, updates, swaps."""
from __future__ import annotations

import time

import mlflow.pyfunc
import numpy as np

from headwater import registry
from headwater.apps.als.factors import ALSFactors
from headwater.kafka_admin import ensure_topics
from headwater.kafka_producer import LineProducer
from headwater.messages import ModelNotice, encode_model_notice, encode_up
from serving_layer.app import create_app
from serving_layer.app_context import MODELS
from tests.test_serving_app import factors


class _Placeholder(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


def register(config, tmp_path, model: ALSFactors, name: str, tags: dict, aliases: list[str]):
    model.save(tmp_path / name)
    return registry.log_and_register(config, tmp_path / name, _Placeholder(), tags, aliases)


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_loads_champion_with_speed_snapshot_follows_updates_and_swaps(broker_config, tmp_path):
    config = broker_config()
    ensure_topics(config.get("headwater.kafka.bootstrap-servers"), {config.update_topic: 1})
    champion = register(config, tmp_path, factors(1), "v1", {"layer": "batch"}, ["champion"])
    with LineProducer(config.get("headwater.kafka.bootstrap-servers")) as producer:
        # an update the snapshot already contains: the manager must start after it
        producer.send_bytes(config.update_topic, encode_up(["X", "stale", [9.0, 9.0, 9.0, 9.0], 0.0, {}]))
    base = factors(1)
    snapshot_model = ALSFactors([*base.user_ids, "snap"], np.vstack([base.X, np.ones((1, 4))]), base.item_ids,
                                base.Y, {}, base.settings)
    register(config, tmp_path, snapshot_model, "s1",
             {"layer": "speed", "base_version": champion.version, "update_offset": 1}, ["speed"])

    app = create_app(config)
    manager = app.extensions[MODELS]
    client = app.test_client()
    try:
        wait_for(lambda: client.get("/ready").status_code == 200)
        assert client.get("/ready").get_json()["model_version"] == champion.version + 1
        assert "snap" in client.get("/user/allIDs").text.split()
        with LineProducer(config.get("headwater.kafka.bootstrap-servers")) as producer:
            producer.send_bytes(config.update_topic, encode_up(["Y", "fresh", [1.0, 1.0, 1.0, 1.0], 0.0]))
        wait_for(lambda: client.get("/estimate/u0/fresh").text.strip() != "0.0")
        assert "stale" not in client.get("/user/allIDs").text.split()

        newer = register(config, tmp_path, factors(2, items=50), "v2", {"layer": "batch"}, ["champion"])
        with LineProducer(config.get("headwater.kafka.bootstrap-servers")) as producer:
            producer.send_bytes(config.update_topic,
                                encode_model_notice(ModelNotice(config.app_id, newer.version, None)))
        wait_for(lambda: manager.model.version == newer.version)
        assert len(client.get("/item/allIDs").text.split()) == 50
    finally:
        manager.stop()
