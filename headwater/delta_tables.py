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

Micro-batches written by Spark executors take two steps: each task writes its rows as Parquet
files straight into the table's storage (:func:`write_data_files`, returning only the files'
metadata), and the driver commits every task's files in one transaction carrying the same
``txn`` action (:func:`commit_files`); files of a task that failed or of a batch that never
committed are in no table version, and vacuum removes them.

>>> files = write_data_files(uri, batch.append_column("day", pa.array(["2026-12-01"])), ["day"], "b1")
>>> [(f["partition_values"], f["num_records"]) for f in files]
[({'day': '2026-12-01'}, 1)]
"""
from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from functools import reduce

import pyarrow as pa
import pyarrow.compute as pc

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

    # the whole log stays: time travel to a registered model's data version needs its log entries
    DeltaTable.create(uri, schema, mode="ignore", partition_by=list(partition_by) or None,
                      storage_options=_options(storage_options),
                      configuration={"delta.enableExpiredLogCleanup": "false"})


def open_table(uri: str, version: int | None = None, storage_options: Mapping[str, str] | None = None):
    """The ``DeltaTable`` at ``uri`` (a version of it), or None when no table exists there yet."""
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(uri, storage_options=_options(storage_options)):
        return None
    return DeltaTable(uri, version=version, storage_options=_options(storage_options))


def committed_batch(uri: str, app_id: str, storage_options: Mapping[str, str] | None = None) -> int | None:
    """The last batch id ``app_id`` committed to the table at ``uri`` (None: none, or no table)."""
    existing = open_table(uri, storage_options=storage_options)
    return existing.transaction_version(app_id) if existing is not None else None


def append_idempotent(uri: str, table: pa.Table, app_id: str, batch_id: int,
                      partition_by: Sequence[str] = (),
                      storage_options: Mapping[str, str] | None = None,
                      custom_metadata: Mapping[str, object] | None = None, commit_empty: bool = False) -> bool:
    """Append ``table`` in one commit tagged (app_id, batch_id) unless that batch is already in.

    Returns True when it wrote. ``custom_metadata`` goes into the commit's ``commitInfo``. The check and
    the commit are not one atomic step, which is safe because one streaming query (one app id) is the
    only writer of its batches. An empty table creates the table but commits nothing (there is nothing
    to duplicate on replay), unless ``commit_empty``: then the commit records that the batch was done.
    """
    from deltalake import write_deltalake

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
                    commit_properties=_commit_properties(app_id, batch_id, custom_metadata))
    return True


def _commit_properties(app_id: str, batch_id: int, custom_metadata: Mapping[str, object] | None):
    from deltalake import CommitProperties, Transaction

    return CommitProperties(app_transactions=[Transaction(app_id, batch_id)],
                            custom_metadata=dict(custom_metadata) if custom_metadata else None)


def write_data_files(uri: str, table: pa.Table, partition_by: Sequence[str] = (), prefix: str = "part",
                     storage_options: Mapping[str, str] | None = None) -> list[dict]:
    """Write ``table`` as new Parquet files of the Delta table at ``uri`` (one per partition value), uncommitted.

    Runs where the rows are (a Spark task): the files go straight to the table's storage through
    delta-rs's own object-store layer, and only their metadata comes back, the ``add`` actions
    :func:`commit_files` commits. Partition columns live in the log, not in the files.
    """
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq
    from deltalake.fs import DeltaStorageHandler

    if table.num_rows == 0:
        return []
    if "://" not in uri:  # delta-rs opens a local root only if it exists; object stores have no directories
        os.makedirs(uri, exist_ok=True)
    storage = pafs.PyFileSystem(DeltaStorageHandler(uri, _options(storage_options)))
    keys = table.select(list(partition_by)).group_by(list(partition_by)).aggregate([]) if partition_by else None
    files = []
    for values in keys.to_pylist() if keys is not None else [{}]:
        part = table
        for name, value in values.items():
            part = part.filter(pc.is_null(part[name]) if value is None else pc.equal(part[name], value))
        part = part.drop_columns(list(partition_by))
        strings = {k: None if v is None else str(v) for k, v in values.items()}
        directory = "/".join(f"{k}={v if v is not None else '__HIVE_DEFAULT_PARTITION__'}" for k, v in strings.items())
        path = f"{directory}/" if directory else ""
        path += f"{prefix}-{uuid.uuid4().hex}.parquet"
        if directory:
            storage.create_dir(directory)
        pq.write_table(part, path, filesystem=storage, compression="snappy")
        files.append({"path": path, "size": storage.get_file_info(path).size, "partition_values": strings,
                      "modification_time": int(time.time() * 1000), "num_records": part.num_rows,
                      "stats": json.dumps(_file_stats(part))})
    return files


def _file_stats(part: pa.Table) -> dict:
    """Delta file statistics: row and null counts, and min/max of the integer columns (e.g. Kafka offsets)."""
    stats: dict = {"numRecords": part.num_rows, "minValues": {}, "maxValues": {},
                   "nullCount": {f.name: part[f.name].null_count for f in part.schema}}
    for field in part.schema:
        if pa.types.is_integer(field.type) and part[field.name].null_count < part.num_rows:
            bounds = pc.min_max(part[field.name])
            stats["minValues"][field.name] = bounds["min"].as_py()
            stats["maxValues"][field.name] = bounds["max"].as_py()
    return stats


def commit_files(uri: str, schema: pa.Schema, files: Sequence[Mapping], app_id: str, batch_id: int,
                 partition_by: Sequence[str] = (), storage_options: Mapping[str, str] | None = None,
                 custom_metadata: Mapping[str, object] | None = None, commit_empty: bool = False) -> bool:
    """Commit files from :func:`write_data_files` as one append tagged (app_id, batch_id), unless already in.

    The same idempotence as :func:`append_idempotent` (and the same ``custom_metadata`` and
    ``commit_empty``), for data the driver never held. Returns True when it committed.
    """
    from deltalake.transaction import AddAction

    if not files:
        return append_idempotent(uri, schema.empty_table(), app_id, batch_id, partition_by, storage_options,
                                 custom_metadata, commit_empty)
    ensure_table(uri, schema, partition_by, storage_options)
    table = open_table(uri, storage_options=storage_options)
    done = table.transaction_version(app_id)
    if done is not None and done >= batch_id:
        return False
    actions = [AddAction(f["path"], f["size"], f["partition_values"], f["modification_time"], True, f["stats"])
               for f in files]
    table.create_write_transaction(actions, mode="append", schema=schema, partition_by=list(partition_by) or None,
                                   commit_properties=_commit_properties(app_id, batch_id, custom_metadata))
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
