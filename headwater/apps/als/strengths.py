"""From event strengths to the values ALS learns from: decay, zero threshold, log strength — in numpy.

The same transform as the batch layer's Spark SQL (:mod:`headwater.apps.als.aggregation`), so a
speed-layer solve sees exactly the values a batch model built at that moment would train on:

- **stored value**: what the model keeps per (user, item): the aggregated strength (implicit: the sum
  since the last delete; explicit: the last rating), each strength decayed to the model's *reference
  time* (the newest event of the data the batch model was built from): ``s · factor^((reference − t)/day)``.
  An event newer than the reference time is stored grown by the same rule, so every stored value is
  in the units of one instant and only one scale is needed to bring them all to "now";
- **effective value** at time ``now`` (the newest event seen): ``stored · factor^((now − reference)/day)``,
  which is exactly the batch aggregation's ``Σ s · factor^((now − t)/day)``; pairs whose effective value
  is within ``zero_threshold`` of 0 are left out, as the batch drops them;
- **log strength** (Hu et al., eq. 6): ``sign(v) · log1p(|v| / ε)``; ε is a hyperparameter, stored with
  the model, so the speed layer applies the one the champion was trained with.

>>> stored = stored_values(np.array([2.0]), np.array([DAY_MS]), reference_ms=0, decay_factor=0.5)
>>> stored.tolist()                                   # one day after the reference: grown by 1/0.5
[4.0]
>>> values, kept = effective_values(stored, now_ms=2 * DAY_MS, reference_ms=0, decay_factor=0.5)
>>> values.tolist(), kept.tolist()                    # seen from a day later: 2 · 0.5
([1.0], [True])
"""
from __future__ import annotations

import numpy as np

DAY_MS = 86_400_000.0


def stored_values(strengths, event_ms, reference_ms: int | None, decay_factor: float) -> np.ndarray:
    """Strengths in the units of the reference time (unchanged without decay; NaN stays NaN)."""
    strengths = np.asarray(strengths, dtype=np.float64)
    if decay_factor >= 1.0 or reference_ms is None:
        return strengths.copy()
    age_days = (float(reference_ms) - np.asarray(event_ms, dtype=np.float64)) / DAY_MS
    return strengths * np.power(decay_factor, age_days)


def effective_values(stored, now_ms: int | None, reference_ms: int | None, decay_factor: float = 1.0,
                     zero_threshold: float = 0.0, epsilon: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(values the solves use, which of ``stored`` are kept): decayed to ``now``, thresholded, logged."""
    values = np.asarray(stored, dtype=np.float64)
    if decay_factor < 1.0 and now_ms is not None and reference_ms is not None:
        values = values * decay_factor ** (max(0.0, float(now_ms) - float(reference_ms)) / DAY_MS)
    kept = np.abs(values) > zero_threshold if zero_threshold > 0 else np.ones(len(values), dtype=bool)
    if epsilon is not None:
        values = np.sign(values) * np.log1p(np.abs(values) / epsilon)
    return values[kept], kept


__all__ = ["DAY_MS", "effective_values", "stored_values"]
