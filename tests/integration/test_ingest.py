"""Ingestion from the real broker into Delta with the shared Spark session: parsing, rejects, replays."""
from __future__ import annotations

import pyarrow as pa
import pytest

from batch_layer.ingest import CheckpointMissingError, IngestBatchWriter, parse_record_batch, run_ingest
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
    import shutil

    config = broker_config()
    produce(config, VALID)
    run_ingest(config, once=True)
    shutil.rmtree(config.checkpoint_uri("ingest"))
    with pytest.raises(CheckpointMissingError, match="checkpoint"):
        run_ingest(config, once=True)
