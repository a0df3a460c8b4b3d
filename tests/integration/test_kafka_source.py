"""The headwater-kafka streaming source against the real broker and local Spark."""
from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from kafka import TopicPartition
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadMaxRows

from headwater.embedded import free_port, start_broker
from headwater.kafka_admin import ensure_topics, new_consumer, true_end_offsets
from headwater.kafka_offsets import OffsetRange
from headwater.kafka_producer import LineProducer
from headwater.kafka_source import DataLossError, KafkaStreamReader
from headwater.kafka_source_options import KafkaSourceOptions


def unique_topic() -> str:
    return f"src-{uuid.uuid4().hex[:10]}"


def produce(broker: str, topic: str, lines, partitions: int | None = None) -> None:
    """Batched produces (the case the broker under-reports); round-robin over partitions if given."""
    with LineProducer(broker) as producer:
        for i, line in enumerate(lines):
            producer.send_bytes(topic, line.encode(), partition=None if partitions is None else i % partitions)


class Batches:
    """A foreachBatch sink keeping each micro-batch's rows (as dicts) in order."""

    def __init__(self):
        self.rows: list[list[dict]] = []
        self.lock = threading.Lock()

    def __call__(self, df, batch_id):
        rows = [row.asDict() for row in df.collect()]
        with self.lock:
            self.rows.append(rows)

    def all(self) -> list[dict]:
        with self.lock:
            return [row for batch in self.rows for row in batch]


def stream(spark, broker: str, topic: str, **options):
    reader = spark.readStream.format("headwater-kafka").option("bootstrap.servers", broker).option("topic", topic)
    for key, value in options.items():
        reader = reader.option(key, value)
    return reader.load()


def run_available_now(spark, broker, topic, checkpoint, **options) -> Batches:
    batches = Batches()
    query = (stream(spark, broker, topic, **options).writeStream.foreachBatch(batches)
             .option("checkpointLocation", str(checkpoint)).trigger(availableNow=True).start())
    assert query.awaitTermination(120), "availableNow query did not finish"
    assert query.exception() is None
    return batches


def test_reads_every_record_once_then_only_new_ones(spark, broker, tmp_path):
    topic = unique_topic()
    ensure_topics(broker, {topic: 4})
    produce(broker, topic, (f"u{i},i{i % 13},1.0" for i in range(3000)))
    with LineProducer(broker) as producer:
        producer.send_bytes(topic, b"caf\xc3\xa9 \xff", key="the-key")

    first = run_available_now(spark, broker, topic, tmp_path / "ck").all()
    assert len(first) == 3001
    assert len({(r["partition"], r["offset"]) for r in first}) == 3001
    assert {r["value"] for r in first} >= {f"u{i},i{i % 13},1.0" for i in range(3000)}
    odd = next(r for r in first if r["key"] is not None)
    assert (odd["key"], odd["value"], odd["topic"]) == ("the-key", "caf\u00e9 \ufffd", topic)
    assert odd["timestamp"] is not None and all(r["timestamp"] is not None for r in first)
    assert sorted({r["partition"] for r in first}) == [0, 1, 2, 3]

    produce(broker, topic, (f"new{i}" for i in range(500)))
    second = run_available_now(spark, broker, topic, tmp_path / "ck").all()
    assert sorted(r["value"] for r in second) == sorted(f"new{i}" for i in range(500))
    assert not {(r["partition"], r["offset"]) for r in second} & {(r["partition"], r["offset"]) for r in first}


def test_max_records_per_trigger_splits_the_backlog_into_batches(spark, broker, tmp_path):
    topic = unique_topic()
    ensure_topics(broker, {topic: 2})
    produce(broker, topic, (f"line{i}" for i in range(1000)), partitions=2)
    batches = run_available_now(spark, broker, topic, tmp_path / "ck",
                                maxRecordsPerTrigger=300, maxRecordsPerSplit=100)
    assert [len(b) for b in batches.rows] == [300, 300, 300, 100]
    # fair split: each batch takes the same number of records from both partitions
    assert all(sum(r["partition"] == 0 for r in b) == len(b) // 2 for b in batches.rows)
    assert sorted(r["value"] for r in batches.all()) == sorted(f"line{i}" for i in range(1000))


def test_starting_offsets_latest_and_json(spark, broker, tmp_path):
    topic = unique_topic()
    ensure_topics(broker, {topic: 2})
    produce(broker, topic, (f"old{i}" for i in range(100)), partitions=2)

    latest = run_available_now(spark, broker, topic, tmp_path / "latest", startingOffsets="latest")
    assert latest.all() == []
    produce(broker, topic, (f"new{i}" for i in range(10)), partitions=2)
    latest = run_available_now(spark, broker, topic, tmp_path / "latest", startingOffsets="latest")
    assert sorted(r["value"] for r in latest.all()) == sorted(f"new{i}" for i in range(10))

    # partition 0 from offset 40, partition 1 unlisted so from its beginning
    chosen = run_available_now(spark, broker, topic, tmp_path / "json",
                               startingOffsets=json.dumps({topic: {"0": 40}})).all()
    assert sorted((r["partition"], r["offset"]) for r in chosen) == (
        [(0, o) for o in range(40, 55)] + [(1, o) for o in range(55)])


def test_records_produced_before_a_trigger_arrive_without_more_traffic(spark, broker, tmp_path):
    topic = unique_topic()
    ensure_topics(broker, {topic: 2})
    batches = Batches()
    query = (stream(spark, broker, topic).writeStream.foreachBatch(batches)
             .option("checkpointLocation", str(tmp_path / "ck")).trigger(processingTime="500 milliseconds").start())
    try:
        deadline = time.monotonic() + 60
        while query.lastProgress is None and time.monotonic() < deadline:
            time.sleep(0.2)
        produce(broker, topic, (f"burst{i}" for i in range(2000)))
        assert_broker_under_reports(broker, topic)
        deadline = time.monotonic() + 20
        while len(batches.all()) < 2000 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(batches.all()) == 2000
    finally:
        query.stop()


def assert_broker_under_reports(broker: str, topic: str) -> None:
    """Proves the test exercises the quirk: the reported end is below the true end somewhere."""
    consumer = new_consumer(broker)
    try:
        reported = consumer.end_offsets([TopicPartition(topic, p) for p in (0, 1)])
        true_ends = true_end_offsets(broker, topic)
        assert any(reported[tp] < true_ends[tp.partition] for tp in reported), (reported, true_ends)
    finally:
        consumer.close()


def test_read_ends_a_range_whose_records_are_gone_instead_of_hanging(broker):
    topic = unique_topic()
    ensure_topics(broker, {topic: 1})
    produce(broker, topic, (f"r{i}" for i in range(10)))
    reader = KafkaStreamReader(KafkaSourceOptions(broker, topic, poll_timeout_ms=100, fail_on_data_loss=False))

    batches = list(reader.read(OffsetRange(topic, 0, 3, 8)))
    assert [v for b in batches for v in b.column("value").to_pylist()] == [f"r{i}" for i in range(3, 8)]
    # a range planned before the topic was recreated smaller: what exists is read, then it ends
    beyond = list(reader.read(OffsetRange(topic, 0, 5, 500)))
    assert [v for b in beyond for v in b.column("value").to_pylist()] == [f"r{i}" for i in range(5, 10)]
    # by default that is data loss, and the task fails (Spark retries it, then fails the query)
    strict = KafkaStreamReader(KafkaSourceOptions(broker, topic, poll_timeout_ms=100))
    with pytest.raises(DataLossError, match="offsets 5 to 499 are not available any more"):
        list(strict.read(OffsetRange(topic, 0, 5, 500)))


class RetentionReader(KafkaStreamReader):
    """Reports records below ``deleted_below`` as deleted: the embedded broker has neither retention nor
    DeleteRecords, so this is the one part that cannot run here for real."""

    deleted_below = 6

    def _first_offsets(self, consumer, partitions):
        return dict.fromkeys(partitions, self.deleted_below)


def test_records_deleted_before_they_were_read_fail_the_query_unless_told_otherwise(broker):
    topic = unique_topic()
    ensure_topics(broker, {topic: 1})
    produce(broker, topic, (f"r{i}" for i in range(10)))
    strict = RetentionReader(KafkaSourceOptions(broker, topic, poll_timeout_ms=100))
    with pytest.raises(DataLossError, match=r"offsets 2 to 5 were deleted \(retention\?\) before the query read"):
        strict.latestOffset({"0": 2}, ReadAllAvailable())
    with pytest.raises(DataLossError, match="fail-on-data-loss = false"):
        list(strict.read(OffsetRange(topic, 0, 2, 8)))
    lenient = RetentionReader(KafkaSourceOptions(broker, topic, poll_timeout_ms=100, fail_on_data_loss=False))
    assert lenient.latestOffset({"0": 2}, ReadMaxRows(3)) == {"0": 9}  # from offset 6 on
    lenient.stop()
    strict.stop()


def read_200_then_restart_broker(spark, tmp_path):
    """A query's checkpoint at 200 records of a 2-partition topic, then a fresh (empty) broker on the
    same port: (broker process, bootstrap, topic)."""
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    topic = unique_topic()
    broker = start_broker("127.0.0.1", port, tmp_path / "broker1.log")
    try:
        ensure_topics(bootstrap, {topic: 2})
        produce(bootstrap, topic, (f"before{i}" for i in range(200)), partitions=2)
        assert len(run_available_now(spark, bootstrap, topic, tmp_path / "ck").all()) == 200
    finally:
        broker.stop()
    return start_broker("127.0.0.1", port, tmp_path / "broker2.log"), bootstrap, topic


def test_broker_restart_then_topic_missing_then_empty(spark, tmp_path):
    # memory storage: the new broker on the same port knows no topic at all
    broker, bootstrap, topic = read_200_then_restart_broker(spark, tmp_path)
    lenient = {"failOnDataLoss": "false"}
    try:
        assert run_available_now(spark, bootstrap, topic, tmp_path / "ck", **lenient).all() == []
        # an empty recreated topic: one batch moves the offsets back to 0 and reads nothing
        ensure_topics(bootstrap, {topic: 2})
        assert run_available_now(spark, bootstrap, topic, tmp_path / "ck", **lenient).all() == []
        produce(bootstrap, topic, (f"after{i}" for i in range(6)), partitions=2)
        after = run_available_now(spark, bootstrap, topic, tmp_path / "ck", **lenient).all()
        assert sorted(r["value"] for r in after) == sorted(f"after{i}" for i in range(6))
    finally:
        broker.stop()


def test_a_recreated_topic_with_fewer_records_is_read_from_its_beginning(spark, tmp_path):
    broker, bootstrap, topic = read_200_then_restart_broker(spark, tmp_path)
    try:
        ensure_topics(bootstrap, {topic: 2})
        produce(bootstrap, topic, (f"after{i}" for i in range(6)), partitions=2)
        # by default the records lost with the old topic fail the query, naming the way on
        query = (stream(spark, bootstrap, topic).writeStream.foreachBatch(Batches())
                 .option("checkpointLocation", str(tmp_path / "ck")).trigger(availableNow=True).start())
        with pytest.raises(Exception, match="fail-on-data-loss = false"):
            query.awaitTermination(120)
        lenient = {"failOnDataLoss": "false"}
        after = run_available_now(spark, bootstrap, topic, tmp_path / "ck", **lenient).all()
        assert sorted(r["value"] for r in after) == sorted(f"after{i}" for i in range(6))
        # and the query goes on normally from the new ends
        produce(bootstrap, topic, ["later"], partitions=2)
        assert [r["value"] for r in run_available_now(spark, bootstrap, topic, tmp_path / "ck").all()] == ["later"]
    finally:
        broker.stop()
