"""The latency guard: a new champion that answers far slower than the one it replaced is rolled back."""
from __future__ import annotations

import time

from headwater import promotion, registry
from headwater.kafka_admin import ensure_topics
from serving_layer.als_model import ALSServingModel
from serving_layer.app import create_app
from serving_layer.model_manager import ModelManager
from tests.integration.test_rollout_commands import register
from tests.integration.test_speed_layer import wait_for
from tests.test_model_router import factors


class SlowModel(ALSServingModel):
    # far beyond 3 x the fast model's p99 even when a busy machine stretches that p99 to tens of milliseconds
    def user_query(self, user):
        time.sleep(0.1)
        return super().user_query(user)


def test_a_champion_with_a_p99_three_times_its_predecessors_is_rolled_back(broker_config, tmp_path):
    config = broker_config(**{"rollout.latency-guard.enabled": True, "rollout.latency-guard.window": 50})
    ensure_topics(config.kafka, {config.input_topic: 1, config.update_topic: 1})
    first, second = (register(config, tmp_path, seed, "passed") for seed in (1, 2))
    promotion.move_alias(config, registry.CHAMPION, first, promotion.CAUSE_BATCH, "gate")
    manager = ModelManager(config, ALSServingModel)
    client = create_app(config, manager).test_client()
    manager.swap(ALSServingModel(factors(1), version=first), base_version=first)
    for n in range(60):
        assert client.get(f"/recommend/u{n % 4}").status_code == 200
    promotion.move_alias(config, registry.CHAMPION, second, promotion.CAUSE_OPERATOR, "a slow one")
    manager.swap(SlowModel(factors(2), version=second), base_version=second)
    for n in range(49):
        client.get(f"/recommend/u{n % 4}")
    assert registry.get_alias_version(config, registry.CHAMPION) == second   # not a full window yet
    client.get("/recommend/u0")
    wait_for(lambda: registry.get_alias_version(config, registry.CHAMPION) == first, "the latency guard's rollback",
             timeout=30)
    last = promotion.history(config)[-1]
    assert (last["decision"], last["cause"], last["version"]) == ("rollback", "latency guard", str(first))
    assert "p99" in last["reason"]
