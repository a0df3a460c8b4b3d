"""Roles and read-only, with the issue's exact -D overrides: 401 without a token, 403 for a read token's write."""
from __future__ import annotations

import base64
import logging

import pytest

from headwater.config import ConfigError
from tests.serving_helpers import example_app

READ_ONLY = ["headwater.serving.api.read-only=true"]
TOKENS = ['headwater.serving.api.read-tokens=["r1"]', 'headwater.serving.api.write-tokens=["w1"]']


def test_read_only_answers_reads_and_refuses_every_write(make_config, tmp_path):
    client = example_app(make_config, tmp_path, more=READ_ONLY).test_client()
    assert client.get("/recommend/u0").status_code == 200
    for method, path in (("POST", "/pref/u/i"), ("DELETE", "/pref/u/i"), ("POST", "/ingest")):
        answer = client.open(path, method=method, data="u1,i1,1")
        assert answer.status_code == 403, (method, path)
        assert "read-only" in answer.get_json()["message"]


@pytest.mark.parametrize("app, read, write", [("kmeans", "/assign/1.0,2.0", "/add/1.0,2.0"),
                                              ("rdf-classification", "/feature/importance", "/train")])
def test_read_only_knows_the_writes_of_every_app(make_config, tmp_path, app, read, write):
    client = example_app(make_config, tmp_path, app, more=READ_ONLY).test_client()
    assert client.get(read).status_code == 200
    assert client.post(write, data="").status_code == 403
    # a POST that only reads is no write
    assert client.post("/assign" if app == "kmeans" else "/predict", data="").status_code == 200


def test_tokens_401_without_a_valid_one_and_403_for_a_read_token_on_a_write(make_config, tmp_path, caplog):
    client = example_app(make_config, tmp_path, more=TOKENS).test_client()
    caplog.set_level(logging.DEBUG)
    answer = client.get("/recommend/u0")
    assert answer.status_code == 401 and answer.get_json()["error"] == "Unauthorized"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/recommend/u0", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/recommend/u0", headers={"Authorization": "Bearer r1"}).status_code == 200
    assert client.get("/recommend/u0", headers={"Authorization": "Bearer w1"}).status_code == 200
    refused = client.post("/pref/u/i", headers={"Authorization": "Bearer r1"})
    assert refused.status_code == 403 and "write token" in refused.get_json()["message"]
    assert client.post("/pref/u/i").status_code == 401
    # /ready and /metrics stay open for load balancers and Prometheus; so do pages without data
    assert client.get("/ready").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/").status_code == 200
    assert client.get("/console/static/console.js").status_code == 200
    assert client.get("/console/status").status_code == 401
    assert client.get("/openapi.json").status_code == 401
    assert "r1" not in caplog.text and "w1" not in caplog.text


def test_http_basic_with_oryx_keys_reads_and_writes(make_config, tmp_path):
    client = example_app(make_config, tmp_path, more=["headwater.serving.api.user-name=oryx",
                                                      "headwater.serving.api.password=pa55word",
                                                      "headwater.serving.api.read-only=true"]).test_client()
    good = "Basic " + base64.b64encode(b"oryx:pa55word").decode()
    bad = "Basic " + base64.b64encode(b"oryx:guess").decode()
    challenge = client.get("/recommend/u0").headers["WWW-Authenticate"]
    assert challenge == 'Bearer realm="headwater", Basic realm="headwater"'
    assert client.get("/recommend/u0", headers={"Authorization": bad}).status_code == 401
    assert client.get("/recommend/u0", headers={"Authorization": "Basic !!"}).status_code == 401
    assert client.get("/recommend/u0", headers={"Authorization": good}).status_code == 200
    assert client.post("/pref/u/i", headers={"Authorization": good}).status_code == 403  # read-only still


def test_the_spec_states_security_and_the_401_403_answers(make_config, tmp_path):
    client = example_app(make_config, tmp_path, more=TOKENS).test_client()
    spec = client.get("/openapi.json", headers={"Authorization": "Bearer r1"}).get_json()
    assert spec["components"]["securitySchemes"] == {"bearerAuth": {"type": "http", "scheme": "bearer"}}
    write = spec["paths"]["/pref/{user}/{item}"]["post"]
    assert write["security"] == [{"bearerAuth": []}] and {"401", "403"} <= set(write["responses"])
    assert "403" not in spec["paths"]["/recommend/{user}"]["get"]["responses"]


def test_a_bad_token_value_is_named_by_key_but_never_shown(make_config, tmp_path):
    with pytest.raises(ConfigError) as error:
        make_config().with_overrides(['headwater.serving.api.read-tokens=["s3cret", 5]'])
    assert "headwater.serving.api.read-tokens" in str(error.value) and "s3cret" not in str(error.value)
    with pytest.raises(ConfigError, match="user-name and headwater.serving.api.password must be set together"):
        example_app(make_config, tmp_path, more=["headwater.serving.api.password=x"])

