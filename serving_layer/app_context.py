"""What a blueprint's request handlers reach through the current Flask app: the models and the input topic.

The app factory (:mod:`serving_layer.app`) puts them in ``app.extensions``; blueprints import this
module, never the factory, so an app's endpoints depend on nothing but these three functions.
"""
from __future__ import annotations

import logging
import threading

from flask import current_app

from serving_layer.errors import ApiError
from serving_layer.model_manager import ModelManager
from serving_layer.rescorers import RescorerProvider

log = logging.getLogger(__name__)

MODELS, PRODUCER, RESCORER = "headwater.models", "headwater.producer", "headwater.rescorer"
SHADOW = "headwater.shadow"
INPUT_FORMAT = "headwater.input_format"

_producer_lock = threading.Lock()


def models() -> ModelManager:
    """The model manager of the app answering the current request."""
    return current_app.extensions[MODELS]


def rescorer() -> RescorerProvider | None:
    """The providers ``headwater.serving.rescorer`` names, combined (:mod:`serving_layer.rescorers`), or None."""
    return current_app.extensions.get(RESCORER)


def input_format():
    """The configured app's input format (with the config's ``headwater.input.*`` bounds), built once per app.

    REST writes check their lines with it before sending, so nothing the layers would reject reaches Kafka.
    """
    fmt = current_app.extensions.get(INPUT_FORMAT)
    if fmt is None:
        config = current_app.config["HEADWATER"]
        fmt = current_app.extensions[INPUT_FORMAT] = config.app.make_input_format(config)
    return fmt


def send_input_lines(lines: list[str]) -> int:
    """Send text lines to ``<id>.input`` (one producer per app, made on first use); returns how many.

    Returns only once the broker acknowledged every line, so a client that got 2xx knows they are in
    Kafka; otherwise a 503 says which lines were not acknowledged (the others are in), so a client
    resends only those. Kafka's own error text (hosts, ports) goes to the log, not to the client.
    """
    from kafka.errors import KafkaError  # kafka-python only when something is written

    from headwater.kafka_producer import LineProducer, SendFailed

    config = current_app.config["HEADWATER"]
    timeout = config.get("headwater.serving.write-timeout-sec")
    try:
        with _producer_lock:
            producer = current_app.extensions.get(PRODUCER)
            if producer is None:
                wait_ms = int(timeout * 1000)
                producer = current_app.extensions[PRODUCER] = LineProducer(
                    config.kafka, bootstrap_timeout_ms=wait_ms,
                    max_block_ms=wait_ms, request_timeout_ms=wait_ms, delivery_timeout_ms=wait_ms + 1000)
        return producer.send_lines_acknowledged(config.input_topic, lines, timeout)
    except SendFailed as exc:
        log.warning("REST write to %s: %s", config.input_topic, exc)
        acknowledged = exc.total - len(exc.failed)
        raise ApiError(503, f"Kafka did not acknowledge {len(exc.failed)} of {exc.total} lines; the other "
                            f"{acknowledged} are on {config.input_topic}: resend only the failed lines",
                       sent=acknowledged, failed_lines=[i + 1 for i in exc.failed[:1000]]) from None
    except KafkaError as exc:
        log.warning("REST write to %s: Kafka is unavailable: %s", config.input_topic, exc)
        raise ApiError(503, f"Kafka is unavailable ({type(exc).__name__}); nothing was sent", sent=0) from None


__all__ = ["input_format", "models", "rescorer", "send_input_lines"]
