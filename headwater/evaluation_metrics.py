"""Evaluation metrics in numpy, shared by the apps' batch evaluations: mean AUC, RMSE, precision@k, recall@k,
NDCG@k.

Every function takes a score matrix (users × items) and boolean masks of the same shape:
``relevant`` marks each user's held-out positive items, ``excluded`` marks items that may not be
ranked at all (those the user already had in the training data). :func:`factor_metrics` computes all
ranking metrics from factor matrices, scoring users in chunks so memory stays at chunk × items.

AUC is Oryx's "mean AUC" (per user, the probability that a positive outranks a negative, averaged
over users), but exact: Oryx compares against as many randomly sampled non-positive items as the
user has positives, whose expectation is this value; without sampling noise two models evaluated on
the same test data are compared fairly, which the promotion gate relies on.

>>> import numpy as np
>>> scores = np.array([[0.9, 0.8, 0.1, 0.2]])
>>> relevant = np.array([[True, True, False, False]])
>>> float(mean_auc(scores, relevant))
1.0
>>> float(ndcg_at_k(scores[:, ::-1], relevant, k=2))  # the relevant items ranked last
0.0
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def mean_auc(scores: np.ndarray, relevant: np.ndarray, excluded: np.ndarray | None = None) -> float:
    """Mean over users of P(score of a relevant item > score of a non-relevant one); ties count half.

    Users without a relevant or without a non-relevant candidate are left out; NaN if none remain.
    """
    per_user, counted = _auc_per_user(scores, relevant, _mask_or_none(excluded, scores))
    return float(per_user[counted].mean()) if counted.any() else float("nan")


def precision_at_k(scores: np.ndarray, relevant: np.ndarray, excluded: np.ndarray | None = None,
                   k: int = 10) -> float:
    """Mean over users with a relevant item of (relevant items among the top ``k``) / ``k``."""
    hits, counted = _top_k_hits(scores, relevant, _mask_or_none(excluded, scores), k)
    return float(hits[counted].sum(axis=1).mean() / k) if counted.any() else float("nan")


def ndcg_at_k(scores: np.ndarray, relevant: np.ndarray, excluded: np.ndarray | None = None,
              k: int = 10) -> float:
    """Mean over users with a relevant item of DCG@k / ideal DCG@k, binary relevance."""
    excluded = _mask_or_none(excluded, scores)
    hits, counted = _top_k_hits(scores, relevant, excluded, k)
    if not counted.any():
        return float("nan")
    return float(_ndcg_per_user(hits, (relevant & ~excluded).sum(axis=1), k)[counted].mean())


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Root mean squared error; NaN for no values.

    >>> rmse(np.array([1.0, 2.0]), np.array([1.0, 4.0]))
    1.4142135623730951
    """
    if len(actual) == 0:
        return float("nan")
    return float(np.sqrt(np.mean((np.asarray(predicted, float) - np.asarray(actual, float)) ** 2)))


def factor_metrics(user_vectors: np.ndarray, item_vectors: np.ndarray, relevant, excluded,
                   k: int = 10, chunk_size: int = 1024) -> dict[str, float]:
    """``auc``, ``precision_at_k``, ``recall_at_k`` and ``ndcg_at_k`` of scores ``user_vectors @ item_vectors.T``.

    recall@k is per user (relevant items among the top k) / (relevant items that may be ranked).

    ``relevant`` and ``excluded`` are scipy sparse (users × items) matrices whose non-zeros mark
    entries; only one chunk of users is ever scored densely.
    """
    auc_sum = precision_sum = recall_sum = ndcg_sum = 0.0
    auc_users = ranked_users = 0
    for start in range(0, user_vectors.shape[0], chunk_size):
        rows = slice(start, start + chunk_size)
        scores = user_vectors[rows].astype(np.float64) @ item_vectors.T.astype(np.float64)
        rel = relevant[rows].toarray().astype(bool)
        exc = excluded[rows].toarray().astype(bool)
        auc, counted = _auc_per_user(scores, rel, exc)
        auc_sum += auc[counted].sum()
        auc_users += int(counted.sum())
        hits, ranked = _top_k_hits(scores, rel, exc, k)
        precision_sum += hits[ranked].sum() / k
        recall_sum += (hits[ranked].sum(axis=1) / (rel & ~exc)[ranked].sum(axis=1)).sum()
        ndcg_sum += _ndcg_per_user(hits, (rel & ~exc).sum(axis=1), k)[ranked].sum()
        ranked_users += int(ranked.sum())
    nan = float("nan")
    return {
        "auc": auc_sum / auc_users if auc_users else nan,
        "precision_at_k": precision_sum / ranked_users if ranked_users else nan,
        "recall_at_k": recall_sum / ranked_users if ranked_users else nan,
        "ndcg_at_k": ndcg_sum / ranked_users if ranked_users else nan,
        "evaluated_users": float(ranked_users),
    }


def _mask_or_none(mask: np.ndarray | None, scores: np.ndarray) -> np.ndarray:
    return np.zeros(scores.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)


def _auc_per_user(scores: np.ndarray, relevant: np.ndarray, excluded: np.ndarray):
    positive = relevant & ~excluded
    negative = ~relevant & ~excluded
    n_pos = positive.sum(axis=1)
    n_neg = negative.sum(axis=1)
    # Non-candidates go to -inf, so they take the lowest ranks and a candidate's rank among
    # candidates is its overall rank minus the number of non-candidates (Mann-Whitney U).
    candidate = positive | negative
    ranks = rankdata(np.where(candidate, scores, -np.inf), method="average", axis=1)
    ranks -= (~candidate).sum(axis=1, keepdims=True)
    rank_sum = np.where(positive, ranks, 0.0).sum(axis=1)
    counted = (n_pos > 0) & (n_neg > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return auc, counted


def _top_k_hits(scores: np.ndarray, relevant: np.ndarray, excluded: np.ndarray, k: int):
    """(users × k) booleans: is the item at each rank relevant; and which users have a relevant item."""
    k = min(k, scores.shape[1])
    masked = np.where(excluded, -np.inf, scores)
    top = np.argpartition(-masked, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(masked, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    hits = np.take_along_axis(relevant & ~excluded, top, axis=1)
    return hits, (relevant & ~excluded).any(axis=1)


def _ndcg_per_user(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    dcg = (hits * discounts).sum(axis=1)
    ideal = np.cumsum(discounts)[np.clip(np.minimum(n_relevant, k), 1, hits.shape[1]) - 1]
    return dcg / ideal
