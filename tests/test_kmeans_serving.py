"""k-means endpoints over a small in-memory model: answers checked against brute-force numpy."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from headwater.apps.kmeans.clusters import KMeansClusters
from serving_layer.app import create_app
from serving_layer.kmeans import KMeansServingModel
from serving_layer.model_manager import ModelManager

# an id column and an ignored column ride along in every datum and are not clustered
SCHEMA = {"input-schema.feature-names": ["id", "x", "y", "z", "note"], "input-schema.id-features": ["id"],
          "input-schema.ignored-features": ["note"]}
CENTERS = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 5.0], [3.0, 3.0, 3.0]])


@pytest.fixture
def serve_model(make_config):
    def build(with_model: bool = True):
        manager = ModelManager(model_class=KMeansServingModel)
        if with_model:
            manager.swap(KMeansServingModel(KMeansClusters(["x", "y", "z"], CENTERS, [5, 5, 5, 5]), version=2))
        app = create_app(make_config(app="kmeans", **SCHEMA), manager)
        return app.test_client(), manager

    return build


def brute_force(points: np.ndarray) -> tuple[list[int], list[float]]:
    distances = np.linalg.norm(points[:, None, :] - CENTERS[None, :, :], axis=2)
    return distances.argmin(axis=1).tolist(), distances.min(axis=1).tolist()


def test_assign_and_distance_match_brute_force(serve_model):
    client, _ = serve_model()
    rng = np.random.default_rng(1)
    points = rng.uniform(-2, 12, (40, 3))
    nearest, distance = brute_force(points)

    lines = [f"row{n},{x},{y},{z},free text" for n, (x, y, z) in enumerate(points)]
    assert client.get(f"/assign/{lines[0]}").get_data(as_text=True) == f"{nearest[0]}\n"
    answer = client.get(f"/distanceToNearest/{lines[1]}", headers={"Accept": "application/json"}).get_json()
    assert answer == pytest.approx(distance[1])  # a bare number, as Oryx answers one datum

    many = client.post("/assign", data="\n".join(lines) + "\n")
    assert many.status_code == 200 and many.mimetype == "text/csv"
    assert [int(v) for v in many.get_data(as_text=True).split()] == nearest
    gzipped = client.post("/assign", data=gzip.compress("\n".join(lines).encode()),
                          headers={"Content-Encoding": "gzip", "Accept": "application/json"})
    assert gzipped.get_json() == nearest
    # a JSON-array datum is a datum too
    datum = json.dumps(["j", 9.5, 0.5, 0.0, "x"])
    assert client.get(f"/assign/{datum}", headers={"Accept": "application/json"}).get_json() == 1


@pytest.mark.parametrize("datum, words", [
    ("a,1,2,3", ["expected 5 fields", "id,x,y,z,note", "got 4"]),
    ("a,1,oops,3,n", ["feature 'y'", "oops"]),
    ("a,1,2,inf,n", ["feature 'z'", "finite"]),
])
def test_a_bad_datum_is_a_400_naming_the_field(serve_model, datum, words):
    client, _ = serve_model()
    for response in (client.get(f"/assign/{datum}"), client.get(f"/distanceToNearest/{datum}"),
                     client.post("/add/" + datum)):
        assert response.status_code == 400
        message = response.get_json()["message"]
        assert all(word in message for word in words), message


def test_a_bad_line_in_a_post_names_the_line(serve_model):
    client, _ = serve_model()
    response = client.post("/assign", data="a,1,2,3,n\nb,1,2,x,n\nc,1,2\n")
    assert response.status_code == 400
    body = response.get_json()
    assert body["message"].startswith("line 2: feature 'z'")
    assert [r["line"] for r in body["rejected"]] == [2, 3]


def test_503_before_a_model_and_ready_after(serve_model):
    client, manager = serve_model(with_model=False)
    assert client.get("/assign/a,1,2,3,n").status_code == 503
    assert client.get("/ready").status_code == 503
    manager.swap(KMeansServingModel(KMeansClusters(["x", "y", "z"], CENTERS, [1, 1, 1, 1]), version=4))
    assert client.get("/ready").get_json() == {"ready": True, "model_version": 4}
    assert client.get("/assign/a,1,2,3,n").status_code == 200


def test_up_messages_move_centres_idempotently(serve_model):
    client, manager = serve_model()
    assert client.get("/assign/a,6,0,0,n").get_data(as_text=True) == "1\n"
    payload = ["C", 3, [6.0, 0.5, 0.0], 9.0]
    manager.apply_payloads([payload, payload])
    assert client.get("/assign/a,6,0,0,n").get_data(as_text=True) == "3\n"
    assert manager.model.clusters.counts.tolist() == [5.0, 5.0, 5.0, 9.0]
    # a payload that does not fit the model is skipped, not fatal
    manager.apply_payloads([["C", 17, [1.0, 1.0, 1.0], 1.0], ["C", 0, [1.0], 1.0]])
    assert manager.model.clusters.centers.tolist()[3] == [6.0, 0.5, 0.0]

