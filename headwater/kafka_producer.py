"""The producer every writer of text lines uses: batched sends of UTF-8 lines and raw records.

A record is only known to be in Kafka once its send future succeeded: kafka-python's ``flush()``
waits for the futures but does not raise for the records that failed (after its retries, or at
``delivery_timeout_ms``). Writers that report success to someone (REST writes, the speed layer's UP
messages, MODEL notices) therefore check every future (:func:`wait_acknowledged`,
:meth:`LineProducer.send_lines_acknowledged`) and treat :class:`SendFailed` as "not written".
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from kafka import KafkaProducer
from kafka.errors import KafkaError

from headwater.kafka_settings import KafkaSettings


class SendFailed(KafkaError):
    """Some records were not acknowledged: ``failed`` holds their positions, ``errors`` why (first ones)."""

    def __init__(self, topic: str, total: int, failed: list[int], errors: list[BaseException]):
        self.topic, self.total, self.failed, self.errors = topic, total, failed, errors
        first = errors[0] if errors else None
        super().__init__(f"{len(failed)} of {total} records to {topic} were not acknowledged"
                         + (f" (first: {type(first).__name__}: {first})" if first is not None else ""))


def wait_acknowledged(producer: LineProducer, topic: str, futures: Sequence, timeout: float | None = None,
                      total: int | None = None) -> None:
    """Flush, then raise :class:`SendFailed` unless every future succeeded.

    ``total`` (default ``len(futures)``) counts records whose send itself raised as failed too: they
    are the positions from ``len(futures)`` on.
    """
    try:
        producer.flush(timeout)
    except KafkaError:  # a flush that timed out: the futures not done yet count as failed below
        pass
    total = len(futures) if total is None else total
    failed, errors = [], []
    for position, future in enumerate(futures):
        if not future.is_done:
            failed.append(position)
            errors.append(TimeoutError(f"no acknowledgement within {timeout} s"))
        elif future.failed():
            failed.append(position)
            errors.append(future.exception)
    failed += range(len(futures), total)
    if failed:
        raise SendFailed(topic, total, failed, errors[:5])


class LineProducer:
    """Sends text lines (UTF-8) to Kafka in large batches; use as a context manager to flush and close.

    >>> with LineProducer("127.0.0.1:9092") as producer:  # doctest: +SKIP
    ...     producer.send_lines_acknowledged("demo.input", ["u1,i1,1.0", "u2,i1,"])
    2
    """

    def __init__(self, kafka: KafkaSettings | str, **producer_kwargs) -> None:
        self.kafka = KafkaSettings.of(kafka)
        settings = dict(linger_ms=20, batch_size=256 * 1024, acks=1, enable_idempotence=False,
                        max_request_size=8 * 1024 * 1024)
        settings.update(producer_kwargs)
        self._producer = KafkaProducer(**self.kafka.client_kwargs(), **settings)

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

    def send_lines_acknowledged(self, topic: str, lines: Sequence[str], timeout: float | None = None) -> int:
        """Send every line and wait until the broker acknowledged each; :class:`SendFailed` otherwise.

        A send that raises at once (no metadata within ``max_block_ms``, a record over
        ``max_request_size``) fails that line and the ones after it, which are not queued.
        """
        futures, refused = [], None
        try:
            for line in lines:
                futures.append(self._producer.send(topic, value=line.encode("utf-8")))
        except KafkaError as exc:
            refused = exc
        try:
            wait_acknowledged(self, topic, futures, timeout, total=len(lines))
        except SendFailed as failed:
            if refused is None:
                raise
            raise SendFailed(topic, len(lines), failed.failed, [refused, *failed.errors][:5]) from refused
        return len(futures)

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        self._producer.close(timeout)

    def __enter__(self) -> LineProducer:
        return self

    def __exit__(self, *exc) -> None:
        self.flush()
        self.close()
