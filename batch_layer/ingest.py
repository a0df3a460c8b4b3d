"""Exactly-once ingestion: Kafka ``<id>.input`` -> Delta ``events`` (parsed) and ``rejected`` (with reason).

A Structured Streaming query reads the input topic with headwater's Kafka data source, parses each
Arrow batch with the app's input format in the executors (``mapInArrow``), and in ``foreachBatch``
appends the valid rows to ``events`` and the bad ones to ``rejected``. Both appends carry the
Delta ``txn`` (``<id>-ingest``, batch id): Spark replays the last micro-batch after a crash with the
same offsets, and a batch already committed is skipped table by table, so a crash between the two
writes is repaired on replay and no Kafka offset lands twice.

The appends go through delta-rs on the driver even when delta-spark is on the classpath: a
micro-batch is bounded by ``headwater.kafka.max-records-per-trigger``, so collecting it is cheap,
and one write path keeps one tested idempotence mechanism. (delta-spark's ``txnAppId`` /
``txnVersion`` write options record the same Delta ``txn`` action, so the two are interchangeable
if executor-side writes are ever needed; that path cannot be tested here without Maven.)

>>> from headwater.apps.als.events import ALSFormat
>>> records = pa.record_batch({
...     "key": pa.array([None, None], pa.string()), "value": ["u1,i1,2.0", "oops"],
...     "topic": ["demo.input"] * 2, "partition": pa.array([0, 0], pa.int32()),
...     "offset": pa.array([0, 1], pa.int64()),
...     "timestamp": pa.array([1_000_000, 2_000_000], pa.timestamp("us", tz="UTC"))})
>>> parsed = parse_record_batch(records, ALSFormat())
>>> parsed.column("event_time_ms").to_pylist(), parsed.column("reject_reason").to_pylist()[0]
([1000, None], None)
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from headwater import delta_tables
from headwater.config import Config

log = logging.getLogger("headwater.ingest")

REASON = "reject_reason"
# A parsed column of this name that the line left empty takes the record's Kafka timestamp, as
# Oryx uses the arrival time for ALS events that carry no timestamp.
EVENT_TIME = "event_time_ms"
NO_VALUE = "the Kafka record has no value"


class CheckpointMissingError(RuntimeError):
    """The tables hold ingested batches but the query's checkpoint is gone: restarting would skip data."""


def parsed_record_schema(parsed: pa.Schema) -> pa.Schema:
    """What the parsing step emits: the events columns before ingest time, plus ``reject_reason``."""
    ingest = {f.name for f in delta_tables.INGEST_FIELDS}
    fields = [f for f in delta_tables.events_schema(parsed) if f.name not in ingest]
    return pa.schema([*fields, pa.field(REASON, pa.string())])


def parse_record_batch(records: pa.RecordBatch, input_format) -> pa.RecordBatch:
    """Parse one batch of Kafka records; rows that fail keep their line and get a reason."""
    values = records.column("value")
    lines = values.fill_null("").to_pylist()
    parsed = input_format.parse(lines)
    # Spread the parsed rows back over all records: a null take index gives a null row.
    positions = np.full(len(lines), -1, np.int64)
    positions[parsed.table.column("line_index").to_numpy()] = np.arange(parsed.table.num_rows)
    spread = pa.array(positions, mask=positions < 0)
    reasons = [None] * len(lines)
    for index, reason in parsed.rejected:
        reasons[index] = reason
    reasons = pc.if_else(values.is_null(), NO_VALUE, pa.array(reasons, pa.string()))
    kafka_ms = pc.divide(records.column("timestamp").cast(pa.int64()), 1000)
    schema = parsed_record_schema(input_format.schema)
    columns = {"line": values, "topic": records.column("topic"), "partition": records.column("partition"),
               "offset": records.column("offset"), "kafka_timestamp_ms": kafka_ms, REASON: reasons}
    for name in input_format.schema.names:
        columns[name] = parsed.table.column(name).combine_chunks().take(spread)
    if EVENT_TIME in columns:
        columns[EVENT_TIME] = pc.if_else(pc.is_null(reasons), pc.coalesce(columns[EVENT_TIME], kafka_ms),
                                         columns[EVENT_TIME])
    return pa.record_batch([pc.cast(columns[f.name], f.type) for f in schema], schema=schema)


def parse_records(batches: Iterator[pa.RecordBatch], input_format) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function: one parsed batch per Arrow batch of records."""
    for records in batches:
        yield parse_record_batch(records, input_format)


@dataclass
class IngestTotals:
    """What a run of the query wrote (batches replayed after a crash count what they wrote now)."""

    batches: int = 0
    events: int = 0
    rejected: int = 0


class IngestBatchWriter:
    """The ``foreachBatch`` sink: split a parsed micro-batch into events and rejected, append both once."""

    def __init__(self, config: Config, parsed: pa.Schema):
        self.app_id = f"{config.app_id}-ingest"
        self.events_uri = config.table_uri(delta_tables.EVENTS)
        self.rejected_uri = config.table_uri(delta_tables.REJECTED)
        self.storage_options = delta_tables.storage_options(config)
        self.events_schema = delta_tables.events_schema(parsed)
        self.totals = IngestTotals()

    def ensure_tables(self) -> None:
        for uri, schema in ((self.events_uri, self.events_schema),
                            (self.rejected_uri, delta_tables.REJECTED_SCHEMA)):
            delta_tables.ensure_table(uri, schema, delta_tables.PARTITION_BY, self.storage_options)

    def __call__(self, batch_df, batch_id: int) -> None:
        started = time.monotonic()
        rows = batch_df.toArrow()
        events, rejected = self.write(rows, batch_id)
        replayed = " (a replay: already committed)" if rows.num_rows and not events + rejected else ""
        log.info("ingest batch %d: %d events, %d rejected in %.2f s%s", batch_id, events, rejected,
                 time.monotonic() - started, replayed)

    def write(self, rows: pa.Table, batch_id: int) -> tuple[int, int]:
        """Append one parsed micro-batch; returns the (events, rejected) rows written now."""
        rows = delta_tables.with_ingest_time(rows, dt.datetime.now(dt.UTC))
        bad = pc.is_valid(rows.column(REASON))
        events = rows.filter(pc.invert(bad)).select(self.events_schema.names).cast(self.events_schema)
        rejected = (rows.filter(bad).rename_columns({REASON: "reason"})
                    .select(delta_tables.REJECTED_SCHEMA.names).cast(delta_tables.REJECTED_SCHEMA))
        written = []
        for uri, table in ((self.events_uri, events), (self.rejected_uri, rejected)):
            done = delta_tables.append_idempotent(uri, table, self.app_id, batch_id,
                                                  delta_tables.PARTITION_BY, self.storage_options)
            written.append(table.num_rows if done else 0)
        self.totals.batches += 1
        self.totals.events += written[0]
        self.totals.rejected += written[1]
        return written[0], written[1]


def _start(config: Config, once: bool):
    """Start the ingest query; ``once`` drains what the topic holds now (``availableNow``) and stops."""
    from pyspark.sql.pandas.types import from_arrow_schema

    from headwater.kafka_admin import ensure_topics
    from headwater.spark import get_spark

    spark = get_spark(config)
    input_format = config.app.make_input_format(config)
    writer = IngestBatchWriter(config, input_format.schema)
    checkpoint = config.checkpoint_uri("ingest")
    _check_checkpoint(spark, checkpoint, writer)
    writer.ensure_tables()
    kafka = config.section("headwater.kafka")
    ensure_topics(config.kafka, {config.input_topic: kafka["input-partitions"]})
    records = (spark.readStream.format("headwater-kafka")
               .options(**config.kafka.as_options())
               .option("topic", config.input_topic)
               .option("startingOffsets", kafka["starting-offsets"])
               .option("maxRecordsPerTrigger", kafka["max-records-per-trigger"])
               .option("maxRecordsPerSplit", kafka["max-records-per-split"])
               .option("pollTimeoutMs", kafka["poll-timeout-ms"])
               .load())
    parsed = records.mapInArrow(functools.partial(parse_records, input_format=input_format),
                                from_arrow_schema(parsed_record_schema(input_format.schema)))
    stream = (parsed.writeStream.queryName(writer.app_id).foreachBatch(writer)
              .option("checkpointLocation", checkpoint))
    if once:
        stream = stream.trigger(availableNow=True)
    else:
        stream = stream.trigger(processingTime=f"{config.get('headwater.ingest.trigger-interval-sec')} seconds")
    query = stream.start()
    log.info("ingest %s -> %s started (checkpoint %s%s)", config.input_topic, writer.events_uri,
             checkpoint, ", until caught up" if once else "")
    return query, writer


def _check_checkpoint(spark, checkpoint: str, writer: IngestBatchWriter) -> None:
    # A new checkpoint restarts batch ids at 0, which the tables' txn versions would treat as
    # already written: every event up to the old batch id would be silently skipped.
    table = delta_tables.open_table(writer.events_uri, storage_options=writer.storage_options)
    done = table.transaction_version(writer.app_id) if table is not None else None
    if done is None:
        return
    jvm = spark._jvm
    offsets = jvm.org.apache.hadoop.fs.Path(f"{checkpoint.rstrip('/')}/offsets")
    if not offsets.getFileSystem(spark._jsc.hadoopConfiguration()).exists(offsets):
        raise CheckpointMissingError(
            f"{writer.events_uri} holds ingest batches up to {done} but the checkpoint {checkpoint} is "
            f"missing; restore it, or ingest under a new headwater.id")


def run_ingest(config: Config, once: bool = False) -> IngestTotals:
    """Run the ingest query until interrupted, or with ``once`` until the topic is drained."""
    from headwater.spark import stop_between_batches, stop_on_signals, wait_while_running

    query, writer = _start(config, once)
    if not wait_while_running(query.awaitTermination, stop_on_signals()):
        log.info("ingest interrupted; stopping after the current batch")
        stop_between_batches(query)
    totals = writer.totals
    log.info("ingest stopped: %d batches, %d events, %d rejected", totals.batches, totals.events,
             totals.rejected)
    return totals
