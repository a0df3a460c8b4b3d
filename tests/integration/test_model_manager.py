"""The serving layer's model manager against the real broker and registry: resume point, updates, swaps."""
from __future__ import annotations

import threading
import time

import mlflow.pyfunc
import numpy as np

from headwater import registry
from headwater.apps.als.factors import ALSFactors
from headwater.kafka_admin import ensure_topics
from headwater.kafka_producer import LineProducer
from headwater.messages import ModelNotice, encode_model_notice, encode_up
from serving_layer.als_model import ALSServingModel
from serving_layer.app import create_app
from serving_layer.app_context import MODELS
from serving_layer.model_manager import ModelManager
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


class GatedModel(ALSServingModel):
    """Loads block on a gate per version (to hold a load open) and count how many run at once."""

    gates: dict[int, threading.Event] = {}
    running = 0
    most_at_once = 0
    count_lock = threading.Lock()

    @classmethod
    def from_registered(cls, registered, config=None):
        with cls.count_lock:
            cls.running += 1
            cls.most_at_once = max(cls.most_at_once, cls.running)
        try:
            gate = cls.gates.get(registered.version)
            if gate is not None:
                assert gate.wait(60), "the test never opened the gate"
            return cls(ALSFactors.load(registered.path), version=registered.version)
        finally:
            with cls.count_lock:
                cls.running -= 1


def notice(version: int, config) -> bytes:
    return encode_model_notice(ModelNotice(config.app_id, version, None))


def test_one_loader_the_newest_notice_wins_and_ups_during_a_load_reach_the_new_model(broker_config, tmp_path):
    config = broker_config()
    bootstrap = config.get("headwater.kafka.bootstrap-servers")
    ensure_topics(bootstrap, {config.update_topic: 1})
    first = register(config, tmp_path, factors(1), "v1", {"layer": "batch"}, ["champion"])
    manager = ModelManager(config, GatedModel)
    manager.start()
    try:
        wait_for(lambda: manager.ready_reason() is None)
        second = register(config, tmp_path, factors(2), "v2", {"layer": "batch"}, ["champion"])
        GatedModel.gates[second.version] = gate = threading.Event()
        with LineProducer(bootstrap) as producer:
            producer.send_bytes(config.update_topic, notice(second.version, config)).get(10)
        wait_for(lambda: GatedModel.running == 1)  # the load of version 2 is held open
        third = register(config, tmp_path, factors(3), "v3", {"layer": "batch"}, ["champion"])
        with LineProducer(bootstrap) as producer:
            for message in (notice(third.version, config),
                            encode_up(["X", "on-first", [1.0] * 4, 0.0, {}], base_version=first.version),
                            encode_up(["X", "on-second", [1.0] * 4, 0.0, {}], base_version=second.version),
                            encode_up(["X", "on-third", [1.0] * 4, 0.0, {}], base_version=third.version)):
                producer.send_bytes(config.update_topic, message).get(10)
        wait_for(lambda: manager.metrics.ignored_updates._value.get() >= 2)  # v1 serves: 2 of another base
        assert "on-first" in manager.model.users.index  # its own base: applied at once
        gate.set()
        wait_for(lambda: manager.model.version == third.version)
        assert GatedModel.most_at_once == 1
        served = manager.model
        assert "on-third" in served.users.index and "on-second" not in served.users.index
        assert "on-first" not in served.users.index
        time.sleep(1.0)  # nothing older is swapped in afterwards
        assert manager.model is served
    finally:
        manager.stop()


def test_poisoned_update_records_leave_the_served_model_consistent(broker_config, tmp_path):
    config = broker_config()
    bootstrap = config.get("headwater.kafka.bootstrap-servers")
    ensure_topics(bootstrap, {config.update_topic: 1})
    champion = register(config, tmp_path, factors(1), "v1", {"layer": "batch"}, ["champion"])
    manager = ModelManager(config, ALSServingModel)
    manager.start()
    try:
        wait_for(lambda: manager.ready_reason() is None)
        poison = [b'{"type": "MODEL", "model_name": "x", "version": 1e999}', b'{"type": "UP", "payload": 1e999}',
                  b'{"type": "UP", "payload": ["X", "bad", [1e999, 1, 1, 1], null]}',
                  b'{"type": "UP", "payload": ["X", "bad2", [1, 1, 1, 1], null], "base": 1e999}',
                  b"[" * 3000, b"\xff\xfe",
                  b'{"type": "UP", "payload": ["X", "' + b"u" * 5000 + b'", [1,1,1,1], 0, {}]}']
        with LineProducer(bootstrap) as producer:
            for raw in poison:
                producer.send_bytes(config.update_topic, raw)
            producer.send_bytes(config.update_topic, encode_up(["X", "fine", [1.0] * 4, 0.0, {}], champion.version))
        wait_for(lambda: "fine" in manager.model.users.index)
        assert manager.model.version == champion.version and manager.ready_reason() is None
        assert manager.metrics.bad_updates._value.get() >= 5
        assert len(manager.model.users.view.ids.dtype.str) and manager.model.users.view.ids.dtype.itemsize <= 4 * 256
    finally:
        manager.stop()


def test_a_restarted_replica_loads_the_champion_the_current_one_replaced(broker_config, tmp_path):
    from headwater import promotion

    config = broker_config()
    ensure_topics(config.get("headwater.kafka.bootstrap-servers"), {config.update_topic: 1})
    first = register(config, tmp_path, factors(1), "v1", {"layer": "batch"}, []).version
    second = register(config, tmp_path, factors(2), "v2", {"layer": "batch"}, []).version
    promotion.move_alias(config, registry.CHAMPION, first, promotion.CAUSE_BATCH, "first")
    promotion.move_alias(config, registry.CHAMPION, second, promotion.CAUSE_OPERATOR, "second")
    manager = ModelManager(config, ALSServingModel)
    manager.start()
    try:
        wait_for(lambda: manager.loaded_versions() == {second: registry.CHAMPION, first: "previous"})
    finally:
        manager.stop()
