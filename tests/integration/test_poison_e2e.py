"""The poison requests of issue 9, and the same lines produced straight to Kafka, against every layer running:
ingest, speed and serving keep running, a normal new user is still learned and served, each poison line
is in ``rejected`` with its reason, and the next batch generation runs.

Before: ``POST /pref/<3,000 × "[">/i1`` answered 200, and the line it put on ``<id>.input`` stopped the
ingest stream and the speed layer with a RecursionError, again on every restart.
"""
from __future__ import annotations

import urllib.parse

from batch_layer.ingest import _start, run_ingest
from batch_layer.runner import run_batch_once
from headwater import delta_tables
from headwater.kafka_admin import ensure_topics
from headwater.kafka_producer import LineProducer
from serving_layer.app import create_app
from serving_layer.app_context import MODELS
from speed_layer.runner import SpeedLayer
from tests.integration.processes import wait_until

SETTINGS = {"als.hyperparams.features": [6], "als.iterations": 5, "ml.eval.candidates": 1,
            "speed.trigger-interval-sec": 0.5, "speed.snapshot-interval-sec": 600, "ingest.trigger-interval-sec": 0.5,
            "kafka.input-partitions": 2, "kafka.poll-timeout-ms": 200}
# the poison lines and more that stopped or could stop a parser; every one is a bad ALS event
POISON = ["[" * 3000, "[" * 3000 + ",i1", "u1,m1,1,99999999999999999999", "u1,m1,1e300", "u1,m1,1e999",
          "u1,m1,1,1e400", "u" * 5000 + ",m1", '["\\ud800", "m1"]', "9" * 5000 + ",1", '"', '"a,b', "\x00,\x00",
          "[1, [2]]", '{"a": 1}', "[]", ",", ",,,,,,,,,,", "x" * 70_000, "u1,m1,nan", "u1,m1,1,²"]


def history_lines() -> list[str]:
    """Two groups of users, each rating its own half of the items high and a few of the other's low:
    structure ALS finds and the most-popular baseline does not."""
    lines = []
    for user in range(120):
        group = user % 2
        for k in range(12):
            own = (user * 7 + k * 3) % 20 + 20 * group
            lines.append(f"u{user},m{own},{4 + (user + k) % 2}")
        for k in range(2):
            lines.append(f"u{user},m{(user + k * 11) % 20 + 20 * (1 - group)},1")
    return lines


def rejected_reasons(config) -> dict[str, str]:
    table = delta_tables.open_table(config.table_uri("rejected"))
    return {} if table is None else {r["line"]: r["reason"] for r in table.to_pyarrow_table().to_pylist()}


def test_poison_leaves_every_layer_running_and_a_new_user_served(broker_config, spark):
    config = broker_config(**SETTINGS)
    bootstrap = config.get("headwater.kafka.bootstrap-servers")
    ensure_topics(bootstrap, {config.input_topic: 2, config.update_topic: 1})
    with LineProducer(bootstrap) as producer:
        producer.send_lines_acknowledged(config.input_topic, history_lines())
    run_ingest(config, once=True)
    first = run_batch_once(config)
    assert first.promoted, first.reason

    ingest, _ = _start(config, once=False)
    speed = SpeedLayer(config).start()
    app = create_app(config)
    client = app.test_client()
    try:
        assert speed.wait_ready(120)
        wait_until(lambda: client.get("/ready").status_code == 200, "serving ready")
        # the poison requests: refused with a reason, nothing of them sent
        deep = client.post("/pref/" + urllib.parse.quote("[" * 3000) + "/m1")
        assert deep.status_code == 400 and "user is longer than 256 characters" in deep.get_json()["message"]
        assert client.post("/pref/u1/m1", data="1e999").status_code == 400
        ingested = client.post("/ingest", data="\n".join(["newbie,m1,5", *POISON]))
        assert ingested.status_code == 400 and len(ingested.get_json()["rejected"]) == len(POISON)
        # the same lines straight to Kafka, between the events of a brand-new user
        with LineProducer(bootstrap) as producer:
            for n, line in enumerate(POISON):
                producer.send_bytes(config.input_topic, line.encode(), partition=n % 2)
            producer.send_lines_acknowledged(config.input_topic, ["newbie,m1,5", "newbie,m2,5", "newbie,m3,4"])
        assert client.post("/pref/newbie/m4", data="4").status_code == 200
        wait_until(lambda: client.get("/recommend/newbie").status_code == 200, "the new user served", timeout=120)
        wait_until(lambda: client.get("/knownItems/newbie").text.split() == ["m1", "m2", "m3", "m4"],
                   "all four events of the new user")
        wait_until(lambda: set(POISON) <= set(rejected_reasons(config)), "the poison lines in rejected", timeout=120)
        assert ingest.isActive and ingest.exception() is None
        assert speed.query.isActive and speed.query.exception() is None
        assert client.get("/ready").status_code == 200
    finally:
        ingest.stop()
        app.extensions[MODELS].stop()
        speed.stop()
    reasons = rejected_reasons(config)
    assert len(reasons) == len(POISON) and all(reasons.values())
    assert reasons["[" * 3000 + ",i1"] == "nested too deeply to parse"
    assert reasons["u1,m1,1,99999999999999999999"].startswith("timestamp must be in")
    assert reasons["u1,m1,1e300"].startswith("strength must be within")
    # the next batch generation trains on the events, none of the poison among them
    second = run_batch_once(config)
    assert second.best is not None and second.best.score is not None
