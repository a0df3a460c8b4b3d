"""The generic serving plumbing: hot swaps under load, metrics, and the registry + update-topic path."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import mlflow.pyfunc
import numpy as np
import pytest

from headwater import registry
from headwater.als_factors import ALSFactors, FoldIn
from headwater.kafka_io import LineProducer, ensure_topics
from headwater.messages import ModelNotice, encode_model_notice, encode_up
from serving_layer.als_model import ALSServingModel
from serving_layer.app import create_app
from serving_layer.model_manager import ModelManager


def factors(seed: int, items: int = 300) -> ALSFactors:
    rng = np.random.default_rng(seed)
    return ALSFactors(["u0", "u1"], rng.normal(size=(2, 4)), [f"i{n}" for n in range(items)],
                      rng.normal(size=(items, 4)), {"u0": {"i0"}}, True)


def test_swapping_models_under_concurrent_requests_fails_no_request(make_config):
    manager = ModelManager(model_class=ALSServingModel)
    manager.swap(ALSServingModel(factors(0), version=0))
    app = create_app(make_config(), manager)
    models = [ALSServingModel(factors(seed, items=200 + seed), version=seed) for seed in range(1, 21)]
    stop = threading.Event()

    def hammer() -> list[int]:
        client, statuses = app.test_client(), []
        while not stop.is_set():
            statuses.append(client.get("/recommend/u0?howMany=5").status_code)
        return statuses

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(hammer) for _ in range(4)]
        for model in models:
            manager.swap(model)
            time.sleep(0.01)
        stop.set()
        statuses = [s for f in futures for s in f.result()]
    assert len(statuses) > 20 and set(statuses) == {200}
    assert manager.model.version == 20


def test_metrics_count_requests_and_show_the_model_version(make_config):
    manager = ModelManager(model_class=ALSServingModel)
    manager.swap(ALSServingModel(factors(0), version=5))
    client = create_app(make_config(), manager).test_client()
    client.get("/recommend/u0")
    client.get("/recommend/nobody")
    manager.apply_payloads([["X", "u5", [0.0, 0.0, 0.0, 1.0], None]])
    text = client.get("/metrics").text
    assert 'headwater_requests_total{endpoint="als.recommend",method="GET",status="200"} 1.0' in text
    assert 'headwater_requests_total{endpoint="als.recommend",method="GET",status="404"} 1.0' in text
    assert "headwater_model_version 5.0" in text
    assert "headwater_updates_applied_total 1.0" in text
    assert 'headwater_request_seconds_bucket{endpoint="als.recommend"' in text


class _Placeholder(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


def register(config, tmp_path, model: ALSFactors, name: str, tags: dict, aliases: list[str]):
    artifacts = tmp_path / name
    model.save(artifacts / "factors")
    return registry.log_and_register(config, artifacts, _Placeholder(), tags, aliases)


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.mark.integration
def test_loads_champion_with_speed_snapshot_follows_updates_and_swaps(make_config, tmp_path):
    config = make_config()
    ensure_topics(config.get("headwater.kafka.bootstrap-servers"), {config.update_topic: 1})
    champion = register(config, tmp_path, factors(1), "v1", {"layer": "batch"}, ["champion"])
    with LineProducer(config.get("headwater.kafka.bootstrap-servers")) as producer:
        # an update the snapshot already contains: the manager must start after it
        producer.send_bytes(config.update_topic, encode_up(["X", "stale", [9.0, 9.0, 9.0, 9.0], None]))
    snapshot_model = factors(1)
    snapshot_model.apply(FoldIn(["snap"], np.ones((1, 4), np.float32)))
    register(config, tmp_path, snapshot_model, "s1",
             {"layer": "speed", "base_version": champion.version, "update_offset": 1}, ["speed"])

    app = create_app(config)
    manager = app.extensions["headwater.models"]
    client = app.test_client()
    try:
        wait_for(lambda: client.get("/ready").status_code == 200)
        assert client.get("/ready").get_json()["model_version"] == champion.version + 1
        assert "snap" in client.get("/user/allIDs").text.split()
        with LineProducer(config.get("headwater.kafka.bootstrap-servers")) as producer:
            producer.send_bytes(config.update_topic, encode_up(["Y", "fresh", [1.0, 1.0, 1.0, 1.0], None]))
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
