"""The speed layer against the real broker, local Spark and an MLflow sqlite registry.

One speed layer goes through its life: it starts before any model exists (input produced meanwhile
must not be lost), folds a brand-new user in once a champion is registered and publishes UPs for
it, registers a ``speed`` snapshot, and rebases on a new champion announced by a MODEL notice.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from headwater import registry
from headwater.apps.als.factors import ALSFactors
from headwater.apps.als.pyfunc import ALSPyfuncModel
from headwater.kafka_producer import LineProducer
from headwater.messages import (
    MessageType,
    ModelNotice,
    decode_update,
    encode_model_notice,
)
from headwater.topic_tail import TopicTail
from speed_layer.runner import SpeedLayer

TIMEOUT = 90  # generous: the machine is shared by parallel test runs


def register_champion(config, tmp_path, users: list[str], seed: int) -> registry.RegisteredModel:
    rng = np.random.default_rng(seed)
    items = [f"i{n}" for n in range(20)]
    factors = ALSFactors(users, rng.normal(0, 0.3, (len(users), 5)), items, rng.normal(0, 0.3, (20, 5)),
                         {u: {items[n % 20]} for n, u in enumerate(users)}, implicit=True, regularization=0.1)
    directory = tmp_path / f"champion-{seed}"
    factors.save(directory)
    return registry.log_and_register(config, directory, ALSPyfuncModel(), {"layer": "batch"},
                                     aliases=["champion"])


class UpdateLog:
    """Every decoded message on the update topic, with its key."""

    def __init__(self, config):
        self.messages: list[tuple[bytes | None, object]] = []
        self._lock = threading.Lock()
        self.tail = TopicTail(config.get("headwater.kafka.bootstrap-servers"), config.update_topic,
                              self._add, start="earliest", poll_timeout_ms=200).start()

    def _add(self, records) -> None:
        with self._lock:
            self.messages.extend((r.key, decode_update(r.value)) for r in records)

    def ups_for(self, kind: str, id_: str) -> list:
        with self._lock:
            return [m.payload for _, m in self.messages
                    if m is not None and m.type is MessageType.UP and m.payload[:2] == [kind, id_]]


def wait_for(condition, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_speed_layer_folds_in_publishes_snapshots_and_rebases(broker_config, spark, tmp_path):
    config = broker_config(**{"speed.trigger-interval-sec": 0.5, "speed.snapshot-interval-sec": 2,
                            "kafka.input-partitions": 2, "kafka.poll-timeout-ms": 200})
    layer = SpeedLayer(config).start()
    updates = None
    try:
        updates = UpdateLog(config)
        # produced after start(): a champion without a recorded cut-off starts where start() found the input
        with LineProducer(config.get("headwater.kafka.bootstrap-servers")) as producer:
            producer.send_lines(config.input_topic, ["newbie,i1,1", "newbie,i2,2", "not a valid line",
                                                     "u0,brand-new-item,1"])
        time.sleep(2)  # the batch holding them now waits for a model
        assert not layer.wait_ready(0) and not updates.ups_for("X", "newbie")

        first = register_champion(config, tmp_path, ["u0", "u1", "u2"], seed=1)
        assert layer.wait_ready(TIMEOUT), "the speed layer did not load the champion"
        assert layer.state.base_version == first.version
        assert layer.state.covered == {0: 0, 1: 0} or sum(layer.state.covered.values()) == 0

        # input produced before the model existed is folded in, not lost
        up = wait_for(lambda: updates.ups_for("X", "newbie"), "an UP message for the new user")[-1]
        assert len(up[2]) == 5 and up[3] == ["i1", "i2"]
        assert wait_for(lambda: updates.ups_for("Y", "brand-new-item"), "an UP message for the new item")
        bases = {m.base_version for _, m in updates.messages if m is not None and m.type is MessageType.UP}
        assert bases == {first.version}
        batches = [m.payload for _, m in updates.messages if m is not None and m.type is MessageType.BATCH]
        assert batches and sum(batches[-1].input_offsets.values()) == 4  # every input record is covered

        # input produced now is folded in within seconds
        started = time.monotonic()
        with LineProducer(config.get("headwater.kafka.bootstrap-servers")) as producer:
            producer.send_lines(config.input_topic, ["latecomer,i3,1"])
        wait_for(lambda: updates.ups_for("X", "latecomer"), "an UP message for the second new user")
        print(f"input -> UP in {time.monotonic() - started:.1f} s")

        snapshot = wait_for(lambda: registry.download_alias(config, "speed"), "a speed snapshot")
        assert snapshot.tags["layer"] == "speed"
        assert snapshot.tags["base_version"] == str(first.version)
        assert int(snapshot.tags["update_offset"]) >= 0
        snapshot_factors = ALSFactors.load(snapshot.path)
        assert "newbie" in snapshot_factors.user_index and "brand-new-item" in snapshot_factors.item_index

        # a MODEL notice for a new champion: the speed layer replaces its copy
        second = register_champion(config, tmp_path, ["u0", "rebased-user"], seed=2)
        with LineProducer(config.get("headwater.kafka.bootstrap-servers")) as producer:
            producer.send_bytes(config.update_topic, encode_model_notice(
                ModelNotice(model_name=second.name, version=second.version, delta_version=None)))
        wait_for(lambda: layer.state.base_version == second.version, "the rebase on the new champion")
        with layer.state.lock:
            factors = layer.state.live.copy().factors
        assert "rebased-user" in factors.user_index and "newbie" not in factors.user_index
        assert layer.query.exception() is None
    finally:
        if updates is not None:
            updates.tail.stop()
        layer.stop()
