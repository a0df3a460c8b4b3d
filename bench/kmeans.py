"""k-means benchmark: serving ``/assign`` over real HTTP and speed-layer fold-in, k=100 centres × 50 features.

Serving: ``waitress`` (8 threads) in a subprocess with a synthetic model handed to the model manager
directly (no registry, no Kafka), so the measurement is the serving path alone: single-point
``GET /assign/<datum>`` latency p50/p99 from one client, and ``POST /assign`` throughput in points/s
for bodies of 10,000 lines. Speed: what the speed layer's ``foreachBatch`` does without Spark per
micro-batch of 50,000 lines: parse (the schema's CSV format), score with the live model and the
champion alone (distance to the nearest centre), ``learn_many`` (move centres; the assignment of
the scoring is reused) and encode the UP messages. Prints one JSON object.

    python bench/kmeans.py [--seconds 10]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import requests
from benchlib import latency_ms, server_process  # also puts the checkout on sys.path

from headwater.apps.kmeans.clusters import KMeansClusters
from headwater.input_format import InputSchema, SchemaCSVFormat
from headwater.messages import encode_up
from speed_layer.kmeans import KMeansSpeedModel

K, FEATURES = 100, 50
NAMES = [f"f{n}" for n in range(FEATURES)]
POST_LINES, SPEED_BATCH = 10_000, 50_000

SERVER = r'''
import json, sys
import numpy as np
from waitress import serve
from headwater.config import load_config
from headwater.apps.kmeans.clusters import KMeansClusters
from serving_layer.app import create_app
from serving_layer.kmeans import KMeansServingModel
from serving_layer.model_manager import ModelManager

names = json.loads(sys.argv[2])
manager = ModelManager(model_class=KMeansServingModel)
manager.swap(KMeansServingModel(KMeansClusters.load(sys.argv[1]), version=1))
config = load_config(overrides=["headwater.id=bench", "headwater.app=kmeans",
                                "headwater.input-schema.feature-names=" + json.dumps(names)])
print("ready", flush=True)
serve(create_app(config, manager), host="127.0.0.1", port=int(sys.argv[3]), threads=8, _quiet=True)
'''


def make_clusters(rng) -> KMeansClusters:
    return KMeansClusters(NAMES, rng.normal(0, 10, (K, FEATURES)), np.full(K, 1000.0))


def make_lines(count: int, rng) -> list[str]:
    return [",".join(f"{v:.4f}" for v in row) for row in rng.normal(0, 10, (count, FEATURES))]


def bench_single(port: int, lines: list[str], seconds: float) -> dict:
    session, latencies = requests.Session(), []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        response = session.get(f"http://127.0.0.1:{port}/assign/{lines[len(latencies) % len(lines)]}")
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return latency_ms(latencies)


def bench_batch(port: int, lines: list[str], seconds: float) -> dict:
    session, body, points = requests.Session(), "\n".join(lines), 0
    started = time.monotonic()
    while time.monotonic() - started < seconds or points == 0:
        response = session.post(f"http://127.0.0.1:{port}/assign", data=body)
        assert response.status_code == 200 and response.text.count("\n") == len(lines), response.text[:200]
        points += len(lines)
    elapsed = time.monotonic() - started
    return {"lines_per_request": len(lines), "requests": points // len(lines),
            "points_per_sec": round(points / elapsed)}


def bench_speed(rng, batches: int = 4) -> dict:
    """Per micro-batch as the runner does it: parse, score with the live model and the champion alone
    (prequential distances), learn, encode the UPs; then parse + learn + encode without scoring (this
    bench's figure before prequential scoring existed), on the same lines."""
    from speed_layer.model_state import ModelState

    clusters = make_clusters(rng)
    fmt = SchemaCSVFormat(InputSchema(NAMES))
    data = [make_lines(SPEED_BATCH, rng) for _ in range(batches)]
    fmt.parse(data[0])  # warm-up: the first Arrow CSV read of a process is slower
    result = {"batch_lines": SPEED_BATCH, "batches": batches}
    for scored in (True, False):
        # the defaults: half-life 1,000 points, dying-cluster split at a 1 % share
        live, alone = (KMeansSpeedModel(clusters.copy(), decay=0.5 ** (1 / 1000), time_unit="points",
                                        dying_share=0.01) for _ in range(2))
        state = ModelState()
        state.install(live, alone if scored else None, base_version=1, covered={})
        parse = learn = encode = 0.0
        for lines in data:
            t0 = time.perf_counter()
            table = fmt.parse(lines).table
            t1 = time.perf_counter()
            if scored:
                state.score(table)
            payloads = state.learn(table, {})
            t2 = time.perf_counter()
            for payload in payloads:
                encode_up(payload)
            t3 = time.perf_counter()
            parse, learn, encode = parse + t1 - t0, learn + t2 - t1, encode + t3 - t2
        rate = round(batches * SPEED_BATCH / (parse + learn + encode))
        if scored:
            result.update({"points_per_sec": rate, "share_parse": round(parse / (parse + learn + encode), 3),
                           "score_and_learn_points_per_sec": round(batches * SPEED_BATCH / learn)})
        else:
            result["unscored_points_per_sec"] = rate
    return result


def main() -> None:

    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        make_clusters(rng).save(Path(scratch) / "clusters")
        with server_process(SERVER, str(Path(scratch) / "clusters"), json.dumps(NAMES)) as (_, port):
            lines = make_lines(POST_LINES, rng)
            bench_single(port, lines, 1.0)  # warm-up
            single = bench_single(port, lines, args.seconds)
            batch = bench_batch(port, lines, args.seconds)
    print(json.dumps({"bench": "kmeans", "k": K, "features": FEATURES, "assign_single": single,
                      "assign_post": batch, "speed": bench_speed(rng), "load_avg_1min": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
