"""The two ways the speed layer reads ``<id>.input``: the Structured Streaming query, and a range read directly.

The query delivers the live micro-batches (a PySpark Python data source, ``format("headwater-kafka")``).
The direct reads serve the folds that do not come through it: the re-fold of batches published before a
restart, a rebase on a new champion (the events after its data cut-off), and a version brought up to
where the champion stands before it learns beside it. Both deliver a range as the Kafka source does:
partition by partition, in offset order.
"""
from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator

from headwater.config import Config

log = logging.getLogger(__name__)


def start_input_query(config: Config, starting: dict[int, int], on_batch: Callable):
    """The micro-batch query on the input topic from ``starting`` (``{partition: offset}``); ``on_batch(df, id)``
    gets columns ``value, partition, offset``."""
    from headwater.spark import get_spark

    spark = get_spark(config)
    kafka = config.section("headwater.kafka")
    offsets = json.dumps({config.input_topic: {str(p): o for p, o in starting.items()}})
    stream = (spark.readStream.format("headwater-kafka")
              .options(**config.kafka.as_options())
              .option("topic", config.input_topic)
              .option("startingOffsets", offsets)
              .option("maxRecordsPerTrigger", kafka["max-records-per-trigger"])
              .option("maxRecordsPerSplit", kafka["max-records-per-split"])
              .option("pollTimeoutMs", kafka["poll-timeout-ms"])
              .load())
    interval = config.get("headwater.speed.trigger-interval-sec")
    # The layer's position lives in its snapshots and BATCH records, not in a checkpoint: each start
    # begins where those say, with a checkpoint of its own.
    checkpoint = f"{config.checkpoint_uri('speed')}/{uuid.uuid4().hex}"
    query = (stream.select("value", "partition", "offset").writeStream
             .queryName(f"{config.app_id}-speed-{uuid.uuid4().hex[:6]}")
             .option("checkpointLocation", checkpoint)
             .trigger(processingTime=f"{interval} seconds")
             .foreachBatch(on_batch)
             .start())
    log.info("speed layer: query on %s started at %s (trigger %s s)", config.input_topic, starting, interval)
    return query


def input_lines(config: Config, starts: dict[int, int], ends: dict[int, int]) -> list[str | None]:
    """The input lines between two positions, in one read (None for a record without a value)."""
    from headwater.kafka_admin import read_range

    records = read_range(config.kafka, config.input_topic, dict(starts), ends)
    return [None if r.value is None else r.value.decode("utf-8", "replace") for r in records]


def input_pieces(config: Config, starts: dict[int, int],
                 ends: dict[int, int]) -> Iterator[tuple[list[str | None], dict[int, int]]]:
    """The input lines between two positions, partition by partition in pieces of at most
    ``headwater.kafka.max-records-per-trigger``, each with the position after it."""
    piece = config.get("headwater.kafka.max-records-per-trigger")
    for partition, end in sorted(ends.items()):
        begin = starts.get(partition, 0)
        while begin < end:
            stop = min(begin + piece, end)
            yield input_lines(config, {partition: begin}, {partition: stop}), {partition: stop}
            begin = stop


__all__ = ["input_lines", "input_pieces", "start_input_query"]
