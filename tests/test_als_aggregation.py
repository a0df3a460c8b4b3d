"""Oryx's aggregation semantics for ALS input, on tiny DataFrames with the shared Spark session."""
from __future__ import annotations

import math

import pytest

from headwater.apps.als.aggregation import aggregate_strengths, log_strength, time_split

DAY = 86_400_000
SCHEMA = "user string, item string, strength double, event_time_ms long, partition int, offset long"


def events(spark, rows):
    """rows: (user, item, strength, event_time_ms); offsets follow the list order."""
    return spark.createDataFrame([(u, i, s, t, 0, n) for n, (u, i, s, t) in enumerate(rows)], SCHEMA)


def values(pairs) -> dict[tuple[str, str], float]:
    return {(r["user"], r["item"]): r["value"] for r in pairs.collect()}


def test_implicit_sums_strengths_of_a_pair(spark):
    df = events(spark, [("u", "a", 1.0, 10), ("u", "a", 2.5, 20), ("u", "b", 1.0, 5), ("v", "a", 4.0, 1)])
    assert values(aggregate_strengths(df, implicit=True)) == {("u", "a"): 3.5, ("u", "b"): 1.0, ("v", "a"): 4.0}


def test_delete_resets_the_sum_in_event_time_order(spark):
    # Listed out of time order on purpose: the order that counts is event time.
    df = events(spark, [("u", "a", 5.0, 30), ("u", "a", 1.0, 10), ("u", "a", None, 20),
                        ("u", "b", 1.0, 10), ("u", "b", None, 20),
                        ("u", "c", None, 5), ("u", "c", 2.0, 6)])
    assert values(aggregate_strengths(df, implicit=True)) == {("u", "a"): 5.0, ("u", "c"): 2.0}


def test_equal_times_are_ordered_by_offset(spark):
    df = events(spark, [("u", "a", 1.0, 10), ("u", "a", None, 10), ("u", "a", 3.0, 10)])
    assert values(aggregate_strengths(df, implicit=True)) == {("u", "a"): 3.0}


def test_explicit_keeps_the_last_value_and_a_final_delete_removes_the_pair(spark):
    df = events(spark, [("u", "a", 4.0, 30), ("u", "a", 1.0, 10), ("u", "a", 2.0, 20),
                        ("u", "b", 3.0, 10), ("u", "b", None, 20)])
    assert values(aggregate_strengths(df, implicit=False)) == {("u", "a"): 4.0}


def test_decay_is_per_day_relative_to_the_newest_event(spark):
    df = events(spark, [("u", "a", 8.0, 0), ("u", "b", 8.0, 2 * DAY), ("u", "c", 8.0, 3 * DAY)])
    got = values(aggregate_strengths(df, implicit=True, decay_factor=0.5))
    assert got == pytest.approx({("u", "a"): 1.0, ("u", "b"): 4.0, ("u", "c"): 8.0})


def test_zero_threshold_drops_small_aggregated_values(spark):
    df = events(spark, [("u", "a", 1.0, 0), ("u", "b", 1.0, 3 * DAY), ("u", "c", -0.05, 3 * DAY),
                        ("u", "d", 0.1, 0), ("u", "d", 0.1, 0)])
    got = values(aggregate_strengths(df, implicit=True, decay_factor=0.5, zero_threshold=0.2))
    # a: 1 * 0.5**3 = 0.125 dropped; c: |-0.05| dropped; d: 0.2 * 0.125 = 0.025 dropped
    assert got == {("u", "b"): 1.0}


def test_log_strength(spark):
    pairs = aggregate_strengths(events(spark, [("u", "a", 3.0, 0)]), implicit=True)
    got = values(log_strength(pairs, epsilon=0.5))
    assert got[("u", "a")] == pytest.approx(math.log1p(3.0 / 0.5))


def test_time_split_takes_the_newest_fraction(spark):
    df = events(spark, [(f"u{n}", "a", 1.0, n * 1000) for n in range(100)])
    train, test = time_split(df, 0.2)
    test_times = sorted(r["event_time_ms"] for r in test.collect())
    assert len(test_times) == 20 and test_times[0] == 80_000
    assert train.count() == 80


def test_time_split_shares_ties_by_pair(spark):
    # Every event at one time (a bulk load): the split still gives about the requested fraction,
    # and all events of a pair land on the same side.
    rows = [(f"u{n % 50}", f"i{n % 7}", 1.0, 1000) for n in range(1000)]
    train, test = time_split(events(spark, rows), 0.25)
    n_test = test.count()
    assert 150 <= n_test <= 350 and train.count() + n_test == 1000
    train_pairs = {(r["user"], r["item"]) for r in train.collect()}
    assert not train_pairs & {(r["user"], r["item"]) for r in test.collect()}
