"""Serving benchmark: /recommend over real HTTP on a 1,000,000 items × 50 features model.

Starts the serving app in a subprocess (waitress, 8 threads) on a synthetic ALS model registered
nowhere: the model is handed straight to the model manager, so the measurement is the serving
path alone. Prints one JSON object: p50/p99 latency
and queries/s for 1 and 4 concurrent clients, the server's RSS and the raw factor bytes.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
from benchlib import latency_ms, rss_bytes, server_process  # also puts the checkout on sys.path

ITEMS, USERS, FEATURES = 1_000_000, 10_000, 50
DURATION_SEC = 20.0

SERVER = r'''
import sys
from waitress import serve
from headwater.apps.als.factors import ALSFactors
from headwater.config import load_config
from serving_layer.als_model import ALSServingModel
from serving_layer.app import create_app
from serving_layer.model_manager import ModelManager

manager = ModelManager(model_class=ALSServingModel)
manager.swap(ALSServingModel(ALSFactors.load(sys.argv[1]), version=1))
config = load_config(overrides=["headwater.id=bench", "headwater.app=als"])
print("ready", flush=True)
serve(create_app(config, manager), host="127.0.0.1", port=int(sys.argv[2]), threads=8, _quiet=True)
'''


def make_model(directory: Path) -> int:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((USERS, FEATURES), dtype=np.float32)
    Y = rng.standard_normal((ITEMS, FEATURES), dtype=np.float32)
    known = {f"u{u}": {f"i{i}" for i in rng.integers(0, ITEMS, 20)} for u in range(USERS)}
    from headwater.apps.als.factors import ALSFactors, ALSSettings

    ALSFactors([f"u{u}" for u in range(USERS)], X, [f"i{i}" for i in range(ITEMS)], Y, known,
               ALSSettings(True)).save(directory)
    return X.nbytes + Y.nbytes


def run_clients(port: int, clients: int) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + DURATION_SEC / 2

    def client(seed: int) -> None:
        session, rng, mine = requests.Session(), np.random.default_rng(seed), []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = session.get(f"http://127.0.0.1:{port}/recommend/u{rng.integers(USERS)}?howMany=10")
            mine.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
        with lock:
            latencies.extend(mine)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    return {"clients": clients, **latency_ms(latencies), "qps": round(len(latencies) / elapsed, 1)}


def main() -> None:

    with tempfile.TemporaryDirectory() as scratch:
        raw = make_model(Path(scratch) / "factors")
        blas_threads = os.environ.get("OPENBLAS_NUM_THREADS", "1")
        with server_process(SERVER, str(Path(scratch) / "factors"), env={"OPENBLAS_NUM_THREADS": blas_threads}) \
                as (server, port):
            for _ in range(20):  # warm-up
                requests.get(f"http://127.0.0.1:{port}/recommend/u1?howMany=10")
            results = [run_clients(port, n) for n in (1, 4)]
            rss = rss_bytes(server.pid)
    print(json.dumps({"bench": "serving_als", "items": ITEMS, "features": FEATURES, "users": USERS,
                      "blas_threads": blas_threads, "results": results,
                      "rss_mb": round(rss / 2**20, 1), "raw_factor_mb": round(raw / 2**20, 1),
                      "rss_over_raw": round(rss / raw, 2)}))


if __name__ == "__main__":
    main()
