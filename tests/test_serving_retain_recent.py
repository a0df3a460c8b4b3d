"""Retain recent: a user the served model learned from UPs survives the switch to a champion that lacks it."""
from __future__ import annotations

import numpy as np

from headwater import registry
from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.apps.als.pyfunc import ALSPyfuncModel
from serving_layer.als_model import ALSServingModel
from serving_layer.model_manager import ModelManager


def register(config, tmp_path, seed: int, users: list[str]) -> registry.RegisteredModel:
    rng = np.random.default_rng(seed)
    items = [f"i{n}" for n in range(30)]
    factors = ALSFactors(users, rng.normal(size=(len(users), 3)), items, rng.normal(size=(30, 3)),
                         {u: {items[n]} for n, u in enumerate(users)}, ALSSettings(True, regularization=0.1))
    factors.save(tmp_path / f"v{seed}")
    return registry.log_and_register(config, tmp_path / f"v{seed}", ALSPyfuncModel(), {"layer": "batch"},
                                     aliases=[registry.CHAMPION])


def test_users_learned_since_the_last_load_are_kept_in_a_new_champion_that_lacks_them(make_config, tmp_path):
    config = make_config()
    first = register(config, tmp_path, 1, ["u0", "u1", "dropped"])
    manager = ModelManager(config, ALSServingModel)
    manager.load_from_registry()
    manager.apply_payloads([["X", "fresh", [0.1, 0.2, 0.3], 0.0, {"i1": 1.0, "i2": 1.0}]], base=first.version)
    second = register(config, tmp_path, 2, ["u0", "u1"])
    manager.load_from_registry()

    served = manager.model
    assert served.version == second.version
    # learned from an UP since the last load, not in the new champion: kept, on the new model's items
    assert served.known_items("fresh") == ["i1", "i2"]
    np.testing.assert_allclose(served.users.vector("fresh"),
                               served.solve_user([("i1", 1.0), ("i2", 1.0)]).vector, rtol=1e-5)
    # a user of the old champion that the new one dropped is not an UP's: it goes
    assert served.users.vector("dropped") is None
    # the speed layer's UP on the new champion replaces the bridge
    manager.apply_payloads([["X", "fresh", [1.0, 1.0, 1.0], 0.0, {"i3": 1.0}]], base=second.version)
    assert served.users.vector("fresh").tolist() == [1.0, 1.0, 1.0]
