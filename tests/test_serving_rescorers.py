"""Rescorer providers as Oryx's RescorerProvider: a hook per use, rescore and is_filtered, several providers
chained, rescorerParams as args; the plain callable stays a shorthand (tests/test_serving_als.py)."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from serving_layer.rescorers import ItemRescorer, RescorerProvider
from tests.test_serving_als import ITEMS, csv_pairs, serve_model, small_factors  # noqa: F401 (a fixture)

SEEN: dict[str, list] = {}


class PerUse(RescorerProvider):
    """Records what each hook was given; recommend adds args[0], the others filter."""

    def recommend(self, user_ids, args):
        SEEN["recommend"] = [list(user_ids), list(args)]
        return ItemRescorer(lambda i, s: s + float(args[0]) if args else s)

    def recommend_to_anonymous(self, item_ids, args):
        SEEN["anonymous"] = [list(item_ids), list(args)]
        return ItemRescorer(filter_fn=lambda i: i == "i9")

    def most_popular_items(self, args):
        return ItemRescorer(lambda i, s: float("nan"), lambda i: i == "i1")  # only the filter counts

    def most_active_users(self, args):
        return ItemRescorer(filter_fn=lambda u: u == "u2")

    def most_similar_items(self, args):
        return ItemRescorer(filter_fn=lambda i: int(i[1:]) % 2 == 1)


class Doubler(RescorerProvider):
    """Chained after PerUse: doubles what it gives, drops i0 and i3 from recommendations."""

    def recommend(self, user_ids, args):
        return ItemRescorer(lambda i, s: 2 * s, lambda i: i in ("i0", "i3"))


class Vectorised:
    """Not a subclass, one hook only, scored with whole arrays."""

    def recommend(self, user_ids, args):
        return types.SimpleNamespace(rescore_many=lambda ids, scores: np.where(ids == "i5", np.nan, scores + 1000))


@pytest.fixture
def providers(monkeypatch):
    module = types.ModuleType("oryx_style_rescorers")
    module.PerUse, module.Doubler, module.Vectorised = PerUse, Doubler, Vectorised
    monkeypatch.setitem(sys.modules, "oryx_style_rescorers", module)
    SEEN.clear()


def test_each_use_has_its_own_hook_with_its_ids_and_args(serve_model, providers):  # noqa: F811
    client, _ = serve_model(**{"serving.rescorer": "oryx_style_rescorers:PerUse"})
    f = small_factors()
    plain = dict(csv_pairs(client.get("/recommend/u3?howMany=12")))
    boosted = dict(csv_pairs(client.get("/recommend/u3?howMany=12&rescorerParams=100&rescorerParams=x")))
    assert SEEN["recommend"] == [["u3"], ["100", "x"]]
    assert boosted == pytest.approx({i: v + 100 for i, v in plain.items()}, rel=1e-5)
    client.get("/recommendToMany/u3/u4")
    assert SEEN["recommend"][0] == ["u3", "u4"]
    anonymous = [i for i, _ in csv_pairs(client.get("/recommendToAnonymous/i1=2/i2?howMany=20&rescorerParams=a"))]
    assert SEEN["anonymous"] == [["i1", "i2"], ["a"]] and "i9" not in anonymous and len(anonymous) == 9
    popular = [i for i, _ in csv_pairs(client.get("/mostPopularItems?howMany=20"))]
    assert "i1" not in popular and popular  # filtered; the NaN rescore has no effect on counts
    active = [u for u, _ in csv_pairs(client.get("/mostActiveUsers"))]
    assert active and "u2" not in active
    similar = [i for i, _ in csv_pairs(client.get("/similarity/i4?howMany=20"))]
    assert similar and all(int(i[1:]) % 2 == 0 for i in similar)
    assert len(f.Y) == len(ITEMS)


def test_a_comma_separated_list_of_providers_is_chained(serve_model, providers):  # noqa: F811
    client, _ = serve_model(**{"serving.rescorer": "oryx_style_rescorers:PerUse, oryx_style_rescorers:Doubler,"
                                                   "oryx_style_rescorers:Vectorised"})
    base, _ = serve_model()
    plain = dict(csv_pairs(base.get("/recommend/u3?howMany=12")))
    chained = dict(csv_pairs(client.get("/recommend/u3?howMany=12&rescorerParams=10")))
    assert set(chained) == set(plain) - {"i0", "i3", "i5"}
    assert chained == pytest.approx({i: (v + 10) * 2 + 1000 for i, v in plain.items() if i in chained}, rel=1e-5)
    # hooks a provider lacks (Doubler's, Vectorised's) leave the others' in force
    assert "i9" not in [i for i, _ in csv_pairs(client.get("/recommendToAnonymous/i1?howMany=20"))]


def test_a_name_that_is_neither_a_provider_nor_callable_is_a_config_error(serve_model, monkeypatch):  # noqa: F811
    from headwater.config import ConfigError

    module = types.ModuleType("not_rescorers")
    module.NUMBER = 3
    monkeypatch.setitem(sys.modules, "not_rescorers", module)
    with pytest.raises(ConfigError, match="neither a rescorer provider"):
        serve_model(**{"serving.rescorer": "not_rescorers:NUMBER"})
