"""How an ALS model is judged on held-out pairs: the same code for every candidate, the champion and the baseline.

For the test users: AUC (implicit) or RMSE (explicit) plus precision@10, recall@10 and NDCG@10, where a
user's relevant items are the test items with a positive value and the items the user already had in
the training data are not ranked. Items are ranked by the model's own score (explicit: b_i + x·y, the
estimate without the user's constant μ + b_u). ``score`` is AUC or −RMSE (higher is better for the gate).

The baselines every generation must beat are models of the same kind, so they are judged by the same
code: :func:`popularity_model` (implicit: rank every item by how many training users have it) and
:func:`biases_model` (explicit: μ + b_u + b_i, no factors).

>>> import numpy as np, pandas as pd
>>> from headwater.apps.als.factors import ALSFactors, ALSSettings
>>> factors = ALSFactors(["u"], [[1.0, 0.0]], ["a", "b", "c"], [[0.9, 0], [0.1, 0], [0.5, 0]], {},
...                      ALSSettings(implicit=True))
>>> test = pd.DataFrame({"user": ["u"], "item": ["c"], "value": [1.0]})
>>> known = pd.DataFrame({"user": ["u"], "item": ["a"]})
>>> float(evaluate_factors(factors, test, known)["auc"])
1.0
>>> popular = popularity_model(["u"], ["a", "b", "c"], np.array([3, 9, 1]))
>>> float(evaluate_factors(popular, test, known)["auc"])
0.0
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.evaluation_metrics import factor_metrics, rmse

TOP_K = 10


def evaluate_factors(factors: ALSFactors, test_pairs: pd.DataFrame, train_known: pd.DataFrame,
                     k: int = TOP_K) -> dict[str, float]:
    """The ALS metrics of ``factors`` on test pairs (user, item, value); train pairs are not ranked."""
    test = _indexed(test_pairs, factors)
    relevant = test[test["value"] > 0]
    users = np.unique(relevant["u"].to_numpy())
    row_of = {u: r for r, u in enumerate(users)}
    known = _indexed(train_known, factors)
    known = known[known["u"].isin(row_of)]
    shape = (len(users), len(factors.item_ids))
    # [x, 1]·[y, b_i] = b_i + x·y: the ranking score of the serving layer
    user_side = np.column_stack([factors.X[users], np.ones(len(users), np.float32)])
    item_side = np.column_stack([factors.Y, factors.item_bias])
    ranking = factor_metrics(user_side, item_side, _mask(relevant, row_of, shape), _mask(known, row_of, shape), k)
    metrics = {f"precision_at_{k}": ranking["precision_at_k"], f"recall_at_{k}": ranking["recall_at_k"],
               f"ndcg_at_{k}": ranking["ndcg_at_k"], "evaluated_users": ranking["evaluated_users"]}
    if factors.implicit:
        return {"score": ranking["auc"], "auc": ranking["auc"], **metrics}
    error = rmse(factors.estimates(test["u"].to_numpy(), test["i"].to_numpy()), test["value"].to_numpy())
    return {"score": -error, "rmse": error, **metrics}


def popularity_model(user_ids, item_ids, users_per_item: np.ndarray) -> ALSFactors:
    """Implicit baseline: every user's score of an item is the number of training users who have it."""
    return ALSFactors(user_ids, np.ones((len(user_ids), 1)), item_ids,
                      np.asarray(users_per_item, dtype=np.float32)[:, None], {}, ALSSettings(implicit=True))


def biases_model(user_ids, item_ids, mu: float, user_bias, item_bias) -> ALSFactors:
    """Explicit baseline: μ + b_u + b_i, without factors."""
    return ALSFactors(user_ids, np.zeros((len(user_ids), 1)), item_ids, np.zeros((len(item_ids), 1)), {},
                      ALSSettings(implicit=False), mu=mu, user_bias=user_bias, item_bias=item_bias)


def _indexed(pairs: pd.DataFrame, factors) -> pd.DataFrame:
    """Pairs with row indices ``u`` and ``i`` into X and Y; pairs with an id the model lacks are dropped."""
    u = pairs["user"].map(factors.user_index)
    i = pairs["item"].map(factors.item_index)
    keep = u.notna() & i.notna()
    return pairs[keep].assign(u=u[keep].astype(np.int64), i=i[keep].astype(np.int64))


def _mask(pairs: pd.DataFrame, row_of: dict[int, int], shape: tuple[int, int]) -> csr_matrix:
    rows = pairs["u"].map(row_of).to_numpy(dtype=np.int64)
    return csr_matrix((np.ones(len(rows), dtype=bool), (rows, pairs["i"].to_numpy(dtype=np.int64))), shape=shape)


__all__ = ["TOP_K", "biases_model", "evaluate_factors", "popularity_model"]
