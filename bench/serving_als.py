"""Serving benchmark: /recommend over real HTTP on a 1,000,000 items × 50 features model, exact and ANN.

Starts the serving app in a subprocess (waitress, 8 threads) on a synthetic ALS model registered
nowhere: the model is handed straight to the model manager, so the measurement is the serving path
alone. Each mode gets its own server: ``exact`` (``headwater.serving.ann.enabled=false``: grouped
exact scoring) and ``ann`` (the PQ fast-scan codes with exact re-rank, measured once they are
built). Prints one JSON object with a ``results`` entry per (mode, clients): p50/p99 latency and
queries/s, for ann also ``recall_at_10`` against the exact server's answers for the same users;
plus each server's RSS over the raw factor bytes (``rss_over_raw`` for exact, ``rss_over_raw_ann``
with the ANN codes), and ``http_ceiling_ready``: what ``/ready`` sustains over the same HTTP stack
and clients, the ceiling of any top-N path on this machine.

    python bench/serving_als.py [--modes exact,ann] [--clients 1,4,8] [--duration 20] [--items 1000000]
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

ITEMS, USERS, FEATURES = 1_000_000, 10_000, 50
RECALL_USERS = 300

SERVER = r'''
import sys, time
from pathlib import Path
from waitress import serve
from headwater.apps.als.factors import ALSFactors
from headwater.config import load_config
from serving_layer.als_model import ALSServingModel
from serving_layer.app import create_app
from serving_layer.item_ranking import RankingSettings
from serving_layer.model_manager import ModelManager

factors, mode, info, port = sys.argv[1:]
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
print("ready", flush=True)
serve(create_app(config, manager), host="127.0.0.1", port=int(port), threads=8, _quiet=True)
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


def run_clients(port: int, clients: int, seconds: float, path: str = "/recommend/u{user}?howMany=10") -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(seed: int) -> None:
        session, rng, mine = requests.Session(), np.random.default_rng(seed), []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = session.get(f"http://127.0.0.1:{port}" + path.format(user=rng.integers(USERS)))
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


def top_10(port: int, users: list[int]) -> list[set[str]]:
    session = requests.Session()
    return [{pair["id"] for pair in session.get(f"http://127.0.0.1:{port}/recommend/u{u}?howMany=10",
                                                headers={"Accept": "application/json"}).json()} for u in users]


def measure(factors: Path, mode: str, clients: list[int], seconds: float, recall_users: list[int],
            exact_answers: list[set[str]] | None) -> tuple[list[dict], dict]:
    info = factors.parent / f"{mode}.info"
    env = {"OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    with server_process(SERVER, str(factors), mode, str(info), env=env) as (server, port):
        for _ in range(20):  # warm-up
            requests.get(f"http://127.0.0.1:{port}/recommend/u1?howMany=10")
        answers = top_10(port, recall_users)
        results = [{"mode": mode, **run_clients(port, n, seconds)} for n in clients]
        # what the HTTP stack alone sustains (bench client included): the ceiling of any top-N
        ceiling = run_clients(port, max(clients), seconds / 2, "/ready") if clients else None
        if exact_answers is not None:
            recall = float(np.mean([len(a & e) / len(e) for a, e in zip(answers, exact_answers)]))
            for result in results:
                result["recall_at_10"] = round(recall, 4)
        return results, {"rss": rss_bytes(server.pid), "load_s": float(info.read_text()), "answers": answers,
                         "ceiling": ceiling}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", default="exact,ann")
    parser.add_argument("--items", type=int, default=ITEMS)
    parser.add_argument("--clients", default="1,4,8")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per client count x 2")
    args = parser.parse_args()
    modes, clients = args.modes.split(","), [int(c) for c in args.clients.split(",")]
    recall_users = np.random.default_rng(1).integers(USERS, size=RECALL_USERS).tolist()
    out: dict = {"bench": "serving_als", "items": args.items, "features": FEATURES, "users": USERS,
                 "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "1"), "results": []}
    with tempfile.TemporaryDirectory() as scratch:
        factors = Path(scratch) / "factors"
        raw = make_model(factors, args.items)
        out["raw_factor_mb"] = round(raw / 2**20, 1)
        exact_answers = None
        for mode in modes:
            if mode == "ann" and exact_answers is None:  # recall needs the exact answers first
                _, exact = measure(factors, "exact", [], 0, recall_users, None)
                exact_answers = exact["answers"]
            results, server = measure(factors, mode, clients, args.duration / 2, recall_users,
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
