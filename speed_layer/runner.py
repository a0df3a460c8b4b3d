"""The speed layer's runner: Kafka micro-batches in, UP messages out, periodic registry snapshots.

Generic over apps, as Oryx's SpeedLayer is over its SpeedModelManagers: the app names a class
(``App.speed``) that follows :class:`headwater.api.SpeedModel`, and this module owns Spark, Kafka,
MLflow and the threads (the model itself sits in a :class:`~speed_layer.model_state.ModelState`):

- the Structured Streaming query's ``foreachBatch`` folds each micro-batch of ``<id>.input`` into
  the model (``learn_many``) and publishes the UP payloads it returns, keyed as its own;
- a :class:`~headwater.topic_tail.TopicTail` on ``<id>.update`` applies UPs other processes
  published and rebases on a new champion when a MODEL notice arrives;
- a snapshot thread registers the model every ``headwater.speed.snapshot-interval-sec`` with alias
  ``speed`` and the tags the serving layer resumes from (``base_version``, ``update_offset``).

Start-up chooses the model and the update-topic offset by the registry's one rule
(:func:`headwater.registry.resume_point`), as the serving layer does, so both apply the same UPs to
the same model. Micro-batches wait until the tail has caught up with the topic.

No model, no fold-in: until the registry has a ``champion`` the first non-empty micro-batch waits
inside ``foreachBatch``. Oryx's speed layer drops input that arrives before its first model;
waiting instead leaves the events in Kafka (the batch's offsets are not committed) and folds them
in once a model is there, so nothing is lost, at the price of that batch's latency.
"""
from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
import uuid
from pathlib import Path

from headwater import registry
from headwater.config import Config
from headwater.messages import MessageType, decode_update, encode_up
from speed_layer.model_state import ModelState

log = logging.getLogger(__name__)

# The update topic has exactly one partition (headwater.kafka.update-partitions), so a position
# in it is one offset.
UPDATE_PARTITION = 0


class SpeedLayerStopped(RuntimeError):
    """Raised inside a micro-batch that was waiting for a model when the layer stopped.

    Failing the batch (instead of returning) keeps its offsets uncommitted, so a restart reads it again.
    """


class SpeedLayer:
    """One speed layer: ``start()`` returns once the query runs; ``stop()`` ends every thread."""

    def __init__(self, config: Config, model_class: type | None = None):
        self.config = config
        self.model_class = model_class or config.app.resolve("speed")
        self.input_format = config.app.make_input_format(config)
        self.bootstrap = config.get("headwater.kafka.bootstrap-servers")
        self.state = ModelState(owner=f"speed-{uuid.uuid4().hex[:12]}")
        self._stopping = threading.Event()
        self._model_ready = threading.Event()
        self._tail = None
        self._query = None
        self._producer = None
        self._threads: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> SpeedLayer:
        from headwater.kafka_admin import ensure_topics
        from headwater.kafka_producer import LineProducer

        ensure_topics(self.bootstrap, {
            self.config.input_topic: self.config.get("headwater.kafka.input-partitions"),
            self.config.update_topic: self.config.get("headwater.kafka.update-partitions"),
        })
        self._producer = LineProducer(self.bootstrap)
        self._spawn("speed-model-loader", self._load_first_model)
        self._spawn("speed-snapshots", self._snapshot_loop)
        self._query = self._start_query()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._query is not None:
            self._query.stop()
        if self._tail is not None:
            self._tail.stop()
        for thread in self._threads:
            thread.join(timeout=30)
        if self._producer is not None:
            self._producer.close()
        log.info("speed layer stopped")

    def await_termination(self, timeout: float | None = None) -> bool:
        """Block while the query runs (raises its error if it failed)."""
        return self._query.awaitTermination(timeout)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """True once a model is loaded and the update topic caught up (micro-batches fold in from then on)."""
        return self._model_ready.wait(timeout)

    @property
    def query(self):
        """The Structured Streaming query (``lastProgress``, ``exception()``, ...)."""
        return self._query

    def _spawn(self, name: str, target) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # --- the model and the update topic ----------------------------------------------------------

    def _load_first_model(self) -> None:
        """Poll the registry until a champion exists, install it, then follow the update topic.

        Micro-batches wait until the tail has caught up: folding in before the UPs already published
        were applied would build on stale vectors.
        """
        from headwater.topic_tail import TopicTail

        poll = max(1.0, self.config.get("headwater.speed.trigger-interval-sec"))
        attempts = 0
        while not self._stopping.is_set():
            try:
                loaded = self._load_from_registry()
            except Exception:  # the registry may be starting up: keep trying
                log.exception("speed layer: loading the champion failed; retrying in %s s", poll)
                loaded = None
            if loaded is not None:
                break
            if attempts % 60 == 0:
                log.info("speed layer: no 'champion' model registered for %s yet; waiting (input stays in "
                         "Kafka and is folded in once a model is there)", self.config.app_id)
            attempts += 1
            self._stopping.wait(poll)
        else:
            return
        model, base_version, start = loaded
        self.state.install(model, base_version, start)
        self._tail = TopicTail(self.bootstrap, self.config.update_topic, self._on_update_records,
                               start={UPDATE_PARTITION: start},
                               poll_timeout_ms=self.config.get("headwater.kafka.poll-timeout-ms"),
                               name="speed-update-tail")
        self._tail.start()
        while not self._stopping.is_set() and not self._tail.caught_up():
            self._stopping.wait(0.2)
        log.info("speed layer: caught up with %s at offset %s", self.config.update_topic, self.state.position)
        self._model_ready.set()

    def _load_from_registry(self):
        """(model, base version, update-topic start) by the registry's resume rule; None without a champion."""
        point = registry.resume_point(self.config)
        if point is None:
            return None
        chosen = point.chosen
        model = self.model_class.from_registered(chosen, self.config)
        log.info("speed layer: loaded %s version %s (%s layer, base %s); following %s from offset %s",
                 chosen.name, chosen.version, chosen.tags.get(registry.TAG_LAYER, "?"), point.champion_version,
                 self.config.update_topic, point.update_offset)
        return model, point.champion_version, point.update_offset

    def _on_update_records(self, records) -> None:
        for record in records:
            message = decode_update(record.value)
            if message is not None and message.type is MessageType.MODEL and message.payload.alias == registry.CHAMPION:
                try:
                    self._rebase(message.payload.version)
                except Exception:  # keep following: the next notice (or a restart) loads it
                    log.exception("speed layer: loading champion version %s failed", message.payload.version)
            is_up = message is not None and message.type is MessageType.UP
            self.state.on_update(record.offset, record.key, message.payload if is_up else None)

    def _rebase(self, version: int) -> None:
        if version == self.state.base_version:
            return
        champion = registry.download_alias(self.config, registry.CHAMPION)
        if champion is None or champion.version == self.state.base_version:
            return
        # Loaded outside the lock so folding-in goes on meanwhile; swapped between micro-batches.
        self.state.install(self.model_class.from_registered(champion, self.config), champion.version)
        log.info("speed layer: rebased on champion version %s (notice for version %s)", champion.version, version)

    # --- micro-batches ---------------------------------------------------------------------------

    def _starting_offsets(self) -> str:
        """Where a query without a checkpoint starts: where the champion's training data ends.

        Events after the champion's data are the speed layer's to fold in, whenever they arrived
        (also while this process was starting); with no champion yet, the history is the batch
        layer's to learn from and the query starts at the end.
        """
        champion = registry.download_alias(self.config, registry.CHAMPION)
        offsets = (registry.parse_offsets_tag(champion.tags.get(registry.TAG_INPUT_OFFSETS))
                   if champion is not None else None)
        if not offsets:
            return "latest"
        return json.dumps({self.config.input_topic: {str(p): o for p, o in offsets.items()}})

    def _start_query(self):
        from headwater.spark import get_spark

        spark = get_spark(self.config)
        kafka = self.config.section("headwater.kafka")
        starting = self._starting_offsets()
        stream = (spark.readStream.format("headwater-kafka")
                  .option("bootstrap.servers", self.bootstrap)
                  .option("topic", self.config.input_topic)
                  .option("startingOffsets", starting)
                  .option("maxRecordsPerTrigger", kafka["max-records-per-trigger"])
                  .option("maxRecordsPerSplit", kafka["max-records-per-split"])
                  .option("pollTimeoutMs", kafka["poll-timeout-ms"])
                  .load())
        interval = self.config.get("headwater.speed.trigger-interval-sec")
        query = (stream.select("value").writeStream
                 .queryName(f"{self.config.app_id}-speed")
                 .option("checkpointLocation", self.config.checkpoint_uri("speed"))
                 .trigger(processingTime=f"{interval} seconds")
                 .foreachBatch(self._process_batch)
                 .start())
        log.info("speed layer: query on %s started (trigger %s s; without a checkpoint from %s)",
                 self.config.input_topic, interval, starting)
        return query

    def _process_batch(self, batch_df, batch_id: int) -> None:
        lines = batch_df.toArrow().column("value").to_pylist()
        if not lines:
            return
        while not self._model_ready.wait(1.0):
            if self._stopping.is_set():
                raise SpeedLayerStopped("speed layer stopped while waiting for a model")
        self.fold(lines, batch_id)

    def fold(self, lines: list[str | None], batch_id: int | None = None) -> int:
        """Parse, learn and publish one batch of input lines; the number of UPs published.

        Unparseable lines are skipped with a count: the batch layer's ingest records them in ``rejected``.
        """
        started = time.perf_counter()
        parsed = self.input_format.parse([line or "" for line in lines])
        # Published under the lock: a rebase cannot slip between learning and publishing.
        with self.state.lock:
            payloads, key = self.state.learn(parsed.table)
            for payload in payloads:
                self._producer.send_bytes(self.config.update_topic, encode_up(payload, self.state.base_version),
                                          key=key, partition=UPDATE_PARTITION)
            self._producer.flush()
        skipped = f" ({len(parsed.rejected)} unparseable lines skipped, first: {parsed.rejected[0][1]})" \
            if parsed.rejected else ""
        log.info("speed batch %s: folded %d events into %d updates in %.2f s%s", batch_id,
                 parsed.table.num_rows, len(payloads), time.perf_counter() - started, skipped)
        return len(payloads)

    # --- snapshots -------------------------------------------------------------------------------

    def _snapshot_loop(self) -> None:
        interval = self.config.get("headwater.speed.snapshot-interval-sec")
        while not self._stopping.wait(interval):
            try:
                self.snapshot()
            except Exception:  # a registry hiccup must not end the speed layer
                log.exception("speed snapshot failed; retrying in %s s", interval)

    def snapshot(self):
        """Register the current model with alias ``speed``; None when nothing changed since the last one.

        ``update_offset`` is the next update-topic offset the snapshot does not reflect; own UPs
        learned after it are in the snapshot too, and replaying them in order from there is harmless.
        """
        frozen = self.state.frozen()
        if frozen is None:
            return None
        model, base_version, position, changes = frozen
        started = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory(prefix="headwater-speed-") as tmp:
                model.save(Path(tmp))
                registered = registry.log_and_register(
                    self.config, Path(tmp), self.config.app.resolve("pyfunc")(),
                    tags={registry.TAG_LAYER: "speed", registry.TAG_BASE_VERSION: str(base_version),
                          registry.TAG_UPDATE_OFFSET: str(position)},
                    aliases=[registry.SPEED])
        except Exception:
            self.state.unfreeze(changes)
            raise
        log.info("speed snapshot: registered version %s (base %s, update offset %s) in %.1f s",
                 registered.version, base_version, position, time.perf_counter() - started)
        return registered


def run_speed(config: Config) -> None:
    """Run the speed layer until interrupted or its query fails."""
    layer = SpeedLayer(config).start()
    try:
        layer.await_termination()
    except KeyboardInterrupt:
        log.info("speed layer interrupted")
    finally:
        layer.stop()


__all__ = ["SpeedLayer", "SpeedLayerStopped", "run_speed"]
