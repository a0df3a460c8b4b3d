"""The ALS batch app on crafted data: biases learned in batch, the refit on all the data, and the baseline gate
refusing an ALS model that does not beat recommending the most popular items."""
from __future__ import annotations

import numpy as np
import pytest

from batch_layer.als import ALSUpdate
from batch_layer.ml_update import MLUpdate
from headwater import registry
from headwater.apps.als.factors import ALSFactors

SCHEMA = "user string, item string, strength double, event_time_ms long, partition int, offset long"


def frame(spark, rows):
    """rows: (user, item, strength, event_time_ms); offsets follow the list order."""
    return spark.createDataFrame([(u, i, float(s), int(t), 0, n) for n, (u, i, s, t) in enumerate(rows)], SCHEMA)


def test_explicit_biases_are_learned_and_the_champion_is_refit_on_all_the_data(make_config, spark, mlflow_uri):
    from mlflow import MlflowClient

    rng = np.random.default_rng(0)
    user_bias, item_bias = rng.normal(0, 0.8, 40), rng.normal(0, 0.8, 30)
    rows = []
    for t, (u, i) in enumerate(zip(rng.integers(0, 36, 1200), rng.integers(0, 30, 1200))):
        rows.append((f"u{u}", f"i{i}", np.clip(3.5 + user_bias[u] + item_bias[i] + rng.normal(0, 0.3), 0.5, 5), t))
    # four users appear only in the newest events: only a refit learns them
    for t, (u, i) in enumerate(zip(np.repeat([36, 37, 38, 39], 15), rng.integers(0, 30, 60))):
        rows.append((f"u{u}", f"i{i}", np.clip(3.5 + user_bias[u] + item_bias[i], 0.5, 5), 10_000 + t))
    config = make_config(**{"als.implicit": False, "als.hyperparams.features": [3], "als.hyperparams.lambda": [0.1],
                            "als.hyperparams.bias-lambda": [2.0], "als.iterations": 5, "ml.eval.test-fraction": 0.1})
    result = MLUpdate(ALSUpdate(config), config).run(frame(spark, rows), delta_version=0)

    assert result.promoted, result.reason  # beats biases only, the baseline
    champion = ALSFactors.load(registry.download_alias(config, "champion").path)
    assert champion.mu == pytest.approx(np.mean([r[2] for r in rows]), abs=0.01)
    learned = np.array([champion.user_bias[champion.user_index[f"u{u}"]] for u in range(40)])
    assert np.corrcoef(learned, user_bias)[0, 1] > 0.95
    newcomers = [champion.user_index[f"u{u}"] for u in (36, 37, 38, 39)]
    assert np.all(champion.user_bias[newcomers] != 0) and np.all(np.abs(champion.X[newcomers]).sum(axis=1) > 0)
    run = MlflowClient(tracking_uri=mlflow_uri).get_run(result.run_id).data
    # logged: the candidate's held-out figures, and the baseline's on the same split
    assert run.metrics["best_rmse"] == pytest.approx(result.best.metrics["rmse"])
    assert run.metrics["best_rmse"] < run.metrics["baseline_rmse"] and run.metrics["refit_rows"] > 0
    assert result.registered.tags["refit"] == "true"


def test_the_gate_refuses_an_als_model_that_does_not_beat_the_most_popular_items(make_config, spark):
    """Niche users rated only their niche in the past and turn to the blockbusters every other user watches:
    collaborative filtering recommends more niche, popularity recommends the blockbusters."""
    rows, t = [], 0
    for b, fans in enumerate([60, 50, 40, 10, 5]):  # blockbusters b0..b4, by how many mainstream users
        for u in range(fans):
            rows.append((f"main{u}", f"b{b}", 1.0, t))
            t += 1
    for u in range(20):  # niche users: half of the niche items n0..n9 each
        for n in range(5):
            rows.append((f"niche{u}", f"n{(u + n) % 10}", 1.0, t))
            t += 1
    for u in range(20):  # ... who then watch the three biggest blockbusters: the newest events, the test part
        for b in range(3):
            rows.append((f"niche{u}", f"b{b}", 1.0, t))
            t += 1
    config = make_config(**{"als.hyperparams.features": [2], "als.hyperparams.lambda": [0.1],
                            "als.iterations": 5, "ml.eval.test-fraction": 60 / len(rows), "ml.eval.refit": False})
    result = MLUpdate(ALSUpdate(config), config).run(frame(spark, rows), delta_version=0)

    assert not result.promoted and "does not beat the baseline" in result.reason, result.reason
    assert registry.get_alias_version(config, "champion") is None and result.registered is not None


def test_oryx_settings_a_scalar_features_and_test_fraction_zero_publish_a_model_of_all_the_data(make_config, spark):
    """-D headwater.als.hyperparams.features=10 and -D headwater.ml.eval.test-fraction=0, as an Oryx user
    writes them: one model of rank 10 on every event, published without an evaluation."""
    rng = np.random.default_rng(1)
    rows = [(f"u{u}", f"i{i}", 1.0, t) for t, (u, i) in enumerate(zip(rng.integers(0, 30, 400),
                                                                      rng.integers(0, 20, 400)))]
    config = make_config(**{"als.iterations": 3, "ml.eval.candidates": 3, "ml.eval.search": "grid"})
    config = config.with_overrides(["headwater.als.hyperparams.features=10", "headwater.ml.eval.test-fraction=0",
                                    "headwater.als.hyperparams.lambda={min = 0.001, max = 0.1, scale = log}"])
    result = MLUpdate(ALSUpdate(config), config).run(frame(spark, rows), delta_version=0)

    assert result.promoted and "no evaluation" in result.reason, result.reason
    assert len(result.candidates) == 1 and result.candidates[0].hyperparams["features"] == 10
    assert result.candidates[0].hyperparams["lambda"] == pytest.approx(0.01)  # the log range's middle
    champion = ALSFactors.load(registry.download_alias(config, "champion").path)
    assert champion.features == 10 and len(champion.user_ids) == len({r[0] for r in rows})
