"""The batch layer's runner: read the latest events version, run the app's ML update, announce a promotion.

``run_batch_once`` is one generation (``headwater batch --once``); ``run_batch_forever`` starts one
every ``headwater.batch.generation-interval-sec`` (measured start to start; a generation that overruns
the interval is followed by the next at once), each followed by table maintenance (compaction and
vacuum, :mod:`headwater.table_maintenance`). A failed generation is logged and the loop goes on:
the current champion keeps serving.

The configured app names its :class:`~headwater.api.BatchApp` (``App.batch``, e.g.
``batch_layer.als:ALSUpdate``); a fresh instance runs each generation.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from batch_layer.ml_update import MLUpdate, UpdateResult
from headwater.config import Config
from headwater.messages import ModelNotice
from headwater.promotion import publish_model_notice, tag_update_offset

log = logging.getLogger(__name__)


def run_batch_once(config: Config, publish: Callable[[ModelNotice], None] | None = None) -> UpdateResult | None:
    """One generation on the latest ``events`` version; None when there are no events yet.

    A promotion is announced by ``publish`` (default: the ``update_offset`` tag, then a MODEL notice on
    ``<id>.update``; a ``publish`` of one's own gets no tag).
    """
    from deltalake import DeltaTable

    from headwater.delta_tables import read_table_version, storage_options
    from headwater.spark import get_spark

    uri = config.table_uri("events")
    options = storage_options(config) or None
    if not DeltaTable.is_deltatable(uri, storage_options=options):
        log.info("no events table at %s yet: nothing to train on", uri)
        return None
    spark = get_spark(config)
    data, version = read_table_version(spark, uri, storage_options=options)
    if data.isEmpty():
        log.info("events table version %s is empty: nothing to train on", version)
        return None
    from batch_layer.recency import recent_events

    before_promotion = None
    if publish is None:
        publish, before_promotion = (lambda notice: publish_model_notice(config, notice),
                                     lambda version: tag_update_offset(config, version))
    offsets = input_offsets(data)   # of every event: the speed layer starts after all of them
    data, window = recent_events(config, data)
    update = MLUpdate(config.app.resolve("batch")(config), config, publish, before_promotion)
    return update.run(data, version, offsets, window)


def input_offsets(events) -> dict[int, int]:
    """The next ``<id>.input`` offset per partition after the events a model learns from.

    Recorded on the model version, so a fresh speed layer starts exactly where the batch data ends:
    events after it are folded in, none before it twice.
    """
    from pyspark.sql import functions as F

    rows = events.groupBy("partition").agg(F.max("offset").alias("last")).collect()
    return {int(row["partition"]): int(row["last"]) + 1 for row in rows}


def maintain_after_generation(config: Config) -> None:
    """Compact and vacuum the tables (after the generation registered its model and data version)."""
    from headwater.table_maintenance import maintain_tables

    try:
        maintain_tables(config)
    except Exception:  # small files cost reads, not correctness: the next generation tries again
        log.exception("table maintenance failed")


def run_batch_forever(config: Config, stop: threading.Event | None = None,
                      generations: int | None = None) -> None:
    """Run generations until ``stop`` is set (or ``generations`` have run)."""
    stop = stop or threading.Event()
    interval = config.get("headwater.batch.generation-interval-sec")
    drifted = threading.Event()
    tail = watch_drift_alarms(config, drifted) if config.get("headwater.batch.trigger-on-drift") else None
    try:
        _generations(config, stop, drifted, interval, generations)
    finally:
        if tail is not None:
            tail.stop()


def watch_drift_alarms(config: Config, drifted: threading.Event):
    """Tail ``<id>.update`` from its end; a BATCH record carrying a drift alarm sets ``drifted``."""
    from headwater.kafka_admin import ensure_topics

    ensure_topics(config.kafka, {config.update_topic: config.get("headwater.kafka.update-partitions")})
    from headwater.messages import MessageType, decode_update
    from headwater.topic_tail import TopicTail

    def on_records(records) -> None:
        for record in records:
            message = decode_update(record.value)
            if message is not None and message.type is MessageType.BATCH and (message.payload.drift or {}).get("alarm"):
                log.info("drift alarm on version %s (window %s): the next generation starts now",
                         message.payload.base_version, message.payload.drift.get("window"))
                drifted.set()

    return TopicTail(config.kafka, config.update_topic, on_records,
                     start="latest", poll_timeout_ms=500,
                     name="batch-drift-watch").start()


def _generations(config: Config, stop: threading.Event, drifted: threading.Event, interval: float,
                 generations: int | None) -> None:
    done = 0
    while not stop.is_set() and (generations is None or done < generations):
        started = time.monotonic()
        drifted.clear()
        try:
            run_batch_once(config)
        except Exception:  # the next generation may well succeed; the champion keeps serving
            log.exception("batch generation failed")
        if config.get("headwater.maintenance.after-generation"):
            maintain_after_generation(config)
        done += 1
        deadline = started + interval
        while (generations is None or done < generations) and not stop.is_set() and not drifted.is_set() \
                and time.monotonic() < deadline:
            stop.wait(min(1.0, max(0.0, deadline - time.monotonic())))
