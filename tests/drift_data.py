"""Simulated data for the drift tests: mixed tabular rows and a stationary MovieLens-like event stream.

Tabular: 6 numeric and 4 categorical features, deliberately awkward: a lognormal, a correlated pair,
an integer (tied) feature, missing values, a bimodal mixture, a Zipf categorical with 30 levels and a
high-cardinality one with 500 levels (more than the profile's top 100).

>>> import numpy as np
>>> cols = tabular(np.random.default_rng(0), 1000)
>>> len(cols), sorted(CATEGORICAL)
(10, ['c_binary', 'c_five', 'c_high', 'c_zipf'])
>>> users, items, ratings = AlsStream(np.random.default_rng(0)).take(1000)
>>> len(users), float(ratings.min()) >= 0.5
(1000, True)
"""
from __future__ import annotations

import numpy as np

CATEGORICAL = ("c_zipf", "c_binary", "c_five", "c_high")
NUMERIC = ("x_normal", "x_lognormal", "x_corr", "x_poisson", "x_uniform_missing", "x_bimodal")
_ZIPF30 = 1.0 / np.arange(1, 31) ** 1.2
_ZIPF30 /= _ZIPF30.sum()
_ZIPF500 = 1.0 / np.arange(1, 501) ** 1.05
_ZIPF500 /= _ZIPF500.sum()


def tabular(rng: np.random.Generator, n: int, shift_sd: float = 0.0) -> dict[str, np.ndarray]:
    """``n`` rows; ``shift_sd`` moves the mean of ``x_normal`` by that many of its sds."""
    z = rng.standard_normal(n)
    x_normal = 40 + 10 * (z + shift_sd)
    unif = rng.uniform(0, 1, n)
    unif[rng.uniform(size=n) < 0.05] = np.nan
    mix = np.where(rng.uniform(size=n) < 0.3, rng.normal(-2, 0.5, n), rng.normal(1.5, 1.0, n))
    return {
        "x_normal": x_normal,
        "x_lognormal": rng.lognormal(10, 0.8, n),
        "x_corr": 0.8 * z + 0.6 * rng.standard_normal(n),   # correlated with x_normal (before its shift)
        "x_poisson": rng.poisson(3.0, n).astype(float),
        "x_uniform_missing": unif,
        "x_bimodal": mix,
        "c_zipf": rng.choice(30, n, p=_ZIPF30),
        "c_binary": (rng.uniform(size=n) < 0.3).astype(int),
        "c_five": rng.choice(["a", "b", "c", "d", "e"], n, p=[0.4, 0.25, 0.2, 0.1, 0.05]),
        "c_high": rng.choice(500, n, p=_ZIPF500),
    }




class AlsStream:
    """A stationary MovieLens-like event stream for the ALS drift tests.

    Events come in user sessions (geometric, mean ``session`` events).  A session belongs to a brand-new
    user with probability ``new_user``, else to a user of a fixed population (``users0`` users, activity
    Gamma(3)).  Each event's item is brand new with probability ``new_item``, else from a fixed catalogue
    (``items0`` items, Zipf popularity).  Ratings are 0.5..5 in halves from a user bias, an item bias and
    noise, so a user's ratings are alike (clustered) as in MovieLens.  New users and items draw their
    biases from the same laws, so the stream is stationary: every window comes from the training
    distribution, which is what a calibration test needs.  (Real populations also change make-up over
    time -- a few heavy users come and go -- and that is drift the detector is meant to see.)

    ``rating_shift`` adds a constant to every rating (a drifted stream); ``new_user`` can be raised
    likewise.
    """

    def __init__(self, rng, new_user=0.05, new_item=0.002, session=8.0, users0=1000, items0=2000,
                 user_bias=0.45, item_bias=0.35, rating_shift=0.0):
        self.rng = rng
        self.new_user, self.new_item, self.session = new_user, new_item, session
        self.user_bias_sd, self.item_bias_sd = user_bias, item_bias
        self.rating_shift = rating_shift
        self.user_cdf = np.cumsum(rng.gamma(3.0, 1.0, users0))
        self.user_bias = rng.normal(0, user_bias, users0)
        self.item_cdf = np.cumsum(1.0 / np.arange(1, items0 + 1) ** 0.9)
        self.item_bias = rng.normal(0, item_bias, items0)
        self.next_user = users0        # ids of new users / items count up from here
        self.next_item = items0

    def take(self, n):
        """The next ``n`` events: (user ids, item ids, ratings) as numpy arrays."""
        rng = self.rng
        lengths = rng.geometric(1.0 / self.session, size=int(n / self.session * 1.5) + 20)
        while lengths.sum() < n:
            lengths = np.concatenate([lengths, rng.geometric(1.0 / self.session, size=lengths.size)])
        k = int(np.searchsorted(np.cumsum(lengths), n)) + 1
        lengths = lengths[:k]
        new = rng.uniform(size=k) < self.new_user
        sess_user = np.searchsorted(self.user_cdf, rng.uniform(0, self.user_cdf[-1], size=k))
        sess_bias = self.user_bias[np.minimum(sess_user, self.user_bias.size - 1)]
        n_new = int(new.sum())
        sess_user[new] = self.next_user + np.arange(n_new)
        sess_bias[new] = rng.normal(0, self.user_bias_sd, n_new)
        self.next_user += n_new
        users = np.repeat(sess_user, lengths)[:n]
        ub = np.repeat(sess_bias, lengths)[:n]
        items = np.searchsorted(self.item_cdf, rng.uniform(0, self.item_cdf[-1], size=n))
        ib = self.item_bias[items]
        new_i = rng.uniform(size=n) < self.new_item
        m = int(new_i.sum())
        items[new_i] = self.next_item + np.arange(m)
        ib[new_i] = rng.normal(0, self.item_bias_sd, m)
        self.next_item += m
        raw = 3.5 + self.rating_shift + ub + ib + rng.normal(0, 0.85, n)
        ratings = np.clip(np.round(raw * 2) / 2, 0.5, 5.0)
        return users, items, ratings
