"""The shared ALS state and fold-in math against closed-form least-squares solutions."""
from __future__ import annotations

import numpy as np
import pytest

from headwater.apps.als import updates
from headwater.apps.als.factors import ALSFactors
from headwater.apps.als.fold_in import (
    GramianSolver,
    aggregate_events,
    fold_in,
    fold_in_items,
    fold_in_users,
    target_estimates,
)

K = 4
LAMBDA = 0.3


def make_factors(implicit: bool, seed: int = 0) -> ALSFactors:
    rng = np.random.default_rng(seed)
    users = [f"u{n}" for n in range(6)]
    items = [f"i{n}" for n in range(12)]
    known = {"u0": {"i0", "i1"}, "u1": {"i2"}}
    return ALSFactors(users, rng.normal(size=(6, K)) * 0.5, items, rng.normal(size=(12, K)) * 0.5, known,
                      implicit, regularization=LAMBDA)


def closed_form_change(M, row: int, dq: float) -> np.ndarray:
    """argmin_d ||M d - dq·e_row||² + λ||d||², solved as a stacked least-squares problem (no inverse)."""
    M = M.astype(np.float64)
    A = np.vstack([M, np.sqrt(LAMBDA) * np.eye(K)])
    b = np.zeros(len(M) + K)
    b[row] = dq
    return np.linalg.lstsq(A, b, rcond=None)[0]


def test_implicit_target_follows_oryx():
    current = np.array([0.2, -0.5, 1.2, 0.8, 0.5])
    strength = np.array([3.0, 1.0, 2.0, -1.0, -4.0])
    got = target_estimates(True, strength, current)
    # c + s/(1+s)·(1 - max(0, c)); at/above 1 no change; negatives: c + s/(s-1)·(-min(1, c))
    assert got[0] == pytest.approx(0.2 + 0.75 * 0.8)
    assert got[1] == pytest.approx(-0.5 + 0.5 * 1.0)
    assert np.isnan(got[2])
    assert got[3] == pytest.approx(0.8 - 0.5 * 0.8)
    assert got[4] == pytest.approx(0.5 - 0.8 * 0.5)
    assert target_estimates(False, strength, current).tolist() == strength.tolist()


@pytest.mark.parametrize("implicit", [False, True])
def test_user_fold_in_equals_regularised_least_squares(implicit):
    factors = make_factors(implicit)
    u, i, strength = 2, 5, 2.0
    xu, yi = factors.X[u].astype(np.float64), factors.Y[i].astype(np.float64)
    current = xu @ yi
    target = strength if not implicit else current + strength / (1 + strength) * (1 - max(0.0, current))
    expected = xu + closed_form_change(factors.Y, i, target - current)

    ids, vectors = fold_in_users(factors, ["u2"], ["i5"], [strength])
    assert ids == ["u2"]
    np.testing.assert_allclose(vectors[0], expected, rtol=1e-4, atol=1e-5)
    # the estimate moved toward the target, but (with λ > 0 and other items pinned) not past it
    new_estimate = vectors[0] @ yi
    assert abs(target - new_estimate) < abs(target - current)


def test_item_fold_in_is_the_mirror_image():
    factors = make_factors(implicit=False)
    xu, yi = factors.X[3].astype(np.float64), factors.Y[7].astype(np.float64)
    expected = yi + closed_form_change(factors.X, 3, 4.0 - xu @ yi)
    ids, vectors = fold_in_items(factors, ["u3"], ["i7"], [4.0])
    assert ids == ["i7"]
    np.testing.assert_allclose(vectors[0], expected, rtol=1e-4, atol=1e-5)


def test_several_events_of_one_user_solve_together():
    factors = make_factors(implicit=False)
    xu = factors.X[1].astype(np.float64)
    Y = factors.Y.astype(np.float64)
    A = np.vstack([Y, np.sqrt(LAMBDA) * np.eye(K)])
    b = np.zeros(len(Y) + K)
    b[4], b[9] = 3.0 - xu @ Y[4], -1.0 - xu @ Y[9]
    expected = xu + np.linalg.lstsq(A, b, rcond=None)[0]
    ids, vectors = fold_in_users(factors, ["u1", "u1"], ["i4", "i9"], [3.0, -1.0])
    np.testing.assert_allclose(vectors[0], expected, rtol=1e-4, atol=1e-5)


def test_new_user_starts_from_dont_know():
    factors = make_factors(implicit=True)
    yi = factors.Y[0].astype(np.float64)
    target = 0.5 + 1.0 / 2.0 * 0.5  # Oryx: current estimate 0.5 for a user without a vector, Qui = 0
    expected = closed_form_change(factors.Y, 0, target)
    ids, vectors = fold_in_users(factors, ["new"], ["i0"], [1.0])
    assert ids == ["new"]
    np.testing.assert_allclose(vectors[0], expected, rtol=1e-4, atol=1e-5)
    assert vectors[0] @ yi > 0


def test_brand_new_user_and_item_both_get_vectors_deterministically():
    factors = make_factors(implicit=True)
    first = fold_in(factors, ["nu"], ["ni"], [2.0])
    again = fold_in(factors, ["nu"], ["ni"], [2.0])
    assert first.user_ids == ["nu"] and first.item_ids == ["ni"]
    assert np.all(np.isfinite(first.user_vectors)) and np.linalg.norm(first.user_vectors) > 0
    np.testing.assert_array_equal(first.item_vectors, again.item_vectors)
    assert float(first.user_vectors[0] @ first.item_vectors[0]) > 0  # they now predict each other
    assert first.known_items == {"nu": {"ni"}}


def test_delete_removes_known_item_without_moving_vectors():
    factors = make_factors(implicit=True)
    update = fold_in(factors, ["u0"], ["i1"], [np.nan])
    assert update.user_ids == [] and update.item_ids == []
    assert update.known_items == {"u0": {"i0"}}


def test_aggregation_lets_a_delete_cancel_earlier_events():
    users, items, values = aggregate_events(True, ["a", "a", "b", "a", "b"], ["x", "x", "x", "x", "x"],
                                            [1.0, 2.0, 5.0, np.nan, 1.0])
    assert users.tolist() == ["a", "b"]
    assert np.isnan(values[0]) and values[1] == 6.0
    assert aggregate_events(False, ["a", "a"], ["x", "x"], [4.0, 2.0])[2].tolist() == [2.0]


def test_gramian_solver_inverts_regularised_gramian():
    M = np.random.default_rng(1).normal(size=(30, K))
    b = np.arange(K, dtype=float)
    np.testing.assert_allclose(GramianSolver(M, LAMBDA).solve(b) @ (M.T @ M + LAMBDA * np.eye(K)), b,
                               atol=1e-9)


def test_save_load_round_trip_and_apply(tmp_path):
    factors = make_factors(implicit=False)
    factors.save(tmp_path / "f")
    loaded = ALSFactors.load(tmp_path / "f")
    assert loaded.user_ids == factors.user_ids and loaded.item_ids == factors.item_ids
    np.testing.assert_array_equal(loaded.Y, factors.Y)
    assert loaded.known_items == factors.known_items and loaded.implicit is False
    assert loaded.regularization == LAMBDA and loaded.Y.dtype == np.float32

    update = fold_in(loaded, ["u0", "brand"], ["i3", "i3"], [5.0, 1.0])
    loaded.apply(update)
    assert loaded.user_ids[-1] == "brand" and loaded.X.shape == (7, K)
    row = update.user_ids.index("u0")
    np.testing.assert_array_equal(loaded.X[loaded.user_index["u0"]], update.user_vectors[row])
    assert loaded.known_items["u0"] == {"i0", "i1", "i3"}
    assert [u.side for u in updates.fold_in_updates(update)] == ["X", "X", "Y"]
