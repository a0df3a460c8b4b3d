"""Serving benchmark: /recommend over real HTTP(S) on a 1,000,000 items × 50 features model, exact and ANN.

Starts the serving app in a subprocess (8 threads) on a synthetic ALS model registered nowhere: the
model is handed straight to the model manager, so the measurement is the serving path alone. Each
mode gets its own server: ``exact`` (``headwater.serving.ann.enabled=false``: grouped exact scoring)
and ``ann`` (the PQ fast-scan codes with exact re-rank, measured once they are built). Prints one
JSON object with a ``results`` entry per (mode, clients): p50/p99 latency and queries/s, for ann
also ``recall_at_10`` against the exact server's answers for the same users; plus each server's RSS
(all its processes) over the raw factor bytes (``rss_over_raw`` for exact, ``rss_over_raw_ann`` with
the ANN codes), and ``http_ceiling_ready``: what ``/ready`` sustains over the same HTTP stack and
clients, the ceiling of any top-N path on this machine.

``--server`` picks the WSGI server: ``cheroot`` (headwater's, :mod:`serving_layer.server`), or for
comparison ``waitress`` (no TLS) and ``gunicorn`` (one gthread worker holding the model);
``--tls`` serves HTTPS with a self-signed pair.

    python bench/serving_als.py [--modes exact,ann] [--clients 1,4,8] [--duration 20] [--items 1000000]
                                [--server cheroot|waitress|gunicorn] [--tls]
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
RECALL_USERS = 300

SERVER = r'''
import sys, time
from pathlib import Path
from headwater.apps.als.factors import ALSFactors
from headwater.config import load_config
from serving_layer.als_model import ALSServingModel
from serving_layer.app import create_app
from serving_layer.item_ranking import RankingSettings
from serving_layer.model_manager import ModelManager

factors, mode, info, kind, cert, key, port = sys.argv[1:8]
port, tls = int(port), ((cert, key) if cert else None)


def make_app():
    config = load_config(overrides=["headwater.id=bench", "headwater.app=als",
                                    f"headwater.serving.ann.enabled={'true' if mode == 'ann' else 'false'}",
                                    "headwater.serving.ann.min-items=1"])
    manager = ModelManager(model_class=ALSServingModel)
    started = time.monotonic()
    model = ALSServingModel(ALSFactors.load(factors), version=1, ranking=RankingSettings.from_config(config))
    while mode == "ann" and not model.ranker.approximate.ready:
        time.sleep(0.5)
    Path(info).write_text(str(round(time.monotonic() - started, 1)))
    manager.swap(model)
    return create_app(config, manager)


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
                            loglevel="warning", timeout=600)
            if tls:
                settings.update(certfile=cert, keyfile=key)
            for name, value in settings.items():
                self.cfg.set(name, value)

        def load(self):
            return make_app()  # in the worker, after the fork: only the worker holds the model

    print("ready", flush=True)
    One().run()
'''


def make_model(directory: Path, items: int) -> int:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((USERS, FEATURES), dtype=np.float32)
    Y = rng.standard_normal((items, FEATURES), dtype=np.float32)
    known = {f"u{u}": {f"i{i}" for i in rng.integers(0, items, 20)} for u in range(USERS)}
    from headwater.apps.als.factors import ALSFactors, ALSSettings

    ALSFactors([f"u{u}" for u in range(USERS)], X, [f"i{i}" for i in range(items)], Y, known,
               ALSSettings(True)).save(directory)
    return X.nbytes + Y.nbytes


def run_clients(base: str, clients: int, seconds: float, verify, path: str = "/recommend/u{user}?howMany=10") -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(seed: int) -> None:
        session, rng, mine = requests.Session(), np.random.default_rng(seed), []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = session.get(base + path.format(user=rng.integers(USERS)), verify=verify)
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


def top_10(base: str, users: list[int], verify) -> list[set[str]]:
    session = requests.Session()
    return [{pair["id"] for pair in session.get(f"{base}/recommend/u{u}?howMany=10", verify=verify,
                                                headers={"Accept": "application/json"}).json()} for u in users]


def measure(factors: Path, mode: str, args, clients: list[int], seconds: float, recall_users: list[int],
            exact_answers: list[set[str]] | None) -> tuple[list[dict], dict]:
    info = factors.parent / f"{mode}.info"
    cert, key = self_signed_pair(factors.parent / "tls") if args.tls else ("", "")
    verify = str(cert) if args.tls else True
    env = {"OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    with server_process(SERVER, str(factors), mode, str(info), args.server, str(cert), str(key), env=env,
                        scheme="https" if args.tls else "http", verify=verify) as (server, port):
        base = f"{'https' if args.tls else 'http'}://127.0.0.1:{port}"
        for _ in range(20):  # warm-up
            requests.get(f"{base}/recommend/u1?howMany=10", verify=verify)
        answers = top_10(base, recall_users, verify)
        results = [{"mode": mode, **run_clients(base, n, seconds, verify)} for n in clients]
        # what the HTTP stack alone sustains (bench client included): the ceiling of any top-N
        ceiling = run_clients(base, max(clients), seconds / 2, verify, "/ready") if clients else None
        if exact_answers is not None:
            recall = float(np.mean([len(a & e) / len(e) for a, e in zip(answers, exact_answers)]))
            for result in results:
                result["recall_at_10"] = round(recall, 4)
        return results, {"rss": process_tree_rss(server.pid), "load_s": float(info.read_text()),
                         "answers": answers, "ceiling": ceiling}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="exact,ann")
    parser.add_argument("--items", type=int, default=ITEMS)
    parser.add_argument("--clients", default="1,4,8")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per client count x 2")
    parser.add_argument("--server", choices=("cheroot", "waitress", "gunicorn"), default="cheroot")
    parser.add_argument("--tls", action="store_true")
    args = parser.parse_args()
    if args.tls and args.server == "waitress":
        parser.error("waitress cannot serve HTTPS")
    modes, clients = args.modes.split(","), [int(c) for c in args.clients.split(",")]
    recall_users = np.random.default_rng(1).integers(USERS, size=RECALL_USERS).tolist()
    out: dict = {"bench": "serving_als", "server": args.server, "tls": args.tls, "items": args.items,
                 "features": FEATURES, "users": USERS, "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "1"),
                 "results": []}
    with tempfile.TemporaryDirectory() as scratch:
        factors = Path(scratch) / "factors"
        raw = make_model(factors, args.items)
        out["raw_factor_mb"] = round(raw / 2**20, 1)
        exact_answers = None
        for mode in modes:
            if mode == "ann" and exact_answers is None:  # recall needs the exact answers first
                _, exact = measure(factors, "exact", args, [], 0, recall_users, None)
                exact_answers = exact["answers"]
            results, server = measure(factors, mode, args, clients, args.duration / 2, recall_users,
                                      exact_answers if mode == "ann" else None)
            if mode == "exact":
                exact_answers = server["answers"]
            out["results"].extend(results)
            suffix = "" if mode == "exact" else f"_{mode}"
            out[f"rss_mb{suffix}"] = round(server["rss"] / 2**20, 1)
            out[f"rss_over_raw{suffix}"] = round(server["rss"] / raw, 2)
            out[f"load_s{suffix}"] = server["load_s"]
            if mode == "exact":
                out["http_ceiling_ready"] = server["ceiling"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
