"""How an ALS model is judged on held-out pairs: the same code for every candidate and for the champion.

For the test users: AUC (implicit) or RMSE (explicit) plus precision@10 and NDCG@10, where a user's
relevant items are the test items with a positive value and the items the user already had in the
training data are not ranked. ``score`` is AUC or −RMSE (higher is better for the gate).

>>> import numpy as np, pandas as pd
>>> from headwater.apps.als.factors import ALSFactors
>>> factors = ALSFactors(["u"], [[1.0, 0.0]], ["a", "b", "c"], [[0.9, 0], [0.1, 0], [0.5, 0]], {}, True)
>>> test = pd.DataFrame({"user": ["u"], "item": ["c"], "value": [1.0]})
>>> known = pd.DataFrame({"user": ["u"], "item": ["a"]})
>>> float(evaluate_factors(factors, test, known, implicit=True)["auc"])
1.0
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from headwater.evaluation_metrics import factor_metrics, rmse

TOP_K = 10


def evaluate_factors(factors, test_pairs: pd.DataFrame, train_known: pd.DataFrame, implicit: bool,
                     k: int = TOP_K) -> dict[str, float]:
    """The ALS metrics of ``factors`` on test pairs (user, item, value); train pairs are not ranked."""
    test = _indexed(test_pairs, factors)
    relevant = test[test["value"] > 0]
    users = np.unique(relevant["u"].to_numpy())
    row_of = {u: r for r, u in enumerate(users)}
    known = _indexed(train_known, factors)
    known = known[known["u"].isin(row_of)]
    shape = (len(users), len(factors.item_ids))
    metrics = factor_metrics(factors.X[users], factors.Y, _mask(relevant, row_of, shape),
                             _mask(known, row_of, shape), k)
    metrics = {"auc": metrics["auc"], f"precision_at_{k}": metrics["precision_at_k"],
               f"ndcg_at_{k}": metrics["ndcg_at_k"], "evaluated_users": metrics["evaluated_users"]}
    if implicit:
        return {"score": metrics["auc"], **metrics}
    predicted = np.einsum("ij,ij->i", factors.X[test["u"].to_numpy()], factors.Y[test["i"].to_numpy()])
    error = rmse(predicted, test["value"].to_numpy())
    return {"score": -error, "rmse": error, **{k: v for k, v in metrics.items() if k != "auc"}}


def _indexed(pairs: pd.DataFrame, factors) -> pd.DataFrame:
    """Pairs with row indices ``u`` and ``i`` into X and Y; pairs with an id the model lacks are dropped."""
    u = pairs["user"].map(factors.user_index)
    i = pairs["item"].map(factors.item_index)
    keep = u.notna() & i.notna()
    return pairs[keep].assign(u=u[keep].astype(np.int64), i=i[keep].astype(np.int64))


def _mask(pairs: pd.DataFrame, row_of: dict[int, int], shape: tuple[int, int]) -> csr_matrix:
    rows = pairs["u"].map(row_of).to_numpy(dtype=np.int64)
    return csr_matrix((np.ones(len(rows), dtype=bool), (rows, pairs["i"].to_numpy(dtype=np.int64))), shape=shape)


__all__ = ["TOP_K", "evaluate_factors"]
