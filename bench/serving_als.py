"""Serving benchmark: /recommend over real HTTP(S) on a 1,000,000 items × 50 features model.

Starts the serving app in a subprocess (8 threads) on a synthetic ALS model registered nowhere:
the model is handed straight to the model manager, so the measurement is the serving path alone.
Prints one JSON object: p50/p99 latency and queries/s for 1 and 4 concurrent clients, the
server's RSS (all its processes) and the raw factor bytes.

``--server`` picks the WSGI server: ``cheroot`` (headwater's, :mod:`serving_layer.server`), or for
comparison ``waitress`` (no TLS) and ``gunicorn`` (one gthread worker holding the model);
``--tls`` serves HTTPS with a self-signed pair.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
from benchlib import latency_ms, rss_bytes, server_process  # also puts the checkout on sys.path

from tests.tls_helpers import self_signed_pair

ITEMS, USERS, FEATURES = 1_000_000, 10_000, 50
DURATION_SEC = 20.0

SERVER = r'''
import sys
from headwater.apps.als.factors import ALSFactors
from headwater.config import load_config
from serving_layer.als_model import ALSServingModel
from serving_layer.app import create_app
from serving_layer.model_manager import ModelManager

factors, kind, cert, key, port = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
tls = (cert, key) if cert else None


def make_app():
    manager = ModelManager(model_class=ALSServingModel)
    manager.swap(ALSServingModel(ALSFactors.load(factors), version=1))
    return create_app(load_config(overrides=["headwater.id=bench", "headwater.app=als"]), manager)


if kind == "cheroot":
    from serving_layer.server import HTTPServer

    server = HTTPServer(make_app(), "127.0.0.1", port, tls, threads=8)
    print("ready", flush=True)
    server.serve_forever()
elif kind == "waitress":
    from waitress import serve

    app = make_app()
    print("ready", flush=True)
    serve(app, host="127.0.0.1", port=port, threads=8, _quiet=True)
else:
    from gunicorn.app.base import BaseApplication

    class One(BaseApplication):
        def load_config(self):
            settings = dict(bind=f"127.0.0.1:{port}", workers=1, worker_class="gthread", threads=8,
                            loglevel="warning", timeout=120)
            if tls:
                settings.update(certfile=cert, keyfile=key)
            for name, value in settings.items():
                self.cfg.set(name, value)

        def load(self):
            return make_app()  # in the worker, after the fork: only the worker holds the model

    print("ready", flush=True)
    One().run()
'''


def make_model(directory: Path) -> int:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((USERS, FEATURES), dtype=np.float32)
    Y = rng.standard_normal((ITEMS, FEATURES), dtype=np.float32)
    known = {f"u{u}": {f"i{i}" for i in rng.integers(0, ITEMS, 20)} for u in range(USERS)}
    from headwater.apps.als.factors import ALSFactors

    ALSFactors([f"u{u}" for u in range(USERS)], X, [f"i{i}" for i in range(ITEMS)], Y, known, True).save(directory)
    return X.nbytes + Y.nbytes


def run_clients(base: str, clients: int, verify) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + DURATION_SEC / 2

    def client(seed: int) -> None:
        session, rng, mine = requests.Session(), np.random.default_rng(seed), []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = session.get(f"{base}/recommend/u{rng.integers(USERS)}?howMany=10", verify=verify)
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


def process_tree_rss(pid: int) -> int:
    """RSS of a process and its children (gunicorn's master and worker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return rss_bytes(pid) + sum(process_tree_rss(int(child)) for child in children)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("cheroot", "waitress", "gunicorn"), default="cheroot")
    parser.add_argument("--tls", action="store_true")
    args = parser.parse_args()
    if args.tls and args.server == "waitress":
        parser.error("waitress cannot serve HTTPS")
    with tempfile.TemporaryDirectory() as scratch:
        raw = make_model(Path(scratch) / "factors")
        cert, key = self_signed_pair(Path(scratch) / "tls") if args.tls else ("", "")
        blas_threads = os.environ.get("OPENBLAS_NUM_THREADS", "1")
        with server_process(SERVER, str(Path(scratch) / "factors"), args.server, str(cert), str(key),
                            env={"OPENBLAS_NUM_THREADS": blas_threads}, scheme="https" if args.tls else "http",
                            verify=str(cert) if args.tls else True) as (server, port):
            base = f"{'https' if args.tls else 'http'}://127.0.0.1:{port}"
            verify = str(cert) if args.tls else True
            for _ in range(20):  # warm-up
                requests.get(f"{base}/recommend/u1?howMany=10", verify=verify)
            results = [run_clients(base, n, verify) for n in (1, 4)]
            rss = process_tree_rss(server.pid)
    print(json.dumps({"bench": "serving_als", "server": args.server, "tls": args.tls, "items": ITEMS,
                      "features": FEATURES, "users": USERS, "blas_threads": blas_threads, "results": results,
                      "rss_mb": round(rss / 2**20, 1), "raw_factor_mb": round(raw / 2**20, 1),
                      "rss_over_raw": round(rss / raw, 2)}))


if __name__ == "__main__":
    main()
