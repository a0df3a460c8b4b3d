"""A tiny ALS model and events for the shared contract checks (:mod:`headwater.app_checks`).

>>> example().state
ALSFactors(users=5, items=8, features=3, implicit=True)
"""
from __future__ import annotations

import numpy as np

from headwater.api import AppExample
from headwater.apps.als.factors import ALSFactors, ALSSettings


def example() -> AppExample:
    rng = np.random.default_rng(0)
    factors = ALSFactors([f"u{n}" for n in range(5)], rng.normal(size=(5, 3)), [f"i{n}" for n in range(8)],
                         rng.normal(size=(8, 3)), {"u0": {"i0": 1.0, "i1": 2.0}, "u1": {"i2": 1.0}},
                         ALSSettings(implicit=True, regularization=0.1))
    # an existing pair, a delete, a brand-new user, a brand-new user with a brand-new item, a timestamp
    lines = ["u0,i3,2", "u1,i2,", "new-user,i4,1", "new-user,new-item,1", "u2,i5,3,1700000000000"]
    return AppExample({}, factors, lines)
