"""The batch layer's runner: read the latest events version, run the app's ML update, announce a promotion.

``run_batch_once`` is one generation (``headwater batch --once``); ``run_batch_forever`` starts one
every ``headwater.batch.generation-interval-sec`` (measured start to start; a generation that overruns
the interval is followed by the next at once). A failed generation is logged and the loop goes on:
the current champion keeps serving.

The app's batch module (``App.layers["batch"]``, e.g. ``batch_layer.als``) must define exactly one
:class:`~batch_layer.ml_update.MLApp` subclass, or the layer may name it as ``"module:Class"``.
"""
from __future__ import annotations

import importlib
import inspect
import logging
import threading
import time

from batch_layer.ml_update import MLApp, MLUpdate, UpdateResult
from headwater.config import Config, ConfigError
from headwater.messages import ModelNotice, encode_model_notice

log = logging.getLogger(__name__)


def load_batch_app(config: Config) -> MLApp:
    """An instance of the configured app's :class:`MLApp` (a fresh one per generation)."""
    from headwater.apps import load_app

    path = load_app(config.get("headwater.app"), config).layer_path("batch")
    module_name, _, class_name = path.partition(":")
    module = importlib.import_module(module_name)
    if class_name:
        return getattr(module, class_name)(config)
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, MLApp) and c is not MLApp and c.__module__ == module.__name__]
    if len(classes) != 1:
        raise ConfigError(f"batch module {module_name} must define exactly one MLApp subclass "
                          f"(or name one as '{module_name}:Class'), found {len(classes)}")
    return classes[0](config)


def publish_model_notice(config: Config, notice: ModelNotice) -> None:
    """Send a MODEL notice on ``<id>.update`` (creating the topic if needed) and wait until it is written.

    First the new champion is tagged with the update topic's current end: UP messages before it
    were computed on older models, so the serving and speed layers start the new champion there
    instead of replaying the whole topic onto it.
    """
    from headwater.kafka_io import LineProducer, ensure_topics, true_end_offsets
    from headwater.registry import offsets_tag, set_version_tag

    bootstrap = config.get("headwater.kafka.bootstrap-servers")
    ensure_topics(bootstrap, {config.update_topic: config.get("headwater.kafka.update-partitions")})
    ends = true_end_offsets(bootstrap, config.update_topic)
    set_version_tag(config, notice.version, "update_offset", offsets_tag(ends))
    with LineProducer(bootstrap) as producer:
        producer.send_bytes(config.update_topic, encode_model_notice(notice)).get(timeout=30)
    log.info("published MODEL notice for %s version %s on %s", notice.model_name, notice.version,
             config.update_topic)


def run_batch_once(config: Config) -> UpdateResult | None:
    """One generation on the latest ``events`` version; None when there are no events yet."""
    from deltalake import DeltaTable

    from headwater.delta_tables import read_table_version, storage_options
    from headwater.spark import get_spark

    uri = config.table_uri("events")
    options = storage_options(config) or None
    if not DeltaTable.is_deltatable(uri, storage_options=options):
        log.info("no events table at %s yet: nothing to train on", uri)
        return None
    spark = get_spark(config)
    data, version = read_table_version(spark, uri, storage_options=options)
    if data.isEmpty():
        log.info("events table version %s is empty: nothing to train on", version)
        return None
    publish = lambda notice: publish_model_notice(config, notice)  # noqa: E731
    return MLUpdate(load_batch_app(config), config, publish).run(data, version, input_offsets(data))


def input_offsets(events) -> dict[int, int]:
    """The next ``<id>.input`` offset per partition after the events a model learns from.

    Recorded on the model version, so a fresh speed layer starts exactly where the batch data ends:
    events after it are folded in, none before it twice.
    """
    from pyspark.sql import functions as F

    rows = events.groupBy("partition").agg(F.max("offset").alias("last")).collect()
    return {int(row["partition"]): int(row["last"]) + 1 for row in rows}


def run_batch_forever(config: Config, stop: threading.Event | None = None,
                      generations: int | None = None) -> None:
    """Run generations until ``stop`` is set (or ``generations`` have run)."""
    stop = stop or threading.Event()
    interval = config.get("headwater.batch.generation-interval-sec")
    done = 0
    while not stop.is_set() and (generations is None or done < generations):
        started = time.monotonic()
        try:
            run_batch_once(config)
        except Exception:  # the next generation may well succeed; the champion keeps serving
            log.exception("batch generation failed")
        done += 1
        if generations is None or done < generations:
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
