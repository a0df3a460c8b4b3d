"""REST writes reach <id>.input as the lines a producer would send: ALS /ingest and /pref, k-means /add,
forest /train; all-or-nothing for a body with a bad line."""
from __future__ import annotations

import gzip

import numpy as np
from kafka import TopicPartition

from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.apps.forest.example import random_forest_model, small_lines, small_schema
from headwater.apps.kmeans.clusters import KMeansClusters
from headwater.kafka_admin import new_consumer, true_end_offsets
from serving_layer.als_model import ALSServingModel
from serving_layer.app import create_app
from serving_layer.kmeans import KMeansServingModel
from serving_layer.model_manager import ModelManager
from serving_layer.random_forest import RandomForestServingModel


def read_topic(bootstrap: str, topic: str) -> list[str]:
    ends = true_end_offsets(bootstrap, topic)
    consumer = new_consumer(bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in ends]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        lines = []
        while sum(consumer.position(tp) for tp in tps) < sum(ends.values()):
            for batch in consumer.poll(timeout_ms=500).values():
                lines.extend(r.value.decode() for r in batch)
        return lines
    finally:
        consumer.close()


def client_for(config, model):
    manager = ModelManager(model_class=type(model))
    manager.swap(model)
    return create_app(config, manager).test_client()


def close_producer(client):
    client.application.extensions["headwater.producer"].close()


def test_ingest_and_pref_reach_the_input_topic(broker_config, broker):
    config = broker_config()
    rng = np.random.default_rng(7)
    client = client_for(config, ALSServingModel(ALSFactors(["u0"], rng.normal(size=(1, 3)), ["i0"],
                                                           rng.normal(size=(1, 3)), {}, ALSSettings(True))))
    body = gzip.compress(b"a,x,1.5\n\nb,y\n[\"c\", \"z\", 2]\n")
    response = client.post("/ingest", data=body, headers={"Content-Encoding": "gzip", "Content-Type": "text/csv"})
    assert response.status_code == 200 and response.get_json() == {"sent": 3}
    bad = client.post("/ingest", data="ok,1\nonly-one-field\nu,i,notanumber\n")
    assert bad.status_code == 400
    assert [r["line"] for r in bad.get_json()["rejected"]] == [2, 3]
    assert client.post("/pref/u1/i5", data="2.5").status_code == 200
    assert client.delete("/pref/u1/i6").status_code == 200
    assert client.post("/pref/u1/i5", data="lots").status_code == 400

    close_producer(client)

    lines = read_topic(broker, config.input_topic)  # partitions interleave: compare as sets
    prefs = {line.rsplit(",", 1)[0] for line in lines if line.startswith("u1,")}
    assert sorted(line for line in lines if not line.startswith("u1,")) == ['["c", "z", 2]', "a,x,1.5", "b,y"]
    assert prefs == {"u1,i5,2.5", "u1,i6,"} and len(lines) == 5


def test_add_sends_valid_lines_to_the_input_topic(broker_config, broker):
    config = broker_config(app="kmeans", **{"input-schema.feature-names": ["id", "x", "y", "z", "note"],
                                             "input-schema.id-features": ["id"],
                                             "input-schema.ignored-features": ["note"]})
    client = client_for(config, KMeansServingModel(KMeansClusters(["x", "y", "z"], np.eye(3), [1, 1, 1])))
    assert client.post("/add/a,1,2,3,n").get_json() == {"sent": 1}
    assert client.post("/add", data="b,4,5,6,n\n\nc,7,8,9,n\n").get_json() == {"sent": 2}
    assert client.post("/add", data="d,1,2,3,n\ne,1\n").status_code == 400  # nothing of it is sent
    close_producer(client)
    assert sorted(read_topic(broker, config.input_topic)) == ["a,1,2,3,n", "b,4,5,6,n", "c,7,8,9,n"]


def test_train_sends_valid_lines_to_the_input_topic_all_or_nothing(broker_config, broker):
    config = broker_config(app="rdf-classification", **small_schema("classification"))
    client = client_for(config, RandomForestServingModel(random_forest_model("classification")))
    lines = small_lines("classification", 3)
    assert client.post("/train", data="\n".join(lines)).get_json() == {"sent": 3}
    assert client.post(f"/train/{lines[0]}").get_json() == {"sent": 1}
    unlabelled = client.post("/train", data=lines[0] + "\na,1,2,3,red,\n")
    assert unlabelled.status_code == 400
    assert unlabelled.get_json()["message"] == "line 2: the target feature 'label' is empty"
    short = client.post("/train", data=lines[0] + "\na,1,2,3,red\n")
    assert short.status_code == 400 and short.get_json()["message"].startswith("line 2: expected 6 fields")
    assert client.post("/train/a,1,2,x,red,yes").status_code == 400
    assert sorted(read_topic(broker, config.input_topic)) == sorted(lines + lines[:1])


def test_multipart_uploads_of_csv_and_zip_parts_reach_the_input_topic(broker_config, broker):
    """Oryx's upload form: several parts, a CSV and a zip (and gzip), on /ingest, /add and /train."""
    from tests.test_serving_uploads import multipart, zipped

    config = broker_config()
    rng = np.random.default_rng(7)
    client = client_for(config, ALSServingModel(ALSFactors(["u0"], rng.normal(size=(1, 3)), ["i0"],
                                                           rng.normal(size=(1, 3)), {}, ALSSettings(True))))
    body, headers = multipart([("prefs.csv", "text/csv", b"a,x,1\nb,y,2\n"),
                               ("more.zip", "application/zip", zipped({"c.csv": b"c,z,3\n", "d.csv": b"d,w"})),
                               ("late.csv.gz", "application/gzip", gzip.compress(b"e,v,4\n"))])
    response = client.post("/ingest", data=body, headers=headers)
    assert response.status_code == 200 and response.get_json() == {"sent": 5}
    close_producer(client)
    assert sorted(read_topic(broker, config.input_topic)) == ["a,x,1", "b,y,2", "c,z,3", "d,w", "e,v,4"]

    kmeans = broker_config(app="kmeans", **{"input-schema.feature-names": ["x", "y", "z"]})
    client = client_for(kmeans, KMeansServingModel(KMeansClusters(["x", "y", "z"], np.eye(3), [1, 1, 1])))
    body, headers = multipart([(None, None, b"1,2,3"), ("p.zip", None, zipped({"p.csv": b"4,5,6\n"}))])
    assert client.post("/add", data=body, headers=headers).get_json() == {"sent": 2}
    close_producer(client)
    assert sorted(read_topic(broker, kmeans.input_topic)) == ["1,2,3", "4,5,6"]

    forest = broker_config(app="rdf-classification", **small_schema("classification"))
    client = client_for(forest, RandomForestServingModel(random_forest_model("classification")))
    lines = small_lines("classification", 4)
    body, headers = multipart([(None, "text/csv", "\n".join(lines[:2]).encode()),
                               ("t.zip", "application/zip", zipped({"t.csv": "\n".join(lines[2:]).encode()}))])
    assert client.post("/train", data=body, headers=headers).get_json() == {"sent": 4}
    close_producer(client)
    assert sorted(read_topic(broker, forest.input_topic)) == sorted(lines)
