"""A challenger learns beside the champion from its MODEL notice on: the speed layer folds every micro-batch into
it and publishes its UPs under its own version, which a serving replica's copy of it applies (a user seen only
in the stream is known to it); with headwater.rollout.auto-promote the sequential test promotes it when it is
better, through the real alias move (MLflow run, MODEL notice, history)."""
from __future__ import annotations

import time

import numpy as np

from headwater import promotion, registry
from headwater.kafka_admin import ensure_topics
from headwater.kafka_producer import LineProducer
from serving_layer.als_model import ALSServingModel
from serving_layer.model_manager import ModelManager
from speed_layer.rollout import CHALLENGER
from speed_layer.runner import SpeedLayer
from tests.integration.test_auto_rollback import factors, rated_by, register
from tests.integration.test_speed_layer import TIMEOUT, wait_for

EVENTS = 3_000


def test_a_better_challenger_learns_beside_the_champion_and_is_promoted(broker_config, spark, tmp_path):
    config = broker_config(**{"als.implicit": False, "speed.trigger-interval-sec": 0.5,
                            "speed.snapshot-interval-sec": 600, "kafka.poll-timeout-ms": 200,
                            "rollout.auto-promote": True})
    bootstrap = config.get("headwater.kafka.bootstrap-servers")
    ensure_topics(bootstrap, {config.input_topic: 1, config.update_topic: 1})
    truth = factors(np.random.default_rng(1), 0.5)
    worse = register(config, tmp_path, factors(np.random.default_rng(2), 0.5), "worse")
    promotion.move_alias(config, registry.CHAMPION, worse, promotion.CAUSE_BATCH, "the gate passed it")
    layer = SpeedLayer(config).start()
    manager = ModelManager(config, ALSServingModel)
    manager.start()
    try:
        assert layer.wait_ready(TIMEOUT), "the speed layer did not load the champion"
        wait_for(lambda: manager.ready_reason() is None, "serving's champion")
        better = register(config, tmp_path, truth, "better")
        promotion.move_alias(config, registry.CHALLENGER, better, promotion.CAUSE_OPERATOR, "a challenger to try")
        wait_for(lambda: layer.rollout.versions() == {better: CHALLENGER}, "the challenger beside the champion")
        wait_for(lambda: manager.loaded_versions().get(better) == CHALLENGER, "serving's challenger")
        with LineProducer(bootstrap) as producer:   # a user that neither version knows: only UPs can teach it
            producer.send_lines(config.input_topic, ["newcomer,i1,4.5", "newcomer,i2,1.0"])
            producer.flush()
        wait_for(lambda: manager.model_for(better).has_user("newcomer"), "the challenger's UPs applied in serving")
        assert manager.model.has_user("newcomer")       # and the champion's own
        lines = rated_by(truth, EVENTS)
        with LineProducer(bootstrap) as producer:
            for start in range(0, EVENTS, 100):
                producer.send_lines(config.input_topic, lines[start:start + 100])
                producer.flush()
                time.sleep(0.25)
                if registry.get_alias_version(config, registry.CHAMPION) == better:
                    break
        wait_for(lambda: registry.get_alias_version(config, registry.CHAMPION) == better, "the automatic promotion")
        wait_for(lambda: layer.state.base_version == better, "the speed layer on the promoted challenger")
        wait_for(lambda: manager.base_version == better, "serving on the promoted challenger")
        assert CHALLENGER not in layer.rollout.versions().values()    # it is the champion now, not beside it
    finally:
        manager.stop()
        layer.stop()
    moves = promotion.history(config)
    assert [(m["alias"], m["version"], m["decision"], m["cause"]) for m in moves][-1] == (
        registry.CHAMPION, str(better), "promote", "automatic promotion")
    runs = registry.client(config).search_runs([registry.experiment_id(config)],
                                               filter_string="tags.`headwater.cause` = 'automatic promotion'")
    assert len(runs) == 1 and runs[0].data.metrics["mean_loss_new"] < runs[0].data.metrics["mean_loss_old"]
