"""Exactly-once ingestion: Kafka ``<id>.input`` -> Delta ``events`` (parsed) and ``rejected`` (with reason).

A Structured Streaming query reads the input topic with headwater's Kafka data source, parses each
Arrow batch with the app's input format in the executors (``mapInArrow``; no line can make parsing
raise, see :func:`headwater.input_format.safe_parse`), and in ``foreachBatch`` the executors write
the valid rows as Parquet files of ``events`` and the bad ones as files of ``rejected``, straight
to the tables' storage (:func:`write_batch_files`); the driver receives only the files' metadata (a
few hundred bytes per file, however many rows) and commits each table's files in one Delta
transaction carrying the ``txn`` (``<id>-ingest``, batch id), ``rejected`` first. Spark replays the
last micro-batch after a crash with the same offsets, and a batch already committed is skipped
table by table (its files are not even written again), so a crash between the two commits is
repaired on replay and no Kafka offset lands twice. Every batch commits to ``events``, even with no
valid row, with its batch id and end offsets in the commit's metadata, so that start-up can check
that the checkpoint and the tables agree (:mod:`batch_layer.ingest_checkpoint`). Files written by
a batch that never committed belong to no table version; ``headwater maintain`` vacuums them.

The files are written with pyarrow through delta-rs's object-store layer, also when delta-spark is
on the classpath: one write path keeps one tested idempotence mechanism. (delta-spark's
``txnAppId`` / ``txnVersion`` write options record the same Delta ``txn`` action.)

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
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batch_layer.ingest_checkpoint import (
    check_agreement,
    commit_metadata,
    planned_offsets,
    read_checkpoint_log,
    table_ingest_point,
)
from headwater import delta_tables
from headwater.config import Config
from headwater.input_format import safe_parse

log = logging.getLogger("headwater.ingest")

REASON = "reject_reason"
# A parsed column of this name that the line left empty takes the record's Kafka timestamp, as
# Oryx uses the arrival time for ALS events that carry no timestamp.
EVENT_TIME = "event_time_ms"
NO_VALUE = "the Kafka record has no value"


def parsed_record_schema(parsed: pa.Schema) -> pa.Schema:
    """What the parsing step emits: the events columns before ingest time, plus ``reject_reason``."""
    ingest = {f.name for f in delta_tables.INGEST_FIELDS}
    fields = [f for f in delta_tables.events_schema(parsed) if f.name not in ingest]
    return pa.schema([*fields, pa.field(REASON, pa.string())])


def parse_record_batch(records: pa.RecordBatch, input_format) -> pa.RecordBatch:
    """Parse one batch of Kafka records; rows that fail keep their line and get a reason."""
    values = records.column("value")
    lines = values.fill_null("").to_pylist()
    parsed = safe_parse(input_format, lines)
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


# What a task sends the driver per file it wrote: metadata only, never rows.
FILE_METADATA = pa.schema([("table", pa.string()), ("path", pa.string()), ("size", pa.int64()),
                           ("partition_values", pa.string()), ("modification_time", pa.int64()),
                           ("num_records", pa.int64()), ("stats", pa.string())])


def split_parsed(rows: pa.Table, now: dt.datetime, events_schema: pa.Schema) -> dict[str, pa.Table]:
    """Parsed rows -> the ``events`` rows and the ``rejected`` rows, with the batch's ingest time."""
    rows = delta_tables.with_ingest_time(rows, now)
    bad = pc.is_valid(rows.column(REASON))
    events = rows.filter(pc.invert(bad)).select(events_schema.names).cast(events_schema)
    rejected = (rows.filter(bad).rename_columns({REASON: "reason"})
                .select(delta_tables.REJECTED_SCHEMA.names).cast(delta_tables.REJECTED_SCHEMA))
    return {delta_tables.EVENTS: events, delta_tables.REJECTED: rejected}


def write_batch_files(batches: Iterator[pa.RecordBatch], tables: dict[str, str], events_schema: pa.Schema,
                      now: dt.datetime, prefix: str, storage_options: dict[str, str]) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function run by each task: write its rows to the ``tables`` (name -> uri) still
    missing the batch, and yield one metadata row per file written."""
    parsed = list(batches)
    if not parsed or not sum(b.num_rows for b in parsed):
        return
    split = split_parsed(pa.Table.from_batches(parsed), now, events_schema)
    for name, uri in tables.items():
        files = delta_tables.write_data_files(uri, split[name], delta_tables.PARTITION_BY, prefix, storage_options)
        if files:
            yield pa.RecordBatch.from_pylist(
                [{**f, "table": name, "partition_values": json.dumps(f["partition_values"])} for f in files],
                schema=FILE_METADATA)


class IngestBatchWriter:
    """The ``foreachBatch`` sink: executors write a micro-batch's events and rejected files, the driver commits."""

    def __init__(self, config: Config, parsed: pa.Schema):
        self.app_id = f"{config.app_id}-ingest"
        self.checkpoint = config.checkpoint_uri("ingest")
        self.events_uri = config.table_uri(delta_tables.EVENTS)
        self.rejected_uri = config.table_uri(delta_tables.REJECTED)
        self.storage_options = delta_tables.storage_options(config)
        self.events_schema = delta_tables.events_schema(parsed)
        self.totals = IngestTotals()

    @property
    def tables(self) -> dict[str, tuple[str, pa.Schema]]:
        return {delta_tables.EVENTS: (self.events_uri, self.events_schema),
                delta_tables.REJECTED: (self.rejected_uri, delta_tables.REJECTED_SCHEMA)}

    def ensure_tables(self) -> None:
        for uri, schema in self.tables.values():
            delta_tables.ensure_table(uri, schema, delta_tables.PARTITION_BY, self.storage_options)

    def pending_tables(self, batch_id: int) -> dict[str, str]:
        """name -> uri of the tables that do not hold ``batch_id`` yet."""
        pending = {}
        for name, (uri, _) in self.tables.items():
            done = delta_tables.committed_batch(uri, self.app_id, self.storage_options)
            if done is None or done < batch_id:
                pending[name] = uri
        return pending

    def file_writer(self, batch_id: int, pending: dict[str, str]):
        """The per-task function writing this batch's files (pickled to the executors)."""
        return functools.partial(write_batch_files, tables=pending, events_schema=self.events_schema,
                                 now=dt.datetime.now(dt.UTC), prefix=f"part-{batch_id:010d}",
                                 storage_options=self.storage_options)

    def __call__(self, batch_df, batch_id: int) -> None:
        from pyspark.sql.pandas.types import from_arrow_schema

        started = time.monotonic()
        pending = self.pending_tables(batch_id)
        if not pending:
            log.info("ingest batch %d: a replay, already committed", batch_id)
            return
        files = batch_df.mapInArrow(self.file_writer(batch_id, pending), from_arrow_schema(FILE_METADATA)).toArrow()
        end_offsets = planned_offsets(batch_df.sparkSession, self.checkpoint, batch_id)
        events, rejected = self.commit(files, batch_id, end_offsets)
        log.info("ingest batch %d: %d events, %d rejected in %.2f s (%d files; the driver received %d bytes of "
                 "file metadata)", batch_id, events, rejected, time.monotonic() - started, files.num_rows,
                 files.nbytes)

    def write(self, rows: pa.Table, batch_id: int, end_offsets: dict[int, int] | None = None) -> tuple[int, int]:
        """Write and commit one parsed micro-batch held here (tests, tools); returns (events, rejected) written now."""
        pending = self.pending_tables(batch_id)
        files = pa.Table.from_batches(list(self.file_writer(batch_id, pending)(rows.to_batches())),
                                      schema=FILE_METADATA)
        return self.commit(files, batch_id, end_offsets)

    def commit(self, files: pa.Table, batch_id: int, end_offsets: dict[int, int] | None = None) -> tuple[int, int]:
        """Commit each table's files of ``batch_id`` in one transaction; returns the (events, rejected) committed.

        ``rejected`` first: the ``events`` commit, made for every batch, marks the batch as written.
        """
        metadata = commit_metadata(batch_id, end_offsets)
        every_file = files.to_pylist()
        for f in every_file:
            f["partition_values"] = json.loads(f["partition_values"])
        written = {}
        for name in (delta_tables.REJECTED, delta_tables.EVENTS):
            uri, schema = self.tables[name]
            mine = [f for f in every_file if f["table"] == name]
            done = delta_tables.commit_files(uri, schema, mine, self.app_id, batch_id, delta_tables.PARTITION_BY,
                                             self.storage_options, metadata, commit_empty=name == delta_tables.EVENTS)
            written[name] = sum(f["num_records"] for f in mine) if done else 0
        self.totals.batches += 1
        self.totals.events += written[delta_tables.EVENTS]
        self.totals.rejected += written[delta_tables.REJECTED]
        return written[delta_tables.EVENTS], written[delta_tables.REJECTED]


def _start(config: Config, once: bool):
    """Start the ingest query; ``once`` drains what the topic holds now (``availableNow``) and stops."""
    from pyspark.sql.pandas.types import from_arrow_schema

    from headwater.kafka_admin import ensure_topics
    from headwater.spark import get_spark

    spark = get_spark(config)
    input_format = config.app.make_input_format(config)
    writer = IngestBatchWriter(config, input_format.schema)
    checkpoint = writer.checkpoint
    _check_checkpoint(spark, writer)
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
               .option("failOnDataLoss", str(kafka["fail-on-data-loss"]).lower())
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


def _check_checkpoint(spark, writer: IngestBatchWriter) -> None:
    """Stop before starting when the checkpoint and the tables disagree (see :mod:`batch_layer.ingest_checkpoint`)."""
    table = table_ingest_point(delta_tables.open_table(writer.events_uri, storage_options=writer.storage_options),
                               writer.app_id)
    wanted = () if table.batch is None else (table.batch,)
    check_agreement(read_checkpoint_log(spark, writer.checkpoint, wanted), table, writer.checkpoint, writer.events_uri)


def run_ingest(config: Config, once: bool = False) -> IngestTotals:
    """Run the ingest query until interrupted, or with ``once`` until the topic is drained."""
    from headwater.spark import stop_between_batches, stop_on_signals, wait_while_running

    query, writer = _start(config, once)
    with stop_on_signals() as stop:
        if not wait_while_running(query.awaitTermination, stop):
            log.info("ingest interrupted; stopping after the current batch")
            stop_between_batches(query)
    totals = writer.totals
    log.info("ingest stopped: %d batches, %d events, %d rejected", totals.batches, totals.events,
             totals.rejected)
    return totals
