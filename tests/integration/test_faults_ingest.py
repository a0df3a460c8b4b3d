"""Fault suite, ingest: the broker is restarted while the ingest query runs; no event lands twice.

What a restart of the *embedded* broker loses, and why a real Kafka does not: Tansu runs here with
``--storage-engine memory://``, so a restart empties every topic. Records the broker had acknowledged
but the query had not read yet are gone (the speed and serving layers lose the update topic's records
the same way), the topic must be created again, and its offsets start again at 0, below the query's
checkpointed offsets. The source sees that as data loss: by default the query fails, naming
``headwater.kafka.fail-on-data-loss``; set to false (as here) it restarts each partition from offset 0
and reads what is produced from then on. A real Kafka keeps each partition's log on disk (replicated
across brokers): after a restart the records and offsets are where they were, nothing is lost, and the
query simply goes on from its checkpoint. Either way nothing is written twice: each batch is one fixed
offset range, committed to Delta with its batch id.
"""
from __future__ import annotations

import time

import pyarrow.compute as pc

from batch_layer.ingest import _start
from headwater import delta_tables
from headwater.embedded import free_port, start_broker
from headwater.kafka_admin import ensure_topics
from headwater.kafka_producer import LineProducer, SendFailed
from tests.integration.processes import wait_until

CHUNKS, CHUNK = 10, 200


def send_chunks(bootstrap: str, topic: str, first: int, chunks: int, pause: float) -> list[str]:
    """Send numbered lines; returns those the broker acknowledged."""
    acknowledged = []
    with LineProducer(bootstrap) as producer:
        for chunk in range(first, first + chunks):
            lines = [f"u{chunk}-{n},i{n % 50},1" for n in range(CHUNK)]
            try:
                producer.send_lines_acknowledged(topic, lines, timeout=10)
                acknowledged += lines
            except SendFailed as failed:
                acknowledged += [line for n, line in enumerate(lines) if n not in set(failed.failed)]
            time.sleep(pause)
    return acknowledged


def ingested_lines(config) -> list[str]:
    table = delta_tables.open_table(config.table_uri("events"))
    return [] if table is None else table.to_pyarrow_table(columns=["line"]).column("line").to_pylist()


def test_a_broker_restart_during_ingest_duplicates_nothing(make_config, spark, tmp_path):
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    config = make_config(**{"kafka.bootstrap-servers": bootstrap, "kafka.input-partitions": 2,
                            "kafka.fail-on-data-loss": False, "kafka.poll-timeout-ms": 200,
                            "ingest.trigger-interval-sec": 0.2})
    broker = start_broker("127.0.0.1", port, tmp_path / "broker-1.log")
    query = None
    try:
        ensure_topics(bootstrap, {config.input_topic: 2})
        query, _ = _start(config, once=False)
        before = send_chunks(bootstrap, config.input_topic, 0, CHUNKS, pause=0.3)
        wait_until(lambda: len(ingested_lines(config)) > 0, "a first ingested batch")
        broker.stop()  # everything the broker held is gone, read or not
        broker = start_broker("127.0.0.1", port, tmp_path / "broker-2.log")
        ensure_topics(bootstrap, {config.input_topic: 2})
        after = send_chunks(bootstrap, config.input_topic, CHUNKS, CHUNKS, pause=0.3)
        wait_until(lambda: set(after) <= set(ingested_lines(config)), "every line sent after the restart",
                   timeout=120)
        time.sleep(1.0)  # a last trigger: nothing more may arrive
        assert query.exception() is None
    finally:
        if query is not None:
            query.stop()
        broker.stop()
    lines = ingested_lines(config)
    assert len(lines) == len(set(lines)), "a line was ingested twice"
    assert set(lines) <= set(before) | set(after)
    lost = len(set(before) - set(lines))
    print(f"sent {len(before)} before the restart and {len(after)} after; {lost} of the first were not "
          f"ingested yet and died with the in-memory broker")
    events = delta_tables.read_table_arrow(config.table_uri("events")).select(["line", "partition", "offset"])
    # offsets restart at 0 with the recreated topic: (partition, offset) repeats across the restart, lines do not
    assert len(pc.unique(events.column("line"))) == events.num_rows
