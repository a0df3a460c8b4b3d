"""ALS input as Oryx prepares it: events aggregated into one (user, item, value) per pair, and a time split.

Semantics (Oryx's ALSUpdate and MLFunctions.SUM_WITH_NAN), all in Spark SQL, no Python UDFs:

- events of a pair are taken in event-time order (ties broken by Kafka partition and offset);
- implicit feedback sums strengths; a delete (null strength) clears the sum, so only strengths after
  the last delete count and a pair whose last event is a delete disappears;
- explicit feedback keeps the last value (a final delete removes the pair);
- decay: each strength is multiplied by ``factor ** age_days``, the age measured from the newest
  event (not the wall clock, so a rebuild from the same table version gives the same model);
- zero threshold: pairs with ``|value| <= threshold`` are dropped (when threshold > 0). Oryx drops
  small decayed *events* before summing, which also drops every delete; here the threshold applies to
  the aggregated value, so deletes keep working and many small decayed events still add up;
- log strength: ``sign(value) · log1p(|value| / epsilon)`` (Hu et al., eq. 6, kept defined for negative
  strengths), applied per candidate since ``epsilon`` is a hyperparameter.

The speed and serving layers apply the same transform in numpy (:mod:`headwater.apps.als.strengths`) to
the values a model stores; ``tests/test_als_speed_batch_agreement.py`` feeds both the same events.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

MS_PER_DAY = 86_400_000.0
# Columns that order the events of a pair, when present (ingested events have all of them).
ORDER_COLUMNS = ("event_time_ms", "partition", "offset")


def aggregate_strengths(events: DataFrame, implicit: bool, decay_factor: float = 1.0,
                        zero_threshold: float = 0.0, newest_ms: int | None = None) -> DataFrame:
    """One row ``(user, item, value)`` per pair still present after deletes, decay and threshold.

    ``newest_ms`` is the decay reference time (default: the newest event of ``events``); pass the
    newest time of the whole data set when aggregating a train or test part separately.
    """
    strength = F.col("strength")
    if decay_factor < 1.0:
        if newest_ms is None:
            newest_ms = newest_event_ms(events)
        age_days = F.greatest(F.lit(0.0), (F.lit(newest_ms) - F.col("event_time_ms")) / MS_PER_DAY)
        strength = strength * F.pow(F.lit(decay_factor), age_days)
    order = [F.col(c) for c in ORDER_COLUMNS if c in events.columns]
    ordered = events.select("user", "item", F.struct(*order, strength.alias("strength")).alias("event"))
    grouped = ordered.groupBy("user", "item")
    if implicit:
        pairs = grouped.agg(_sum_since_last_delete(F.array_sort(F.collect_list("event"))).alias("value"))
    else:
        pairs = grouped.agg(F.max_by(F.col("event.strength"), F.col("event")).alias("value"))
    pairs = pairs.where(F.col("value").isNotNull())
    if zero_threshold > 0.0:
        pairs = pairs.where(F.abs(F.col("value")) > zero_threshold)
    return pairs


def _sum_since_last_delete(events: Column) -> Column:
    # SUM_WITH_NAN with null for NaN: a null tally restarts from the next strength, a null strength
    # turns the tally null.
    return F.aggregate(
        events, F.lit(None).cast("double"),
        lambda tally, event: F.when(tally.isNull(), event["strength"]).otherwise(tally + event["strength"]))


def log_strength(pairs: DataFrame, epsilon: float) -> DataFrame:
    """Replace ``value`` with ``sign(value) · log1p(|value| / epsilon)``."""
    value = F.col("value")
    return pairs.withColumn("value", F.signum(value) * F.log1p(F.abs(value) / F.lit(float(epsilon))))


def newest_event_ms(events: DataFrame) -> int | None:
    newest = events.agg(F.max("event_time_ms")).first()[0]
    return None if newest is None else int(newest)


def time_split(events: DataFrame, test_fraction: float) -> tuple[DataFrame, DataFrame]:
    """(train, test) events: test is the newest ``test_fraction`` of the events by event time.

    Oryx puts the boundary at ``max - fraction * (max - min)``, which is right only for evenly
    spread times; this takes the (approximate) quantile of event times instead. Events exactly at
    the boundary time (a bulk load can give thousands one timestamp) are assigned by a hash of
    (user, item), in the proportion that makes the test part the requested fraction, and keeping a
    pair's events on one side.
    """
    boundary = events.approxQuantile("event_time_ms", [1.0 - test_fraction], 0.001)
    if not boundary:
        return events, events.limit(0)
    boundary = int(boundary[0])
    time = F.col("event_time_ms")
    total, after, at = events.agg(
        F.count(F.lit(1)), F.count(F.when(time > boundary, 1)), F.count(F.when(time == boundary, 1))).first()
    share_at_boundary = min(1.0, max(0.0, (test_fraction * total - after) / at)) if at else 0.0
    bucket = F.pmod(F.xxhash64("user", "item"), F.lit(1_000_000)) / 1_000_000.0
    is_test = (time > boundary) | ((time == boundary) & (bucket < share_at_boundary))
    return events.where(~is_test), events.where(is_test)
