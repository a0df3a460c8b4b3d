"""kafka_admin without a broker: the log filter that keeps kafka-python's shutdown noise out of ERROR."""
from __future__ import annotations

import logging

from kafka import errors

import headwater.kafka_admin  # noqa: F401 (installs the filter)


def test_a_cancelled_metadata_refresh_is_not_logged_as_an_error(caplog):
    with caplog.at_level(logging.INFO, logger="kafka.cluster"):
        logging.getLogger("kafka.cluster").error("Metadata refresh: failed %s", errors.Cancelled())
        logging.getLogger("kafka.cluster").error("Metadata refresh: failed %s", errors.KafkaTimeoutError())
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "Metadata refresh: failed KafkaTimeoutError")]
