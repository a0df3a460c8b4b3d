"""Delta tables: creation with the ingest schemas, idempotent appends, version reads with Spark."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from headwater import delta_tables
from headwater.apps.als.events import ALSFormat

EVENTS_SCHEMA = delta_tables.events_schema(ALSFormat.schema)


def events_batch(lines: list[str], first_offset: int, day: dt.date) -> pa.Table:
    n = len(lines)
    table = pa.table({
        "line": lines, "user": [line.split(",")[0] for line in lines], "item": ["i1"] * n,
        "strength": pa.array([1.0] * n), "event_time_ms": pa.array(range(n), pa.int64()),
        "topic": ["t.input"] * n, "partition": pa.array([0] * n, pa.int32()),
        "offset": pa.array(range(first_offset, first_offset + n), pa.int64()),
        "kafka_timestamp_ms": pa.array([0] * n, pa.int64()),
    })
    moment = dt.datetime.combine(day, dt.time(12), dt.UTC)
    return delta_tables.with_ingest_time(table, moment).cast(EVENTS_SCHEMA)


def test_ensure_table_creates_an_empty_table_with_the_schema(tmp_path):
    uri = str(tmp_path / "events")
    delta_tables.ensure_table(uri, EVENTS_SCHEMA, delta_tables.PARTITION_BY)
    delta_tables.ensure_table(uri, EVENTS_SCHEMA, delta_tables.PARTITION_BY)  # second call: no-op
    table = delta_tables.read_table_arrow(uri)
    assert table.num_rows == 0
    assert table.schema.names == EVENTS_SCHEMA.names
    assert delta_tables.table_version(uri) == 0


def test_files_written_elsewhere_commit_once_with_their_txn_stats_and_commit_metadata(tmp_path):
    uri = str(tmp_path / "events")
    days = [dt.date(2024, 5, 1), dt.date(2024, 5, 2)]
    rows = pa.concat_tables([events_batch(["u1,i1", "u2,i1"], 0, days[0]), events_batch(["u3,i1"], 2, days[1])])
    files = delta_tables.write_data_files(uri, rows, delta_tables.PARTITION_BY, prefix="part-7")
    assert sorted(f["partition_values"]["ingest_date"] for f in files) == ["2024-05-01", "2024-05-02"]
    assert delta_tables.open_table(uri) is None  # written, not committed: no table version has them
    metadata = {"headwater.end_offsets": {"0": 3}}
    assert delta_tables.commit_files(uri, EVENTS_SCHEMA, files, "q", 7, delta_tables.PARTITION_BY,
                                     custom_metadata=metadata)
    assert not delta_tables.commit_files(uri, EVENTS_SCHEMA, files, "q", 7, delta_tables.PARTITION_BY)  # a replay
    table = delta_tables.open_table(uri)
    assert table.transaction_version("q") == 7
    assert table.history(1)[0]["headwater.end_offsets"] == {"0": 3}
    read = delta_tables.read_table_arrow(uri).sort_by("offset")
    assert read["line"].to_pylist() == ["u1,i1", "u2,i1", "u3,i1"]
    assert read["ingest_date"].to_pylist() == [days[0], days[0], days[1]]
    adds = pa.table(table.get_add_actions(flatten=True))
    assert sorted(adds["num_records"].to_pylist()) == [1, 2]
    assert sorted(adds["max.offset"].to_pylist()) == [1, 2]


def test_append_idempotent_writes_each_batch_id_once(tmp_path):
    uri = str(tmp_path / "events")
    day = dt.date(2024, 5, 1)
    first = events_batch(["u1,i1", "u2,i1"], 0, day)
    second = events_batch(["u3,i1"], 2, day)
    assert delta_tables.append_idempotent(uri, first, "app-ingest", 0, delta_tables.PARTITION_BY)
    assert not delta_tables.append_idempotent(uri, first, "app-ingest", 0, delta_tables.PARTITION_BY)
    assert delta_tables.append_idempotent(uri, second, "app-ingest", 1, delta_tables.PARTITION_BY)
    # an older batch id is also a replay
    assert not delta_tables.append_idempotent(uri, first, "app-ingest", 0, delta_tables.PARTITION_BY)
    # another writer (app id) has its own sequence
    assert delta_tables.append_idempotent(uri, first, "other-ingest", 0, delta_tables.PARTITION_BY)
    offsets = sorted(delta_tables.read_table_arrow(uri).column("offset").to_pylist())
    assert offsets == [0, 0, 1, 1, 2]
    assert delta_tables.open_table(uri).transaction_version("app-ingest") == 1


def test_empty_append_creates_the_table_but_commits_nothing(tmp_path):
    uri = str(tmp_path / "events")
    empty = events_batch([], 0, dt.date(2024, 5, 1))
    assert not delta_tables.append_idempotent(uri, empty, "app-ingest", 0, delta_tables.PARTITION_BY)
    assert delta_tables.read_table_arrow(uri).schema.names == EVENTS_SCHEMA.names
    assert delta_tables.open_table(uri).transaction_version("app-ingest") is None


def test_append_with_the_wrong_schema_fails(tmp_path):
    uri = str(tmp_path / "events")
    delta_tables.ensure_table(uri, EVENTS_SCHEMA, delta_tables.PARTITION_BY)
    from deltalake.exceptions import SchemaMismatchError

    with pytest.raises(SchemaMismatchError):
        delta_tables.append_idempotent(uri, pa.table({"line": ["x"], "extra": [1]}), "a", 0,
                                       delta_tables.PARTITION_BY)


@pytest.mark.integration
def test_read_table_version_restores_partitions_and_time_travels(tmp_path, spark):
    uri = str(tmp_path / "events")
    delta_tables.ensure_table(uri, EVENTS_SCHEMA, delta_tables.PARTITION_BY)
    frame, version = delta_tables.read_table_version(spark, uri)
    assert version == 0 and frame.count() == 0
    assert frame.columns == EVENTS_SCHEMA.names

    delta_tables.append_idempotent(uri, events_batch(["u1,i1", "u2,i1"], 0, dt.date(2024, 5, 1)),
                                   "a", 0, delta_tables.PARTITION_BY)
    delta_tables.append_idempotent(uri, events_batch(["u3,i1"], 2, dt.date(2024, 5, 2)),
                                   "a", 1, delta_tables.PARTITION_BY)

    latest, version = delta_tables.read_table_version(spark, uri)
    assert version == 2
    assert latest.columns == EVENTS_SCHEMA.names
    rows = {r["offset"]: r for r in latest.collect()}
    assert sorted(rows) == [0, 1, 2]
    assert rows[0]["ingest_date"] == dt.date(2024, 5, 1)
    assert rows[2]["ingest_date"] == dt.date(2024, 5, 2)
    assert rows[2]["user"] == "u3" and rows[2]["partition"] == 0
    assert rows[2]["ingest_time"] is not None

    older, version = delta_tables.read_table_version(spark, uri, version=1)
    assert version == 1
    assert sorted(r["offset"] for r in older.collect()) == [0, 1]
    assert delta_tables.read_table_arrow(uri, version=1).num_rows == 2
