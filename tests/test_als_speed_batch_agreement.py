"""Speed = batch transform: the same events aggregated by the batch layer (Spark SQL) and folded in by the
speed layer on top of a champion give the same values — decay, zero threshold and log strength included."""
from __future__ import annotations

import numpy as np
import pytest

from headwater.apps.als.aggregation import aggregate_strengths, log_strength
from headwater.apps.als.factors import ALSFactors, ALSSettings
from headwater.apps.als.fold_in import FoldInState
from headwater.apps.als.strengths import DAY_MS, effective_values

SCHEMA = "user string, item string, strength double, event_time_ms long, partition int, offset long"
DECAY, THRESHOLD, EPSILON = 0.8, 0.3, 0.5


def events(n: int = 400, seed: int = 0) -> list[tuple]:
    """Time-ordered events over 20 days: 6 users × 8 items, strengths 0.2–3, a few deletes."""
    rng = np.random.default_rng(seed)
    times = np.sort(rng.integers(0, 20 * int(DAY_MS), n))
    strengths = rng.choice([0.2, 0.5, 1.0, 3.0], n)
    rows = [(f"u{u}", f"i{i}", None if rng.random() < 0.05 else float(s), int(t))
            for u, i, s, t in zip(rng.integers(0, 6, n), rng.integers(0, 8, n), strengths, times)]
    return rows


def aggregated(spark, rows, implicit: bool, newest: int, threshold: float = 0.0, epsilon: float | None = None):
    """The batch layer's values: {(user, item): value}."""
    frame = spark.createDataFrame([(*row, 0, n) for n, row in enumerate(rows)], SCHEMA)
    pairs = aggregate_strengths(frame, implicit, DECAY, threshold, newest)
    if epsilon is not None:
        pairs = log_strength(pairs, epsilon)
    return {(r["user"], r["item"]): r["value"] for r in pairs.collect()}


@pytest.mark.parametrize("implicit", [True, False])
def test_speed_values_equal_the_batch_aggregation_of_the_same_events(spark, implicit):
    rows = events()
    history, live = rows[:250], rows[250:]
    reference = max(t for *_, t in history)
    # the champion's stored values: the history aggregated without the threshold, decayed to its newest event
    stored = aggregated(spark, history, implicit, reference)
    users, items = sorted({u for u, _ in stored}), sorted({i for _, i in stored})
    champion = ALSFactors(users, np.zeros((len(users), 2)), items, np.zeros((len(items), 2)),
                          {u: {i: v for (uu, i), v in stored.items() if uu == u} for u in users},
                          ALSSettings(implicit, 0.1, 1.0, 1.0, EPSILON, DECAY, THRESHOLD),
                          reference_time_ms=reference)
    state = FoldInState(champion)
    state.learn(*(np.array([row[k] for row in live], dtype=object if k < 2 else np.float64) for k in range(2)),
                np.array([np.nan if row[2] is None else row[2] for row in live]),
                np.array([row[3] for row in live], dtype=np.float64))

    newest = max(t for *_, t in rows)
    expected = aggregated(spark, rows, implicit, newest, THRESHOLD, EPSILON)
    seg, cols, values = state.by_user.gather(np.arange(len(state.users)))
    transformed, kept = effective_values(values, state.newest_event_ms, state.reference_time_ms, DECAY,
                                         THRESHOLD, EPSILON)
    user_ids, item_ids = state.users.ids(seg[kept]), state.items.ids(cols[kept])
    got = dict(zip(zip(user_ids, item_ids), transformed.tolist()))
    assert state.newest_event_ms == newest
    assert got.keys() == expected.keys()
    for pair, value in expected.items():
        assert got[pair] == pytest.approx(value, rel=1e-5), pair

