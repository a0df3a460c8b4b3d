"""Compaction and vacuum of the ingest tables: fewer files, and every registered model's data version readable."""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pyarrow as pa
import pytest

from batch_layer.ingest import IngestBatchWriter, parsed_record_schema
from headwater import delta_tables, registry
from headwater.apps.als.events import ALSFormat
from headwater.table_maintenance import maintain_tables
from tests.test_registry import ReadsArtifact, artifacts

FORMAT = ALSFormat()


def parsed_rows(start: int, count: int, bad_every: int = 10) -> pa.Table:
    """Parsed micro-batch rows as the ingest parsing step emits them (every ``bad_every``-th one rejected)."""
    schema = parsed_record_schema(FORMAT.schema)
    rows = []
    for offset in range(start, start + count):
        bad = offset % bad_every == 0
        rows.append({"line": f"u{offset % 7},i{offset},1.0", "user": None if bad else f"u{offset % 7}",
                     "item": None if bad else f"i{offset}", "strength": None if bad else 1.0,
                     "event_time_ms": None if bad else offset, "topic": "t.input", "partition": 0,
                     "offset": offset, "kafka_timestamp_ms": offset, "reject_reason": "bad" if bad else None})
    return pa.Table.from_pylist(rows, schema=schema)


def ingest_batches(config, batches: int, rows: int = 50) -> IngestBatchWriter:
    writer = IngestBatchWriter(config, FORMAT.schema)
    writer.ensure_tables()
    for batch in range(batches):
        writer.write(parsed_rows(batch * rows, rows), batch)
    return writer


def data_files(uri: str) -> set[str]:
    return {str(p.relative_to(uri)) for p in Path(uri).rglob("*.parquet")}


def age_files(uri: str, hours: float) -> None:
    # vacuum judges files by their modification time: make them look old instead of waiting
    past = (dt.datetime.now() - dt.timedelta(hours=hours)).timestamp()
    for path in Path(uri).rglob("*.parquet"):
        os.utime(path, (past, past))


def test_file_count_after_compaction_does_not_grow_with_micro_batches(make_config):
    counts = {}
    for batches in (3, 12):
        config = make_config(**{"maintenance.retention-hours": 0})
        ingest_batches(config, batches)
        events = config.table_uri("events")
        assert len(delta_tables.open_table(events).file_uris()) == batches
        report = maintain_tables(config, keep_versions=[])
        counts[batches] = len(delta_tables.open_table(events).file_uris())
        assert report["events"]["files_after"] == counts[batches]
        assert len(data_files(events)) == counts[batches]  # the small files are vacuumed, too
        assert delta_tables.read_table_arrow(events).num_rows == batches * 45
        assert delta_tables.read_table_arrow(config.table_uri("rejected")).num_rows == batches * 5
    assert counts[3] == counts[12] == 1  # one partition (today), one file


def test_vacuum_keeps_every_registered_models_data_version(make_config, tmp_path):
    config = make_config(**{"maintenance.retention-hours": 0})
    events = config.table_uri("events")
    writer = ingest_batches(config, 4)
    registered = delta_tables.table_version(events)        # a model trained on the first 4 batches
    registry.log_and_register(config, artifacts(tmp_path, "m1"), ReadsArtifact(),
                              {"layer": "batch", "delta_version": registered}, aliases=["champion"])
    for batch in range(4, 8):
        writer.write(parsed_rows(batch * 50, 50), batch)
    unregistered = delta_tables.table_version(events)      # no model names this one
    report = maintain_tables(config)                       # compaction removes all 8 files from the table
    assert registry.registered_data_versions(config) == {registered}
    assert report["events"]["kept_versions"] == [registered] and report["events"]["vacuumed"] == 4
    for batch in range(8, 10):
        writer.write(parsed_rows(batch * 50, 50), batch)
    maintain_tables(config)                                # and once more, over the first compaction's file

    assert delta_tables.read_table_arrow(events, version=registered).num_rows == 4 * 45
    assert delta_tables.read_table_arrow(events).num_rows == 10 * 45
    with pytest.raises(Exception, match="(?i)not found|no such file|does not exist"):
        delta_tables.read_table_arrow(events, version=unregistered)


def test_vacuum_removes_files_of_batches_that_never_committed(make_config):
    config = make_config(**{"maintenance.retention-hours": 1})
    writer = ingest_batches(config, 2)
    events = config.table_uri("events")
    # a crashed micro-batch: its task wrote files, the driver never committed them
    orphans = delta_tables.write_data_files(events, parsed_rows(0, 5, bad_every=100).drop_columns(["reject_reason"])
                                            .append_column("ingest_time", pa.repeat(pa.scalar(
                                                dt.datetime.now(dt.UTC), pa.timestamp("us", tz="UTC")), 5))
                                            .append_column("ingest_date", pa.repeat(pa.scalar(
                                                dt.date.today(), pa.date32()), 5))
                                            .cast(writer.events_schema), delta_tables.PARTITION_BY)
    assert {f["path"] for f in orphans} <= data_files(events)
    maintain_tables(config, keep_versions=[])
    assert {f["path"] for f in orphans} <= data_files(events)  # young: could be a batch in flight
    age_files(events, hours=2)
    maintain_tables(config, keep_versions=[])
    assert not {f["path"] for f in orphans} & data_files(events)
    assert delta_tables.read_table_arrow(events).num_rows == 2 * 45


def test_without_the_registry_nothing_is_vacuumed(make_config):
    config = make_config(**{"maintenance.retention-hours": 0, "mlflow.tracking-uri": "sqlite:////proc/no-such-dir/mlflow.db"})
    ingest_batches(config, 3)
    events = config.table_uri("events")
    before = data_files(events)
    report = maintain_tables(config)
    assert report["events"]["vacuumed"] is None
    assert before <= data_files(events)  # compacted, but every old file is still there
    assert delta_tables.read_table_arrow(events, version=1).num_rows == 45


def test_headwater_maintain_command_compacts_and_reports(make_config, mlflow_uri, capsys):
    import json

    from headwater.cli import main

    config = make_config()
    ingest_batches(config, 5)
    overrides = [f"headwater.id={config.app_id}", "headwater.app=als", f"headwater.storage.root={config.storage_root}",
                 f"headwater.mlflow.tracking-uri={mlflow_uri}", "headwater.maintenance.retention-hours=0"]
    assert main(["maintain", *[arg for o in overrides for arg in ("-D", o)]]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["events"]["files_before"] == 5 and report["events"]["files_after"] == 1
    assert report["events"]["vacuumed"] == 5  # no registered model names any version of this table
    assert delta_tables.read_table_arrow(config.table_uri("events")).num_rows == 5 * 45
