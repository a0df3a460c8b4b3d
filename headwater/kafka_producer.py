"""The producer every writer of text lines uses: batched sends of UTF-8 lines and raw records."""
from __future__ import annotations

from collections.abc import Iterable

from kafka import KafkaProducer

from headwater.kafka_settings import KafkaSettings


class LineProducer:
    """Sends text lines (UTF-8) to Kafka in large batches; use as a context manager to flush and close.

    >>> with LineProducer("127.0.0.1:9092") as producer:  # doctest: +SKIP
    ...     producer.send_lines("demo.input", ["u1,i1,1.0", "u2,i1,"])
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

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        self._producer.close(timeout)

    def __enter__(self) -> LineProducer:
        return self

    def __exit__(self, *exc) -> None:
        self.flush()
        self.close()
