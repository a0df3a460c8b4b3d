"""HTTPS with the two TLS keys, the context path and gzip, over real HTTP on loopback."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import requests

from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.config import ConfigError
from serving_layer.als_model import ALSServingModel
from serving_layer.app import create_app
from serving_layer.model_manager import ModelManager
from serving_layer.server import tls_files
from tests.serving_helpers import example_app, live_server
from tests.tls_helpers import self_signed_pair


def test_https_answers_with_a_self_signed_pair(make_config, tmp_path):
    cert, key = self_signed_pair(tmp_path / "tls")
    app = example_app(make_config, tmp_path, more=[f'headwater.serving.api.tls.cert-file="{cert}"',
                                                   f'headwater.serving.api.tls.key-file="{key}"'])
    with live_server(app, tls_files(app.config["HEADWATER"])) as base:
        assert base.startswith("https://")
        answer = requests.get(f"{base}/recommend/u0", headers={"Accept": "application/json"}, verify=str(cert),
                              timeout=10)
        assert answer.status_code == 200 and len(answer.json()) > 0
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{base}/ready", timeout=10)  # not a trusted certificate without verify=cert
        with pytest.raises(requests.ConnectionError):
            requests.get(base.replace("https", "http") + "/ready", timeout=10)


def test_tls_keys_must_come_together_and_load(make_config, tmp_path):
    cert, key = self_signed_pair(tmp_path / "tls")
    with pytest.raises(ConfigError, match="must be set together"):
        tls_files(make_config(**{"serving.api.tls.cert-file": str(cert)}))
    with pytest.raises(ConfigError, match="do not load"):
        tls_files(make_config(**{"serving.api.tls.cert-file": str(key), "serving.api.tls.key-file": str(key)}))


def test_context_path_moves_every_endpoint_under_it(make_config, tmp_path):
    app = example_app(make_config, tmp_path, more=['headwater.serving.api.context-path="/headwater/v1"'])
    with live_server(app) as base:
        assert requests.get(f"{base}/headwater/v1/recommend/u0", timeout=10).status_code == 200
        outside = requests.get(f"{base}/recommend/u0", timeout=10)
        assert outside.status_code == 404 and "/headwater/v1/" in outside.json()["message"]
        spec = requests.get(f"{base}/headwater/v1/openapi.json", timeout=10).json()
        assert spec["servers"] == [{"url": "/headwater/v1"}]
        assert '<base href="/headwater/v1/">' in requests.get(f"{base}/headwater/v1/", timeout=10).text
    with pytest.raises(ConfigError, match="context-path"):
        make_config(**{"serving.api.context-path": "no-slash"})


def test_large_answers_are_gzipped_for_clients_that_accept_it(make_config):
    rng = np.random.default_rng(0)
    items = [f"item-{n}" for n in range(5000)]
    manager = ModelManager(model_class=ALSServingModel)
    manager.swap(ALSServingModel(ALSFactors(["u0"], rng.normal(size=(1, 4)), items, rng.normal(size=(5000, 4)),
                                            {}, ALSSettings(True)), version=1))
    client = create_app(make_config(), manager).test_client()
    big = client.get("/item/allIDs", headers={"Accept-Encoding": "gzip"})
    assert big.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in big.headers["Vary"]
    assert gzip.decompress(big.data).decode().split() == items
    assert "Content-Encoding" not in client.get("/item/allIDs").headers  # the client did not ask
    small = client.get("/recommend/u0?howMany=3", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in small.headers and len(small.text.splitlines()) == 3
    many = client.get("/recommend/u0?howMany=4000", headers={"Accept-Encoding": "gzip, deflate"})
    assert many.headers["Content-Encoding"] == "gzip"
