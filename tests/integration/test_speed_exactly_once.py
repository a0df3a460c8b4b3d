"""Each input event is folded into the speed layer's model, and counted by its live evaluation, exactly once,
across a restart: a new speed layer resumes from the snapshot and the BATCH records after it.

Uses the plug-in key-means app, whose state is counts: a count off by one is an event lost or doubled.
"""
from __future__ import annotations

import numpy as np

from headwater import registry
from headwater.kafka_admin import ensure_topics, true_end_offsets
from headwater.kafka_producer import LineProducer
from speed_layer.runner import SpeedLayer
from tests.integration.test_speed_layer import TIMEOUT, wait_for
from tests.plugin_app.state import KeyMeans, KeyMeansPyfunc

APP = "tests.plugin_app:APP"


def send(config, lines):
    with LineProducer(config.get("headwater.kafka.bootstrap-servers")) as producer:
        producer.send_lines(config.input_topic, lines)


def covered(layer) -> int:
    with layer.state.lock:
        return sum(layer.state.covered.values())


def test_a_restarted_speed_layer_neither_loses_nor_repeats_an_event(broker_config, spark, tmp_path):
    config = broker_config(app=APP, **{"speed.trigger-interval-sec": 0.5, "speed.snapshot-interval-sec": 3600,
                                       "kafka.input-partitions": 2, "kafka.poll-timeout-ms": 200})
    bootstrap = config.get("headwater.kafka.bootstrap-servers")
    ensure_topics(bootstrap, {config.input_topic: 2, config.update_topic: 1})
    send(config, ["a,100", "b,100"])  # history: the champion was trained on it
    cutoff = true_end_offsets(bootstrap, config.input_topic)
    KeyMeans({"a": 1.0, "b": 1.0}, {"a": 100.0, "b": 100.0}).save(tmp_path / "champion")
    champion = registry.log_and_register(config, tmp_path / "champion", KeyMeansPyfunc(),
                                         {"layer": "batch", registry.TAG_INPUT_OFFSETS: registry.offsets_tag(cutoff)},
                                         [registry.CHAMPION])
    events = [f"{'abc'[n % 3]},{n}" for n in range(60)]

    first = SpeedLayer(config).start()
    try:
        assert first.wait_ready(TIMEOUT)
        send(config, events[:20])
        wait_for(lambda: covered(first) == 22, "the first 20 events folded")
        snapshot = first.snapshot()
        assert snapshot.tags[registry.TAG_BASE_VERSION] == str(champion.version)
        send(config, events[20:40])
        wait_for(lambda: covered(first) == 42, "20 more events folded after the snapshot")
    finally:
        first.stop()  # the next layer knows only the snapshot and the update topic

    second = SpeedLayer(config).start()
    try:
        assert second.wait_ready(TIMEOUT)
        assert covered(second) == 42, "the published batches after the snapshot are re-folded at start-up"
        send(config, events[40:])
        wait_for(lambda: covered(second) == 62, "the last 20 events folded")
        with second.state.lock:
            model = second.state.live.model
            counts, sums = dict(model.counts), dict(model.sums)
        values = {key: [float(e.split(",")[1]) for e in events if e.startswith(key)] for key in "abc"}
        assert counts == {"a": 21.0, "b": 21.0, "c": 20.0}
        assert sums == {"a": 100.0 + sum(values["a"]), "b": 100.0 + sum(values["b"]), "c": sum(values["c"])}
        # each event counted once; those of "c" in the batch that first brings "c" cannot be scored
        scored = second.evaluation.totals["live"]["squared_error"][1]
        assert second.evaluation.events == 60 and 40 <= scored <= 60
        assert np.isfinite(second.evaluation.figures()["champion"]["rmse"])
    finally:
        second.stop()
