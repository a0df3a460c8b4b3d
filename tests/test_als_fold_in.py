"""The speed layer's exact fold-in: after a micro-batch every touched user is the exact least-squares solution
against the items before the batch, every touched item against the users after it; the values follow
the batch aggregation's rules; the state round-trips through its artifacts."""
from __future__ import annotations

import numpy as np
import pytest

from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.apps.als.fold_in import FoldInState, batch_pair_values
from headwater.apps.als.ratings import RatingStore
from tests.test_als_solves import K, lstsq_explicit, lstsq_implicit, problem

MU, LAMBDA, LAMBDA_BIAS, ALPHA = 3.5, 0.1, 5.0, 10.0


def make_state(implicit: bool, seed: int = 4) -> FoldInState:
    u, i, r, Y, item_bias = problem(seed=seed, implicit=implicit)
    rng = np.random.default_rng(seed)
    users, items = [f"u{n}" for n in range(40)], [f"i{n}" for n in range(30)]
    settings = ALSSettings(implicit, LAMBDA, LAMBDA_BIAS, ALPHA)
    factors = ALSFactors(users, rng.normal(0, 0.5, (40, K)), items, Y, RatingStore.from_pairs(40, u, i, r), settings,
                         mu=0.0 if implicit else MU, user_bias=None if implicit else rng.normal(0, 0.3, 40),
                         item_bias=None if implicit else item_bias)
    return FoldInState(factors)


def all_values(state: FoldInState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return state.by_user.gather(np.arange(len(state.users)))


@pytest.mark.parametrize("implicit", [False, True])
def test_touched_users_then_items_are_exact_solves(implicit):
    state = make_state(implicit)
    Y_before, item_bias_before = state.Y.astype(np.float64), state.item_bias.astype(np.float64)
    rng = np.random.default_rng(9)
    users = [f"u{n}" for n in rng.integers(0, 40, 30)] + ["brand-new", "brand-new"]
    items = [f"i{n}" for n in rng.integers(0, 30, 30)] + ["i2", "new-item"]
    change = state.learn(users, items, rng.integers(1, 6, 32).astype(float))

    seg, cols, values = all_values(state)
    n_items = len(state.items)
    Y_old = np.vstack([Y_before, np.zeros((n_items - len(Y_before), K))])
    bias_old = np.r_[item_bias_before, np.zeros(n_items - len(item_bias_before))]
    for user in change.user_ids:
        row = state.users.rows([user])[0]
        rated = seg == row
        if implicit:
            expected = lstsq_implicit(Y_old, cols[rated], values[rated], LAMBDA, ALPHA)
            np.testing.assert_allclose(state.X[row], expected, atol=2e-6)
        else:
            x, b = lstsq_explicit(Y_old[cols[rated]], bias_old[cols[rated]], values[rated], MU, LAMBDA, LAMBDA_BIAS)
            np.testing.assert_allclose(state.X[row], x, atol=2e-6)
            assert state.user_bias[row] == pytest.approx(b, abs=2e-6)
    X = state.X.astype(np.float64)
    for item in change.item_ids:
        row = state.items.rows([item])[0]
        rated = cols == row
        if implicit:
            np.testing.assert_allclose(state.Y[row], lstsq_implicit(X, seg[rated], values[rated], LAMBDA, ALPHA),
                                       atol=2e-6)
        else:
            y, b = lstsq_explicit(X[seg[rated]], state.user_bias[seg[rated]].astype(np.float64), values[rated],
                                  MU, LAMBDA, LAMBDA_BIAS)
            np.testing.assert_allclose(state.Y[row], y, atol=2e-6)
            assert state.item_bias[row] == pytest.approx(b, abs=2e-6)
    assert {"brand-new", "new-item"} <= {*change.user_ids, *change.item_ids}
    if implicit:  # the cached Gramians followed every write
        for gram, matrix in zip(state.grams(), (state.X, state.Y)):
            np.testing.assert_allclose(gram, matrix.T.astype(np.float64) @ matrix, atol=1e-6)


def test_a_brand_new_user_is_sensible_after_one_rating():
    state = make_state(implicit=False)
    for _ in range(10):  # ALS sweeps with the same solves: a fitted model, as the batch layer hands over
        state._solve(np.arange(len(state.users)), users_side=True)
        state._solve(np.arange(len(state.items)), users_side=False)
    popular = int(np.argmax(state.item_bias))
    cold = state.estimates(["newcomer"] * 30, [f"i{n}" for n in range(30)])  # μ + b_i: before any rating
    state.learn(["newcomer"], [f"i{popular}"], [5.0])
    estimates = state.estimates(["newcomer"] * 30, [f"i{n}" for n in range(30)])
    # the rated film moves towards 5 without passing it, the user's bias is shrunk towards 0, and no
    # estimate leaves the rating scale (the old fold-in put new users near 0 on a 0.5-5 scale)
    assert cold[popular] < estimates[popular] < 5.0
    assert 0 < state.user_bias[state.users.rows(["newcomer"])[0]] < (5.0 - cold[popular]) / 2
    assert np.all((estimates > 0.5) & (estimates < 5.5))


def test_batch_values_follow_the_aggregation_rules():
    users, items = np.array([0, 0, 0, 1, 1, 2, 2]), np.array([5, 5, 5, 3, 3, 1, 1])
    stored = np.array([1.0, np.nan, 2.0, 4.0, 1.0, 3.0, np.nan])
    previous = lambda u, i: np.array([10.0, 20.0, 30.0])[np.argsort(u)]  # noqa: E731 - one stored value per pair
    # implicit: a delete clears the stored value and earlier events; after it strengths add; a final delete removes
    _, _, values = batch_pair_values(users, items, stored, True, previous)
    np.testing.assert_array_equal(values, [2.0, 20.0 + 5.0, np.nan])
    _, _, values = batch_pair_values(users, items, stored, False, previous)
    np.testing.assert_array_equal(values, [2.0, 1.0, np.nan])  # explicit: the last rating, or removed


def test_deletes_remove_values_and_a_second_state_applying_the_change_agrees():
    state = make_state(implicit=True)
    replica = state.copy()
    user_row = 0
    cols, _ = state.by_user.row_values(user_row)
    change = state.learn(["u0", "u0"], [f"i{cols[0]}", "fresh"], [np.nan, 2.0])
    assert change.user_values[change.user_ids.index("u0")] == pytest.approx({f"i{cols[0]}": np.nan, "fresh": 2.0},
                                                                            nan_ok=True)
    assert cols[0] not in state.by_user.row_values(user_row)[0]
    for n, user in enumerate(change.user_ids):
        replica.apply_user(user, change.user_vectors[n], change.user_biases[n], change.user_values[n])
    for n, item in enumerate(change.item_ids):
        replica.apply_item(item, change.item_vectors[n], change.item_biases[n])
    from headwater.app_checks import assert_same_state

    assert_same_state(state.state_summary(), replica.state_summary(), "replica")
    for gram, matrix in zip(replica.grams(), (replica.X, replica.Y)):
        np.testing.assert_allclose(gram, matrix.T.astype(np.float64) @ matrix, atol=1e-6)


def test_state_round_trips_through_artifacts_and_copies_are_independent(tmp_path):
    state = make_state(implicit=False)
    state.learn(["u1", "newbie"], ["i3", "i4"], [4.0, 2.0])
    state.to_factors().save(tmp_path / "model")
    loaded = FoldInState(ALSFactors.load(tmp_path / "model"))
    from headwater.app_checks import assert_same_state

    assert_same_state(state.state_summary(), loaded.state_summary(), "loaded")
    before = loaded.state_summary()
    copy = loaded.copy()
    loaded.learn(["u2"], ["i5"], [1.0])
    assert_same_state(before, copy.state_summary(), "copy")
    assert state.memory_bytes()["stored_values"] == len(all_values(state)[0])
