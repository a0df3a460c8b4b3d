"""Ranking and rating metrics against hand-computed cases, and the ALS evaluation on planted structure."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix

from headwater.apps.als.evaluation import evaluate_factors
from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.evaluation_metrics import factor_metrics, mean_auc, ndcg_at_k, precision_at_k, rmse

SCORES = np.array([[0.9, 0.8, 0.3, 0.2, 0.1]])
RELEVANT = np.array([[True, False, True, False, False]])


def test_auc_of_perfect_reversed_and_mixed_rankings():
    relevant = np.array([[True, True, False, False]])
    assert mean_auc(np.array([[4.0, 3.0, 2.0, 1.0]]), relevant) == 1.0
    assert mean_auc(np.array([[1.0, 2.0, 3.0, 4.0]]), relevant) == 0.0
    # positives at ranks 1 and 3 of 5: 3 + 2 of 2 * 3 pairs ordered correctly
    assert mean_auc(SCORES, RELEVANT) == pytest.approx(5 / 6)


def test_auc_counts_ties_half_and_skips_excluded_items_and_empty_users():
    scores = np.array([[1.0, 1.0, 5.0], [1.0, 2.0, 3.0]])
    relevant = np.array([[True, False, False], [False, False, False]])
    excluded = np.array([[False, False, True], [False, False, False]])
    assert mean_auc(scores, relevant, excluded) == 0.5
    assert math.isnan(mean_auc(scores[1:], relevant[1:]))


def test_auc_is_the_mean_over_users():
    scores = np.array([[2.0, 1.0], [2.0, 1.0]])
    relevant = np.array([[True, False], [False, True]])
    assert mean_auc(scores, relevant) == 0.5


def test_precision_at_k():
    assert precision_at_k(SCORES, RELEVANT, k=2) == 0.5
    assert precision_at_k(SCORES, RELEVANT, k=3) == pytest.approx(2 / 3)
    excluded = np.array([[False, True, False, False, False]])  # item 1 no longer takes a slot
    assert precision_at_k(SCORES, RELEVANT, excluded, k=2) == 1.0


def test_ndcg_known_values():
    # hits at ranks 1 and 3: (1 + 1/log2(4)) / (1 + 1/log2(3))
    assert ndcg_at_k(SCORES, RELEVANT, k=3) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(SCORES, RELEVANT, k=1) == 1.0
    assert ndcg_at_k(-SCORES, RELEVANT, k=2) == 0.0
    perfect = np.array([[0.1, 0.9, 0.8]])
    assert ndcg_at_k(perfect, np.array([[False, True, True]]), k=10) == pytest.approx(1.0)


def test_rmse():
    assert rmse(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 6.0])) == pytest.approx(math.sqrt(3))
    assert math.isnan(rmse(np.array([]), np.array([])))


def test_factor_metrics_in_chunks_equal_the_dense_metrics():
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(23, 4)), rng.normal(size=(17, 4))
    relevant = rng.random((23, 17)) < 0.2
    excluded = ~relevant & (rng.random((23, 17)) < 0.2)
    chunked = factor_metrics(X, Y, csr_matrix(relevant), csr_matrix(excluded), k=5, chunk_size=4)
    scores = X @ Y.T
    assert chunked["auc"] == pytest.approx(mean_auc(scores, relevant, excluded))
    assert chunked["precision_at_k"] == pytest.approx(precision_at_k(scores, relevant, excluded, k=5))
    assert chunked["ndcg_at_k"] == pytest.approx(ndcg_at_k(scores, relevant, excluded, k=5))


def planted_factors(implicit: bool) -> ALSFactors:
    rng = np.random.default_rng(0)
    return ALSFactors([f"u{n}" for n in range(30)], rng.normal(size=(30, 3)),
                      [f"i{n}" for n in range(40)], rng.normal(size=(40, 3)), {}, ALSSettings(implicit))


def test_als_evaluation_ranks_planted_positives_first():
    factors = planted_factors(implicit=True)
    scores = factors.X @ factors.Y.T
    best = np.argsort(-scores, axis=1)
    test = pd.DataFrame([(f"u{u}", f"i{i}", 1.0) for u in range(30) for i in best[u, 1:4]],
                        columns=["user", "item", "value"])
    train_known = pd.DataFrame([(f"u{u}", f"i{best[u, 0]}") for u in range(30)], columns=["user", "item"])

    metrics = evaluate_factors(factors, test, train_known, k=3)

    assert metrics["score"] == metrics["auc"] == pytest.approx(1.0)
    assert metrics["precision_at_3"] == pytest.approx(1.0) and metrics["ndcg_at_3"] == pytest.approx(1.0)
    assert metrics["evaluated_users"] == 30


def test_explicit_evaluation_scores_minus_rmse_and_skips_unknown_ids():
    factors = planted_factors(implicit=False)
    estimate = float(factors.X[0] @ factors.Y[0])
    test = pd.DataFrame({"user": ["u0", "u0", "nobody"], "item": ["i0", "unknown", "i0"],
                         "value": [estimate + 2.0, 1.0, 1.0]})
    metrics = evaluate_factors(factors, test, pd.DataFrame(columns=["user", "item"]))
    assert metrics["rmse"] == pytest.approx(2.0, rel=1e-5) and metrics["score"] == -metrics["rmse"]
    assert "auc" not in metrics
