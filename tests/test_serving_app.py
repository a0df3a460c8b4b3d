"""The generic serving plumbing: hot swaps under load, metrics, and the registry + update-topic path."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from headwater.apps.als.factors import ALSFactors, ALSSettings
from serving_layer.als_model import ALSServingModel
from serving_layer.app import create_app
from serving_layer.model_manager import ModelManager


def factors(seed: int, items: int = 300) -> ALSFactors:
    rng = np.random.default_rng(seed)
    return ALSFactors(["u0", "u1"], rng.normal(size=(2, 4)), [f"i{n}" for n in range(items)],
                      rng.normal(size=(items, 4)), {"u0": {"i0"}}, ALSSettings(True))


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
    manager.apply_payloads([["X", "u5", [0.0, 0.0, 0.0, 1.0], 0.0, {}]])
    text = client.get("/metrics").text
    assert 'headwater_requests_total{endpoint="als.recommend",method="GET",status="200"} 1.0' in text
    assert 'headwater_requests_total{endpoint="als.recommend",method="GET",status="404"} 1.0' in text
    assert "headwater_model_version 5.0" in text
    assert "headwater_updates_applied_total 1.0" in text
    assert 'headwater_request_seconds_bucket{endpoint="als.recommend"' in text
