"""Tree replacement through the real speed layer, serving and registry, and across a speed-layer restart.

A champion trained on a stationary stretch (x0 > 0.5) → labelled chunks through ``<id>.input``, the
concept flipping to x2 > 0.3 half-way → the speed layer replaces trees and publishes whole-tree UPs
→ serving applies them and holds the speed layer's forest → a snapshot, one more chunk, a stop →
a new speed layer resumes from the snapshot (its drift detectors, recent rows and young trees) and
re-folds the chunk after it into exactly the forest the first layer published, then learns on as an
uninterrupted offline run of the same rule on the same micro-batches does; the live evaluation
(speed layer and serving's ``/metrics``) counts every event once, live model beside the champion alone.
"""
from __future__ import annotations

import numpy as np

from headwater import registry
from headwater.apps.forest.decay import Decay
from headwater.apps.forest.learning import ForestLearner
from headwater.apps.forest.replacement import ReplacementSettings
from headwater.kafka_admin import ensure_topics, true_end_offsets
from headwater.kafka_producer import LineProducer
from serving_layer.app import create_app
from speed_layer.random_forest import RandomForestSpeedModel
from speed_layer.runner import SpeedLayer
from tests.integration.test_speed_layer import TIMEOUT, wait_for
from tests.test_forest_learning import abrupt_stream, batch_model

CHUNK, HISTORY, FLIP, ROWS = 1000, 10_000, 14_000, 18_000


class RecordingSpeedLayer(SpeedLayer):
    """Remembers the lines of every micro-batch it scored, learned and published."""

    def __init__(self, config):
        super().__init__(config)
        self.batches: list[list[str]] = []

    def fold(self, lines, ends, batch_id=None):
        published = super().fold(lines, ends, batch_id)
        self.batches.append(list(lines))
        return published


def covered(layer) -> int:
    with layer.state.lock:
        return sum(layer.state.covered.values())


def same_forest(a, b) -> None:
    assert a.forest.tree_sids == b.forest.tree_sids
    np.testing.assert_array_equal(a.forest.stats, b.forest.stats)
    np.testing.assert_array_equal(a.forest.asof, b.forest.asof)


def test_replaced_trees_reach_serving_and_survive_a_speed_layer_restart(broker_config, spark, tmp_path):
    X, y = abrupt_stream(ROWS, FLIP)
    lines = [",".join(f"{v:.17g}" for v in row) + f",{label}" for row, label in zip(X, y)]
    config = broker_config(app="rdf-classification", **{
        "input-schema.feature-names": ["x0", "x1", "x2", "x3", "y"], "input-schema.categorical-features": ["y"],
        "input-schema.target-feature": "y", "rdf.drift.window-rows": 4000, "rdf.drift.tree-depth": 8,
        "speed.trigger-interval-sec": 0.5, "speed.snapshot-interval-sec": 3600, "kafka.poll-timeout-ms": 200})
    bootstrap = config.get("headwater.kafka.bootstrap-servers")
    ensure_topics(bootstrap, {config.input_topic: 1, config.update_topic: 1})
    champion_model = batch_model(X[:HISTORY], y[:HISTORY])
    champion_model.save(tmp_path / "champion")
    cutoff = registry.offsets_tag(true_end_offsets(bootstrap, config.input_topic))
    registry.log_and_register(config, tmp_path / "champion", config.app.resolve("pyfunc")(),
                              {"layer": "batch", registry.TAG_INPUT_OFFSETS: cutoff}, [registry.CHAMPION])
    chunks = [lines[a:a + CHUNK] for a in range(HISTORY, ROWS, CHUNK)]   # the flip is in chunk 4

    def send(layer, chunk):
        expected = covered(layer) + len(chunk)
        with LineProducer(bootstrap) as producer:
            producer.send_lines(config.input_topic, chunk)
        wait_for(lambda: covered(layer) == expected, "the speed layer to fold a chunk in")

    app = create_app(config)
    manager = app.extensions["headwater.models"]

    def serving_caught_up():
        end = true_end_offsets(bootstrap, config.update_topic)[0]
        wait_for(lambda: manager._tail is not None and manager._tail.positions.get(0, 0) >= end,
                 "the serving layer to apply every published UP")
        return manager.model.model

    first = RecordingSpeedLayer(config).start()
    try:
        assert first.wait_ready(TIMEOUT)
        for chunk in chunks[:6]:
            send(first, chunk)
        with first.state.lock:
            live = first.state.live.learner
            assert live.replacement.replaced > 0, "no tree was replaced after the drift"
            assert live.forest.tree_sids != champion_model.forest.tree_sids
        same_forest(serving_caught_up(), live.model)
        assert manager.model.updates_ignored == 0
        snapshot = first.snapshot()
        send(first, chunks[6])              # folded and published after the snapshot
        with first.state.lock:
            before_stop = first.state.live.learner.copy()
    finally:
        first.stop()

    wait_for(lambda: (s := registry.download_alias(config, registry.SPEED)) and s.version == snapshot.version,
             "the snapshot as the speed alias")
    second = RecordingSpeedLayer(config).start()
    try:
        assert second.wait_ready(TIMEOUT)
        with second.state.lock:
            resumed = second.state.live.learner
            assert covered(second) == ROWS - HISTORY - CHUNK, "the batch after the snapshot is re-folded"
            same_forest(resumed.model, before_stop.model)
            for name, window in before_stop.replacement.detector.state().items():
                np.testing.assert_array_equal(resumed.replacement.detector.state()[name], window)
            np.testing.assert_array_equal(resumed.replacement.window_y, before_stop.replacement.window_y)
            assert sorted(resumed.replacement.young) == sorted(before_stop.replacement.young)
        send(second, chunks[7])
        with second.state.lock:
            after_restart = second.state.live.learner.copy()
        same_forest(serving_caught_up(), after_restart.model)
        assert manager.model.updates_ignored == 0
        # the prequential proof, each event once across the restart: the speed layer's totals (MLflow)
        # and serving's /metrics, live model beside the champion alone
        figures = second.evaluation.figures()
        assert second.evaluation.events == ROWS - HISTORY
        assert manager.metrics.prequential_figures() == figures
        assert figures["live"]["accuracy"] > figures["champion"]["accuracy"] + 0.1, figures
        exposed = [line for line in app.test_client().get("/metrics").get_data(as_text=True).splitlines()
                   if line.startswith("headwater_prequential{") and 'figure="accuracy"' in line]
        assert sorted(float(line.split()[-1]) for line in exposed) == \
            sorted([figures["live"]["accuracy"], figures["champion"]["accuracy"]])
    finally:
        second.stop()
        manager.stop()

    # the same rule, never interrupted, on the same micro-batches
    parse = config.app.make_input_format(config).parse
    offline = RandomForestSpeedModel(ForestLearner(champion_model.copy(), Decay.from_config(config),
                                                   ReplacementSettings.from_config(config)))
    for batch in first.batches + second.batches:
        offline.learn_many(parse(batch).table)
    same_forest(offline.model, after_restart.model)
