"""Ingestion from the real broker into Delta with the shared Spark session: parsing, rejects, replays."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from batch_layer.ingest import IngestBatchWriter, parse_record_batch, run_ingest
from batch_layer.ingest_checkpoint import CheckpointMismatchError, CheckpointMissingError
from headwater import delta_tables
from headwater.apps.als.events import ALSFormat
from headwater.kafka_admin import ensure_topics
from headwater.kafka_producer import LineProducer

VALID = ["u1,i1,2.5,1700000000000", "u2,i1", "u3,i2,", "u1,i3,1.0", '["u4","i4",3]']
MALFORMED = ["just-one-field", "u1,i1,lots", "u1,,1.0", "a,b,1,2,3", "u5,i5,1.0,yesterday"]


def produce(config, lines, partitions=2):
    ensure_topics(config.get("headwater.kafka.bootstrap-servers"), {config.input_topic: partitions})
    with LineProducer(config.get("headwater.kafka.bootstrap-servers")) as producer:
        producer.send_lines(config.input_topic, lines)


def test_ingest_once_writes_valid_lines_to_events_and_bad_ones_to_rejected(broker_config, spark):
    config = broker_config(**{"kafka.input-partitions": 2})
    produce(config, VALID + MALFORMED)

    totals = run_ingest(config, once=True)

    assert (totals.events, totals.rejected) == (len(VALID), len(MALFORMED))
    events = delta_tables.read_table_arrow(config.table_uri("events")).to_pylist()
    assert sorted(e["line"] for e in events) == sorted(VALID)
    assert {(e["topic"], e["partition"]) for e in events} <= {(config.input_topic, 0), (config.input_topic, 1)}
    assert len({(e["partition"], e["offset"]) for e in events}) == len(VALID)
    by_line = {e["line"]: e for e in events}
    assert by_line["u1,i1,2.5,1700000000000"]["event_time_ms"] == 1700000000000
    assert by_line["u1,i1,2.5,1700000000000"]["strength"] == 2.5
    assert by_line["u3,i2,"]["strength"] is None  # a delete
    # no timestamp in the line: the record's Kafka timestamp stands in, as Oryx uses the arrival time
    assert by_line["u2,i1"]["event_time_ms"] == by_line["u2,i1"]["kafka_timestamp_ms"] > 0
    assert by_line['["u4","i4",3]']["user"] == "u4"
    assert all(e["ingest_date"] == e["ingest_time"].date() for e in events)

    rejected = delta_tables.read_table_arrow(config.table_uri("rejected")).to_pylist()
    assert sorted(r["line"] for r in rejected) == sorted(MALFORMED)
    assert all(r["reason"] and r["topic"] == config.input_topic for r in rejected)
    reasons = {r["line"]: r["reason"] for r in rejected}
    assert "strength is not a number" in reasons["u1,i1,lots"]

    # a second run continues from the checkpoint: only the new lines arrive
    produce(config, ["u9,i9,1.0"])
    assert run_ingest(config, once=True).events == 1
    assert delta_tables.read_table_arrow(config.table_uri("events")).num_rows == len(VALID) + 1

    # Spark reads the table version the batch layer would train on
    frame, version = delta_tables.read_table_version(spark, config.table_uri("events"))
    assert frame.count() == len(VALID) + 1 and version >= 2


def test_empty_topic_still_creates_both_tables(broker_config, spark):
    config = broker_config()
    assert run_ingest(config, once=True).events == 0
    assert delta_tables.read_table_arrow(config.table_uri("events")).num_rows == 0
    assert "reason" in delta_tables.read_table_arrow(config.table_uri("rejected")).schema.names


def test_a_crash_between_the_two_appends_is_repaired_on_replay(broker_config):
    config = broker_config()
    fmt = ALSFormat()
    n = 4
    records = pa.record_batch({
        "key": pa.array([None] * n, pa.string()), "value": ["u1,i1", "bad", "u2,i2,3", None],
        "topic": [config.input_topic] * n, "partition": pa.array([0] * n, pa.int32()),
        "offset": pa.array(range(n), pa.int64()),
        "timestamp": pa.array([1_000_000] * n, pa.timestamp("us", tz="UTC"))})
    rows = pa.Table.from_batches([parse_record_batch(records, fmt)])
    writer = IngestBatchWriter(config, fmt.schema)
    writer.ensure_tables()
    # the crash: batch 0 reached events but not rejected
    events_only = rows.filter(pa.compute.is_null(rows.column("reject_reason")))
    writer.write(events_only, batch_id=0)

    assert writer.write(rows, batch_id=0) == (0, 2)  # the replay adds only what was missing
    assert writer.write(rows, batch_id=0) == (0, 0)
    rejected = delta_tables.read_table_arrow(config.table_uri("rejected")).to_pylist()
    assert sorted(r["offset"] for r in rejected) == [1, 3]
    assert {r["offset"]: r["reason"] for r in rejected}[3] == "the Kafka record has no value"
    assert delta_tables.read_table_arrow(config.table_uri("events")).num_rows == 2


def test_refuses_to_restart_without_the_checkpoint_of_ingested_tables(broker_config, spark):
    config = broker_config()
    produce(config, VALID)
    run_ingest(config, once=True)
    shutil.rmtree(config.checkpoint_uri("ingest"))
    with pytest.raises(CheckpointMissingError, match="checkpoint"):
        run_ingest(config, once=True)


POISON = ["[" * 3000, "[" * 3000 + ",i1", "u1,i1,1,99999999999999999999", "u1,i1,1e300", "u" * 5000 + ",i1",
          '["\\ud800", "i1"]', "u1,i1,1e999", "u1,i1,1,1e400", "x" * 70_000]


def test_poison_lines_land_in_rejected_with_reasons_and_the_query_goes_on(broker_config):
    config = broker_config(**{"kafka.input-partitions": 1})
    produce(config, ["u1,i1,1.0", *POISON, "u2,i2,2.0"], partitions=1)
    totals = run_ingest(config, once=True)
    assert (totals.events, totals.rejected) == (2, len(POISON))
    rejected = {r["line"]: r["reason"] for r in delta_tables.read_table_arrow(config.table_uri("rejected")).to_pylist()}
    assert set(rejected) == set(POISON)
    assert rejected["[" * 3000] == "nested too deeply to parse"
    assert rejected["u1,i1,1,99999999999999999999"].startswith("timestamp must be in [0, 4102444800000] ms")
    assert rejected["u1,i1,1e300"].startswith("strength must be within")
    assert rejected["x" * 70_000].startswith("the line has 70000 bytes")


def ingest_points(config) -> list[tuple[int, dict]]:
    """(batch id, end offsets) of every ingest commit of the events table, oldest first."""
    from batch_layer.ingest_checkpoint import BATCH_KEY, OFFSETS_KEY

    history = delta_tables.open_table(config.table_uri("events")).history()
    return [(int(c[BATCH_KEY]), json.loads(c[OFFSETS_KEY])) for c in reversed(history) if BATCH_KEY in c]


def test_every_batch_commits_its_end_offsets_and_a_restored_copy_is_refused(broker_config, tmp_path):
    config = broker_config(**{"kafka.input-partitions": 1, "kafka.max-records-per-trigger": 3})
    root = Path(config.table_uri("events")).parent
    produce(config, [f"u{i},i{i}" for i in range(5)] + ["bad"], partitions=1)
    run_ingest(config, once=True)
    assert ingest_points(config) == [(0, {"0": 3}), (1, {"0": 6})]  # the second batch: 2 events, 1 rejected
    shutil.copytree(root, tmp_path / "backup")  # tables and checkpoint after batch 1

    produce(config, ["bad1", "bad2", "bad3", "u9,i9"], partitions=1)
    run_ingest(config, once=True)
    assert ingest_points(config)[2:] == [(2, {"0": 9}), (3, {"0": 10})]  # batch 2 had no valid line: committed
    assert delta_tables.read_table_arrow(config.table_uri("events")).num_rows == 6

    # an older checkpoint with the newer tables: batches 2 and 3 would be planned anew and skipped
    checkpoint = Path(config.checkpoint_uri("ingest"))
    newer_checkpoint = tmp_path / "newer-checkpoint"
    shutil.move(checkpoint, newer_checkpoint)
    shutil.copytree(tmp_path / "backup" / "_checkpoints" / "ingest", checkpoint)
    with pytest.raises(CheckpointMismatchError, match="the checkpoint is older than the table"):
        run_ingest(config, once=True)

    # older tables with the newer checkpoint: batches 2 and 3 would be missing for good
    shutil.rmtree(checkpoint)
    shutil.move(newer_checkpoint, checkpoint)
    for name in ("events", "rejected"):
        shutil.rmtree(root / name)
        shutil.copytree(tmp_path / "backup" / name, root / name)
    with pytest.raises(CheckpointMismatchError, match="the table is older than the checkpoint") as refused:
        run_ingest(config, once=True)
    assert f"{checkpoint}/offsets/{{2..3}}" in str(refused.value)
    # the fix the message names: roll the checkpoint back, and the batches are read again, once
    for batch in (2, 3):
        for log in ("offsets", "commits"):
            (checkpoint / log / str(batch)).unlink()
            (checkpoint / log / f".{batch}.crc").unlink(missing_ok=True)
    run_ingest(config, once=True)
    assert delta_tables.read_table_arrow(config.table_uri("events")).num_rows == 6
    assert delta_tables.read_table_arrow(config.table_uri("rejected")).num_rows == 4
