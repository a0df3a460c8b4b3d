"""ALSSpeedModel: folding micro-batches in with the shared math, and its UP payloads (no Spark, no Kafka)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from headwater.apps.als.events import ALSFormat
from headwater.apps.als.factors import ALSFactors
from headwater.apps.als.fold_in import fold_in
from headwater.messages import decode_update, encode_up
from speed_layer.als import ALSSpeedModel


def small_factors(implicit: bool = True) -> ALSFactors:
    rng = np.random.default_rng(7)
    users = [f"u{n}" for n in range(6)]
    items = [f"i{n}" for n in range(8)]
    X = rng.normal(0, 0.3, (6, 4)).astype(np.float32)
    Y = rng.normal(0, 0.3, (8, 4)).astype(np.float32)
    known = {u: {items[n % 8], items[(n + 3) % 8]} for n, u in enumerate(users)}
    return ALSFactors(users, X, items, Y, known, implicit, regularization=0.1)


def parsed(*lines: str):
    return ALSFormat().parse(list(lines)).table


def state(model: ALSSpeedModel) -> tuple:
    f = model.factors
    return (dict(zip(f.user_ids, f.X.round(6).tolist())), dict(zip(f.item_ids, f.Y.round(6).tolist())),
            {u: sorted(items) for u, items in f.known_items.items() if items})


def test_existing_vectors_move_as_the_shared_fold_in_says():
    model = ALSSpeedModel(small_factors())
    before = small_factors()
    lines = ["u0,i5,2", "u0,i6,1", "u1,i5,1", "u2,i7,3"]
    payloads = model.learn_many(parsed(*lines))

    expected = fold_in(before, ["u0", "u0", "u1", "u2"], ["i5", "i6", "i5", "i7"], [2.0, 1.0, 1.0, 3.0])
    for user, vector in zip(expected.user_ids, expected.user_vectors):
        np.testing.assert_allclose(model.factors.X[model.factors.user_index[user]], vector, rtol=1e-6)
    for item, vector in zip(expected.item_ids, expected.item_vectors):
        np.testing.assert_allclose(model.factors.Y[model.factors.item_index[item]], vector, rtol=1e-6)
    assert {p[1] for p in payloads if p[0] == "X"} == set(expected.user_ids)
    assert {p[1] for p in payloads if p[0] == "Y"} == set(expected.item_ids)

    # implicit feedback moves the estimate of an observed pair toward 1
    u0, i5 = before.user_index["u0"], before.item_index["i5"]
    old = float(before.X[u0] @ before.Y[i5])
    new = float(model.factors.X[u0] @ model.factors.Y[i5])
    assert old < 1.0 and abs(1.0 - new) < abs(1.0 - old)


def test_new_user_and_new_item_both_get_vectors():
    model = ALSSpeedModel(small_factors())
    payloads = model.learn_many(parsed("newbie,i1,1", "newbie,fresh,1", "stranger,brand-new,1"))
    f = model.factors
    for user in ("newbie", "stranger"):
        assert user in f.user_index and np.linalg.norm(f.X[f.user_index[user]]) > 0
    for item in ("fresh", "brand-new"):
        assert item in f.item_index and np.linalg.norm(f.Y[f.item_index[item]]) > 0
    assert f.known_items["newbie"] == {"i1", "fresh"}
    assert {("X", "newbie"), ("X", "stranger"), ("Y", "fresh"), ("Y", "brand-new")} <= {(p[0], p[1]) for p in payloads}


def test_delete_removes_a_known_item_and_says_so():
    model = ALSSpeedModel(small_factors())
    assert "i3" in model.factors.known_items["u0"]
    payloads = model.learn_many(parsed("u0,i3,", "u0,i6,1"))
    assert model.factors.known_items["u0"] == {"i0", "i6"}
    x_u0 = [p for p in payloads if p[:2] == ["X", "u0"]]
    assert x_u0 and x_u0[0][3] == ["i0", "i6"]


def test_events_are_taken_in_timestamp_order():
    model = ALSSpeedModel(small_factors())
    # the delete is older than the add, although it arrives later: the item stays known
    model.learn_many(parsed("u1,i6,1,2000", "u1,i6,,1000"))
    assert "i6" in model.factors.known_items["u1"]


@pytest.mark.parametrize("implicit", [True, False])
def test_up_payloads_are_well_formed_and_replay_idempotently(implicit):
    model = ALSSpeedModel(small_factors(implicit))
    follower = ALSSpeedModel(small_factors(implicit))
    payloads = model.learn_many(parsed("u0,i5,2", "u3,i1,4", "newbie,i2,1", "newbie,fresh,1", "u4,i4,"))
    assert payloads
    for payload in payloads:
        assert payload[0] in ("X", "Y") and isinstance(payload[1], str)
        assert len(payload[2]) == 4 and all(isinstance(v, float) for v in payload[2])
        assert payload[3] is None or all(isinstance(i, str) for i in payload[3])
        # survives the update topic's encoding unchanged
        assert decode_update(encode_up(payload)).payload == json.loads(json.dumps(payload))

    for payload in payloads:
        follower.apply_update(payload)
    assert state(follower) == state(model)
    for payload in payloads:  # applying the same messages again changes nothing
        follower.apply_update(payload)
    assert state(follower) == state(model)


def test_copy_is_independent_and_round_trips_through_artifacts(tmp_path):
    model = ALSSpeedModel(small_factors())
    copy = model.copy()
    model.learn_many(parsed("u0,i5,2", "newbie,i1,1"))
    assert "newbie" not in copy.factors.user_index
    assert state(copy) == state(ALSSpeedModel(small_factors()))

    model.save(tmp_path)
    loaded = ALSSpeedModel(ALSFactors.load(tmp_path))
    assert state(loaded) == state(model)


def test_bad_payloads_are_refused():
    model = ALSSpeedModel(small_factors())
    with pytest.raises(ValueError, match="3 features"):
        model.apply_update(["X", "u0", [0.1, 0.2, 0.3], None])
    with pytest.raises(ValueError, match="'Z'"):
        model.apply_update(["Z", "u0", [0.0] * 4, None])


def test_an_empty_batch_changes_nothing():
    model = ALSSpeedModel(small_factors())
    assert model.learn_many(parsed()) == []
    assert state(model) == state(ALSSpeedModel(small_factors()))
