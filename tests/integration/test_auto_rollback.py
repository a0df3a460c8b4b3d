"""A deliberately bad version forced over a good champion (as `headwater promote` does) is rolled back by the
speed layer's sequential test within 2,000 live events, though the speed layer is restarted half-way (the
test resumes from the last BATCH record); meanwhile the previous champion learns beside it and publishes its
UPs under its own version; the decision is an MLflow run tagged headwater.decision = rollback, the previous
champion's live metric is in its own MLflow run, and `headwater history` shows the three moves."""
from __future__ import annotations

import time

import numpy as np

from headwater import promotion, registry
from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.apps.als.pyfunc import ALSPyfuncModel
from headwater.kafka_admin import ensure_topics
from headwater.kafka_producer import LineProducer
from headwater.messages import MessageType
from speed_layer.rollout import PREVIOUS
from speed_layer.runner import SpeedLayer
from tests.integration.test_batch_als import read_notices
from tests.integration.test_speed_layer import TIMEOUT, wait_for

USERS, ITEMS, FEATURES = 1000, 1000, 4
EVENTS = 2_000


def factors(rng, scale: float) -> ALSFactors:
    return ALSFactors([f"u{n}" for n in range(USERS)], rng.normal(0, scale, (USERS, FEATURES)),
                      [f"i{n}" for n in range(ITEMS)], rng.normal(0, scale, (ITEMS, FEATURES)), {},
                      ALSSettings(False, regularization=0.1, bias_regularization=2.0), mu=3.5,
                      user_bias=rng.normal(0, 0.3, USERS), item_bias=rng.normal(0, 0.3, ITEMS))


def rated_by(truth: ALSFactors, events: int, seed: int = 3) -> list[str]:
    """Input lines of random (user, item) pairs rated as ``truth`` estimates them, with noise."""
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, USERS, events), rng.integers(0, ITEMS, events)
    ratings = np.clip(truth.estimates(users, items) + rng.normal(0, 0.3, events), 0.5, 5.0)
    return [f"u{u},i{i},{r:.2f}" for u, i, r in zip(users, items, ratings)]


def register(config, tmp_path, model: ALSFactors, name: str) -> int:
    model.save(tmp_path / name)
    return registry.log_and_register(config, tmp_path / name, ALSPyfuncModel(), {"layer": "batch"},
                                     aliases=[]).version


def test_a_bad_version_forced_by_the_operator_is_rolled_back_within_2000_events(broker_config, spark, tmp_path):
    config = broker_config(**{"als.implicit": False, "speed.trigger-interval-sec": 0.5,
                            "speed.snapshot-interval-sec": 600, "kafka.poll-timeout-ms": 200})
    bootstrap = config.get("headwater.kafka.bootstrap-servers")
    ensure_topics(bootstrap, {config.input_topic: 1, config.update_topic: 1})
    truth = factors(np.random.default_rng(1), 0.5)
    good = register(config, tmp_path, truth, "good")
    promotion.move_alias(config, registry.CHAMPION, good, promotion.CAUSE_BATCH, "the gate passed it")
    layer = SpeedLayer(config).start()
    try:
        assert layer.wait_ready(TIMEOUT), "the speed layer did not load the champion"
        bad = register(config, tmp_path, factors(np.random.default_rng(2), 0.5), "bad")
        promotion.move_alias(config, registry.CHAMPION, bad, promotion.CAUSE_OPERATOR, "forced for the test")
        wait_for(lambda: layer.state.base_version == bad, "the speed layer on the forced version")
        lines = rated_by(truth, EVENTS)
        with LineProducer(bootstrap) as producer:
            for start in range(0, EVENTS, 100):
                if start == 300:   # the test has seen some events, not enough to decide: restart the layer
                    wait_for(lambda state=layer.state: state.covered.get(0, 0) >= 300, "the first 300 events folded")
                    before = layer.rollout.beside[PREVIOUS].test.state["events"]
                    assert 0 < before and layer.rollout.beside[PREVIOUS].test.decision is None
                    layer.stop()
                    layer = SpeedLayer(config).start()
                    assert layer.wait_ready(TIMEOUT), "the restarted speed layer did not resume"
                    resumed = layer.rollout.beside[PREVIOUS]
                    assert (resumed.own_version, resumed.test.state["events"]) == (good, before)
                producer.send_lines(config.input_topic, lines[start:start + 100])
                producer.flush()
                time.sleep(0.25)
        wait_for(lambda: registry.get_alias_version(config, registry.CHAMPION) == good, "the automatic rollback")
        wait_for(lambda: layer.state.base_version == good, "the speed layer back on the good version")
    finally:
        layer.stop()
    mlflow_client = registry.client(config)
    runs = mlflow_client.search_runs([registry.experiment_id(config)],
                                     filter_string="tags.`headwater.decision` = 'rollback'")
    assert len(runs) == 1
    run = runs[0]
    metrics, params = run.data.metrics, run.data.params
    print(f"decision run {run.info.run_name!r}: {metrics}")
    assert run.data.tags["headwater.cause"] == "automatic rollback"
    assert params["version_new"] == str(bad) and params["version_old"] == str(good) and params["mode"] == "rollback"
    assert metrics["decided_at_event"] <= EVENTS and metrics["mean_loss_new"] > metrics["mean_loss_old"]
    assert metrics["e_value"] >= metrics["threshold_e_value"] == 100.0
    assert "sequential_test.json" in [a.path for a in mlflow_client.list_artifacts(run.info.run_id)]
    # while the test ran on the bad champion, its BATCH records carried the good one's live metric beside it
    messages = [m for m in read_notices(bootstrap, config.update_topic) if m is not None]
    batches = [m.payload for m in messages if m.type is MessageType.BATCH and m.payload.base_version == bad
               and m.payload.scores]
    assert batches and f"live v{good}" in batches[0].scores
    # ... and the previous champion's own UPs, for the serving layer's copy of it, between the two moves
    during = messages[messages.index(next(m for m in messages if m.type is MessageType.MODEL and
                                          m.payload.version == bad)):]
    assert any(m.type is MessageType.UP and m.base_version == good for m in during)
    live_runs = mlflow_client.search_runs([registry.experiment_id(config)],
                                          filter_string=f"tags.`{registry.TAG_LIVE_EVALUATION}` = '{good}'")
    assert any(f"beside_v{bad}_live_rmse" in run.data.metrics for run in live_runs)
    moves = promotion.history(config)
    assert [(m["version"], m["decision"], m["cause"]) for m in moves] == [
        (str(good), "promote", "batch gate"), (str(bad), "promote", "operator"),
        (str(good), "rollback", "automatic rollback")]
    for move in moves:
        print(promotion.describe_move(move))
