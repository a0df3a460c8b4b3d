"""ALS endpoints over a small in-memory model: answers checked against brute-force numpy."""
from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

from headwater.apps.als.factors import ALSFactors
from serving_layer.als_model import ALSServingModel
from serving_layer.app import create_app
from serving_layer.model_manager import ModelManager

USERS = [f"u{n}" for n in range(5)]
ITEMS = [f"i{n}" for n in range(12)]
KNOWN = {"u0": {"i0", "i1"}, "u1": {"i1"}, "u2": {"i1", "i2", "i3"}}


def small_factors(implicit: bool = True) -> ALSFactors:
    rng = np.random.default_rng(7)
    return ALSFactors(USERS, rng.normal(size=(5, 3)), ITEMS, rng.normal(size=(12, 3)), KNOWN, implicit, 0.1)


@pytest.fixture
def serve_model(make_config):
    # the default is built per test: this fixture body runs once for each test using it
    def build(factors: ALSFactors | None = small_factors(), **overrides):  # noqa: B008
        manager = ModelManager(model_class=ALSServingModel)
        if factors is not None:
            manager.swap(ALSServingModel(factors, version=3))
        app = create_app(make_config(**overrides), manager)
        return app.test_client(), manager

    return build


def csv_pairs(response):
    return [(line.split(",")[0], float(line.split(",")[1])) for line in response.text.splitlines()]


def brute_top(scores: np.ndarray, exclude=(), n=10):
    order = [ITEMS[i] for i in np.argsort(-scores, kind="stable") if ITEMS[i] not in exclude]
    return order[:n]


def test_recommend_matches_brute_force_and_excludes_known_items(serve_model):
    client, _ = serve_model()
    f = small_factors()
    scores = f.Y @ f.X[0]
    response = client.get("/recommend/u0?howMany=4")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    pairs = csv_pairs(response)
    assert [i for i, _ in pairs] == brute_top(scores, KNOWN["u0"], 4)
    assert pairs[0][1] == pytest.approx(scores[ITEMS.index(pairs[0][0])], rel=1e-5)
    with_known = csv_pairs(client.get("/recommend/u0?howMany=12&considerKnownItems=true"))
    assert [i for i, _ in with_known] == brute_top(scores, (), 12)
    paged = csv_pairs(client.get("/recommend/u0?howMany=2&offset=2"))
    assert [i for i, _ in paged] == brute_top(scores, KNOWN["u0"], 4)[2:]


def test_json_on_accept_header(serve_model):
    client, _ = serve_model()
    body = client.get("/recommend/u1?howMany=3", headers={"Accept": "application/json"}).get_json()
    assert len(body) == 3 and set(body[0]) == {"id", "value"}
    ids = client.get("/item/allIDs", headers={"Accept": "application/json"}).get_json()
    assert ids == ITEMS
    assert client.get("/user/allIDs").text.split() == USERS


@pytest.mark.parametrize("url, status, word", [
    ("/recommend/nobody", 404, "nobody"),
    ("/recommend/u0?howMany=0", 400, "The 'howMany' parameter must be an int in the range [1, inf). Got 0 instead."),
    ("/recommend/u0?howMany=x", 400, "howMany"),
    ("/recommend/u0?offset=-1", 400, "offset"),
    ("/recommend/u0?considerKnownItems=maybe", 400, "considerKnownItems"),
    ("/similarity/i0/nope", 404, "nope"),
    ("/estimate/nobody/i0", 404, "nobody"),
    ("/because/u0/nope", 404, "nope"),
    ("/recommendToAnonymous/nope1/nope2", 404, "none of the items"),
    ("/recommendToAnonymous/i0=abc", 400, "abc"),
    ("/similarityToItem/nope/i1", 404, "nope"),
    ("/knownItems/nobody", 404, "nobody"),
    ("/no/such/endpoint", 404, "not found"),
])
def test_errors_are_json_naming_the_problem(serve_model, url, status, word):
    client, _ = serve_model()
    response = client.get(url)
    assert response.status_code == status
    body = response.get_json()
    assert body["error"] and word.lower() in json.dumps(body).lower()


def test_503_before_a_model(serve_model):
    client, _ = serve_model(factors=None)
    for url in ("/recommend/u0", "/ready", "/item/allIDs"):
        response = client.get(url)
        assert response.status_code == 503
        assert response.get_json()["reason"] == "no model is loaded yet"


def test_other_endpoints(serve_model):
    client, _ = serve_model()
    f = small_factors()
    estimates = [float(v) for v in client.get("/estimate/u2/i4/i5/unknown").text.split()]
    assert estimates[:2] == pytest.approx([f.X[2] @ f.Y[4], f.X[2] @ f.Y[5]], rel=1e-5) and estimates[2] == 0.0

    normed = f.Y / np.linalg.norm(f.Y, axis=1, keepdims=True)
    sims = csv_pairs(client.get("/similarity/i4?howMany=3"))
    assert [i for i, _ in sims] == brute_top(normed @ normed[4], {"i4"}, 3)
    to_item = [float(v) for v in client.get("/similarityToItem/i4/i5/i6").text.split()]
    assert to_item == pytest.approx([normed[4] @ normed[5], normed[4] @ normed[6]], rel=1e-5)

    because = csv_pairs(client.get("/because/u2/i7"))
    assert sorted(i for i, _ in because) == ["i1", "i2", "i3"]
    assert [v for _, v in because] == sorted([v for _, v in because], reverse=True)
    surprising = csv_pairs(client.get("/mostSurprising/u2"))
    assert [v for _, v in surprising] == sorted(v for _, v in surprising)

    assert client.get("/knownItems/u2").text.split() == ["i1", "i2", "i3"]
    popular = csv_pairs(client.get("/mostPopularItems?howMany=1"))
    assert popular == [("i1", 3.0)]
    assert csv_pairs(client.get("/mostActiveUsers?howMany=1")) == [("u2", 3.0)]
    representative = client.get("/popularRepresentativeItems").text.split()
    assert representative == [ITEMS[i] for i in np.argmax(f.Y, axis=0)]

    anonymous = csv_pairs(client.get("/recommendToAnonymous/i1=2/i2?howMany=20"))
    assert {"i1", "i2"}.isdisjoint(i for i, _ in anonymous) and len(anonymous) == 10
    assert len(client.get("/estimateForAnonymous/i5/i1=2/i2").text.split()) == 1
    context = csv_pairs(client.get("/recommendWithContext/u0/i5?howMany=20"))
    assert {"i0", "i1", "i5"}.isdisjoint(i for i, _ in context)
    many = csv_pairs(client.get("/recommendToMany/u0/u1?howMany=20"))
    assert {"i0", "i1"}.isdisjoint(i for i, _ in many)
    mean = (f.X[0] + f.X[1]) / 2
    assert [i for i, _ in many] == brute_top(f.Y @ mean, {"i0", "i1"}, 20)


def test_anonymous_vector_is_oryx_sequential_fold_in(serve_model):
    f = small_factors()
    model = ALSServingModel(f)
    inverse = np.linalg.inv(f.Y.T.astype(float) @ f.Y + 0.1 * np.eye(3))
    y1 = f.Y[1].astype(float)
    x = (0.5 + 2 / 3 * 0.5) * y1 @ inverse  # first item: from "don't know" 0.5 with strength 2
    np.testing.assert_allclose(model.anonymous_vector([("i1", 2.0)]), x, rtol=1e-4)


def test_up_messages_apply_idempotently(serve_model):
    client, manager = serve_model()
    up = [["X", "u9", [1.0, 0.0, 0.0], ["i1"]], ["Y", "i99", [5.0, 0.0, 0.0], ["u0"]]]
    manager.apply_payloads(up)
    first = client.get("/recommend/u9?howMany=3").text
    manager.apply_payloads(up)
    assert client.get("/recommend/u9?howMany=3").text == first
    assert first.splitlines()[0] == "i99,5.0"
    assert client.get("/knownItems/u0").text.split() == ["i0", "i1", "i99"]
    assert client.get("/item/allIDs").text.split().count("i99") == 1
    # the known-item list of an X message is the user's complete set: a delete shows by omission
    manager.apply_payloads([["X", "u9", [1.0, 0.0, 0.0], []]])
    assert client.get("/knownItems/u9").text == ""
    manager.apply_payloads([["Z", "bad", [1.0], None], ["X", "u9", [1.0], None]])  # logged, skipped
    assert client.get("/ready").status_code == 200


def test_many_new_items_grow_the_table(serve_model):
    client, manager = serve_model()
    manager.apply_payloads([["Y", f"n{k}", [0.0, 0.0, float(k)], None] for k in range(500)])
    assert len(client.get("/item/allIDs").text.split()) == 512
    assert manager.model.items.vector("n499")[2] == 499.0


def rescore_even_only(user, ids, scores, params):
    keep = np.array([int(i[1:]) % 2 == 0 for i in ids])
    bonus = float(params[0]) if params else 0.0
    return np.where(keep, scores + bonus, np.nan)


def test_rescorer_filters_and_reweights(serve_model, monkeypatch):
    module = types.ModuleType("fake_rescorers")
    module.even = rescore_even_only
    monkeypatch.setitem(sys.modules, "fake_rescorers", module)
    client, _ = serve_model(**{"serving.rescorer": "fake_rescorers:even"})
    pairs = csv_pairs(client.get("/recommend/u3?howMany=20&rescorerParams=100"))
    assert pairs and all(int(i[1:]) % 2 == 0 for i, _ in pairs)
    assert all(v > 90 for _, v in pairs)
    assert all(int(i[1:]) % 2 == 0 for i, _ in csv_pairs(client.get("/mostPopularItems")))


def test_unimportable_rescorer_is_a_config_error(serve_model):
    from headwater.config import ConfigError

    with pytest.raises(ConfigError, match="headwater.serving.rescorer"):
        serve_model(**{"serving.rescorer": "no_such_module:fn"})

