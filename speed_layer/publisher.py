"""Publishing one micro-batch's output on ``<id>.update``: its UP messages, then its BATCH record, acknowledged.

A batch counts as published only when the broker acknowledged every record (kafka-python's
``flush()`` does not raise for records that failed, so each send's future is checked). A failed
send is retried with the whole batch: UP payloads are absolute values, so a record that did get
through and is sent again changes nothing. When the retries are used up, :class:`PublishError`
fails the micro-batch; the speed layer then restarts from its snapshot and re-folds, and nothing
is lost. A payload larger than ``headwater.kafka.max-message-bytes`` would fail on every retry
(and so forever): it is skipped, counted and logged instead; apps keep their payloads bounded.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from headwater.messages import BatchRecord, encode_batch, encode_up

log = logging.getLogger(__name__)

# The update topic has exactly one partition (headwater.kafka.update-partitions).
UPDATE_PARTITION = 0


class PublishError(RuntimeError):
    """The broker did not acknowledge a micro-batch's records after the retries."""


class UpdatePublisher:
    """Sends UP payloads and BATCH records to the update topic; returns the offset after the last one."""

    def __init__(self, producer, topic: str, max_message_bytes: int, attempts: int = 5, timeout_sec: float = 30.0):
        self.producer = producer
        self.topic = topic
        self.max_message_bytes = max_message_bytes
        self.attempts = attempts
        self.timeout_sec = timeout_sec
        self.oversized = 0  # payloads skipped for their size

    def publish(self, updates: Mapping[int | None, list[Any]], record: BatchRecord | None) -> int | None:
        """Send the UP payloads of each base version (``{version: payloads}``: the champion's and those of the
        versions learning beside it), then the BATCH record; the next offset, or None when there was nothing."""
        values = [encode_up(p, base) for base, payloads in updates.items() for p in payloads]
        kept = [v for v in values if len(v) <= self.max_message_bytes]
        if len(kept) < len(values):
            self.oversized += len(values) - len(kept)
            log.error("speed layer: skipped %d UP messages larger than headwater.kafka.max-message-bytes (%d)",
                      len(values) - len(kept), self.max_message_bytes)
        if record is not None:
            kept.append(encode_batch(record))
        if not kept:
            return None
        for attempt in range(1, self.attempts + 1):
            try:
                return self._send_all(kept)
            except Exception as exc:  # a broker that is away, a timeout: the same records again
                if attempt == self.attempts:
                    raise PublishError(f"the update topic did not acknowledge {len(kept)} records after "
                                       f"{attempt} attempts: {exc}") from exc
                delay = min(2.0 ** attempt * 0.25, 10.0)
                log.warning("speed layer: publishing %d records failed (%s); retrying in %.1f s", len(kept), exc, delay)
                time.sleep(delay)
        return None

    def _send_all(self, values: list[bytes]) -> int:
        futures = [self.producer.send_bytes(self.topic, value, partition=UPDATE_PARTITION) for value in values]
        self.producer.flush(self.timeout_sec)
        last = max(future.get(timeout=self.timeout_sec).offset for future in futures)
        return last + 1


__all__ = ["PublishError", "UPDATE_PARTITION", "UpdatePublisher"]
