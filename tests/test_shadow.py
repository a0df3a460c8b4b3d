"""Shadow traffic: a challenger slowed by 500 ms a call changes nothing in the champion's answers; the queue is
bounded (dropped work counted, never waited for) and the comparison per version is in /metrics."""
from __future__ import annotations

import time

import numpy as np

from serving_layer.als_model import ALSServingModel
from serving_layer.app import create_app
from serving_layer.loaded_versions import CHALLENGER
from serving_layer.model_manager import ModelManager
from tests.test_model_router import factors

SLOW_SEC = 0.5


class SlowModel(ALSServingModel):
    """A challenger that takes 500 ms for every user it is asked about."""

    def user_query(self, user):
        time.sleep(SLOW_SEC)
        return super().user_query(user)


def app_with(make_config, shadow: bool, queue: int = 4):
    overrides = {"serving.routing.shadow": shadow, "serving.routing.shadow-queue": queue}
    manager = ModelManager(make_config(**overrides), ALSServingModel)
    manager.swap(ALSServingModel(factors(2), version=2), base_version=2)
    manager.versions.keep(7, CHALLENGER, SlowModel(factors(7), version=7))
    return create_app(make_config(**overrides), manager).test_client()


def answers(client, requests: int = 40):
    out, seconds = [], []
    for n in range(requests):
        started = time.perf_counter()
        answer = client.get(f"/recommend/u{n % 4}?howMany=5")
        seconds.append(time.perf_counter() - started)
        out.append((answer.headers["X-Headwater-Model-Version"], answer.get_data()))
    return out, seconds


def test_a_slow_challenger_in_the_shadow_leaves_the_champions_answers_as_they_were(make_config):
    plain, _ = answers(app_with(make_config, shadow=False))
    client = app_with(make_config, shadow=True)
    shadowed, seconds = answers(client)
    assert shadowed == plain and {v for v, _ in shadowed} == {"2"}
    # 40 requests in far less than one slow call each: nothing waited for the challenger
    assert sum(seconds) < 40 * SLOW_SEC / 4
    time.sleep(2 * SLOW_SEC + 0.3)
    metrics = client.get("/metrics").get_data(as_text=True)
    counts = {outcome: float(line.split()[-1]) for line in metrics.splitlines()
              for outcome in ("compared", "dropped")
              if line.startswith(f'headwater_shadow_requests_total{{outcome="{outcome}",version="7"}}')}
    assert counts["dropped"] >= 40 - 4 - 3 and counts["compared"] >= 1, counts
    overlap = next(line for line in metrics.splitlines()
                   if line.startswith('headwater_shadow_measure{measure="overlap_at_k",version="7"}'))
    assert 0.0 <= float(overlap.split()[-1]) <= 1.0


def test_same_model_in_the_shadow_agrees_completely(make_config):
    manager = ModelManager(make_config(**{"serving.routing.shadow": True}), ALSServingModel)
    manager.swap(ALSServingModel(factors(2), version=2), base_version=2)
    manager.versions.keep(7, CHALLENGER, ALSServingModel(factors(2), version=7))
    client = create_app(make_config(**{"serving.routing.shadow": True}), manager).test_client()
    for n in range(4):
        client.get(f"/recommend/u{n}?howMany=5")
        client.get(f"/estimate/u{n}/i1/i2", headers={"Accept": "application/json"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and manager.metrics.shadow_requests.labels("7", "compared")._value.get() < 8:
        time.sleep(0.05)
    assert manager.metrics.shadow_measure.labels("7", "overlap_at_k")._value.get() == 1.0
    assert np.isclose(manager.metrics.shadow_measure.labels("7", "abs_difference")._value.get(), 0.0)
