"""The exact solves equal a direct least-squares solve of the objective they minimise, one entity or many."""
from __future__ import annotations

import numpy as np
import pytest

from headwater.apps.als.solves import explicit_solve, implicit_solve, segment_gram

K = 6


def problem(seed=0, users=40, items=30, density=0.3, implicit=False):
    rng = np.random.default_rng(seed)
    u, i = np.nonzero(rng.random((users, items)) < density)
    r = rng.integers(1, 6, len(u)).astype(float) if implicit else rng.choice(np.arange(0.5, 5.01, 0.5), len(u))
    return u, i, r, rng.normal(0, 0.5, (items, K)), rng.normal(0, 0.3, items)


def lstsq_explicit(Y_rated, item_bias, r, mu, lam, lam_bias):
    """argmin Σ (r − μ − c − [y, 1]·z)² + λ n ‖x‖² + λ_b b², as one stacked least-squares problem."""
    n = len(r)
    penalties = np.diag(np.r_[np.full(K, np.sqrt(lam * n)), np.sqrt(lam_bias)])
    A = np.vstack([np.hstack([Y_rated, np.ones((n, 1))]), penalties])
    z = np.linalg.lstsq(A, np.r_[r - mu - item_bias, np.zeros(K + 1)], rcond=None)[0]
    return z[:K], z[K]


def lstsq_implicit(Y, rated, strengths, lam, alpha):
    """argmin Σ over *every* item c (p − x·y)² + λ n⁺ ‖x‖² (Hu, Koren, Volinsky's definition itself)."""
    confidence, preference = np.ones(len(Y)), np.zeros(len(Y))
    confidence[rated] = 1 + alpha * np.abs(strengths)
    preference[rated] = strengths > 0
    w = np.sqrt(confidence)
    A = np.vstack([Y * w[:, None], np.sqrt(lam * (strengths > 0).sum()) * np.eye(K)])
    return np.linalg.lstsq(A, np.r_[w * preference, np.zeros(K)], rcond=None)[0]


@pytest.mark.parametrize("user", [0, 7])
def test_explicit_solve_equals_least_squares_for_a_user_with_many_events(user):
    u, i, r, Y, item_bias = problem()
    rated = u == user
    assert rated.sum() > 5
    x, b = explicit_solve(np.zeros(rated.sum(), np.int64), 1, Y[i[rated]], item_bias[i[rated]], r[rated],
                          3.5, 0.1, 5.0)
    x_ref, b_ref = lstsq_explicit(Y[i[rated]], item_bias[i[rated]], r[rated], 3.5, 0.1, 5.0)
    np.testing.assert_allclose(x[0], x_ref, atol=1e-10)
    assert b[0] == pytest.approx(b_ref, abs=1e-10)


def test_explicit_solve_for_a_brand_new_user_with_one_rating_is_exact_and_sensible():
    u, i, r, Y, item_bias = problem()
    mu = 3.5
    x, b = explicit_solve(np.zeros(1, np.int64), 1, Y[[3]], item_bias[[3]], np.array([5.0]), mu, 0.1, 5.0)
    x_ref, b_ref = lstsq_explicit(Y[[3]], item_bias[[3]], np.array([5.0]), mu, 0.1, 5.0)
    np.testing.assert_allclose(x[0], x_ref, atol=1e-12)
    # a 5-star first rating lifts the user above the mean, shrunk towards it; every estimate stays on the scale
    assert 0 < b[0] < 5.0 - mu - item_bias[3]
    assert mu + item_bias[3] < mu + b[0] + item_bias[3] + x[0] @ Y[3] < 5.0
    assert np.all(np.abs(mu + b[0] + item_bias + Y @ x[0] - mu) < 2.0)


def test_many_users_at_once_equal_one_by_one_and_an_empty_user_gets_zeros():
    u, i, r, Y, item_bias = problem(seed=3)
    users = np.unique(u)
    seg = np.searchsorted(users, u)  # u is sorted (np.nonzero), so seg is too
    x, b = explicit_solve(np.r_[seg, []].astype(np.int64), len(users) + 1, Y[i], item_bias[i], r, 3.5, 0.05, 2.0)
    for n, user in enumerate(users):
        x_ref, b_ref = lstsq_explicit(Y[i[u == user]], item_bias[i[u == user]], r[u == user], 3.5, 0.05, 2.0)
        np.testing.assert_allclose(x[n], x_ref, atol=1e-10)
        assert b[n] == pytest.approx(b_ref, abs=1e-10)
    assert not x[-1].any() and b[-1] == 0


@pytest.mark.parametrize("user", [0, 5])
def test_implicit_solve_equals_least_squares_over_all_items(user):
    u, i, r, Y, _ = problem(implicit=True)
    rated = u == user
    x = implicit_solve(np.zeros(rated.sum(), np.int64), 1, Y[i[rated]], r[rated], Y.T @ Y, 0.1, 10.0)
    np.testing.assert_allclose(x[0], lstsq_implicit(Y, i[rated], r[rated], 0.1, 10.0), atol=1e-9)


def test_implicit_solve_for_a_brand_new_user_and_a_negative_strength():
    _, _, _, Y, _ = problem(implicit=True)
    x = implicit_solve(np.zeros(1, np.int64), 1, Y[[4]], np.array([3.0]), Y.T @ Y, 0.1, 10.0)
    np.testing.assert_allclose(x[0], lstsq_implicit(Y, np.array([4]), np.array([3.0]), 0.1, 10.0), atol=1e-10)
    assert np.argmax(Y @ x[0]) == 4  # the one item the user touched is its best
    s = np.array([3.0, -2.0])  # confidence from |s|, preference 0 (Spark's rule)
    x = implicit_solve(np.zeros(2, np.int64), 1, Y[[1, 2]], s, Y.T @ Y, 0.1, 5.0)
    np.testing.assert_allclose(x[0], lstsq_implicit(Y, np.array([1, 2]), s, 0.1, 5.0), atol=1e-10)


def test_segment_gram_over_skewed_and_empty_segments_matches_per_segment_products():
    rng = np.random.default_rng(1)
    seg = np.sort(np.r_[rng.integers(0, 50, 3000), np.full(700, 7), [49]])
    seg = seg[seg != 13]
    V, w = rng.normal(size=(len(seg), 5)), rng.random(len(seg))
    expected = np.stack([(V[seg == s] * w[seg == s, None]).T @ V[seg == s] for s in range(50)])
    np.testing.assert_allclose(segment_gram(seg, 50, V, w), expected, atol=1e-10)
    assert not segment_gram(seg, 50, V)[13].any()


def test_batch_biases_converge_to_the_ridge_solution():
    from headwater.apps.als.solves import fit_biases

    u, i, r, _, _ = problem(seed=5)
    n_users, n_items, lam = u.max() + 1, i.max() + 1, 3.0
    mu, b_user, b_item = fit_biases(u, i, r, lam, n_users, n_items, rounds=200)
    # direct: min Σ (r − μ − b_u − b_i)² + λ (‖b_u‖² + ‖b_i‖²) with μ the mean
    A = np.zeros((len(r), n_users + n_items))
    A[np.arange(len(r)), u] = A[np.arange(len(r)), n_users + i] = 1
    A = np.vstack([A, np.sqrt(lam) * np.eye(n_users + n_items)])
    z = np.linalg.lstsq(A, np.r_[r - r.mean(), np.zeros(n_users + n_items)], rcond=None)[0]
    np.testing.assert_allclose(np.r_[b_user, b_item], z, atol=1e-8)
    assert mu == pytest.approx(r.mean())
    _, ten_user, ten_item = fit_biases(u, i, r, lam, n_users, n_items)  # the default 10 rounds: close already
    assert np.abs(np.r_[ten_user, ten_item] - z).max() < 0.01
