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
        events = np.flatnonzero((event_user >= start) & (event_user < start + len(block)))
        scores = _scores(state, block, popularity)
        hits[events] = _in_top_k(scores, event_user[events] - start, item_rows[events], k)
    miss[scored] = np.where(hits, 0.0, 1.0)
    return miss


def _scores(state: FoldInState, rows: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """(len(rows), items): each user's x·y, or popularity without a vector; known items at −inf."""
    known_user = rows >= 0
    vectors = np.where(known_user[:, None], state.X[np.maximum(rows, 0)], 0.0).astype(np.float32)
    scores = vectors @ state.Y.T
    scores[~vectors.any(axis=1)] = popularity
    seg, cols, values = state.by_user.gather(rows[known_user])
    positive = values > 0
    scores[np.flatnonzero(known_user)[seg[positive]], cols[positive]] = -np.inf
    return scores


def _in_top_k(scores: np.ndarray, event_rows: np.ndarray, event_items: np.ndarray, k: int) -> np.ndarray:
    """Is each event's item (−1: unknown) among the k best of its row — fewer than k items score higher?

    The k-th best of a strided sample of each row is a lower bound of the row's k-th best, so an item
    below it is no hit; only the few events above it are counted against their whole row (a full
    partition of every row cost 4x more).
    """
    known = event_items >= 0
    item_scores = np.where(known, scores[event_rows, np.maximum(event_items, 0)], -np.inf)
    sample = scores[:, ::max(1, scores.shape[1] // 512)]
    bound = np.full(len(scores), -np.inf) if sample.shape[1] < k else \
        np.partition(sample, sample.shape[1] - k, axis=1)[:, sample.shape[1] - k]
    hit = np.zeros(len(event_rows), dtype=bool)
    candidates = np.flatnonzero(np.isfinite(item_scores) & (item_scores >= bound[event_rows]))
    for start in range(0, len(candidates), 256):  # bounded memory: 256 rows compared at a time
        chosen = candidates[start:start + 256]
        better = (scores[event_rows[chosen]] > item_scores[chosen, None]).sum(axis=1)
        hit[chosen] = better < k
    return hit


__all__ = ["TOP_K", "misses_at_k", "prequential_losses"]
