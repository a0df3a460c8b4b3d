"""headwater.batch.trigger-on-drift: a drift alarm of the speed layer starts the next batch generation at once."""
from __future__ import annotations

import threading
import time

from batch_layer.runner import run_batch_forever
from headwater.kafka_admin import ensure_topics
from headwater.kafka_producer import LineProducer
from headwater.messages import BatchRecord, encode_batch
from tests.integration.test_speed_layer import wait_for


def test_a_drift_alarm_starts_the_next_generation_early(broker_config):
    config = broker_config(**{"batch.generation-interval-sec": 3600, "batch.trigger-on-drift": True})
    ensure_topics(config.kafka, {config.input_topic: 1, config.update_topic: 1})
    stop = threading.Event()
    # no events table: each generation finds nothing to train on and returns at once
    batch = threading.Thread(target=run_batch_forever, args=(config, stop, 2), daemon=True)
    batch.start()
    try:
        time.sleep(3)
        assert batch.is_alive(), "the second generation must wait for the interval or a drift alarm"
        quiet = {"alarm": False, "rows": 1000, "features": []}
        with LineProducer(config.kafka) as producer:
            producer.send_bytes(config.update_topic, encode_batch(BatchRecord(1, {0: 5}, 5, {}, drift=quiet))).get(10)
        time.sleep(2)
        assert batch.is_alive(), "a window without an alarm starts nothing"
        alarm = {"alarm": True, "rows": 1000, "worst": "x", "window": 4, "features": []}
        with LineProducer(config.kafka) as producer:
            producer.send_bytes(config.update_topic, encode_batch(BatchRecord(1, {0: 9}, 4, {}, drift=alarm))).get(10)
        wait_for(lambda: not batch.is_alive(), "the second generation, started by the drift alarm", timeout=30)
    finally:
        stop.set()
        batch.join(timeout=30)
