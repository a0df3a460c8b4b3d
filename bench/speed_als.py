"""ALS speed-layer throughput: events folded in and published per second.

A model of 10,000 users × 5,000 items × 20 features; micro-batches of 50,000 events (about 5 % by
new users, 2 % on new items, 1 % deletes). Per batch it times what the speed layer's
``foreachBatch`` does without Spark: parse the lines (ALSFormat), ``learn_many`` (the shared fold-in,
applied to the model), encode the UP messages, and produce them to a real embedded broker and
flush. Prints one JSON object; the figure to read is ``events_per_sec`` (whole path, target ≥ 20,000).

    python bench/speed_als.py [--batches 4] [--batch-size 50000] [--no-broker] [--spark]

``--spark`` adds the whole speed layer end to end: the model registered as champion in an MLflow
sqlite store, a running :class:`~speed_layer.runner.SpeedLayer`, the events produced to
``<id>.input``; ``end_to_end.events_per_sec`` is events over the time from the first produce to the
last micro-batch's end (Spark session start and the first trigger excluded), and
``events_per_processing_sec`` is events over the micro-batches' own durations.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from headwater.apps.als.events import ALSFormat
from headwater.apps.als.factors import ALSFactors
from headwater.messages import encode_up
from speed_layer.als import ALSSpeedModel


def make_model(users: int, items: int, features: int, rng) -> ALSSpeedModel:
    item_ids = [f"i{n}" for n in range(items)]
    known = {f"u{u}": {item_ids[i] for i in rng.integers(0, items, 20)} for u in range(users)}
    X = rng.normal(0, 0.1, (users, features))
    Y = rng.normal(0, 0.1, (items, features))
    return ALSSpeedModel(ALSFactors([f"u{u}" for u in range(users)], X, item_ids, Y, known,
                                    implicit=True, regularization=0.1))


def make_lines(n: int, users: int, items: int, batch: int, rng) -> list[str]:
    # ids beyond the model's range are new users / new items; the batch number keeps them new
    u = rng.integers(0, int(users * 1.05), n)
    i = rng.integers(0, int(items * 1.02), n)
    user = [f"u{x}" if x < users else f"new{batch}-u{x}" for x in u]
    item = [f"i{x}" if x < items else f"new{batch}-i{x}" for x in i]
    strength = rng.integers(1, 6, n)
    delete = rng.random(n) < 0.01
    return [f"{a},{b}," if d else f"{a},{b},{s}" for a, b, s, d in zip(user, item, strength, delete)]


def run_end_to_end(model: ALSSpeedModel, batches: list[list[str]], tmp: str) -> dict:
    from headwater import registry
    from headwater.apps.als.pyfunc import ALSPyfuncModel
    from headwater.config import load_config
    from headwater.embedded import free_port, start_broker
    from headwater.kafka_producer import LineProducer
    from speed_layer.runner import SpeedLayer

    port = free_port()
    broker = start_broker("127.0.0.1", port, Path(tmp) / "e2e-broker.log")
    config = load_config(overrides=[
        "headwater.id=speedbench", "headwater.app=als", f'headwater.kafka.bootstrap-servers="127.0.0.1:{port}"',
        f'headwater.mlflow.tracking-uri="sqlite:///{tmp}/mlflow.db"', f'headwater.storage.root="{tmp}/data"',
        f'headwater.stack.var-dir="{tmp}/var"', "headwater.speed.snapshot-interval-sec=3600"])
    model.save(Path(tmp) / "champion")
    registry.log_and_register(config, Path(tmp) / "champion", ALSPyfuncModel(), {"layer": "batch"}, ["champion"])
    layer = SpeedLayer(config).start()
    try:
        assert layer.wait_ready(300), "the speed layer did not load the champion"
        while layer.query.lastProgress is None:
            time.sleep(0.2)
        first_batch = layer.query.lastProgress["batchId"]
        events = sum(map(len, batches))
        started = time.perf_counter()
        with LineProducer(config.get("headwater.kafka.bootstrap-servers")) as producer:
            for lines in batches:
                producer.send_lines(config.input_topic, lines)
        produced = time.perf_counter() - started
        while True:
            done = [p for p in layer.query.recentProgress if p["batchId"] > first_batch]
            if sum(p["numInputRows"] for p in done) >= events:
                break
            time.sleep(0.2)
        seconds = time.perf_counter() - started
        # the producing client shares this process (and its GIL) with the driver: the micro-batches'
        # own durations say what the speed layer needs per event
        processing = sum(p["durationMs"]["triggerExecution"] for p in done) / 1000
        return {"events": events, "seconds": round(seconds, 2), "events_per_sec": round(events / seconds),
                "produce_seconds": round(produced, 2), "micro_batches": len(done),
                "processing_seconds": round(processing, 2), "events_per_processing_sec": round(events / processing)}
    finally:
        layer.stop()
        broker.stop()


def main() -> None:
    # the speed layer's one line per micro-batch goes to stderr; stdout is the JSON result
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("speed_layer").setLevel(logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--no-broker", action="store_true", help="time everything but producing")
    parser.add_argument("--spark", action="store_true", help="also run the whole speed layer end to end")
    args = parser.parse_args()

    rng = np.random.default_rng(42)
    model = make_model(args.users, args.items, args.features, rng)
    batches = [make_lines(args.batch_size, args.users, args.items, b, rng) for b in range(args.batches)]
    producer, broker, topic = None, None, "bench-speed.update"
    with tempfile.TemporaryDirectory() as tmp:
        # end to end first, on a copy: the timed loop below changes the model
        end_to_end = run_end_to_end(model.copy(), batches, tmp) if args.spark else None
        if not args.no_broker:
            from headwater.embedded import free_port, start_broker
            from headwater.kafka_admin import ensure_topics
            from headwater.kafka_producer import LineProducer

            port = free_port()
            broker = start_broker("127.0.0.1", port, Path(tmp) / "broker.log")
            ensure_topics(f"127.0.0.1:{port}", {topic: 1})
            producer = LineProducer(f"127.0.0.1:{port}")
        try:
            timings = {"parse": 0.0, "learn_many": 0.0, "encode": 0.0, "produce": 0.0}
            updates, cpu_started = 0, time.process_time()
            for lines in batches:
                t0 = time.perf_counter()
                parsed = ALSFormat().parse(lines)
                t1 = time.perf_counter()
                payloads = model.learn_many(parsed.table)
                t2 = time.perf_counter()
                messages = [encode_up(p) for p in payloads]
                t3 = time.perf_counter()
                if producer is not None:
                    for message in messages:
                        producer.send_bytes(topic, message, key=b"speed-bench")
                    producer.flush()
                t4 = time.perf_counter()
                for key, seconds in zip(timings, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    timings[key] += seconds
                updates += len(payloads)
            cpu = time.process_time() - cpu_started
        finally:
            if producer is not None:
                producer.close()
            if broker is not None:
                broker.stop()
    events = args.batches * args.batch_size
    total = sum(timings.values())
    print(json.dumps({
        "benchmark": "speed_als",
        "model": {"users": args.users, "items": args.items, "features": args.features},
        "batches": args.batches, "batch_size": args.batch_size, "events": events, "updates": updates,
        "through_broker": producer is not None,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "events_per_sec": round(events / total),
        # CPU seconds of the process (the producer's I/O thread included): wall time on a shared,
        # loaded machine overstates the cost, and this figure is what one free core would manage
        "cpu_seconds": round(cpu, 3),
        "events_per_cpu_sec": round(events / cpu),
        "learn_many_events_per_sec": round(events / timings["learn_many"]),
        "updates_per_sec_published": round(updates / (timings["encode"] + timings["produce"])),
        "model_after": {"users": len(model.factors.user_ids), "items": len(model.factors.item_ids)},
        "end_to_end": end_to_end,
    }))


if __name__ == "__main__":
    main()
