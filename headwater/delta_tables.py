"""The Delta tables of the master dataset (``events``, ``rejected``): schemas, idempotent appends, reads.

Tables are written with delta-rs (``deltalake``): Spark's Delta jars come from Maven, which a
plain ``pip install`` does not reach. An append carries a Delta ``txn`` action (app id, version)
in the same commit as its data, so a streaming micro-batch that is replayed after a crash is
recognised by its (query, batch id) and adds nothing twice. Spark reads a table version as the
Parquet files of that version, or through ``delta-spark`` when its jars are on the classpath
(``--packages io.delta:delta-spark_2.13:4.0.0`` on a cluster; not testable here without Maven).

>>> import tempfile, pyarrow as pa
>>> uri = tempfile.mkdtemp() + "/events"
>>> batch = pa.table({"line": ["u1,i1"], "offset": pa.array([7], pa.int64())})
>>> append_idempotent(uri, batch, app_id="demo-ingest", batch_id=0)
True
>>> append_idempotent(uri, batch, app_id="demo-ingest", batch_id=0)  # a replayed batch
False
>>> read_table_arrow(uri).num_rows
1
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from functools import reduce

import pyarrow as pa

EVENTS = "events"
REJECTED = "rejected"
# Ingestion partitions both tables by the UTC date the batch was written (not the event time,
# which producers may set freely): a day's files are then never rewritten once the day is over.
PARTITION_BY = ["ingest_date"]

KAFKA_FIELDS = [
    pa.field("topic", pa.string()), pa.field("partition", pa.int32()),
    pa.field("offset", pa.int64()), pa.field("kafka_timestamp_ms", pa.int64()),
]
INGEST_FIELDS = [pa.field("ingest_time", pa.timestamp("us", tz="UTC")), pa.field("ingest_date", pa.date32())]
LINE_FIELD = pa.field("line", pa.string())

REJECTED_SCHEMA = pa.schema([LINE_FIELD, pa.field("reason", pa.string()), *KAFKA_FIELDS, *INGEST_FIELDS])


def events_schema(parsed: pa.Schema) -> pa.Schema:
    """``line``, the input format's parsed columns, Kafka coordinates and ingest time.

    >>> events_schema(pa.schema([("user", pa.string())])).names
    ['line', 'user', 'topic', 'partition', 'offset', 'kafka_timestamp_ms', 'ingest_time', 'ingest_date']
    """
    return pa.schema([LINE_FIELD, *parsed, *KAFKA_FIELDS, *INGEST_FIELDS])


def with_ingest_time(table: pa.Table, now: dt.datetime) -> pa.Table:
    """Append the ``ingest_time`` / ``ingest_date`` columns, one value for the whole batch."""
    now = now.astimezone(dt.UTC)
    for field, value in zip(INGEST_FIELDS, (now, now.date())):
        table = table.append_column(field, pa.repeat(pa.scalar(value, field.type), table.num_rows))
    return table


def ensure_table(uri: str, schema: pa.Schema, partition_by: Sequence[str] = (),
                 storage_options: Mapping[str, str] | None = None) -> None:
    """Create an empty table with ``schema`` unless one exists, so readers find it before any data."""
    from deltalake import DeltaTable

    DeltaTable.create(uri, schema, mode="ignore", partition_by=list(partition_by) or None,
                      storage_options=_options(storage_options))


def open_table(uri: str, version: int | None = None, storage_options: Mapping[str, str] | None = None):
    """The ``DeltaTable`` at ``uri`` (a version of it), or None when no table exists there yet."""
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(uri, storage_options=_options(storage_options)):
        return None
    return DeltaTable(uri, version=version, storage_options=_options(storage_options))


def append_idempotent(uri: str, table: pa.Table, app_id: str, batch_id: int,
                      partition_by: Sequence[str] = (),
                      storage_options: Mapping[str, str] | None = None,
                      metadata: Mapping[str, str] | None = None, commit_empty: bool = False) -> bool:
    """Append ``table`` in one commit tagged (app_id, batch_id) unless that batch is already in.

    Returns True when it wrote. ``metadata`` goes into the commit's info. The check and the commit are
    not one atomic step, which is safe because one streaming query (one app id) is the only writer of
    its batches. An empty table creates the table but commits nothing (there is nothing to duplicate on
    replay), unless ``commit_empty``: then the commit records that the batch was done.
    """
    from deltalake import CommitProperties, Transaction, write_deltalake

    existing = open_table(uri, storage_options=storage_options)
    done = existing.transaction_version(app_id) if existing is not None else None
    if done is not None and done >= batch_id:
        return False
    if table.num_rows == 0:
        ensure_table(uri, table.schema, partition_by, storage_options)
        if not commit_empty:
            return False
        existing = open_table(uri, storage_options=storage_options)
    write_deltalake(existing if existing is not None else uri, table, mode="append",
                    partition_by=list(partition_by) or None, storage_options=_options(storage_options),
                    commit_properties=CommitProperties(custom_metadata=dict(metadata or {}) or None,
                                                       app_transactions=[Transaction(app_id, batch_id)]))
    return True


def table_version(uri: str, storage_options: Mapping[str, str] | None = None) -> int:
    from deltalake import DeltaTable

    return DeltaTable(uri, storage_options=_options(storage_options)).version()


def read_table_arrow(uri: str, version: int | None = None,
                     storage_options: Mapping[str, str] | None = None) -> pa.Table:
    """A whole table version in memory, for small reads in tests and tools."""
    from deltalake import DeltaTable

    return DeltaTable(uri, version=version, storage_options=_options(storage_options)).to_pyarrow_table()


def read_table_version(spark, table_uri: str, version: int | None = None,
                       storage_options: Mapping[str, str] | None = None):
    """``(DataFrame, version)`` of one table version (the latest when ``version`` is None).

    Without delta-spark, the version's Parquet files are read per partition with the partition
    values added back as literal columns (Delta keeps them in the log, not in the files).
    """
    from deltalake import DeltaTable

    from headwater.spark import delta_spark_available

    table = DeltaTable(table_uri, version=version, storage_options=_options(storage_options))
    version = table.version()
    if delta_spark_available(spark):
        return spark.read.format("delta").option("versionAsOf", version).load(table_uri), version
    return _read_parquet_files(spark, table), version


def _read_parquet_files(spark, table):
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    schema = pa.schema(table.schema().to_arrow())
    spark_schema = from_arrow_schema(_plain_strings(schema))
    partition_columns = list(table.metadata().partition_columns)
    file_schema = from_arrow_schema(_plain_strings(pa.schema(
        [f for f in schema if f.name not in partition_columns])))
    parts = []
    for values in table.partitions() if partition_columns else [{}]:
        # '' selects a null partition value in delta-rs's filters
        selection = [(k, "=", v or "") for k, v in values.items()]
        files = table.file_uris(file_pruning_predicate=selection or None)
        if not files:
            continue
        frame = spark.read.schema(file_schema).parquet(*files)
        for name in partition_columns:
            frame = frame.withColumn(name, F.lit(values[name]).cast(spark_schema[name].dataType))
        parts.append(frame.select(*spark_schema.names))
    if not parts:
        return spark.createDataFrame([], spark_schema)
    return reduce(lambda a, b: a.unionByName(b), parts)


def _plain_strings(schema: pa.Schema) -> pa.Schema:
    # delta-rs may report string_view / large types, which PySpark's converter does not accept.
    plain = {pa.string_view(): pa.string(), pa.large_string(): pa.string(), pa.binary_view(): pa.binary(),
             pa.large_binary(): pa.binary()}
    return pa.schema([f.with_type(plain.get(f.type, f.type)) for f in schema])


def _options(storage_options: Mapping[str, str] | None) -> dict[str, str] | None:
    return {k: str(v) for k, v in storage_options.items()} if storage_options else None


def storage_options(config) -> dict[str, str]:
    """``headwater.storage.options``: credentials and endpoints for an object-store root."""
    return {k: str(v) for k, v in config.section("headwater.storage.options").items()}
