"""The speed layer's drift windows (tabular and ALS) and their way to serving's /metrics through BATCH records."""
from __future__ import annotations

import json
import types

import numpy as np
import pyarrow as pa

from headwater.apps.als.drift import build_als_profile
from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.drift_profile import build_profile
from headwater.messages import BatchRecord, decode_update, encode_batch
from serving_layer.model_manager import ModelManager
from speed_layer.als import ALSSpeedModel
from speed_layer.drift_watch import DriftWatch
from tests.drift_data import AlsStream


def test_windows_close_at_the_configured_size_and_the_same_distribution_rarely_alarms():
    rng = np.random.default_rng(1)
    watch = DriftWatch(window_rows=1000, alpha=0.01)
    watch.reset(4, json.loads(json.dumps(build_profile({"x": rng.normal(0, 1, 50_000),
                                                        "c": rng.choice(["a", "b"], 50_000)}, categorical=["c"]))))
    reports = [watch.add(pa.table({"x": rng.normal(0, 1, 250), "c": rng.choice(["a", "b"], 250)}))
               for _ in range(200)]
    closed = [r for r in reports if r is not None]
    assert len(closed) == 50 and [r["window"] for r in closed] == list(range(1, 51))
    assert sum(r["alarm"] for r in closed) <= 2
    shifted = watch.add(pa.table({"x": rng.normal(0.5, 1, 1000), "c": rng.choice(["a", "b"], 1000)}))
    assert shifted["alarm"] and shifted["worst"] == "x" and watch.mlflow_metrics()["drift.alarm"] == 1.0


def test_no_profile_means_no_alarms():
    watch = DriftWatch(window_rows=10)
    watch.reset(1, None)
    assert watch.add(pa.table({"x": np.arange(100.0)})) is None


def test_als_windows_use_the_ids_the_live_model_knew_at_the_window_start():
    stream = AlsStream(np.random.default_rng(3))
    tu, ti, tr = stream.take(20_000)
    hu, hi, _ = stream.take(3_000)
    users, items = sorted(set(map(str, np.concatenate([tu, hu])))), sorted(set(map(str, np.concatenate([ti, hi]))))
    rng = np.random.default_rng(0)
    live = ALSSpeedModel.from_factors(ALSFactors(users, rng.normal(size=(len(users), 2)), items,
                                                 rng.normal(size=(len(items), 2)), {}, ALSSettings(False)))
    watch = DriftWatch(window_rows=2000, alpha=0.01)
    watch.reset(2, build_als_profile(tu, ti, tr, hu, hi))

    def window(source):
        u, i, r = source.take(2000)
        return pa.table({"user": u.astype(str), "item": i.astype(str), "strength": r,
                         "event_time_ms": np.zeros(2000, np.int64)})

    assert not watch.add(window(stream), live)["alarm"]
    campaign = AlsStream(np.random.default_rng(9), new_user=0.3)
    campaign.next_user = 10**9
    report = watch.add(window(campaign), live)
    assert report["alarm"] and report["worst"] == "new_user"


def test_a_batch_records_drift_report_reaches_serving_metrics():
    report = {"alarm": True, "rows": 1000, "worst": "x", "version": 5, "window": 3,
              "features": [{"name": "x", "score": 7.5, "p_adjusted": 3e-8}]}
    raw = encode_batch(BatchRecord(5, {0: 10}, 10, {}, drift=report))
    assert decode_update(raw).payload.drift == report
    manager = ModelManager()
    manager.on_records([types.SimpleNamespace(value=raw)])
    text = manager.metrics.render().decode()
    assert 'headwater_drift_alarm{version="5"} 1.0' in text
    assert 'headwater_drift_score{feature="x",version="5"} 7.5' in text
    assert manager.metrics.drift_reports[5]["window"] == 3
