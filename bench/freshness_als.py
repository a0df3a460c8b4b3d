"""Freshness: an ALS event produced to Kafka → reflected by the serving layer's ``/recommend``.

Everything real and on this machine: an embedded broker, an MLflow sqlite registry holding a
synthetic champion (2,000 users × 1,000 items × 20 features), the speed layer (Spark local, default
1 s trigger) and the serving layer over HTTP (waitress). Each event is for a brand-new user, so
``/recommend/<user>`` answers 404 until the speed layer's UP for that user reached the serving layer.
Events are sent at a steady rate; prints JSON with p50/p99 seconds from send to first 200.
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
from benchlib import latency_ms  # also puts the checkout on sys.path

from headwater import registry
from headwater.apps.als.factors import ALSFactors
from headwater.apps.als.pyfunc import ALSPyfuncModel
from headwater.config import load_config
from headwater.embedded import free_port, start_broker
from headwater.kafka_admin import ensure_topics
from headwater.kafka_producer import LineProducer

USERS, ITEMS, FEATURES = 2_000, 1_000, 20


def register_champion(config, directory: Path) -> None:
    rng = np.random.default_rng(0)
    items = [f"i{n}" for n in range(ITEMS)]
    factors = ALSFactors([f"u{n}" for n in range(USERS)], rng.normal(0, 0.3, (USERS, FEATURES)), items,
                         rng.normal(0, 0.3, (ITEMS, FEATURES)),
                         {f"u{n}": {items[n % ITEMS]} for n in range(USERS)}, implicit=True, regularization=0.1)
    factors.save(directory)
    registry.log_and_register(config, directory, ALSPyfuncModel(), {"layer": "batch"}, aliases=["champion"])


def serve_in_thread(config):
    from waitress.server import create_server

    from serving_layer.app import create_app

    server = create_server(create_app(config), host="127.0.0.1", port=0, threads=8)
    threading.Thread(target=server.run, daemon=True).start()
    return server, f"http://127.0.0.1:{server.effective_port}"


def wait(condition, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the stack did not get ready in time")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="events sent per second")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from speed_layer.runner import SpeedLayer

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        port = free_port()
        broker = start_broker("127.0.0.1", port, scratch / "broker.log")
        bootstrap = f"127.0.0.1:{port}"
        config = load_config(overrides=[
            "headwater.id=fresh", "headwater.app=als", f'headwater.kafka.bootstrap-servers="{bootstrap}"',
            f'headwater.storage.root="{scratch / "data"}"', f'headwater.stack.var-dir="{scratch / "var"}"',
            f'headwater.mlflow.tracking-uri="sqlite:///{scratch / "mlflow.db"}"',
            "headwater.speed.snapshot-interval-sec=3600"])
        ensure_topics(bootstrap, {config.input_topic: 4, config.update_topic: 1})
        register_champion(config, scratch / "champion")
        speed = SpeedLayer(config).start()
        server, base = serve_in_thread(config)
        try:
            wait(lambda: requests.get(f"{base}/ready").status_code == 200 and speed.wait_ready(0)
                 and speed.query.lastProgress is not None)
            session = requests.Session()
            pending: dict[str, float] = {}
            latencies: list[float] = []
            with LineProducer(bootstrap) as producer:
                next_send, sent = time.monotonic(), 0
                deadline = time.monotonic() + args.events / args.rate + 60
                while (sent < args.events or pending) and time.monotonic() < deadline:
                    if sent < args.events and time.monotonic() >= next_send:
                        user = f"fresh-{sent}"
                        producer.send_line(config.input_topic, f"{user},i{sent % ITEMS},1")
                        producer.flush()
                        pending[user] = time.monotonic()
                        sent, next_send = sent + 1, next_send + 1.0 / args.rate
                    for user, sent_at in list(pending.items()):
                        if session.get(f"{base}/recommend/{user}?howMany=1").status_code == 200:
                            latencies.append(time.monotonic() - sent_at)
                            del pending[user]
                    time.sleep(0.01)
        finally:
            speed.stop()
            server.close()
            broker.stop()
    seconds = latency_ms(latencies)
    print(json.dumps({"bench": "freshness_als", "events": args.events, "rate_per_s": args.rate,
                      "reflected": len(latencies), "missed": args.events - len(latencies),
                      "p50_s": round(seconds["p50_ms"] / 1000, 2), "p99_s": round(seconds["p99_ms"] / 1000, 2),
                      "trigger_s": config.get("headwater.speed.trigger-interval-sec")}))


if __name__ == "__main__":
    main()
