"""ALS answers as an Oryx client expects them (issue 11, points 5-7): known items of any sign and
no-known-items, multi-item similarity, status codes and single values."""
from __future__ import annotations

import numpy as np
import pytest

from headwater.apps.als.factors import ALSFactors
from headwater.registry import RegisteredModel
from serving_layer.als_model import ALSServingModel
from serving_layer.app import create_app
from serving_layer.model_manager import ModelManager
from tests.test_serving_als import ITEMS, USERS, csv_pairs, small_factors

JSON = {"Accept": "application/json"}
# u0 disliked i2 (a negative strength) and has a zero for i3: both are known, as in Oryx
VALUES = {"u0": {"i0": 2.0, "i2": -1.0, "i3": 0.0}, "u1": {"i2": 1.0}}


def client_of(model: ALSServingModel, make_config, **overrides):
    manager = ModelManager(model_class=ALSServingModel)
    manager.swap(model)
    return create_app(make_config(**overrides), manager).test_client()


def factors_with(values) -> ALSFactors:
    f = small_factors()
    return ALSFactors(USERS, f.X, ITEMS, f.Y, values, f.settings)


def test_every_pair_with_a_value_is_known_negative_and_zero_too(make_config):
    model = ALSServingModel(factors_with(VALUES))
    client = client_of(model, make_config)
    assert client.get("/knownItems/u0").text.split() == ["i0", "i2", "i3"]
    recommended = [i for i, _ in csv_pairs(client.get("/recommend/u0?howMany=20"))]
    assert {"i0", "i2", "i3"}.isdisjoint(recommended) and len(recommended) == len(ITEMS) - 3
    assert dict(csv_pairs(client.get("/mostPopularItems?howMany=20")))["i2"] == 2.0
    assert dict(csv_pairs(client.get("/mostActiveUsers")))["u0"] == 3.0
    # only a delete (null in an UP's values) makes a pair unknown
    model.apply_update(["X", "u0", [0.0, 0.0, 0.0], 0.0, {"i2": None, "i3": -0.5}])
    assert client.get("/knownItems/u0").text.split() == ["i0", "i3"]


def test_no_known_items_keeps_no_values_and_recommends_everything(make_config, tmp_path):
    factors_with(VALUES).save(tmp_path / "model")
    config = make_config(**{"als.no-known-items": True})
    model = ALSServingModel.from_registered(RegisteredModel("m", 1, tmp_path / "model"), config)
    model.apply_update(["X", "u1", [1.0, 0.0, 0.0], 0.0, {"i5": 3.0}])
    client = client_of(model, make_config)
    assert client.get("/knownItems/u0", headers=JSON).get_json() == []
    assert client.get("/knownItems/u1", headers=JSON).get_json() == []
    assert len(csv_pairs(client.get("/recommend/u0?howMany=20"))) == len(ITEMS)
    assert client.get("/because/u0/i1", headers=JSON).get_json() == []
    # without the setting, the same model knows its pairs
    kept = ALSServingModel.from_registered(RegisteredModel("m", 1, tmp_path / "model"), make_config())
    assert kept.known_items("u0") == ["i0", "i2", "i3"]


def test_multi_item_similarity_is_the_cosine_to_the_sum_of_the_raw_vectors(make_config):
    f = small_factors()
    Y = f.Y.astype(np.float64) * np.linspace(0.2, 5.0, len(ITEMS))[:, None]  # very different norms
    client = client_of(ALSServingModel(ALSFactors(USERS, f.X, ITEMS, Y, {}, f.settings)), make_config)
    answer = csv_pairs(client.get("/similarity/i1/i7?howMany=5"))
    summed = Y[1] + Y[7]
    cosines = Y @ summed / (np.linalg.norm(Y, axis=1) * np.linalg.norm(summed))
    cosines[[1, 7]] = -np.inf
    order = np.argsort(-cosines, kind="stable")[:5]
    assert [i for i, _ in answer] == [ITEMS[n] for n in order]
    assert [v for _, v in answer] == pytest.approx(cosines[order].tolist(), rel=1e-4)


def test_answers_and_status_codes_are_oryx_s(make_config):
    f = small_factors()
    client = client_of(ALSServingModel(f), make_config)
    for path in ("/knownItems/nobody", "/because/nobody/i1"):  # Oryx: 200 and an empty list
        response = client.get(path, headers=JSON)
        assert response.status_code == 200 and response.get_json() == [], path
    assert client.get("/because/u0/nope").status_code == 404  # an unknown item stays a 404
    anonymous = client.get("/recommendToAnonymous/nope1/nope2")
    assert anonymous.status_code == 400 and "none of the items" in anonymous.get_json()["message"]
    one = client.get("/estimateForAnonymous/i5/i1=2/i2", headers=JSON)
    assert isinstance(one.get_json(), float)  # a bare number, not a list
    assert client.get("/estimateForAnonymous/i5/i1=2/i2").text.count("\n") == 1
    estimates = [float(v) for v in client.get("/estimate/u2/i4/unknown").text.split()]
    assert estimates == pytest.approx([float(f.X[2] @ f.Y[4]), 0.0], rel=1e-5)
