"""Prequential losses of an ALS model on a micro-batch, scored *before* the model learns from it.

- explicit: ``squared_error`` and ``absolute_error`` of the estimate μ + b_u + b_i + x·y (parts the model
  does not know count 0, so a brand-new user is scored with μ + b_i) against each rating; NaN for a delete;
- implicit: ``miss_at_10``: 0 when the event's item is among the user's top 10 before the event (the
  user's known items excluded, as ``/recommend`` excludes them), else 1; NaN for a delete or a
  non-positive strength. A user the model has no vector for gets the 10 most popular items (the
  most-users items), so the live model and the champion alone score the same events.

Vectorised: implicit scores users in blocks of :data:`USERS_PER_BLOCK` (one matrix product and one
``argpartition`` per block), never one Python step per event.

>>> from headwater.apps.als.factors import ALSFactors, ALSSettings
>>> from headwater.apps.als.fold_in import FoldInState
>>> state = FoldInState(ALSFactors(["u"], [[1.0]], ["a", "b"], [[2.0], [1.0]], {"u": {"a": 4.0}},
...                                ALSSettings(implicit=False), mu=3.0))
>>> losses = prequential_losses(state, ["u", "new", "u"], ["b", "b", "a"], [5.0, 4.0, float("nan")])
>>> {name: value.round(2).tolist() for name, value in losses.items()}
{'squared_error': [1.0, 1.0, nan], 'absolute_error': [1.0, 1.0, nan]}
"""
from __future__ import annotations

import numpy as np

from headwater.apps.als.fold_in import FoldInState

TOP_K = 10
USERS_PER_BLOCK = 512


def prequential_losses(state: FoldInState, users, items, strengths) -> dict[str, np.ndarray]:
    """The app's per-event losses (see the module docstring), aligned with the events given."""
    strengths = np.asarray(strengths, dtype=np.float64)
    if not state.settings.implicit:
        error = strengths - state.estimates(users, items)
        return {"squared_error": error ** 2, "absolute_error": np.abs(error)}
    return {"miss_at_10": misses_at_k(state, np.asarray(users, dtype=object), np.asarray(items, dtype=object),
                                      strengths)}


def misses_at_k(state: FoldInState, users, items, strengths, k: int = TOP_K) -> np.ndarray:
    """1 − [item in the user's top k] per positive event, NaN for the others."""
    miss = np.full(len(strengths), np.nan)
    scored = np.flatnonzero(strengths > 0)
    if not len(scored) or not len(state.items):
        miss[scored] = 1.0
        return miss
    user_rows = state.users.rows(users[scored])
    item_rows = state.items.rows(items[scored])
    distinct, event_user = np.unique(user_rows, return_inverse=True)
    hits = np.zeros(len(scored), dtype=bool)
    popularity = state.by_item.positives[:len(state.items)].astype(np.float32)
    for start in range(0, len(distinct), USERS_PER_BLOCK):
        block = distinct[start:start + USERS_PER_BLOCK]
        top = _top_items(state, block, popularity, k)
        events = (event_user >= start) & (event_user < start + len(block))
        hits[events] = (top[event_user[events] - start] == item_rows[events, None]).any(axis=1)
    miss[scored] = np.where(hits, 0.0, 1.0)
    return miss


def _top_items(state: FoldInState, rows: np.ndarray, popularity: np.ndarray, k: int) -> np.ndarray:
    """(len(rows), ≤ k) item rows: each user's best by x·y, or by popularity without a vector; known
    items excluded."""
    known_user = rows >= 0
    vectors = np.where(known_user[:, None], state.X[np.maximum(rows, 0)], 0.0).astype(np.float32)
    scores = vectors @ state.Y.T
    no_vector = ~vectors.any(axis=1)
    scores[no_vector] = popularity
    seg, cols, values = state.by_user.gather(rows[known_user])
    positive = values > 0
    scores[np.flatnonzero(known_user)[seg[positive]], cols[positive]] = -np.inf
    k = min(k, scores.shape[1])
    if k == scores.shape[1]:
        return np.argsort(-scores, axis=1)
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


__all__ = ["TOP_K", "misses_at_k", "prequential_losses"]
