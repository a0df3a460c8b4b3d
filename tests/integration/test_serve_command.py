"""The issue's "must show", on ``headwater serve`` itself with exactly its -D overrides.

A champion registered in the sqlite MLflow store, the real broker for writes, the serving layer as
its own process: read-only answers reads and refuses writes; read and write tokens give 401, 200,
403 and 2xx; the two TLS keys with a self-signed pair serve HTTPS.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

import requests

from headwater.embedded import free_port, terminate_process_group
from tests.serving_helpers import register_example_champion
from tests.tls_helpers import self_signed_pair


def registered_champion(broker_config, tmp_path):
    config = broker_config()
    register_example_champion(config, tmp_path, {"layer": "batch"})
    return config


@contextmanager
def headwater_serve(config, tmp_path, overrides: list[str], scheme: str = "http", verify=True):
    port = free_port()
    command = [sys.executable, "-m", "headwater.cli", "serve",
               "-D", f"headwater.id={config.app_id}", "-D", "headwater.app=als",
               "-D", f'headwater.kafka.bootstrap-servers="{config.get("headwater.kafka.bootstrap-servers")}"',
               "-D", f'headwater.mlflow.tracking-uri="{config.get("headwater.mlflow.tracking-uri")}"',
               "-D", f'headwater.storage.root="{tmp_path / "data"}"', "-D", f"headwater.serving.port={port}"]
    for override in overrides:
        command += ["-D", override]
    with open(tmp_path / f"serve-{port}.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "PYTHONPATH": os.getcwd()})
    base = f"{scheme}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / f"serve-{port}.log").read_text()
            try:
                if requests.get(f"{base}/ready", timeout=2, verify=verify).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.3)
        else:
            raise AssertionError("not ready:\n" + (tmp_path / f"serve-{port}.log").read_text())
        yield base
        process.send_signal(signal.SIGTERM)  # how `make run` stops its layers
        assert process.wait(30) == 0
    finally:
        terminate_process_group(process.pid)


def test_read_only(broker_config, tmp_path):
    config = registered_champion(broker_config, tmp_path)
    with headwater_serve(config, tmp_path, ["headwater.serving.api.read-only=true"]) as base:
        assert requests.get(f"{base}/recommend/u0", timeout=10).status_code == 200
        assert requests.post(f"{base}/pref/u/i", timeout=10).status_code == 403


def test_tokens_over_https_with_a_self_signed_pair(broker_config, tmp_path):
    config = registered_champion(broker_config, tmp_path)
    cert, key = self_signed_pair(tmp_path / "tls")
    overrides = ['headwater.serving.api.read-tokens=["r1"]', 'headwater.serving.api.write-tokens=["w1"]',
                 f"headwater.serving.api.tls.cert-file={cert}", f"headwater.serving.api.tls.key-file={key}"]
    with headwater_serve(config, tmp_path, overrides, "https", str(cert)) as base:
        def call(method, path, token=None):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return requests.request(method, f"{base}{path}", headers=headers, verify=str(cert), timeout=30).status_code

        assert base.startswith("https://")
        assert call("GET", "/recommend/u0") == 401
        assert call("GET", "/recommend/u0", "r1") == 200
        assert call("POST", "/pref/u/i", "r1") == 403
        assert call("POST", "/pref/u/i", "w1") == 200
    log = "\n".join(p.read_text() for p in tmp_path.glob("serve-*.log"))
    assert log and not any(token in log for token in ('"r1"', '"w1"', "Bearer r1", "Bearer w1"))
