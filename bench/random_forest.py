"""Random forest serving and speed-layer throughput; prints one JSON object.

    python bench/random_forest.py [--trees 100] [--depth 10] [--rows 20000]

A Spark ML RandomForestClassifier (default 100 trees of depth 10) is fitted on a synthetic data set
(scikit-learn's make_classification: 20 numeric features and one categorical one), converted to
numpy arrays, and served by the real Flask app under waitress on a free local port:

- ``predict_single_ms``: ``GET /predict/<datum>`` latency over HTTP, p50 / p99 (one client);
- ``predict_batch_rows_per_s``: ``POST /predict`` with ``--batch`` lines per request, over HTTP;
- ``numpy_*``: the same predictions without HTTP (the ForestModel alone);
- ``speed_examples_per_s``: fresh labelled lines (the second half of one stationary sample, the first
  half trained the forest) parsed, scored before learning by the live model and the champion alone
  (``score_many``, the prequential losses the runner publishes) and folded in (``learn_many``: decayed
  leaves, per-tree drift detection, tree replacement, with the configured defaults), UP payloads
  included: the speed layer's work per micro-batch without Kafka and Spark;
  ``speed_learn_only_examples_per_s`` the learning step alone; ``speed_unscored_examples_per_s``
  parse + learn without scoring (this bench's figure before prequential scoring).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import numpy as np
from benchlib import latency_ms  # also puts the checkout on sys.path

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

from headwater.config import load_config
from headwater.input_format import InputSchema, SchemaCSVFormat

COLOURS = ["amber", "blue", "cyan", "green", "red"]


def synthetic_lines(rows: int, seed: int = 0) -> tuple[list[str], list[str]]:
    from sklearn.datasets import make_classification

    X, y = make_classification(rows, n_features=20, n_informative=12, random_state=seed)
    colour = np.random.default_rng(seed).integers(0, len(COLOURS), rows)
    names = [f"f{i}" for i in range(20)] + ["colour", "label"]
    lines = [",".join([*(f"{v:.6g}" for v in x), COLOURS[c], "yes" if t else "no"]) for x, c, t in zip(X, colour, y)]
    return names, lines


def config_for(names: list[str]):
    return load_config(overrides=[
        "headwater.id=bench-rdf", "headwater.app=rdf-classification",
        f"headwater.input-schema.feature-names={json.dumps(names)}",
        'headwater.input-schema.categorical-features=["colour", "label"]',
        "headwater.input-schema.target-feature=label"])


def train(config, lines: list[str], trees: int, depth: int):
    from batch_layer.random_forest import RandomForestUpdate
    from headwater.spark import get_spark

    spark = get_spark(config)
    table = SchemaCSVFormat(InputSchema.from_config(config)).parse(lines).table.drop_columns(["line_index"])
    update = RandomForestUpdate(config)
    data = spark.createDataFrame(table.to_pandas())
    split = update.prepare(data, *update.split(data))
    started = time.perf_counter()
    model = update.build_model(split, {"numTrees": trees, "maxDepth": depth, "maxBins": 32, "impurity": "gini",
                                            "minInstancesPerNode": 1, "minInfoGain": 0.0})
    return model, time.perf_counter() - started


def serve(config, model):
    from waitress.server import create_server

    from headwater.embedded import free_port
    from serving_layer.app import create_app
    from serving_layer.model_manager import ModelManager
    from serving_layer.random_forest import RandomForestServingModel

    manager = ModelManager(model_class=RandomForestServingModel)
    manager.swap(RandomForestServingModel(model, version=1))
    server = create_server(create_app(config, manager), host="127.0.0.1", port=free_port(), threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    return server, f"http://127.0.0.1:{server.effective_port}"


def bench_speed(config, model, lines: list[str], batch: int = 2000) -> dict:
    """The speed layer's work per micro-batch of ``batch`` examples, without Kafka and Spark, twice over
    the same lines: as the runner does it (parse, score with the live model and the champion alone,
    learn), and parse + learn alone (what this bench measured before prequential scoring existed)."""
    import tempfile
    from pathlib import Path

    from headwater.registry import RegisteredModel
    from speed_layer.model_state import ModelState
    from speed_layer.random_forest import RandomForestSpeedModel

    labelled = SchemaCSVFormat(InputSchema.from_config(config))
    result = {}
    with tempfile.TemporaryDirectory() as scratch:
        model.save(scratch)
        registered = RegisteredModel("bench-rdf", 1, Path(scratch))
        live = [RandomForestSpeedModel.from_registered(registered, config) for _ in range(3)]
    for scored in (True, False):
        state = ModelState()
        state.install(live.pop(), live.pop() if scored else None, base_version=1, covered={})
        started, payloads, learning = time.perf_counter(), 0, 0.0
        for start in range(0, len(lines), batch):
            table = labelled.parse(lines[start:start + batch]).table
            if scored:
                state.score(table)
            learn_started = time.perf_counter()
            payloads += len(state.learn(table, {}))
            learning += time.perf_counter() - learn_started
        rate = round(len(lines) / (time.perf_counter() - started))
        if scored:
            result.update({"speed_examples_per_s": rate, "speed_learn_only_examples_per_s":
                           round(len(lines) / learning), "speed_up_messages": payloads,
                           "speed_trees_replaced": state.live.learner.replacement.replaced})
        else:
            result["speed_unscored_examples_per_s"] = rate
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=10000)
    args = parser.parse_args()
    import requests

    # the speed layer learns rows it has not been trained on: the second half of one stationary sample
    names, sample = synthetic_lines(2 * args.rows)
    lines, later = sample[:args.rows], sample[args.rows:]
    config = config_for(names)
    model, train_seconds = train(config, lines, args.trees, args.depth)
    unlabelled = [line.rsplit(",", 1)[0] + "," for line in lines]
    result = {"trees": model.forest.num_trees, "max_depth": args.depth, "nodes": len(model.forest.feature),
              "train_rows": args.rows, "spark_fit_and_convert_s": round(train_seconds, 1)}

    fmt = SchemaCSVFormat(InputSchema(names, categorical=["colour"], ignored=["label"]))
    one = fmt.parse(unlabelled[:1]).table
    timings = []
    for _ in range(args.requests):
        started = time.perf_counter()
        model.predict(one)
        timings.append(time.perf_counter() - started)
    result["numpy_predict_single_ms"] = latency_ms(timings)
    batch = fmt.parse(unlabelled[:args.batch]).table
    started = time.perf_counter()
    model.predict(batch)
    result["numpy_predict_rows_per_s"] = round(args.batch / (time.perf_counter() - started))

    # the server runs in a daemon thread until the process ends (closing it under its running
    # loop only makes waitress print an error)
    _, base = serve(config, model)
    with requests.Session() as session:
        timings = []
        for n in range(args.requests):
            started = time.perf_counter()
            answer = session.get(f"{base}/predict/{unlabelled[n % len(unlabelled)]}")
            timings.append(time.perf_counter() - started)
            assert answer.status_code == 200, answer.text
        result["predict_single_ms"] = latency_ms(timings)
        body = "\n".join(unlabelled[:args.batch])
        started = time.perf_counter()
        answer = session.post(f"{base}/predict", data=body)
        assert answer.status_code == 200 and len(answer.text.split()) == args.batch
        result["predict_batch_rows_per_s"] = round(args.batch / (time.perf_counter() - started))

    result.update(bench_speed(config, model, later))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
