"""Kafka I/O on kafka-python: topics, true offsets, a batching line producer and a topic tail.

Consumers here never join a consumer group (``group_id=None``, no auto-commit): they ``assign``
partitions and ``seek`` to offsets that the caller keeps (a Spark checkpoint, a registry snapshot).
Consumer groups do not work on the embedded broker, and explicit offsets are what exactly-once needs.

The embedded broker (Tansu) answers ListOffsets "latest" with the last record batch's base offset
+ 1, so after batched produces records exist beyond the reported end. :func:`true_end_offsets`
corrects for it; nothing in headwater should use ``end_offsets`` directly.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

log = logging.getLogger(__name__)

# Large fetches: our records are short text lines, and kafka-python's per-request cost dominates.
CONSUMER_DEFAULTS = dict(group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                         max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
# An end-offset probe reads at most one fetch response per partition, so it fits in one poll.
PROBE_MAX_RECORDS = 200_000
# A probe that sees nothing within its timeout takes the reported end as exact, so a slow answer
# under-reports. That only delays records, unless the end is taken as proof that a topic was
# recreated (offsets we hold lie beyond it): then probe with this timeout first, so a busy
# broker or machine cannot fake a reset (and the replay or loss it would cause).
RESET_PROBE_TIMEOUT_MS = 2000
TOPIC_ALREADY_EXISTS = 36


def new_consumer(bootstrap_servers: str, **overrides) -> KafkaConsumer:
    """A group-less consumer with no assignment; callers ``assign`` and ``seek`` themselves."""
    return KafkaConsumer(bootstrap_servers=bootstrap_servers, **{**CONSUMER_DEFAULTS, **overrides})


def new_probe_consumer(bootstrap_servers: str) -> KafkaConsumer:
    """A consumer for :func:`true_end_offsets`: small fetches, and a short broker-side wait so a
    probe at the log end does not leave a fetch in flight for long."""
    return new_consumer(bootstrap_servers, fetch_max_wait_ms=50, max_partition_fetch_bytes=1024 * 1024,
                        check_crcs=False)


@contextmanager
def _borrowed_consumer(consumer_or_bootstrap: KafkaConsumer | str) -> Iterator[KafkaConsumer]:
    if isinstance(consumer_or_bootstrap, KafkaConsumer):
        yield consumer_or_bootstrap
        return
    consumer = new_probe_consumer(consumer_or_bootstrap)
    try:
        yield consumer
    finally:
        consumer.close()


def ensure_topics(bootstrap_servers: str, partitions: dict[str, int]) -> list[str]:
    """Create the missing topics (replication 1) and return their names; existing topics are left as they are."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        existing = set(admin.list_topics())
        missing = {name: n for name, n in partitions.items() if name not in existing}
        if not missing:
            return []
        response = admin.create_topics(
            {name: {"num_partitions": n, "replication_factor": 1} for name, n in missing.items()},
            raise_errors=False)
        created = []
        for topic in response["topics"]:
            # another process may have created it between list and create: that is fine
            if topic["error_code"] == 0:
                created.append(topic["name"])
            elif topic["error_code"] != TOPIC_ALREADY_EXISTS:
                raise KafkaError(f"creating topic {topic['name']!r} failed with error code "
                                 f"{topic['error_code']}: {topic.get('error_message')}")
        admin.wait_for_topics(list(missing))
        return sorted(created)
    finally:
        admin.close()


def topic_partitions(consumer: KafkaConsumer, topic: str) -> list[int]:
    """The topic's partitions from fresh metadata (empty if the topic does not exist)."""
    consumer.topics()  # refreshes the metadata cache, so new partitions and deleted topics show
    return sorted(consumer.partitions_for_topic(topic) or ())


def beginning_offsets(consumer_or_bootstrap: KafkaConsumer | str, topic: str,
                      partitions: list[int] | None = None) -> dict[int, int]:
    """The first available offset per partition."""
    with _borrowed_consumer(consumer_or_bootstrap) as consumer:
        parts = topic_partitions(consumer, topic) if partitions is None else partitions
        found = consumer.beginning_offsets([TopicPartition(topic, p) for p in parts])
        return {tp.partition: offset for tp, offset in sorted(found.items())}


def true_end_offsets(consumer_or_bootstrap: KafkaConsumer | str, topic: str,
                     partitions: list[int] | None = None, probe_timeout_ms: int = 100,
                     max_probes: int = 20) -> dict[int, int]:
    """The offset after the last record per partition, even where the broker under-reports it.

    Tansu reports "latest" as the last batch's base offset + 1, so the rest of that batch lies
    beyond the reported end (20,000 records produced in batches over 4 partitions were reported
    as 4,983 per partition instead of 5,000). A consumer that trusted it would leave those records
    until more traffic arrives. So: seek to the reported end and poll. The broker answers with
    whole batches, so the first records a partition returns complete its last batch, and the
    consumer's position is then its true end; a poll that returns nothing means the remaining
    partitions' reported ends were exact. Stopping there, rather than polling until the topic is
    quiet, keeps the probe short under continuous traffic. On a real Kafka cluster the reported
    end is exact and the probe is one empty poll.

    A passed consumer's assignment is replaced (best built by :func:`new_probe_consumer`); a
    bootstrap string gets a short-lived consumer.
    """
    with _borrowed_consumer(consumer_or_bootstrap) as consumer:
        parts = topic_partitions(consumer, topic) if partitions is None else partitions
        if not parts:
            return {}
        tps = [TopicPartition(topic, p) for p in parts]
        reported = consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, reported[tp])
        pending = set(tps)
        for _ in range(max_probes):
            polled = consumer.poll(timeout_ms=probe_timeout_ms, max_records=PROBE_MAX_RECORDS)
            if not polled:
                break
            # a full poll may have cut a batch short: those partitions need another poll
            if sum(map(len, polled.values())) < PROBE_MAX_RECORDS:
                pending -= polled.keys()
            if not pending:
                break
        return {tp.partition: max(reported[tp], consumer.position(tp)) for tp in tps}


class LineProducer:
    """Sends text lines (UTF-8) to Kafka in large batches; use as a context manager to flush and close.

    >>> with LineProducer("127.0.0.1:9092") as producer:  # doctest: +SKIP
    ...     producer.send_lines("demo.input", ["u1,i1,1.0", "u2,i1,"])
    2
    """

    def __init__(self, bootstrap_servers: str, **producer_kwargs) -> None:
        self.bootstrap_servers = bootstrap_servers
        settings = dict(linger_ms=20, batch_size=256 * 1024, acks=1, enable_idempotence=False,
                        max_request_size=8 * 1024 * 1024)
        settings.update(producer_kwargs)
        self._producer = KafkaProducer(bootstrap_servers=bootstrap_servers, **settings)

    def send_bytes(self, topic: str, value: bytes, key: bytes | str | None = None,
                   partition: int | None = None):
        """Queue one record; returns kafka-python's future for its metadata."""
        if isinstance(key, str):
            key = key.encode("utf-8")
        return self._producer.send(topic, value=value, key=key, partition=partition)

    def send_line(self, topic: str, line: str, key: str | None = None):
        return self.send_bytes(topic, line.encode("utf-8"), key)

    def send_lines(self, topic: str, lines: Iterable[str]) -> int:
        """Queue every line (without keys) and return how many were queued; call flush to wait."""
        count = 0
        for line in lines:
            self._producer.send(topic, value=line.encode("utf-8"))
            count += 1
        return count

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        self._producer.close(timeout)

    def __enter__(self) -> LineProducer:
        return self

    def __exit__(self, *exc) -> None:
        self.flush()
        self.close()


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

    def __init__(self, bootstrap_servers: str, topic: str,
                 on_records: Callable[[list[ConsumerRecord]], None],
                 start: dict[int, int] | str = "latest", poll_timeout_ms: int = 200,
                 name: str | None = None) -> None:
        if isinstance(start, str) and start not in ("earliest", "latest"):
            raise ValueError(f"The 'start' parameter of TopicTail must be 'earliest', 'latest' or a "
                             f"dict of partition offsets. Got {start!r} instead.")
        self.bootstrap_servers = bootstrap_servers
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
                self._probe = new_probe_consumer(self.bootstrap_servers)
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
                    consumer, checked = new_consumer(self.bootstrap_servers), 0.0
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
