"""kafka_admin against the real embedded broker: topics and true end offsets."""
from __future__ import annotations

import time
import uuid

from kafka import TopicPartition

from headwater.kafka_admin import beginning_offsets, ensure_topics, new_consumer, true_end_offsets
from headwater.kafka_producer import LineProducer


def unique_topic(prefix: str = "kio") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_for(condition, timeout: float = 15.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def test_ensure_topics_creates_only_missing_topics(broker):
    a, b = unique_topic(), unique_topic()
    assert ensure_topics(broker, {a: 3}) == [a]
    assert ensure_topics(broker, {a: 3, b: 1}) == [b]
    assert ensure_topics(broker, {a: 3, b: 1}) == []
    assert sorted(true_end_offsets(broker, a)) == [0, 1, 2]
    assert true_end_offsets(broker, b) == {0: 0}


def test_true_end_offsets_counts_records_beyond_the_reported_end(broker):
    topic = unique_topic()
    ensure_topics(broker, {topic: 4})
    with LineProducer(broker) as producer:
        assert producer.send_lines(topic, (f"u{i},i{i % 7},1.0" for i in range(20_000))) == 20_000

    consumer = new_consumer(broker)
    try:
        tps = [TopicPartition(topic, p) for p in range(4)]
        reported = {tp.partition: end for tp, end in consumer.end_offsets(tps).items()}
        true_ends = true_end_offsets(consumer, topic)
        counted = count_records(consumer, topic, true_ends)
    finally:
        consumer.close()
    # the broker's quirk this function exists for: batched produces are under-reported
    assert any(reported[p] < true_ends[p] for p in reported), (reported, true_ends)
    assert sum(true_ends.values()) == 20_000
    assert true_ends == counted
    assert beginning_offsets(broker, topic) == {0: 0, 1: 0, 2: 0, 3: 0}


def count_records(consumer, topic: str, until: dict[int, int]) -> dict[int, int]:
    """Records per partition read from offset 0 until nothing more arrives."""
    tps = [TopicPartition(topic, p) for p in until]
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, 0)
    counts = dict.fromkeys(until, 0)
    while polled := consumer.poll(timeout_ms=500, max_records=50_000):
        for tp, records in polled.items():
            counts[tp.partition] += len(records)
    return counts
