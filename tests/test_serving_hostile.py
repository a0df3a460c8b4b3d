"""Hostile requests against every app's endpoints: a 4xx or a known 503 with the JSON error shape, never a 500.

Each app serves its contract-check example model; Kafka points at a dead port, so writes that pass
validation answer 503 (Kafka unavailable) quickly (``headwater.serving.write-timeout-sec`` = 0.1).
"""
from __future__ import annotations

import gzip
import sys
import tracemalloc
import types
import urllib.parse
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.app_checks import HOSTILE_LINES
from headwater.apps import find_app
from headwater.config import load_config
from headwater.registry import RegisteredModel
from serving_layer.app import create_app
from serving_layer.model_manager import ModelManager

APPS = ["als", "kmeans", "rdf-classification", "rdf-regression"]
SEGMENTS = ["u0", "i0", "0", "1", "-1", "²", "1e999", "nan", "=", "=1", "a=b", "[" * 3000, "x" * 5000, "\x00",
            "%", "..", ".", "1,2", "0.5,0.2", "a,1,2,3,red,yes", "true", "é", "\ud800", " "]
PARAMS = ["howMany", "offset", "considerKnownItems", "rescorerParams", "x"]
VALUES = ["1", "0", "-1", "²", "10000000000000000000000", "true", "maybe", "", "1e3", "99999"]


@pytest.fixture(scope="module")
def clients(tmp_path_factory, mlflow_uri):
    from tests.conftest import NO_BROKER

    built = {}
    for name in APPS:
        app = find_app(name)
        example = app.resolve("example")()
        directory = tmp_path_factory.mktemp(name.replace("-", "_"))
        example.state.save(directory)
        model = app.resolve("serving_model").from_registered(RegisteredModel(name, 1, directory))
        manager = ModelManager(model_class=type(model))
        manager.swap(model)
        overrides = {**example.config_overrides, "id": f"hostile-{name}", "app": name,
                     "kafka.bootstrap-servers": NO_BROKER, "mlflow.tracking-uri": mlflow_uri,
                     "serving.write-timeout-sec": 0.1, "serving.max-body-bytes": 100_000,
                     "serving.max-inflated-bytes": 1_000_000}
        config = load_config(overrides=[f"headwater.{k}={_hocon(v)}" for k, v in overrides.items()])
        flask_app = create_app(config, manager)
        rules = [(r.rule, sorted(r.methods - {"HEAD", "OPTIONS"})) for r in flask_app.url_map.iter_rules()
                 if r.endpoint != "static"]
        built[name] = (flask_app.test_client(), rules)
    return built


def _hocon(value) -> str:
    import json

    return json.dumps(value)


def fill(rule: str, draw) -> str:
    """``rule`` with every ``<converter:name>`` replaced by drawn, percent-encoded segments."""
    out = []
    for part in rule.split("/"):
        if part.startswith("<"):
            count = draw(st.integers(0, 3)) if part.startswith("<path:") else 1
            part = "/".join(urllib.parse.quote(draw(segment).encode("utf-8", "surrogatepass"), safe="")
                            for _ in range(count))
        out.append(part)
    return "/".join(out)


segment = st.one_of(st.sampled_from(SEGMENTS), st.text(max_size=20))
body = st.one_of(st.binary(max_size=300), st.lists(st.sampled_from(HOSTILE_LINES[:-1] + SEGMENTS), max_size=5)
                 .map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass")))


@settings(max_examples=5 * settings.default.max_examples)
@given(st.sampled_from(APPS), st.data())
def test_no_request_gets_a_500(clients, app, data):
    client, rules = clients[app]
    rule, methods = data.draw(st.sampled_from(rules))
    method = data.draw(st.sampled_from(methods))
    path = fill(rule, data.draw)
    query = data.draw(st.dictionaries(st.sampled_from(PARAMS), st.sampled_from(VALUES), max_size=3))
    headers = {"Accept": data.draw(st.sampled_from(["text/csv", "application/json", "*/*", "x/y;q=bad"]))}
    payload = b""
    if method in ("POST", "PUT"):
        payload = data.draw(body)
        encoding = data.draw(st.sampled_from([None, "gzip", "deflate", "br", "gzip, gzip"]))
        if encoding in ("gzip", "deflate") and data.draw(st.booleans()):
            payload = gzip.compress(payload) if encoding == "gzip" else zlib.compress(payload)
        if encoding:
            headers["Content-Encoding"] = encoding
    response = client.open(path, method=method, query_string=query, headers=headers, data=payload)
    assert response.status_code != 500, (method, path, query, response.get_data(as_text=True)[:300])
    if response.status_code >= 400:
        error = response.get_json()
        assert set(error) >= {"error", "message"}, (path, response.get_data(as_text=True)[:300])
    if response.status_code >= 500:
        assert response.status_code == 503


def als_client(make_config, **overrides):
    from serving_layer.als_model import ALSServingModel
    from tests.test_serving_als import small_factors

    manager = ModelManager(model_class=ALSServingModel)
    manager.swap(ALSServingModel(small_factors(), version=3))
    return create_app(make_config(**overrides), manager).test_client()


def test_a_gzip_bomb_is_refused_without_inflating_it(make_config):
    client = als_client(make_config, **{"serving.max-inflated-bytes": 1_000_000})
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"\0" * (1 << 20)
    bomb = b"".join(compressor.compress(zeros) for _ in range(256)) + compressor.flush()  # 256 MiB inflated
    assert len(bomb) < 300_000
    tracemalloc.start()
    try:
        response = client.post("/ingest", data=bomb, headers={"Content-Encoding": "gzip"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413
    assert response.get_json()["message"] == ("the gzip body inflates to more bytes, more than 1000000 "
                                              "(headwater.serving.max-inflated-bytes)")
    assert peak < 12_000_000  # the body, the 1 MB that was inflated and a few copies; not 256 MiB


def test_bodies_over_the_limit_are_413_with_the_json_shape(make_config):
    client = als_client(make_config, **{"serving.max-body-bytes": 1000})
    response = client.post("/ingest", data=b"u1,i1\n" * 500)
    assert response.status_code == 413 and response.get_json()["error"] == "Request Entity Too Large"
    assert client.post("/ingest", data=b"garbage", headers={"Content-Encoding": "gzip"}).status_code == 400
    truncated = gzip.compress(b"u1,i1\n" * 10)[:-12]
    assert client.post("/ingest", data=truncated, headers={"Content-Encoding": "gzip"}).status_code == 400
    assert client.post("/ingest", data=b"x", headers={"Content-Encoding": "br"}).status_code == 415


def test_writes_are_checked_by_the_input_format_before_anything_is_sent(make_config):
    client = als_client(make_config, **{"serving.write-timeout-sec": 0.1})
    long_user = client.post("/pref/" + "[" * 3000 + "/i1")
    assert long_user.status_code == 400
    assert "user is longer than 256 characters" in long_user.get_json()["message"]
    assert client.post("/pref/u1/i1", data="1e300").status_code == 400
    rejected = client.post("/ingest", data="u1,i1\n" + "[" * 3000 + "\nu1,i1,1,99999999999999999999\n")
    assert rejected.status_code == 400
    assert [r["reason"][:26] for r in rejected.get_json()["rejected"]] == ["nested too deeply to parse",
                                                                          "timestamp must be in [0, 4"]
    # a valid line with Kafka away: 503 naming the condition, not a 500 nor the broker's address
    unavailable = client.post("/pref/[u/i1", data="2")
    assert unavailable.status_code == 503
    assert unavailable.get_json()["message"].startswith("Kafka is unavailable")
    assert "127.0.0.1" not in unavailable.get_data(as_text=True)


def test_a_500_names_an_error_id_not_the_exception(make_config, caplog):
    module = types.ModuleType("secret_rescorer")

    def rescore(user, ids, scores, params):
        raise RuntimeError("password=hunter2 at /srv/secret/path")

    module.rescore = rescore
    sys.modules["secret_rescorer"] = module
    try:
        client = als_client(make_config, **{"serving.rescorer": "secret_rescorer:rescore"})
        response = client.get("/recommend/u0")
    finally:
        del sys.modules["secret_rescorer"]
    assert response.status_code == 500
    body = response.get_json()
    assert "hunter2" not in response.get_data(as_text=True) and "secret" not in body["message"]
    assert body["error_id"] in body["message"]
    assert any(body["error_id"] in r.getMessage() and r.exc_info for r in caplog.records)


def test_numbers_that_pass_isdigit_but_not_int_are_400(make_config):
    from headwater.apps.forest.example import random_forest_model, small_schema
    from serving_layer.random_forest import RandomForestServingModel

    manager = ModelManager(model_class=RandomForestServingModel)
    manager.swap(RandomForestServingModel(random_forest_model("classification")))
    client = create_app(make_config(app="rdf-classification", **small_schema("classification")), manager).test_client()
    for number in ("²", "١٢٣", "99999999999999999999", "-1"):
        response = client.get("/feature/importance/" + urllib.parse.quote(number))
        assert response.status_code == 400, number
        assert response.get_json()["parameter"] == "featureNumber"
    assert client.get("/feature/importance/0").status_code == 200
