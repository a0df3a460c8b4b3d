"""TopicTail against the real embedded broker: offsets, positions, a failing callback, a broker restart."""
from __future__ import annotations

import threading
import time

from headwater.kafka_admin import ensure_topics
from headwater.kafka_producer import LineProducer
from headwater.topic_tail import TopicTail
from tests.integration.test_kafka_admin import unique_topic, wait_for


class Collector:
    """A tail callback that keeps what it got and fails on chosen calls."""

    def __init__(self, fail_on_calls=()):
        self.records, self.calls, self.fail_on_calls = [], 0, set(fail_on_calls)
        self.lock = threading.Lock()

    def __call__(self, records):
        with self.lock:
            self.calls += 1
            if self.calls in self.fail_on_calls:
                raise RuntimeError("callback failure the tail must survive")
            self.records.extend(records)

    def offsets(self) -> set[tuple[int, int]]:
        with self.lock:
            return {(r.partition, r.offset) for r in self.records}


def test_topic_tail_delivers_from_given_offsets_and_tracks_positions(broker):
    topic = unique_topic()
    ensure_topics(broker, {topic: 2})
    with LineProducer(broker) as producer:
        for i in range(100):
            producer.send_bytes(topic, f"line {i}".encode(), partition=i % 2)
    collector = Collector()
    tail = TopicTail(broker, topic, collector, start={0: 10}, poll_timeout_ms=100).start()
    try:
        expected = {(0, o) for o in range(10, 50)} | {(1, o) for o in range(50)}
        assert wait_for(lambda: collector.offsets() == expected), sorted(expected - collector.offsets())[:5]
        assert wait_for(lambda: tail.positions == {0: 50, 1: 50})
        assert tail.caught_up()
        with LineProducer(broker) as producer:
            producer.send_line(topic, "one more", key="k")
        assert wait_for(lambda: sum(tail.positions.values()) == 101)
        assert len(collector.records) == 91
        assert collector.records[-1].value == b"one more" and collector.records[-1].key == b"k"
    finally:
        tail.stop()


def test_topic_tail_from_latest_survives_a_failing_callback(broker):
    topic = unique_topic()
    ensure_topics(broker, {topic: 1})
    with LineProducer(broker) as producer:
        producer.send_lines(topic, [f"old {i}" for i in range(30)])
    collector = Collector(fail_on_calls={1})
    tail = TopicTail(broker, topic, collector, start="latest", poll_timeout_ms=100).start()
    try:
        assert wait_for(tail.caught_up)
        assert tail.positions == {0: 30}
        with LineProducer(broker) as producer:
            producer.send_line(topic, "dropped by the failing callback")
        assert wait_for(lambda: tail.positions == {0: 31})
        with LineProducer(broker) as producer:
            producer.send_lines(topic, ["kept 1", "kept 2"])
        assert wait_for(lambda: tail.positions == {0: 33})
        assert [r.value for r in collector.records] == [b"kept 1", b"kept 2"]
        assert tail._thread.is_alive()
    finally:
        tail.stop()
    assert not tail._thread.is_alive()


def test_topic_tail_rides_out_a_broker_restart(tmp_path):
    from headwater.embedded import free_port, start_broker

    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    topic = unique_topic()
    broker = start_broker("127.0.0.1", port, tmp_path / "broker1.log")
    collector = Collector()
    tail = TopicTail(bootstrap, topic, collector, start="earliest", poll_timeout_ms=100)
    try:
        ensure_topics(bootstrap, {topic: 1})
        with LineProducer(bootstrap) as producer:
            producer.send_lines(topic, [f"before {i}" for i in range(10)])
        tail.start()
        assert wait_for(lambda: tail.positions == {0: 10})
        broker.stop()
        time.sleep(1)
        # memory storage: the topic comes back empty, so the tail must restart it from offset 0
        broker = start_broker("127.0.0.1", port, tmp_path / "broker2.log")
        ensure_topics(bootstrap, {topic: 1})
        with LineProducer(bootstrap) as producer:
            producer.send_lines(topic, ["after 0", "after 1", "after 2"])
        assert wait_for(lambda: [r.value for r in collector.records[10:]] == [b"after 0", b"after 1", b"after 2"],
                        timeout=30), [r.value for r in collector.records[10:]]
        assert tail.positions == {0: 3}
        assert tail._thread.is_alive()
    finally:
        tail.stop()
        broker.stop()
