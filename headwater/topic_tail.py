"""Following one topic from given offsets in a daemon thread (the serving and speed layers' view of ``<id>.update``)."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from headwater.kafka_admin import (
    RESET_PROBE_TIMEOUT_MS,
    new_consumer,
    new_probe_consumer,
    topic_partitions,
    true_end_offsets,
)
from headwater.kafka_settings import KafkaSettings

log = logging.getLogger(__name__)


class TopicTail:
    """Follows one topic from given offsets in a daemon thread and hands each polled batch to a callback.

    ``start`` is ``"earliest"``, ``"latest"`` or ``{partition: offset}`` (unlisted partitions, and
    partitions created later, start at offset 0). An exception in ``on_records`` is logged
    and the tail moves on; a broker that is briefly away is retried with back-off.

    >>> tail = TopicTail("127.0.0.1:9092", "demo.update", print, start={0: 42})
    >>> tail.positions
    {}
    >>> tail.start(); tail.caught_up(); tail.stop()  # doctest: +SKIP
    """

    # how often the tail re-reads metadata to pick up new partitions or a recreated topic
    CHECK_EVERY_SEC = 5.0
    MAX_BACKOFF_SEC = 5.0

    def __init__(self, kafka: KafkaSettings | str, topic: str,
                 on_records: Callable[[list[ConsumerRecord]], None],
                 start: dict[int, int] | str = "latest", poll_timeout_ms: int = 200,
                 name: str | None = None) -> None:
        if isinstance(start, str) and start not in ("earliest", "latest"):
            raise ValueError(f"The 'start' parameter of TopicTail must be 'earliest', 'latest' or a "
                             f"dict of partition offsets. Got {start!r} instead.")
        self.kafka = kafka
        self.topic = topic
        self.on_records = on_records
        self.start_offsets = start
        self.poll_timeout_ms = poll_timeout_ms
        self.name = name or f"tail-{topic}"
        self._positions: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._probe: KafkaConsumer | None = None
        self._probe_lock = threading.Lock()  # caught_up() may be called from any thread
        self._seen_topic_missing = False

    @property
    def positions(self) -> dict[int, int]:
        """Next offset per partition after the last delivered batch."""
        with self._lock:
            return dict(self._positions)

    def start(self) -> TopicTail:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._probe_lock:
            if self._probe is not None:
                self._probe.close()
                self._probe = None

    def caught_up(self) -> bool:
        """True when every partition's position has reached the topic's true end (False while the topic is missing)."""
        with self._probe_lock:
            if self._probe is None:
                self._probe = new_probe_consumer(self.kafka)
            try:
                ends = true_end_offsets(self._probe, self.topic, probe_timeout_ms=50)
            except KafkaError as e:
                log.warning("%s: cannot read end offsets of %s: %s", self.name, self.topic, e)
                return False
        positions = self.positions
        return bool(ends) and all(positions.get(p, -1) >= end for p, end in ends.items())

    def _run(self) -> None:
        backoff = 0.1
        consumer, checked = None, 0.0
        while not self._stopping.is_set():
            try:
                if consumer is None:
                    consumer, checked = new_consumer(self.kafka), 0.0
                if time.monotonic() - checked > self.CHECK_EVERY_SEC:
                    self._assign(consumer)
                    checked = time.monotonic()
                if not consumer.assignment():
                    self._stopping.wait(self.poll_timeout_ms / 1000)
                    continue
                polled = consumer.poll(timeout_ms=self.poll_timeout_ms)
                if polled:
                    self._deliver(polled)
                backoff = 0.1
            except Exception as e:
                # a broker that is away shows as KafkaError; anything else is a bug worth a traceback
                log.log(logging.WARNING if isinstance(e, KafkaError) else logging.ERROR,
                        "%s: failed on %s (%s: %s); reconnecting in %.1f s", self.name, self.topic,
                        type(e).__name__, e, backoff, exc_info=not isinstance(e, KafkaError))
                if consumer is not None:
                    consumer.close()
                    consumer = None
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self.MAX_BACKOFF_SEC)
        if consumer is not None:
            consumer.close()

    def _assign(self, consumer: KafkaConsumer) -> None:
        """(Re)assign every partition of the topic at the tail's positions.

        New partitions start at their beginning. A position beyond the partition's true end means
        the topic was recreated (the embedded broker keeps topics in memory, so a restart empties
        them); the broker then answers fetches with nothing rather than an out-of-range error, so
        the tail restarts the partition from offset 0 itself.
        """
        partitions = topic_partitions(consumer, self.topic)
        if not partitions:
            self._seen_topic_missing = True
            consumer.assign([])
            return
        positions = self.positions
        if not positions:
            positions = self._initial_positions(consumer, partitions)
        tps = [TopicPartition(self.topic, p) for p in partitions]
        reported = consumer.end_offsets(tps)
        # a position past the reported end is normal (see true_end_offsets); only those need the probe
        beyond = [tp.partition for tp in tps if positions.get(tp.partition, 0) > reported[tp]]
        ends = true_end_offsets(consumer, self.topic, beyond, RESET_PROBE_TIMEOUT_MS) if beyond else {}
        for p, end in ends.items():
            if positions[p] > end:
                log.warning("%s: %s partition %d ends at %d, before the tail's position %d (topic recreated); "
                            "restarting it from offset 0", self.name, self.topic, p, end, positions[p])
                positions[p] = 0
        positions = {p: positions.get(p, 0) for p in partitions}
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, positions[tp.partition])
        with self._lock:
            self._positions.update(positions)

    def _initial_positions(self, consumer: KafkaConsumer, partitions: list[int]) -> dict[int, int]:
        # "latest" of a topic created after the tail started is its beginning: it is all new
        if self.start_offsets == "latest" and not self._seen_topic_missing:
            return true_end_offsets(consumer, self.topic, partitions)
        if isinstance(self.start_offsets, str):
            return dict.fromkeys(partitions, 0)
        return {p: self.start_offsets.get(p, 0) for p in partitions}

    def _deliver(self, polled: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        records = []
        advanced = {}
        for tp, batch in sorted(polled.items()):
            records.extend(batch)
            advanced[tp.partition] = batch[-1].offset + 1
        try:
            self.on_records(records)
        except Exception:
            log.exception("%s: callback failed on %d records of %s; skipping them",
                          self.name, len(records), self.topic)
        with self._lock:
            self._positions.update(advanced)
