"""Versions on request: ?version=N answers from version N, 404 for a version not held, the version header on every
answer, each version's own UPs, the bound on loaded versions, memory per version in /metrics, one load at start."""
from __future__ import annotations

import types

import numpy as np

from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.messages import ModelNotice, encode_model_notice
from serving_layer.als_model import ALSServingModel
from serving_layer.app import create_app
from serving_layer.loaded_versions import CHALLENGER
from serving_layer.model_manager import ModelManager

USERS = [f"u{n}" for n in range(4)]
ITEMS = [f"i{n}" for n in range(30)]


def factors(seed: int) -> ALSFactors:
    rng = np.random.default_rng(seed)
    return ALSFactors(USERS, rng.normal(size=(4, 3)), ITEMS, rng.normal(size=(30, 3)), {"u0": {"i0"}},
                      ALSSettings(True, regularization=0.1))


def serving(make_config, versions=(1, 2), **overrides):
    manager = ModelManager(make_config(**overrides), ALSServingModel)
    for version in versions:
        manager.swap(ALSServingModel(factors(version), version=version), base_version=version)
    return manager, create_app(make_config(**overrides), manager).test_client()


def top(client, query: str = ""):
    answer = client.get(f"/recommend/u1?howMany=5{query}", headers={"Accept": "application/json"})
    return answer, [entry["id"] for entry in answer.get_json()] if answer.status_code == 200 else None


def test_version_on_request_answers_from_that_version_with_its_header(make_config):
    manager, client = serving(make_config)
    champion, champion_items = top(client)
    previous, previous_items = top(client, "&version=1")
    assert champion.headers["X-Headwater-Model-Version"] == "2" and previous.headers["X-Headwater-Model-Version"] == "1"
    scores = factors(1).Y @ factors(1).X[1]
    assert previous_items == [ITEMS[i] for i in np.argsort(-scores)[:5]]
    assert champion_items != previous_items
    assert top(client, "&version=2")[1] == champion_items
    assert manager.loaded_versions() == {2: "champion", 1: "previous"}


def test_unknown_version_is_404_json_and_every_answer_names_a_version(make_config):
    _, client = serving(make_config)
    missing = client.get("/recommend/u1?version=999")
    assert missing.status_code == 404 and missing.is_json
    assert missing.get_json()["loaded"] == [1, 2] and "999" in missing.get_json()["message"]
    assert missing.headers["X-Headwater-Model-Version"] == "2"
    bad = client.get("/recommend/u1?version=latest")
    assert bad.status_code == 400 and bad.is_json
    for path in ("/recommend/nobody", "/metrics", "/ready", "/item/allIDs?version=1"):
        assert client.get(path).headers.get("X-Headwater-Model-Version") in ("1", "2"), path
    assert client.get("/ready?version=999").status_code == 200      # the service's own endpoints take no version
    assert client.get("/item/allIDs?version=1").headers["X-Headwater-Model-Version"] == "1"


def test_each_version_gets_only_the_ups_of_its_own_base(make_config):
    manager, client = serving(make_config)
    manager.apply_payloads([["X", "new-on-1", [1.0, 0.0, 0.0], 0.0, {"i3": 1.0}]], base=1)
    manager.apply_payloads([["X", "new-on-2", [0.0, 1.0, 0.0], 0.0, {"i4": 1.0}]], base=2)
    assert client.get("/recommend/new-on-1?version=1").status_code == 200
    assert client.get("/recommend/new-on-1").status_code == 404
    assert client.get("/recommend/new-on-2").status_code == 200
    assert client.get("/recommend/new-on-2?version=1").status_code == 404


def test_loaded_versions_are_bounded_and_their_memory_is_in_metrics(make_config):
    manager, client = serving(make_config, versions=(1, 2, 3), **{"serving.max-loaded-versions": 3})
    assert manager.loaded_versions() == {3: "champion", 2: "previous", 1: "previous"}
    manager.versions.keep(7, CHALLENGER, ALSServingModel(factors(7), version=7))
    manager._publish_memory()
    assert manager.loaded_versions() == {3: "champion", 2: "previous", 7: "challenger"}   # the oldest went
    assert client.get("/recommend/u1?version=7").headers["X-Headwater-Model-Version"] == "7"
    assert client.get("/recommend/u1?version=1").status_code == 404
    metrics = client.get("/metrics").get_data(as_text=True)
    for version, role in ((3, "champion"), (2, "previous"), (7, "challenger")):
        line = next(x for x in metrics.splitlines()
                    if x.startswith(f'headwater_model_memory_bytes{{role="{role}",version="{version}"}}'))
        assert float(line.split()[-1]) > 30 * 3 * 4     # at least the item factors
    assert "headwater_loaded_versions 3.0" in metrics
    small, _ = serving(make_config, versions=(1, 2, 3), **{"serving.max-loaded-versions": 1})
    assert small.loaded_versions() == {3: "champion"}


def test_the_notice_of_the_version_already_served_loads_nothing(make_config):
    manager, _ = serving(make_config, versions=(2,))
    notice = types.SimpleNamespace(value=encode_model_notice(ModelNotice("m", 2, None)))
    manager.on_records([notice])
    assert not manager._load_wanted.is_set()
    manager.on_records([types.SimpleNamespace(value=encode_model_notice(ModelNotice("m", 3, None)))])
    assert manager._load_wanted.is_set()
    manager.on_records([types.SimpleNamespace(value=encode_model_notice(ModelNotice("m", 5, None, CHALLENGER)))])
    assert manager._challenger_wanted.is_set()


def test_challenger_split_is_ten_percent_of_100000_keys_and_sticky(make_config):
    from serving_layer.model_router import in_challenger_share

    chosen = np.array([in_challenger_share(f"key-{n}", 10) for n in range(100_000)])
    assert 0.095 <= chosen.mean() <= 0.105, chosen.mean()
    manager, client = serving(make_config, versions=(2,), **{"serving.routing.challenger-percent": 10})
    manager.versions.keep(7, CHALLENGER, ALSServingModel(factors(7), version=7))
    answered = {}
    for n in range(600):
        user = f"u{n % 4}" if n < 8 else f"visitor-{n}"
        version = client.get(f"/recommend/{user}").headers["X-Headwater-Model-Version"]
        assert answered.setdefault(user, version) == version      # a key's version never changes
        assert version == ("7" if in_challenger_share(user, 10) else "2")
    keyed = {client.get("/item/allIDs", headers={"X-Headwater-Key": f"device-{n}"}).headers[
        "X-Headwater-Model-Version"] for n in range(200)}
    assert keyed == {"2", "7"}
    # an explicit ?version wins over the split; without a challenger everything goes to the champion
    assert client.get("/recommend/visitor-9?version=2").headers["X-Headwater-Model-Version"] == "2"
    manager.versions.drop(7)
    assert {client.get(f"/recommend/visitor-{n}").headers["X-Headwater-Model-Version"] for n in range(100)} == {"2"}


def test_console_status_shows_versions_split_drift_and_decisions(make_config):
    manager, client = serving(make_config, **{"serving.routing.challenger-percent": 10})
    manager.metrics.set_drift(2, {"alarm": True, "rows": 1000, "worst": "strength",
                                  "features": [{"name": "strength", "score": 9.0, "p_adjusted": 1e-9}]})
    rollout = client.get("/console/status").get_json()["rollout"]
    assert [(v["version"], v["role"]) for v in rollout["loaded"]] == [(1, "previous"), (2, "champion")]
    assert all(v["memory_bytes"] > 0 for v in rollout["loaded"])
    assert rollout["challenger_percent"] == 10 and rollout["drift"]["2"]["alarm"] is True
    assert rollout["history"] == []     # fetched in the background (none recorded in this store)


def test_the_live_metric_of_each_version_under_test_has_its_version_label():
    from serving_layer.prometheus_metrics import ServingMetrics

    metrics = ServingMetrics()
    metrics.reset_prequential(2)
    metrics.add_prequential(2, 100, {"live": {"squared_error": [25.0, 100.0]},
                                     "champion": {"squared_error": [36.0, 100.0]},
                                     "live v1": {"squared_error": [16.0, 100.0]}})
    text = metrics.render().decode()
    assert 'headwater_prequential{figure="rmse",model="live",version="2"} 0.5' in text
    assert 'headwater_prequential{figure="rmse",model="live",version="1"} 0.4' in text
    assert 'headwater_prequential{figure="rmse",model="champion",version="2"} 0.6' in text
