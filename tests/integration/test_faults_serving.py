"""Fault suite, serving layer: a replica SIGKILLed mid-stream and restarted answers as an uninterrupted one does;
a replica started while MLflow is down becomes ready by itself once MLflow is back.

The replicas are ``python -m serving_layer`` processes; the update stream (UPs of two champions and the
MODEL notice between them, with stale UPs of the old champion after it) is produced by the test, as a
speed and a batch layer would.
"""
from __future__ import annotations

import json
import threading
import time

import numpy as np

from headwater import registry
from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.apps.als.pyfunc import ALSPyfuncModel
from headwater.embedded import free_port, start_mlflow
from headwater.kafka_admin import ensure_topics
from headwater.kafka_producer import LineProducer
from headwater.messages import ModelNotice, encode_up
from headwater.promotion import publish_model_notice, tag_update_offset
from tests.integration.processes import get, kill_group, ready, start_layer, stop_group, wait_until, write_conf

UPS = 3000
FEATURES = 4


def champion_factors(seed: int) -> ALSFactors:
    rng = np.random.default_rng(seed)
    users, items = [f"u{n}" for n in range(40)], [f"i{n}" for n in range(120)]
    return ALSFactors(users, rng.normal(size=(40, FEATURES)), items, rng.normal(size=(120, FEATURES)),
                      {u: {items[n], items[n + 1]} for n, u in enumerate(users)}, ALSSettings(True, regularization=0.1))


def promote_version(config, version: int) -> None:
    """Make a registered version the champion with the batch layer's own steps, in its order."""
    tag_update_offset(config, version)
    registry.set_alias(config, registry.CHAMPION, version)
    publish_model_notice(config, ModelNotice(config.app_id, version, None))


def promote(config, tmp_path, seed: int) -> registry.RegisteredModel:
    """Register synthetic factors and promote them (update_offset tag, then the alias, then the notice)."""
    champion_factors(seed).save(tmp_path / f"champion-{seed}")
    version = registry.log_and_register(config, tmp_path / f"champion-{seed}", ALSPyfuncModel(), {"layer": "batch"},
                                        aliases=[])
    promote_version(config, version.version)
    return version


def up(n: int, rng, base: int) -> bytes:
    if n % 3:
        # a user's pairs are the same on either champion, as the speed layer's re-fold of its events
        # after the new champion's cut-off makes them; so a replica that carried the user over the
        # switch (retain recent) and one that loaded the new champion after it agree
        user = n % 250
        return encode_up(["X", f"s{user}", rng.normal(size=FEATURES).tolist(), 0.0,
                          {f"i{user % 120}": 1.0, f"i{(user * 7) % 120}": 1.0}], base)
    return encode_up(["Y", f"j{n % 400}", rng.normal(size=FEATURES).tolist(), 0.0], base)


def answers(base_url: str) -> dict:
    """What a client sees: every id, and every user's top 10 with its scores."""
    users = get(base_url, "/user/allIDs").json()
    result = {"users": sorted(users), "items": sorted(get(base_url, "/item/allIDs").json())}
    for user in users:
        result[user] = get(base_url, f"/recommend/{user}?howMany=10").json()
    return result


def test_a_serving_replica_killed_mid_stream_answers_as_an_uninterrupted_one(broker_config, tmp_path):
    config = broker_config()
    bootstrap = config.get("headwater.kafka.bootstrap-servers")
    ensure_topics(bootstrap, {config.input_topic: 1, config.update_topic: 1})
    first = promote(config, tmp_path, seed=1)
    ports = {"steady": free_port(), "killed": free_port()}
    confs = {name: write_conf(tmp_path / f"{name}.conf", config, **{"serving.port": port})
             for name, port in ports.items()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    logs = {name: tmp_path / f"{name}.log" for name in ports}
    processes = {name: start_layer("serving_layer", confs[name], logs[name]) for name in ports}
    progress = {"sent": 0}
    on_second: set[str] = set()  # the ids of the UPs of the second champion

    def stream():
        rng = np.random.default_rng(5)
        base = first.version
        with LineProducer(bootstrap) as producer:
            for n in range(UPS):
                if n == UPS // 2:
                    producer.flush()
                    base = promote(config, tmp_path, seed=2).version
                # computed on the old champion, published late; not tied to a user (n % 250), so every
                # user the old champion's UPs taught also has UPs on the new one, as a re-fold gives it
                stale = n > UPS // 2 and (n // 3) % 17 == 0
                message = up(n, rng, first.version if stale else base)
                producer.send_bytes(config.update_topic, message).get(10)
                if n >= UPS // 2 and not stale:
                    on_second.add(json.loads(message)["payload"][1])
                progress["sent"] = n + 1
                if n % 100 == 99:
                    time.sleep(0.15)

    try:
        for name in ports:
            wait_until(lambda name=name: ready(urls[name]), f"{name} ready", process=processes[name],
                       log_path=logs[name])
        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()
        restarts = 0
        for at in (UPS // 4, UPS * 3 // 4):  # once on the first champion, once after the switch
            wait_until(lambda at=at: progress["sent"] >= at, f"{at} UPs sent", timeout=120)
            kill_group(processes["killed"])
            processes["killed"] = start_layer("serving_layer", confs["killed"], logs["killed"])
            restarts += 1
        streamer.join(timeout=180)
        assert progress["sent"] == UPS and restarts == 2

        second_version = first.version + 1
        for name in ports:
            wait_until(lambda name=name: ready(urls[name]) and
                       get(urls[name], "/ready").json()["model_version"] == second_version,
                       f"{name} serving the second champion", process=processes[name], log_path=logs[name])
        # both caught up: the last UP sent is visible in both
        expected = wait_until(lambda: (a := answers(urls["steady"])) == answers(urls["killed"]) and a,
                              "the restarted replica to answer as the steady one", timeout=60)
        # the second champion's ids and those of its UPs; none of the UPs of the first (stale or not)
        champion = champion_factors(2)
        assert set(expected["users"]) | set(expected["items"]) == \
            {*champion.user_ids, *champion.item_ids, *on_second}
    finally:
        for process in processes.values():
            stop_group(process)


def test_serving_started_while_mlflow_is_down_becomes_ready_once_it_is_back(broker_config, tmp_path):
    port = free_port()
    var_dir = tmp_path / "mlflow-var"
    config = broker_config(**{"mlflow.tracking-uri": f"http://127.0.0.1:{port}"})
    ensure_topics(config.get("headwater.kafka.bootstrap-servers"), {config.update_topic: 1})
    mlflow = start_mlflow("127.0.0.1", port, var_dir)
    try:
        champion = promote(config, tmp_path, seed=3)
    finally:
        mlflow.stop()
    serving_port = free_port()
    url = f"http://127.0.0.1:{serving_port}"
    log_path = tmp_path / "serving.log"
    # a replica of its own, with an empty registry cache: it has to reach MLflow to load anything
    conf = write_conf(tmp_path / "serving.conf", config, **{"serving.port": serving_port,
                                                            "stack.var-dir": str(tmp_path / "replica-var")})
    serving = start_layer("serving_layer", conf, log_path)
    try:
        # (a Response is falsy when not 2xx: hand back a tuple)
        status, text = wait_until(lambda: (r := get(url, "/ready")) is not None and "failed" in r.text
                                  and (r.status_code, r.text), "a 503 that says loading failed", process=serving,
                                  log_path=log_path)
        assert status == 503
        assert str(port) not in text and "http" not in text, text  # no internal URI
        time.sleep(3)  # a few failed attempts
        mlflow = start_mlflow("127.0.0.1", port, var_dir)
        back = time.monotonic()
        try:
            wait_until(lambda: ready(url), "/ready after MLflow is back", timeout=30, process=serving,
                       log_path=log_path)
            print(f"/ready {time.monotonic() - back:.1f} s after MLflow answered again")
            assert get(url, "/ready").json()["model_version"] == champion.version
        finally:
            mlflow.stop()
    finally:
        stop_group(serving)
