"""The champion's latency with a challenger slowed by 500 ms a call in its shadow, against no shadow at all.

Prints JSON: p50/p99 of /recommend answered by the champion (in-process Flask test client, 4 threads
of requests), the p99 difference, whether the answers were byte-identical, and what the shadow did
(compared, dropped). Run under the heavy lock:
`flock /tmp/headwater-heavy.lock .venv/bin/python bench/serving_shadow.py`.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import benchlib
import numpy as np

from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.config import load_config
from serving_layer.als_model import ALSServingModel
from serving_layer.app import create_app
from serving_layer.loaded_versions import CHALLENGER
from serving_layer.model_manager import ModelManager

USERS, ITEMS, REQUESTS = 1_000, 20_000, 2_000


class SlowModel(ALSServingModel):
    def user_query(self, user):
        time.sleep(0.5)
        return super().user_query(user)


def factors(seed: int) -> ALSFactors:
    rng = np.random.default_rng(seed)
    return ALSFactors([f"u{n}" for n in range(USERS)], rng.normal(size=(USERS, 20)), [f"i{n}" for n in range(ITEMS)],
                      rng.normal(size=(ITEMS, 20)), {}, ALSSettings(True, regularization=0.1))


def run(shadow: bool) -> tuple[dict, list[bytes], ModelManager]:
    config = load_config(overrides=["headwater.id=bench", "headwater.app=als",
                                    f"headwater.serving.routing.shadow={str(shadow).lower()}"])
    manager = ModelManager(config, ALSServingModel)
    manager.swap(ALSServingModel(factors(1), version=1), base_version=1)
    manager.versions.keep(2, CHALLENGER, SlowModel(factors(2), version=2))
    client = create_app(config, manager).test_client()

    def one(n: int) -> tuple[float, bytes]:
        started = time.perf_counter()
        body = client.get(f"/recommend/u{n % USERS}?howMany=10").get_data()
        return time.perf_counter() - started, body

    for n in range(50):  # warm-up
        one(n)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(REQUESTS)))
    return benchlib.latency_ms([s for s, _ in results]), [b for _, b in results], manager


def main() -> None:
    plain, plain_answers, _ = run(shadow=False)
    shadowed, shadow_answers, manager = run(shadow=True)
    counts = {outcome: manager.metrics.shadow_requests.labels("2", outcome)._value.get()
              for outcome in ("compared", "dropped", "failed")}
    print(json.dumps({"without_shadow": plain, "with_shadow": shadowed,
                      "p99_difference_ms": round(shadowed["p99_ms"] - plain["p99_ms"], 2),
                      "answers_identical": plain_answers == shadow_answers, "challenger_delay_ms": 500,
                      "shadow": counts}, indent=1))


if __name__ == "__main__":
    main()
