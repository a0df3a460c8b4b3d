"""Simulated paired loss streams for the sequential test (the sequential test's must-show cases).

Every generator returns ``(loss_new, loss_old)`` for ``n`` live events in arrival order.  Events come
in user sessions (geometric lengths, mean ``session`` events), and each session carries its own error
component for both models, so the per-event differences are autocorrelated the way live traffic is
(both versions do badly on the same hard user for a while).  Both versions' errors are correlated
(``rho``): they are trained on the same data and miss on the same events.

>>> import numpy as np
>>> new, old = rating_losses(np.random.default_rng(0), 50_000, rmse_new=1.3, rmse_old=0.95)
>>> bool(1.25 < np.sqrt(new.mean()) < 1.35 and 0.9 < np.sqrt(old.mean()) < 1.0)
True
"""
from __future__ import annotations

import functools

import numpy as np
from scipy import special

# MovieLens 100k rating distribution (0.5..5 in halves), rounded shares
ML_VALUES = np.arange(1, 11) / 2.0
ML_SHARES = np.array([1.1, 2.7, 1.7, 7.3, 4.5, 20.1, 11.1, 26.2, 7.6, 15.1]) / 97.4
ML_SHARES = ML_SHARES / ML_SHARES.sum()


def session_ids(rng: np.random.Generator, n: int, session: float) -> np.ndarray:
    """Session index of each of ``n`` events; lengths geometric with mean ``session`` (1 = no sessions)."""
    if session <= 1:
        return np.arange(n)
    lengths = rng.geometric(1.0 / session, size=int(n / session * 1.5) + 10)
    while lengths.sum() < n:
        lengths = np.concatenate([lengths, rng.geometric(1.0 / session, size=len(lengths))])
    return np.repeat(np.arange(len(lengths)), lengths)[:n]


def _session_component(rng, n, session, share):
    """A unit-variance noise made of a per-session part (``share`` of the variance) and an event part."""
    ids = session_ids(rng, n, session)
    per_session = rng.standard_normal(ids[-1] + 1)[ids]
    return np.sqrt(share) * per_session + np.sqrt(1 - share) * rng.standard_normal(n)


def _paired_normals(rng, n, rho, session, share):
    """Two standard-normal event streams with correlation ``rho``, both with session structure."""
    shared = _session_component(rng, n, session, share)
    own_a = _session_component(rng, n, session, share)
    own_b = _session_component(rng, n, session, share)
    return (np.sqrt(rho) * shared + np.sqrt(1 - rho) * own_a,
            np.sqrt(rho) * shared + np.sqrt(1 - rho) * own_b)


@functools.cache
def error_sd_for_rmse(rmse: float) -> float:
    """The error sd that gives RMSE ``rmse`` *after* predictions are clipped to 0.5..5 (bisection)."""
    rng = np.random.default_rng(12345)
    truth = rng.choice(ML_VALUES, size=200_000, p=ML_SHARES)
    z = rng.standard_normal(truth.size)
    lo, hi = 0.01, 10.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        got = np.sqrt(np.mean((np.clip(truth + mid * z, 0.5, 5.0) - truth) ** 2))
        lo, hi = (mid, hi) if got < rmse else (lo, mid)
    return 0.5 * (lo + hi)


def rating_losses(rng, n, rmse_new=0.95, rmse_old=0.95, rho=0.7, session=10.0, share=0.3):
    """Squared errors of two rating predictors on MovieLens-like explicit ratings.

    Predictions are clipped to 0.5..5 as a recommender's are; ``rmse_*`` are the RMSEs after clipping.
    """
    truth = rng.choice(ML_VALUES, size=n, p=ML_SHARES)
    a, b = _paired_normals(rng, n, rho, session, share)
    pred_new = np.clip(truth + error_sd_for_rmse(rmse_new) * a, 0.5, 5.0)
    pred_old = np.clip(truth + error_sd_for_rmse(rmse_old) * b, 0.5, 5.0)
    return (pred_new - truth) ** 2, (pred_old - truth) ** 2


def error01_losses(rng, n, acc_new=0.8, acc_old=0.8, rho=0.5, session=10.0, share=0.3):
    """0/1 errors of two classifiers (accuracies ``acc_*``) whose mistakes are correlated."""
    a, b = _paired_normals(rng, n, rho, session, share)
    return ((a > special.ndtri(acc_new)).astype(float), (b > special.ndtri(acc_old)).astype(float))


def hit_losses(rng, n, hit_new=0.25, hit_old=0.25, rho=0.5, session=10.0, share=0.3):
    """``1 - hit@10`` of two recommenders (hit rates ``hit_*``)."""
    # error01's "correct" is a hit, so its 0/1 error is exactly 1 - hit
    return error01_losses(rng, n, hit_new, hit_old, rho, session, share)


def distance_losses(rng, n, scale_new=1.0, scale_old=1.0, spread=1.0, own=0.3, session=10.0, share=0.3):
    """Distances to the nearest centre for two k-means models: heavy-tailed (lognormal), shared per point."""
    base = np.exp(spread * _session_component(rng, n, session, share))   # how far the point is from anything
    a, b = _paired_normals(rng, n, 0.0, session, share)
    return scale_new * base * np.exp(own * a), scale_old * base * np.exp(own * b)


SCENARIOS = {
    # name: (generator, null kwargs, "bad version" kwargs)
    "rating_sq_error": (rating_losses, {}, {"rmse_new": 1.3}),
    "error01": (error01_losses, {}, {"acc_new": 0.6}),
    "hit10": (hit_losses, {}, {"hit_new": 0.15}),
    "kmeans_distance": (distance_losses, {}, {"scale_new": 1.2}),
}
