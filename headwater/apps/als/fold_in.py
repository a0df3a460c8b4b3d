"""The ALS fold-in math shared by the speed layer (micro-batches) and the serving layer (anonymous users).

The fold-in is Oryx's (``ALSUtils.computeTargetQui`` / ``computeUpdatedXu``),
vectorised over a micro-batch: for an event (u, i, strength) the estimate Qui = Xu·Yi moves to a
target Qui' and Xu moves by the least-squares change that produces it,

    Xu' = Xu + Σ_i (Qui' - Qui) · Yi · (YᵀY + λI)⁻¹

which is the minimiser of ``||Y (x - Xu) - dQu||² + λ ||x - Xu||²`` (Hu, Koren and Volinsky's
implicit solution with unit confidences for the single new observation, as Oryx approximates it).
Several events of one user in a batch add their changes, which is that same minimiser for a dQu
with several non-zero entries.

>>> import numpy as np
>>> factors = ALSFactors(["u1"], [[0.5, 0.0]], ["i1", "i2"], np.eye(2), {"u1": {"i1"}}, implicit=True)
>>> update = fold_in(factors, ["u1"], ["i2"], [1.0])
>>> update.user_ids, update.user_vectors.round(3).tolist(), update.item_vectors.round(3).tolist()
(['u1'], [[0.5, 0.5]], [[1.0, 1.0]])
>>> update.known_items["u1"] == {"i1", "i2"}
True

(``u1`` scored ``i2`` at 0; a strength of 1 moves the target halfway to 1, so Xu gains 0.5 along Yi.)
"""
from __future__ import annotations

import zlib
from collections.abc import Mapping

import numpy as np

from headwater.apps.als.factors import ALSFactors, FoldIn


class GramianSolver:
    """Solves ``x (MᵀM + λI) = b`` for many rows b at once; build it once per model version.

    >>> solver = GramianSolver(np.array([[2.0, 0.0], [0.0, 1.0]]), regularization=1.0)
    >>> solver.solve(np.array([[5.0, 2.0]])).tolist()
    [[1.0, 1.0]]
    """

    def __init__(self, M, regularization: float = 0.0):
        M = np.asarray(M, dtype=np.float64)
        gram = M.T @ M
        k = gram.shape[0]
        # With λ = 0 a rank-deficient Gramian (fewer rows than features) still gets a least-squares
        # answer: a ridge this small changes a well-conditioned solution by ~1e-9 relative.
        scale = np.trace(gram) / max(k, 1)
        ridge = regularization if regularization > 0 else (1e-9 * scale if scale > 0 else 1.0)
        self.inverse = np.linalg.inv(gram + ridge * np.eye(k))

    def solve(self, B) -> np.ndarray:
        return np.asarray(B, dtype=np.float64) @ self.inverse


def target_estimates(implicit: bool, strengths, current) -> np.ndarray:
    """Oryx's ``computeTargetQui`` over arrays: where each estimate should move (NaN: no change).

    Implicit: a positive strength s moves the estimate c toward 1 by the fraction s/(1+s); a
    negative one toward 0 by s/(s-1); an estimate already beyond the goal is left alone.
    Explicit: the target is the rating itself.

    >>> target_estimates(True, np.array([3.0, 3.0, -1.0]), np.array([0.2, 1.5, 0.8])).tolist()
    [0.8, nan, 0.4]
    """
    s = np.asarray(strengths, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if not implicit:
        return s.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        up = c + (s / (1.0 + s)) * (1.0 - np.maximum(0.0, c))
        down = c + (s / (s - 1.0)) * -np.minimum(1.0, c)
    return np.where((s > 0) & (c < 1.0), up, np.where((s < 0) & (c > 0.0), down, np.nan))


def fold_in_rows(solver: GramianSolver, implicit: bool, current, has_current, group, others,
                 strengths) -> tuple[np.ndarray, np.ndarray]:
    """New vectors for ``len(current)`` rows from events (row ``group[e]``, other-side vector, strength).

    Returns (vectors, changed): rows without a vector start from 0 with the "don't know" estimate 0.5.
    """
    current = np.asarray(current, dtype=np.float64)
    others = np.asarray(others, dtype=np.float64)
    rows = current[group]
    estimate = np.einsum("ij,ij->i", rows, others)
    known = np.asarray(has_current, dtype=bool)[group]
    target = target_estimates(implicit, strengths, np.where(known, estimate, 0.5))
    moving = ~np.isnan(target)
    change = np.zeros_like(current)
    np.add.at(change, group[moving], (target - np.where(known, estimate, 0.0))[moving, None] * others[moving])
    changed = np.zeros(len(current), dtype=bool)
    changed[group[moving]] = True
    return (current + solver.solve(change)).astype(np.float32), changed


def aggregate_events(implicit: bool, users, items, strengths) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One (user, item, strength) per pair, in first-seen order, as Oryx's speed layer aggregates.

    A delete (NaN) cancels what came before it; after the last delete, implicit strengths add up
    and an explicit rating is the last one. The strength is NaN when the pair ends with a delete.

    >>> aggregate_events(True, ["u", "u", "u", "v"], ["i", "i", "i", "i"], [1.0, np.nan, 2.0, 4.0])
    (array(['u', 'v'], dtype=object), array(['i', 'i'], dtype=object), array([2., 4.]))
    """
    users = np.asarray(users, dtype=object)
    items = np.asarray(items, dtype=object)
    s = np.asarray(strengths, dtype=np.float64)
    pairs = np.array([f"{u}\x00{i}" for u, i in zip(users, items)], dtype=object)
    _, first, inverse = np.unique(pairs, return_index=True, return_inverse=True)
    position = np.arange(len(s))
    deleted = np.isnan(s)
    last_delete = np.full(len(first), -1)
    np.maximum.at(last_delete, inverse[deleted], position[deleted])
    live = position > last_delete[inverse]
    last_live = np.full(len(first), -1)
    np.maximum.at(last_live, inverse[live], position[live])
    if implicit:
        value = np.zeros(len(first))
        np.add.at(value, inverse[live], s[live])
    else:
        value = s[np.maximum(last_live, 0)]
    value = np.where(last_live >= 0, value, np.nan)
    order = np.argsort(first, kind="stable")
    return users[first][order], items[first][order], value[order]


def fold_in_users(factors: ALSFactors, users, items, strengths,
                  solver: GramianSolver | None = None) -> tuple[list[str], np.ndarray]:
    """New user vectors from aggregated events against the current item vectors (unknown items skipped)."""
    return _fold_in_side(factors.X, factors.user_index, factors.Y, factors.item_index, users, items,
                         strengths, solver or GramianSolver(factors.Y, factors.regularization), factors.implicit)


def fold_in_items(factors: ALSFactors, users, items, strengths,
                  solver: GramianSolver | None = None) -> tuple[list[str], np.ndarray]:
    """New item vectors from aggregated events against the current user vectors (unknown users skipped)."""
    return _fold_in_side(factors.Y, factors.item_index, factors.X, factors.user_index, items, users,
                         strengths, solver or GramianSolver(factors.X, factors.regularization), factors.implicit)


def _fold_in_side(own, own_index, other, other_index, own_ids, other_ids, strengths, solver, implicit,
                  extra_other: Mapping[str, np.ndarray] | None = None):
    """Fold events into rows of ``own``; other-side vectors come from ``other`` or ``extra_other``."""
    extra_other = extra_other or {}
    strengths = np.asarray(strengths, dtype=np.float64)
    usable = np.fromiter((o in other_index or o in extra_other for o in other_ids), bool,
                         len(strengths)) & ~np.isnan(strengths)
    if not usable.any():
        return [], np.zeros((0, own.shape[1]), np.float32)
    own_ids = np.asarray(own_ids, dtype=object)[usable]
    other_ids = np.asarray(other_ids, dtype=object)[usable]
    ids, group = np.unique(own_ids, return_inverse=True)
    rows = np.array([own_index.get(i, -1) for i in ids])
    current = np.where((rows >= 0)[:, None], own[np.maximum(rows, 0)], 0.0) if len(own) else \
        np.zeros((len(ids), other.shape[1]))
    others = np.stack([extra_other[o] if o in extra_other else other[other_index[o]] for o in other_ids])
    vectors, changed = fold_in_rows(solver, implicit, current, rows >= 0, group, others, strengths[usable])
    return [str(i) for i in ids[changed]], vectors[changed]


def seed_vector(item_id: str, features: int, scale: float) -> np.ndarray:
    """A small deterministic vector for an item first seen together with a brand-new user.

    Deterministic (seeded by the id) so that re-running a micro-batch gives the same UP messages.
    """
    rng = np.random.default_rng(zlib.crc32(item_id.encode()))
    return (rng.standard_normal(features) * scale / np.sqrt(features)).astype(np.float32)


def fold_in(factors: ALSFactors, users, items, strengths, x_solver: GramianSolver | None = None,
            y_solver: GramianSolver | None = None) -> FoldIn:
    """Fold one micro-batch of events into new user and item vectors plus known items.

    Items are folded in against the existing users, then users against the existing items and the
    items just created. An item seen only with brand-new users (so neither side has a vector; Oryx
    skips such events) starts from :func:`seed_vector`, the users are folded in against it, and the
    item is then folded in against those new users.
    """
    users, items, strengths = aggregate_events(factors.implicit, users, items, strengths)
    x_solver = x_solver or GramianSolver(factors.X, factors.regularization)
    y_solver = y_solver or GramianSolver(factors.Y, factors.regularization)
    item_ids, item_vectors = fold_in_items(factors, users, items, strengths, x_solver)
    new_items = dict(zip(item_ids, item_vectors))
    seeded = sorted({i for i in items[~np.isnan(strengths)]
                     if i not in factors.item_index and i not in new_items})
    if seeded:
        norms = np.linalg.norm(factors.Y, axis=1) if len(factors.Y) else np.ones(1)
        new_items.update({i: seed_vector(i, factors.features, float(norms.mean()) or 1.0) for i in seeded})
    extra_items = {i: v for i, v in new_items.items() if i not in factors.item_index}
    user_ids, user_vectors = _fold_in_side(factors.X, factors.user_index, factors.Y, factors.item_index,
                                           users, items, strengths, y_solver, factors.implicit, extra_items)
    if seeded:
        new_users = dict(zip(user_ids, user_vectors))
        wanted = np.isin(items, seeded)
        ids, vectors = _fold_in_side(factors.Y, factors.item_index, factors.X, factors.user_index,
                                     items[wanted], users[wanted], strengths[wanted], x_solver,
                                     factors.implicit, new_users)
        new_items.update(zip(ids, vectors))
    known = _known_after(factors.known_items, users, items, strengths)
    ids = list(new_items)
    vectors = np.stack([new_items[i] for i in ids]) if ids else np.zeros((0, factors.features), np.float32)
    return FoldIn(user_ids, user_vectors, ids, vectors.astype(np.float32), known)


def _known_after(known_items, users, items, strengths) -> dict[str, set[str]]:
    """Complete known-item sets of the users touched: positive strengths add, deletes remove."""
    # pairs are unique after aggregate_events, so adds and removes do not depend on order
    result = {user: set(known_items.get(user, ())) for user in dict.fromkeys(users)}
    strengths = np.asarray(strengths, dtype=np.float64)
    for user, item in zip(users[strengths > 0], items[strengths > 0]):
        result[user].add(item)
    for user, item in zip(users[np.isnan(strengths)], items[np.isnan(strengths)]):
        result[user].discard(item)
    return result
