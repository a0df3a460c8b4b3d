"""Kafka administration and offsets on kafka-python: group-less consumers, topics, true end offsets.

Consumers here never join a consumer group (``group_id=None``, no auto-commit): they ``assign``
partitions and ``seek`` to offsets that the caller keeps (a Spark checkpoint, a registry snapshot).
Consumer groups do not work on the embedded broker, and explicit offsets are what exactly-once needs.

The embedded broker (Tansu) answers ListOffsets "latest" with the last record batch's base offset
+ 1, so after batched produces records exist beyond the reported end. :func:`true_end_offsets`
corrects for it; nothing in headwater should use ``end_offsets`` directly.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from kafka import KafkaConsumer, TopicPartition
from kafka import errors as Errors
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from headwater.kafka_settings import KafkaSettings

log = logging.getLogger(__name__)


class _CancelledRefreshIsNotAnError(logging.Filter):
    """kafka-python 3.0 logs "Metadata refresh: failed Cancelled" at ERROR whenever a client closes with a
    metadata request in flight: the request was cancelled on purpose. Such records are lowered to DEBUG,
    so an operator's log shows ERROR only for errors; every other kafka-python record passes unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.msg == "Metadata refresh: failed %s" and record.args \
                and isinstance(record.args[0], Errors.Cancelled):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


logging.getLogger("kafka.cluster").addFilter(_CancelledRefreshIsNotAnError())


class _WithoutConfiguration(logging.Filter):
    """kafka-python's admin client logs its whole configuration at DEBUG, passwords included."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Starting KafkaAdminClient with configuration"):
            record.msg, record.args = "Starting KafkaAdminClient (configuration not logged: it may hold secrets)", ()
        return True


logging.getLogger("kafka.admin.client").addFilter(_WithoutConfiguration())

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


def new_consumer(kafka: KafkaSettings | str, **overrides) -> KafkaConsumer:
    """A group-less consumer with no assignment; callers ``assign`` and ``seek`` themselves."""
    return KafkaConsumer(**KafkaSettings.of(kafka).client_kwargs(), **{**CONSUMER_DEFAULTS, **overrides})


def new_probe_consumer(kafka: KafkaSettings | str) -> KafkaConsumer:
    """A consumer for :func:`true_end_offsets`: small fetches, and a short broker-side wait so a
    probe at the log end does not leave a fetch in flight for long."""
    return new_consumer(kafka, fetch_max_wait_ms=50, max_partition_fetch_bytes=1024 * 1024, check_crcs=False)


@contextmanager
def _borrowed_consumer(consumer_or_kafka: KafkaConsumer | KafkaSettings | str) -> Iterator[KafkaConsumer]:
    if isinstance(consumer_or_kafka, KafkaConsumer):
        yield consumer_or_kafka
        return
    consumer = new_probe_consumer(consumer_or_kafka)
    try:
        yield consumer
    finally:
        consumer.close()


def ensure_topics(kafka: KafkaSettings | str, partitions: dict[str, int]) -> list[str]:
    """Create the missing topics (replication 1) and return their names; existing topics are left as they are."""
    admin = KafkaAdminClient(**KafkaSettings.of(kafka).client_kwargs())
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


def beginning_offsets(consumer_or_kafka: KafkaConsumer | KafkaSettings | str, topic: str,
                      partitions: list[int] | None = None) -> dict[int, int]:
    """The first available offset per partition."""
    with _borrowed_consumer(consumer_or_kafka) as consumer:
        parts = topic_partitions(consumer, topic) if partitions is None else partitions
        found = consumer.beginning_offsets([TopicPartition(topic, p) for p in parts])
        return {tp.partition: offset for tp, offset in sorted(found.items())}


def true_end_offsets(consumer_or_kafka: KafkaConsumer | KafkaSettings | str, topic: str,
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
    bootstrap string or KafkaSettings gets a short-lived consumer.
    """
    with _borrowed_consumer(consumer_or_kafka) as consumer:
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


def read_range(kafka: KafkaSettings | str, topic: str, starts: dict[int, int], ends: dict[int, int],
               poll_timeout_ms: int = 1000, max_idle_polls: int = 5) -> list:
    """The records of ``topic`` from ``starts`` to ``ends`` (exclusive, per partition), in offset order per
    partition; a partition whose records stop arriving (gone: retention, a recreated topic) ends early
    with a warning rather than hanging."""
    wanted = {p: (starts.get(p, 0), end) for p, end in ends.items() if end > starts.get(p, 0)}
    if not wanted:
        return []
    consumer = new_consumer(kafka, check_crcs=False)
    records: list = []
    try:
        tps = {p: TopicPartition(topic, p) for p in wanted}
        consumer.assign(list(tps.values()))
        for p, (start, _) in wanted.items():
            consumer.seek(tps[p], start)
        idle = 0
        while any(consumer.position(tps[p]) < end for p, (_, end) in wanted.items()) and idle < max_idle_polls:
            polled = consumer.poll(timeout_ms=poll_timeout_ms, max_records=PROBE_MAX_RECORDS)
            idle = 0 if polled else idle + 1
            for tp, batch in polled.items():
                start, end = wanted[tp.partition]
                records.extend(r for r in batch if start <= r.offset < end)
        missing = {p: end - consumer.position(tps[p]) for p, (_, end) in wanted.items()
                   if consumer.position(tps[p]) < end}
        if missing:
            log.warning("%s: records no longer available (partition: count) %s", topic, missing)
    finally:
        consumer.close()
    return sorted(records, key=lambda r: (r.partition, r.offset))
