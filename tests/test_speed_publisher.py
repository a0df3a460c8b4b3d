"""UpdatePublisher: every record acknowledged or the batch fails; retries; oversized payloads skipped."""
from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace

import pytest

from headwater.messages import BatchRecord, MessageType, decode_update
from speed_layer.publisher import PublishError, UpdatePublisher


class Sent(Future):
    """kafka-python's FutureRecordMetadata: ``get(timeout)`` returns the metadata or raises."""

    get = Future.result


class FlakyProducer:
    """A producer whose first ``failures`` sends fail the way a broker that is away does (in the future)."""

    def __init__(self, failures: int = 0):
        self.failures, self.sent, self.offset = failures, [], 0

    def send_bytes(self, topic, value, key=None, partition=None):
        future = Sent()
        if self.failures:
            self.failures -= 1
            future.set_exception(TimeoutError("no broker"))
        else:
            self.sent.append(value)
            future.set_result(SimpleNamespace(offset=self.offset))
            self.offset += 1
        return future

    def flush(self, timeout=None):  # like kafka-python: never raises for failed records
        pass


RECORD = BatchRecord(4, {0: 10}, 3, {"live": {"error": [1.0, 3.0]}})
UPS = {4: [["C", 0, [1.0], 2.0]]}   # the UP payloads of base version 4


def test_ups_then_the_batch_record_and_the_offset_after_them():
    producer = FlakyProducer()
    assert UpdatePublisher(producer, "t.update", 10_000).publish(UPS, RECORD) == 2
    up, batch = (decode_update(v) for v in producer.sent)
    assert (up.type, up.base_version) == (MessageType.UP, 4)
    assert batch.type is MessageType.BATCH and batch.payload.input_offsets == {0: 10}


def test_a_failed_send_is_retried_with_the_whole_batch():
    producer = FlakyProducer(failures=1)
    publisher = UpdatePublisher(producer, "t.update", 10_000, attempts=3)
    assert publisher.publish(UPS, RECORD) is not None
    assert [decode_update(v).type for v in producer.sent][-2:] == [MessageType.UP, MessageType.BATCH]


def test_no_acknowledgement_after_the_retries_fails_the_batch():
    with pytest.raises(PublishError, match="did not acknowledge"):
        UpdatePublisher(FlakyProducer(failures=100), "t.update", 10_000, attempts=2).publish(UPS, RECORD)


def test_an_oversized_payload_is_skipped_and_counted_not_retried_for_ever():
    producer = FlakyProducer()
    publisher = UpdatePublisher(producer, "t.update", max_message_bytes=2000)
    publisher.publish({4: [["X", "u", [0.0] * 1000, None], ["X", "v", [1.0], None]]}, RECORD)
    assert publisher.oversized == 1
    assert [decode_update(v).payload[1] if decode_update(v).type is MessageType.UP else "BATCH"
            for v in producer.sent] == ["v", "BATCH"]


def test_each_version_s_ups_carry_their_own_base_and_one_batch_record_closes_them_all():
    producer = FlakyProducer()
    UpdatePublisher(producer, "t.update", 10_000).publish({4: [["C", 0, [1.0], 2.0]], 3: [["C", 0, [2.0], 1.0]]},
                                                          RECORD)
    messages = [decode_update(v) for v in producer.sent]
    assert [(m.type, m.base_version) for m in messages] == [
        (MessageType.UP, 4), (MessageType.UP, 3), (MessageType.BATCH, 4)]
