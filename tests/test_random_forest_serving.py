"""Random forest endpoints over a small in-memory forest: answers checked against the numpy model directly."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from headwater.apps.forest import updates
from headwater.apps.forest.example import CLASSES, random_forest_model, small_lines, small_schema
from headwater.input_format import InputSchema, SchemaCSVFormat
from serving_layer.app import create_app
from serving_layer.model_manager import ModelManager
from serving_layer.random_forest import RandomForestServingModel

JSON = {"Accept": "application/json"}
UNLABELLED = SchemaCSVFormat(InputSchema(["id", "x0", "x1", "x2", "colour", "label"], ids=["id"],
                                         categorical=["colour"], ignored=["label"]))


@pytest.fixture
def serve_model(make_config):
    def build(task: str = "classification", with_model: bool = True):
        manager = ModelManager(model_class=RandomForestServingModel)
        if with_model:
            manager.swap(RandomForestServingModel(random_forest_model(task), version=2))
        config = make_config(app=f"rdf-{task}", **small_schema(task))
        return create_app(config, manager).test_client(), manager, config

    return build


def expected(task: str, lines: list[str]):
    rows = UNLABELLED.parse(lines).table
    model = random_forest_model(task)
    return model.predict(rows), (model.probabilities(rows) if task == "classification" else None)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_predict_one_and_many_match_the_model(serve_model, task):
    client, _, _ = serve_model(task)
    lines = small_lines(task, 60, labelled=False)  # the target's value is empty: it is ignored anyway
    predictions, _ = expected(task, lines)
    one = client.get(f"/predict/{lines[0]}")
    assert one.status_code == 200 and one.mimetype == "text/csv"
    assert one.text.strip() == str(predictions[0])
    many = client.post("/predict", data="\n".join(lines) + "\n", headers=JSON)
    assert many.get_json() == predictions
    gzipped = client.post("/predict", data=gzip.compress("\n".join(small_lines(task, 60)).encode()),
                          headers={"Content-Encoding": "gzip"})
    assert gzipped.text.split() == [str(p) for p in predictions]  # a labelled line predicts the same
    datum = json.dumps(["j", 0.1, -0.2, 0.3, "green", None])  # a JSON-array datum
    # one datum: the bare prediction, as Oryx answers
    assert client.get(f"/predict/{datum}", headers=JSON).get_json() == expected(task, [datum])[0][0]
    if task == "classification":
        assert set(predictions) <= set(CLASSES)


def test_classification_distribution_matches_the_model(serve_model):
    client, _, _ = serve_model()
    line = small_lines("classification", 1, labelled=False)[0]
    _, probabilities = expected("classification", [line])
    pairs = [row.split(",") for row in client.get(f"/classificationDistribution/{line}").text.split()]
    assert [name for name, _ in pairs] == CLASSES
    np.testing.assert_allclose([float(p) for _, p in pairs], probabilities[0])
    body = client.get(f"/classificationDistribution/{line}", headers=JSON).get_json()
    assert [entry["id"] for entry in body] == CLASSES


def test_classification_distribution_of_a_regression_is_a_400(serve_model):
    client, _, _ = serve_model("regression")
    response = client.get(f"/classificationDistribution/{small_lines('regression', 1)[0]}")
    assert response.status_code == 400 and "classification" in response.get_json()["message"]


def test_feature_importance_is_indexed_by_every_schema_feature_as_oryx(serve_model):
    client, manager, _ = serve_model()
    importances = manager.model.model.forest.importances.tolist()  # the predictors': x0, x1, x2, colour
    # schema id, x0, x1, x2, colour, label: the id and the target are features too, with importance 0
    assert client.get("/feature/importance", headers=JSON).get_json() == [0.0, *importances, 0.0]
    assert float(client.get("/feature/importance/3").text) == importances[2]  # x2, Oryx's feature 3
    assert client.get("/feature/importance/0", headers=JSON).get_json() == 0.0
    for bad in ("6", "x", "-1"):
        response = client.get(f"/feature/importance/{bad}")
        assert response.status_code == 400 and "featureNumber" in response.get_json()["message"]


@pytest.mark.parametrize("datum, words", [
    ("a,1,2,3,red", ["expected 6 fields", "id,x0,x1,x2,colour,label", "got 5"]),
    ("a,1,oops,3,red,", ["feature 'x1'", "oops"]),
    ("a,1,2,3,purple,", ["feature 'colour'", "'purple'", "blue, green, red"]),
])
def test_a_bad_datum_is_a_400_naming_the_field(serve_model, datum, words):
    client, _, _ = serve_model()
    for response in (client.get(f"/predict/{datum}"), client.get(f"/classificationDistribution/{datum}")):
        assert response.status_code == 400
        message = response.get_json()["message"]
        assert all(word in message for word in words), message


def test_an_unknown_category_in_a_post_names_the_line_and_value(serve_model):
    client, _, _ = serve_model()
    lines = small_lines("classification", 3, labelled=False) + ["z,0,0,0,teal,"]
    body = client.post("/predict", data="\n".join(lines)).get_json()
    assert body["message"].startswith("line 4: feature 'colour' has no category 'teal'")
    assert body["feature"] == "colour" and body["value"] == "teal"


def test_503_before_a_model_and_ready_after(serve_model):
    client, manager, _ = serve_model(with_model=False)
    line = small_lines("classification", 1)[0]
    for response in (client.get(f"/predict/{line}"), client.get("/feature/importance"), client.get("/ready")):
        assert response.status_code == 503 and "no model" in response.get_json()["message"]
    manager.swap(RandomForestServingModel(random_forest_model("classification"), version=5))
    assert client.get("/ready").get_json() == {"ready": True, "model_version": 5}


def test_updates_change_predictions_and_stale_ones_are_ignored(serve_model):
    client, manager, _ = serve_model("regression")
    line = small_lines("regression", 1, labelled=False)[0]
    before = float(client.get(f"/predict/{line}").text)
    forest = manager.model.model.forest
    X = manager.model.model.encoding.features(UNLABELLED.parse([line]).table)
    leaves = forest.leaves(X)[0]
    changed = forest.copy()
    changed.stats[leaves] = [1.0, 1000.0, 1e6]
    changed.clock = 1.0
    payloads = [updates.encode(u) for u in changed.leaf_update(leaves)]
    manager.apply_payloads(payloads)
    assert float(client.get(f"/predict/{line}").text) == pytest.approx(1000.0)
    stale = [[p[0], "00000000", *p[2:]] for p in payloads]
    manager.apply_payloads(stale)
    assert float(client.get(f"/predict/{line}").text) == pytest.approx(1000.0) != before
    assert manager.model.updates_ignored == 1
