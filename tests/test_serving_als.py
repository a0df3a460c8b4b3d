"""ALS endpoints over a small in-memory model: answers checked against brute-force numpy."""
from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.apps.als.solves import explicit_solve, implicit_solve
from serving_layer.als_model import ALSServingModel
from serving_layer.app import create_app
from serving_layer.model_manager import ModelManager

USERS = [f"u{n}" for n in range(5)]
ITEMS = [f"i{n}" for n in range(12)]
KNOWN = {"u0": {"i0", "i1"}, "u1": {"i1"}, "u2": {"i1", "i2", "i3"}}


def small_factors(implicit: bool = True) -> ALSFactors:
    rng = np.random.default_rng(7)
    biases = {} if implicit else {"mu": 3.0, "user_bias": rng.normal(0, 0.3, 5), "item_bias": rng.normal(0, 0.3, 12)}
    return ALSFactors(USERS, rng.normal(size=(5, 3)), ITEMS, rng.normal(size=(12, 3)), KNOWN,
                      ALSSettings(implicit, regularization=0.1, bias_regularization=2.0, alpha=3.0), **biases)


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
    ("/because/u0/nope", 404, "nope"),
    ("/recommendToAnonymous/nope1/nope2", 400, "none of the items"),  # Oryx: 400
    ("/recommendToAnonymous/i0=abc", 400, "abc"),
    ("/similarityToItem/nope/i1", 404, "nope"),
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


@pytest.mark.parametrize("implicit", [True, False])
def test_anonymous_and_context_users_are_exact_solves(serve_model, implicit):
    f = small_factors(implicit)
    client, _ = serve_model(f)
    rows = [ITEMS.index("i1"), ITEMS.index("i2")]
    seg, values = np.zeros(2, np.int64), np.array([2.0, 1.0])
    if implicit:
        x = implicit_solve(seg, 1, f.Y[rows], values, f.Y.T.astype(float) @ f.Y, 0.1, 3.0)[0]
        expected = f.Y @ x
    else:
        x, b = explicit_solve(seg, 1, f.Y[rows], f.item_bias[rows], values, 3.0, 0.1, 2.0)
        expected = 3.0 + b[0] + f.item_bias + f.Y @ x[0]
    anonymous = csv_pairs(client.get("/recommendToAnonymous/i1=2/i2?howMany=3"))
    assert [i for i, _ in anonymous] == brute_top(expected, {"i1", "i2"}, 3)
    assert [v for _, v in anonymous] == pytest.approx([expected[ITEMS.index(i)] for i, _ in anonymous], rel=1e-4)
    estimate = float(client.get("/estimateForAnonymous/i5/i1=2/i2").text)
    assert estimate == pytest.approx(expected[5], rel=1e-4)
    # with context: the user's own values (u2 knows i1, i2, i3 at 1) plus the context's
    rows = [ITEMS.index(i) for i in ("i1", "i2", "i3", "i5")]
    context_values = np.array([1.0, 1.0, 1.0, 4.0])
    seg = np.zeros(4, np.int64)
    if implicit:
        x = implicit_solve(seg, 1, f.Y[rows], context_values, f.Y.T.astype(float) @ f.Y, 0.1, 3.0)[0]
        expected = f.Y @ x
    else:
        x, b = explicit_solve(seg, 1, f.Y[rows], f.item_bias[rows], context_values, 3.0, 0.1, 2.0)
        expected = 3.0 + b[0] + f.item_bias + f.Y @ x[0]
    context = csv_pairs(client.get("/recommendWithContext/u2/i5=4?howMany=3"))
    assert [i for i, _ in context] == brute_top(expected, {"i1", "i2", "i3", "i5"}, 3)


def test_explicit_estimates_and_rankings_include_the_biases(serve_model):
    f = small_factors(implicit=False)
    client, _ = serve_model(f)
    estimates = [float(v) for v in client.get("/estimate/u2/i4/unknown").text.split()]
    # an item the model does not know is 0, as Oryx answers
    assert estimates == pytest.approx([3.0 + f.user_bias[2] + f.item_bias[4] + f.X[2] @ f.Y[4], 0.0], rel=1e-5)
    # a user the model does not know yet is estimated with what it knows: μ + b_i
    assert float(client.get("/estimate/nobody/i4").text) == pytest.approx(3.0 + f.item_bias[4], rel=1e-5)
    scores = 3.0 + f.user_bias[0] + f.item_bias + f.Y @ f.X[0]
    pairs = csv_pairs(client.get("/recommend/u0?howMany=3"))
    assert [i for i, _ in pairs] == brute_top(scores, KNOWN["u0"], 3)
    assert pairs[0][1] == pytest.approx(scores[ITEMS.index(pairs[0][0])], rel=1e-5)


def test_up_messages_apply_idempotently(serve_model):
    client, manager = serve_model()
    up = [["X", "u9", [1.0, 0.0, 0.0], 0.0, {"i1": 1.0}], ["Y", "i99", [5.0, 0.0, 0.0], 0.0],
          ["X", "u0", [1.0, 0.0, 0.0], 0.0, {"i99": 2.0}]]
    manager.apply_payloads(up)
    first = client.get("/recommend/u9?howMany=3").text
    manager.apply_payloads(up)
    assert client.get("/recommend/u9?howMany=3").text == first
    assert first.splitlines()[0] == "i99,5.0"
    assert client.get("/knownItems/u0").text.split() == ["i0", "i1", "i99"]
    assert client.get("/item/allIDs").text.split().count("i99") == 1
    # a removed pair (null) leaves the known items; the other values stay
    manager.apply_payloads([["X", "u0", [1.0, 0.0, 0.0], 0.0, {"i1": None}]])
    assert client.get("/knownItems/u0").text.split() == ["i0", "i99"]
    manager.apply_payloads([["Z", "bad", [1.0], 0.0], ["X", "u9", [1.0], 0.0, {}]])  # logged, skipped
    assert client.get("/ready").status_code == 200


def test_many_new_items_grow_the_table(serve_model):
    client, manager = serve_model()
    manager.apply_payloads([["Y", f"n{k}", [0.0, 0.0, float(k)], 0.0] for k in range(500)])
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

