"""What a blueprint's request handlers reach through the current Flask app: the models and the input topic.

The app factory (:mod:`serving_layer.app`) puts them in ``app.extensions``; blueprints import this
module, never the factory, so an app's endpoints depend on nothing but these three functions.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from flask import current_app

from serving_layer.errors import ApiError
from serving_layer.model_manager import ModelManager

MODELS, PRODUCER, RESCORER = "headwater.models", "headwater.producer", "headwater.rescorer"

_producer_lock = threading.Lock()


def models() -> ModelManager:
    """The model manager of the app answering the current request."""
    return current_app.extensions[MODELS]


def rescorer() -> Callable | None:
    """The configured ``headwater.serving.rescorer``, or None."""
    return current_app.extensions.get(RESCORER)


def send_input_lines(lines: list[str]) -> int:
    """Send text lines to ``<id>.input`` (one producer per app, made on first use); returns how many.

    Answers only once the broker has them, so a client that got 200 knows they are in Kafka.
    """
    from kafka.errors import KafkaError

    from headwater.kafka_producer import LineProducer  # kafka-python only when something is written

    config = current_app.config["HEADWATER"]
    try:
        with _producer_lock:
            producer = current_app.extensions.get(PRODUCER)
            if producer is None:
                producer = current_app.extensions[PRODUCER] = LineProducer(config.kafka)
        sent = producer.send_lines(config.input_topic, lines)
        producer.flush(timeout=30)
    except KafkaError as exc:
        raise ApiError(503, f"Kafka is not reachable, nothing was sent: {type(exc).__name__}") from None
    return sent


__all__ = ["models", "rescorer", "send_input_lines"]
