"""Exact per-entity ALS solves, vectorised over many entities: the speed layer's fold-in and serving's
anonymous users.

Notation: a touched entity e (a user, or symmetrically an item) has values (j, v_ej) over the other
side, j ∈ I_e, whose vectors V_j (and, explicit, biases c_j) are held fixed.

**Explicit, with biases** — estimate ``μ + b_e + c_j + x_e·V_j``. With ``z = [x_e, b_e]`` and
``Ṽ_j = [V_j, 1]``, the exact minimiser of ``Σ_j (v_ej − μ − c_j − Ṽ_j·z)² + λ n_e ‖x_e‖² + λ_b b_e²`` is

    (Ṽ_Iᵀ Ṽ_I + diag(λ n_e, …, λ n_e, λ_b)) z = Ṽ_Iᵀ (v − μ − c)

The factors keep Spark's ALS-WR regularisation λ·n_e, so re-solving an entity with its batch data gives
Spark's own fixed point back; the bias has a count-independent prior λ_b (the shrunken mean
``Σ residual / (λ_b + n)``): one rating moves a new user 1/(1+λ_b) of the way, hundreds almost all of it.

**Implicit (Hu, Koren, Volinsky)** — preference ``p = [v > 0]``, confidence ``C = 1 + α|v|``:

    (VᵀV + V_Iᵀ (C_e − I) V_I + λ n⁺_e I) x_e = V_Iᵀ C_e p_e

with VᵀV over all other-side vectors passed in (callers cache it). Spark scales λ by n⁺_e, the number
of positive values, in implicit mode too (``numExplicits`` in its ``computeFactors``); so do we, or the
speed layer would drift from the batch model. A negative value has confidence but preference 0 (Spark).

Inputs are flat arrays sorted by entity (``seg`` = the entity's position 0..n−1): the Gram matrices are
built by bucketing entities by their number of values (powers of two, so padding at most doubles the
work), scattering each bucket into a zero-padded (entities, length, d) block and one batched ``matmul``;
one ``np.linalg.solve`` then solves every (d, d) system at once. No Python loop per entity or value.

>>> Y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
>>> x, b = explicit_solve(np.zeros(2, np.int64), 1, Y[[0, 2]], np.zeros(2), np.array([4.0, 5.0]),
...                       mu=3.0, regularization=0.1, bias_regularization=5.0)
>>> x.round(3).tolist(), b.round(3).tolist()
([[0.943, 0.849]], [0.038])
>>> # the same as least squares on the stacked problem, rows √(λn) and √λ_b for the penalties
>>> A = np.vstack([np.hstack([Y[[0, 2]], np.ones((2, 1))]), np.diag(np.sqrt([0.1 * 2, 0.1 * 2, 5.0]))])
>>> z = np.linalg.lstsq(A, np.r_[np.array([4.0, 5.0]) - 3.0, 0, 0, 0], rcond=None)[0]
>>> bool(np.allclose(np.r_[x[0], b], z))
True
"""
from __future__ import annotations

import numpy as np


def segment_gram(seg: np.ndarray, n_seg: int, V: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(n_seg, d, d): ``Σ_{rows r of segment s} w_r V_r V_rᵀ``; ``seg`` must be non-decreasing.

    >>> segment_gram(np.array([0, 0, 2]), 3, np.array([[1.0], [2.0], [3.0]]))[:, 0, 0].tolist()
    [5.0, 0.0, 9.0]
    """
    m, d = V.shape
    out = np.zeros((n_seg, d, d))
    if m == 0:
        return out
    V = np.asarray(V, dtype=np.float64)
    counts = np.bincount(seg, minlength=n_seg)
    position = np.arange(m) - (np.cumsum(counts) - counts)[seg]
    bucket = np.ceil(np.log2(np.maximum(counts, 1))).astype(np.int64)[seg]
    # rows grouped by bucket, still sorted by segment inside each bucket
    order = np.argsort(bucket, kind="stable")
    edges = np.flatnonzero(np.r_[True, bucket[order][1:] != bucket[order][:-1], True])
    for start, end in zip(edges[:-1], edges[1:]):
        rows = order[start:end]
        segments, local = np.unique(seg[rows], return_inverse=True)
        length = int(counts[segments].max())
        flat = local * length + position[rows]
        P = np.zeros((len(segments) * length, d))
        P[flat] = V[rows]
        Q = P
        if weights is not None:
            Q = np.zeros_like(P)
            Q[flat] = V[rows] * np.asarray(weights, dtype=np.float64)[rows, None]
        P = P.reshape(len(segments), length, d)
        out[segments] = np.matmul(Q.reshape(len(segments), length, d).transpose(0, 2, 1), P)
    return out


def segment_sum(seg: np.ndarray, n_seg: int, values: np.ndarray) -> np.ndarray:
    """Per-segment sums of ``values`` (rows), (n_seg,) + values.shape[1:]; ``seg`` non-decreasing."""
    values = np.asarray(values, dtype=np.float64)
    out = np.zeros((n_seg,) + values.shape[1:])
    if len(values):
        starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
        out[seg[starts]] = np.add.reduceat(values, starts, axis=0)
    return out


def solve_stacked(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Every system ``A[n] z = b[n]`` at once; an exactly singular one falls back to least squares."""
    if len(A) == 0:
        return np.zeros(b.shape)
    try:
        return np.linalg.solve(A, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        # only reached with λ = 0 and too few values: the minimum-norm least-squares answer
        return np.stack([np.linalg.lstsq(a, rhs, rcond=None)[0] for a, rhs in zip(A, b)])


def explicit_solve(seg, n_seg: int, V, other_bias, values, mu: float, regularization: float,
                   bias_regularization: float) -> tuple[np.ndarray, np.ndarray]:
    """(vectors (n_seg, k), biases (n_seg,)): the exact ``[x_e, b_e]`` of ``n_seg`` entities.

    ``V[r]`` and ``other_bias[r]`` belong to the other-side entity of value ``values[r]`` of entity
    ``seg[r]``. An entity without a value gets zeros (its estimate is then μ + the other side's bias).
    """
    V = np.asarray(V, dtype=np.float64)
    k = V.shape[1]
    n = np.bincount(seg, minlength=n_seg).astype(np.float64)
    residual = np.asarray(values, dtype=np.float64) - mu - np.asarray(other_bias, dtype=np.float64)
    augmented = np.hstack([V, np.ones((len(V), 1))])
    A = segment_gram(seg, n_seg, augmented)
    diagonal = np.arange(k + 1)
    A[:, diagonal[:k], diagonal[:k]] += regularization * n[:, None]
    A[:, k, k] += bias_regularization
    b = segment_sum(seg, n_seg, augmented * residual[:, None])
    empty = n == 0
    A[empty] = np.eye(k + 1)
    z = solve_stacked(A, b)
    z[empty] = 0.0
    return z[:, :k], z[:, k]


def implicit_solve(seg, n_seg: int, V, values, gram, regularization: float, alpha: float) -> np.ndarray:
    """(n_seg, k): the Hu–Koren–Volinsky vectors of ``n_seg`` entities; ``gram`` is VᵀV over *all*
    other-side vectors. ``values`` are the (already transformed) strengths."""
    V = np.asarray(V, dtype=np.float64)
    gram = np.asarray(gram, dtype=np.float64)
    k = V.shape[1]
    values = np.asarray(values, dtype=np.float64)
    confidence_minus_one = alpha * np.abs(values)
    positive = values > 0
    A = segment_gram(seg, n_seg, V, confidence_minus_one) + gram[None]
    positives = np.bincount(seg[positive], minlength=n_seg).astype(np.float64)
    # a floor keeps an entity without positives (or a model with fewer rows than features) solvable
    floor = 1e-9 * max(float(np.trace(gram)) / max(k, 1), 1e-12)
    diagonal = np.arange(k)
    A[:, diagonal, diagonal] += np.maximum(regularization * positives, floor)[:, None]
    b = segment_sum(seg, n_seg, V * ((1.0 + confidence_minus_one) * positive)[:, None])
    return solve_stacked(A, b)


def fit_biases(users, items, values, bias_regularization: float, n_users: int, n_items: int,
               rounds: int = 10) -> tuple[float, np.ndarray, np.ndarray]:
    """(μ, b_user, b_item) of explicit feedback, as the batch layer learns them before ALS on the residuals.

    μ = mean value; then ``rounds`` times b_i = Σ(v − μ − b_u)/(λ_b + n_i), b_u = Σ(v − μ − b_i)/(λ_b + n_u):
    block coordinate descent on ``Σ (v − μ − b_u − b_i)² + λ_b (Σ b_u² + Σ b_i²)``, the same prior the speed
    layer's solves give a bias. ``users``/``items`` are integer rows.

    >>> mu, b_user, b_item = fit_biases([0, 0, 1], [0, 1, 0], [5.0, 4.0, 3.0], 1.0, 2, 2)
    >>> round(mu, 2), b_user.round(2).tolist(), b_item.round(2).tolist()
    (4.0, [0.38, -0.52], [0.05, -0.19])
    """
    users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    mu = float(values.mean()) if len(values) else 0.0
    user_counts = np.bincount(users, minlength=n_users)
    item_counts = np.bincount(items, minlength=n_items)
    b_user, b_item, prior = np.zeros(n_users), np.zeros(n_items), bias_regularization
    for _ in range(rounds):
        b_item = np.bincount(items, values - mu - b_user[users], minlength=n_items) / (prior + item_counts)
        b_user = np.bincount(users, values - mu - b_item[items], minlength=n_users) / (prior + user_counts)
    return mu, b_user, b_item


__all__ = ["explicit_solve", "fit_biases", "implicit_solve", "segment_gram", "segment_sum", "solve_stacked"]
