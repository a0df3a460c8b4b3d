"""ALSSpeedModel: exact fold-in of micro-batches, its UP payloads and its prequential losses (no Spark, no Kafka)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from headwater.app_checks import assert_same_state
from headwater.apps.als.events import ALSFormat
from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.messages import decode_update, encode_up
from speed_layer.als import ALSSpeedModel

USERS = [f"u{n}" for n in range(6)]
ITEMS = [f"i{n}" for n in range(8)]


def small_factors(implicit: bool = True) -> ALSFactors:
    rng = np.random.default_rng(7)
    values = {u: {ITEMS[n % 8]: 2.0, ITEMS[(n + 3) % 8]: 4.0} for n, u in enumerate(USERS)}
    return ALSFactors(USERS, rng.normal(0, 0.3, (6, 4)), ITEMS, rng.normal(0, 0.3, (8, 4)), values,
                      ALSSettings(implicit, regularization=0.1, bias_regularization=2.0, alpha=5.0),
                      mu=0.0 if implicit else 3.0)


def model_of(implicit: bool = True) -> ALSSpeedModel:
    return ALSSpeedModel.from_factors(small_factors(implicit))


def parsed(*lines: str):
    return ALSFormat().parse(list(lines)).table


def test_every_touched_user_and_item_is_announced_and_nothing_else():
    model = model_of()
    payloads = model.learn_many(parsed("u0,i5,2", "u0,i6,1", "u1,i5,1", "u2,i7,3"))
    assert {p[1] for p in payloads if p[0] == "X"} == {"u0", "u1", "u2"}
    assert {p[1] for p in payloads if p[0] == "Y"} == {"i5", "i6", "i7"}
    x_u0 = next(p for p in payloads if p[:2] == ["X", "u0"])
    assert x_u0[4] == {"i5": 2.0, "i6": 1.0}  # the pairs that changed, as stored values


def test_implicit_strengths_add_up_and_a_delete_removes_a_known_item():
    model = model_of()
    model.learn_many(parsed("u0,i3,1"))
    assert model.state.by_user.lookup([0], [3])[0] == 5.0  # 4 stored + 1
    payloads = model.learn_many(parsed("u0,i3,", "u0,i6,1"))
    assert model.state.known_items("u0") == ["i0", "i6"]
    assert next(p for p in payloads if p[:2] == ["X", "u0"])[4] == {"i3": None, "i6": 1.0}


def test_events_are_taken_in_timestamp_order():
    model = model_of()
    # the delete is older than the add, although it arrives later: the item stays known
    model.learn_many(parsed("u1,i6,1,2000", "u1,i6,,1000"))
    assert "i6" in model.state.known_items("u1")


def test_new_user_and_new_item_get_vectors_and_explicit_estimates_stay_on_the_scale():
    model = model_of(implicit=False)
    payloads = model.learn_many(parsed("newbie,i1,5", "newbie,fresh,4", "stranger,brand-new,1"))
    assert {("X", "newbie"), ("X", "stranger"), ("Y", "fresh"), ("Y", "brand-new")} <= {(p[0], p[1]) for p in payloads}
    estimates = model.state.estimates(["newbie"] * 3, ["i1", "fresh", "i2"])
    assert np.all((estimates > 2.0) & (estimates < 5.0)) and estimates[0] > 3.0


@pytest.mark.parametrize("implicit", [True, False])
def test_up_payloads_survive_the_wire_and_replay_idempotently(implicit):
    model, follower = model_of(implicit), model_of(implicit)
    payloads = model.learn_many(parsed("u0,i5,2", "u3,i1,4", "newbie,i2,1", "newbie,fresh,1", "u4,i4,"))
    for payload in payloads:
        assert payload[0] in ("X", "Y") and len(payload[2]) == 4 and isinstance(payload[3], float)
        assert decode_update(encode_up(payload)).payload == json.loads(json.dumps(payload))
    for _ in range(2):  # applying the same messages again changes nothing
        for payload in payloads:
            follower.apply_update(payload)
        assert_same_state(model.state_summary(), follower.state_summary(), "follower")


def test_copy_is_independent_and_round_trips_through_artifacts(tmp_path):
    model = model_of()
    copy = model.copy()
    model.learn_many(parsed("u0,i5,2", "newbie,i1,1"))
    assert_same_state(model_of().state_summary(), copy.state_summary(), "copy")
    model.save(tmp_path)
    assert_same_state(model.state_summary(), ALSSpeedModel.from_factors(ALSFactors.load(tmp_path)).state_summary(),
                      "loaded")


def test_bad_payloads_are_refused():
    model = model_of()
    with pytest.raises(ValueError, match="3 features"):
        model.apply_update(["X", "u0", [0.1, 0.2, 0.3], 0.0, {}])
    with pytest.raises(ValueError, match="'Z'"):
        model.apply_update(["Z", "u0", [0.0] * 4, 0.0])
    with pytest.raises(ValueError, match="values of user"):
        model.apply_update(["X", "u0", [0.0] * 4, 0.0, ["i1"]])


def test_an_empty_batch_changes_nothing():
    model = model_of()
    assert model.learn_many(parsed()) == []
    assert_same_state(model_of().state_summary(), model.state_summary(), "empty batch")


def test_explicit_prequential_losses_are_scored_before_learning():
    model = model_of(implicit=False)
    batch = parsed("u0,i5,4", "nobody,i5,2", "u1,i1,")
    before = model.state.estimates(["u0", "nobody"], ["i5", "i5"])
    losses = model.score_many(batch)
    assert list(losses) == ["squared_error", "absolute_error"]  # the primary loss first
    np.testing.assert_allclose(losses["absolute_error"][:2], np.abs([4.0, 2.0] - before))
    np.testing.assert_allclose(losses["squared_error"][:2], ([4.0, 2.0] - before) ** 2)
    assert np.isnan(losses["squared_error"][2])  # a delete is not scored
    assert before[1] == pytest.approx(3.0 + model.state.item_bias[5])  # a new user: μ + b_i


def test_implicit_misses_at_10_use_the_top_10_without_known_items():
    rng = np.random.default_rng(1)
    items = [f"i{n}" for n in range(40)]
    factors = ALSFactors(["u"], rng.normal(size=(1, 3)), items, rng.normal(size=(40, 3)),
                         {"u": {"i0": 1.0}}, ALSSettings(implicit=True, regularization=0.1))
    model = ALSSpeedModel.from_factors(factors)
    scores = factors.Y @ factors.X[0]
    scores[0] = -np.inf
    order = [items[n] for n in np.argsort(-scores)]
    batch = parsed(f"u,{order[0]}", f"u,{order[9]}", f"u,{order[10]}", "u,i0", "newcomer,i7", f"u,{order[0]},")
    misses = model.score_many(batch)["miss_at_10"]
    assert misses[:4].tolist() == [0.0, 0.0, 1.0, 1.0] and np.isnan(misses[5])
    # a user without a vector gets the most popular items: i0, the only item anyone has, is in them
    assert model.score_many(parsed("newcomer,i0"))["miss_at_10"].tolist() == [0.0]


def test_the_sampled_bound_finds_exactly_the_top_k():
    from headwater.apps.als.prequential import _in_top_k

    rng = np.random.default_rng(4)
    scores = rng.normal(size=(50, 3000)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.1] = -np.inf  # known items
    scores[7, 10:] = -np.inf  # a user with fewer candidates than k
    rows = np.repeat(np.arange(50), 40)
    items = np.concatenate([np.argsort(-scores[r])[:40] for r in range(50)])  # ranks 0-39 of each row
    items[::7] = -1  # unknown items
    expected = np.array([i >= 0 and np.isfinite(scores[r, i]) and (scores[r] > scores[r, i]).sum() < 10
                         for r, i in zip(rows, items)])
    np.testing.assert_array_equal(_in_top_k(scores, rows, items, 10), expected)
