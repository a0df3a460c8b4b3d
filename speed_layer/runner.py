"""The speed layer's runner: Kafka micro-batches in, UP messages out, each input event folded in exactly once.

Generic over apps, as Oryx's SpeedLayer is over its SpeedModelManagers: the app names a class
(``App.speed``) that follows :class:`headwater.api.SpeedModel`, and this module owns Spark, Kafka,
MLflow and the threads (the models sit in a :class:`~speed_layer.model_state.ModelState`):

- start-up follows the registry's resume rule (:func:`headwater.registry.resume_point`), as the
  serving layer does: the ``speed`` snapshot built on the champion, else the champion, and the
  update topic from its ``update_offset``. The BATCH records after it say which input events this
  layer already published; they are re-folded silently, batch by batch as recorded, so the model is
  the one that published them, and the Structured Streaming query starts right after them;
- each micro-batch is scored by the live model and the champion alone (prequential, before
  learning), folded in, and its UPs and BATCH record published (:mod:`speed_layer.publisher`);
- a MODEL notice rebases on the new champion: the events after the champion's data cut-off
  (``input_offsets`` tag) are folded into it and published with the new base version, so users and
  items learned since the cut-off survive the switch (Oryx's "retain recent");
- beside the champion, the champion it replaced and the ``challenger`` learn every micro-batch too and
  publish their UPs under their own versions; sequential tests on the paired per-event losses move
  ``champion`` back when a new one is worse, or to a better challenger (:mod:`speed_layer.rollout`,
  ``headwater.rollout.*``); BATCH records and snapshots keep them, so a restart resumes the tests;
- snapshots register the live model every ``headwater.speed.snapshot-interval-sec`` (alias ``speed``,
  tags ``base_version``, ``update_offset``, ``input_offsets`` and the prequential totals).

Until a champion exists there is nothing to fold into: input stays in Kafka and the query starts
once a model is there (at the champion's cut-off). :func:`speed_layer.supervisor.run_speed` restarts the layer after a
failure (a broker that stays away, an unpublished batch), which the exactly-once start-up makes safe.
"""
from __future__ import annotations

import json
import logging
import threading
import time

import numpy as np
import pyarrow as pa

from headwater import prequential, registry
from headwater.config import Config
from headwater.messages import BatchRecord, MessageType, decode_update
from speed_layer.drift_watch import DriftWatch
from speed_layer.input_reading import input_lines, input_pieces, start_input_query
from speed_layer.live_evaluation import LiveEvaluation
from speed_layer.model_state import ModelState
from speed_layer.publisher import UPDATE_PARTITION, UpdatePublisher
from speed_layer.rollout import CHALLENGER, RolloutGuard
from speed_layer.snapshots import register_snapshot

log = logging.getLogger(__name__)


class SpeedLayer:
    """One speed layer: ``start()`` returns at once (the query starts once a model is loaded); ``stop()`` ends it."""

    def __init__(self, config: Config, model_class: type | None = None):
        self.config = config
        self.model_class = model_class or config.app.resolve("speed")
        self.input_format = config.app.make_input_format(config)
        self.kafka = config.kafka
        self.state = ModelState()
        self.evaluation = LiveEvaluation(config)
        self.drift = DriftWatch.from_config(config)
        self.rollout = RolloutGuard(config)
        self._stopping = threading.Event()
        self._model_ready = threading.Event()
        self._query_started = threading.Event()
        self._failure: BaseException | None = None
        self._tail = None
        self._query = None
        self._producer = None
        self._publisher: UpdatePublisher | None = None
        self._recorded: list[BatchRecord] = []  # BATCH records of the base met while catching up
        self._notices: list[int] = []           # champion versions announced while catching up
        self._threads: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> SpeedLayer:
        from headwater.kafka_admin import ensure_topics, true_end_offsets
        from headwater.kafka_producer import LineProducer

        ensure_topics(self.kafka, {
            self.config.input_topic: self.config.get("headwater.kafka.input-partitions"),
            self.config.update_topic: self.config.get("headwater.kafka.update-partitions"),
        })
        # where a champion without a recorded cut-off starts: what exists when the layer starts
        self._input_ends_at_start = true_end_offsets(self.kafka, self.config.input_topic)
        self._producer = LineProducer(self.kafka)
        self._publisher = UpdatePublisher(self._producer, self.config.update_topic,
                                          self.config.get("headwater.kafka.max-message-bytes"))
        self._spawn("speed-start", self._start_when_a_model_exists)
        self._spawn("speed-snapshots", self._snapshot_loop)
        self._spawn("speed-live-evaluation", self._evaluation_loop)
        return self

    def stop(self) -> None:
        from headwater.spark import stop_between_batches

        self._stopping.set()
        if self._query is not None:
            try:
                stop_between_batches(self._query)
            except Exception:  # the query may have failed already; stopping is best effort
                log.debug("speed query stop failed", exc_info=True)
        if self._tail is not None:
            self._tail.stop()
        for thread in self._threads:
            thread.join(timeout=30)
        if self._producer is not None:
            self._producer.close()
        log.info("speed layer stopped")

    def await_termination(self, timeout: float | None = None) -> bool:
        """Block while the layer runs; raises the error that ended the query or the start-up."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._query_started.wait(0.5):
            if self._failure is not None:
                raise self._failure
            if self._stopping.is_set() or (deadline is not None and time.monotonic() > deadline):
                return self._stopping.is_set()
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._query.awaitTermination(left)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """True once a model is loaded, its published batches re-folded and the query started."""
        return self._model_ready.wait(timeout)

    @property
    def query(self):
        """The Structured Streaming query (``lastProgress``, ``exception()``, ...), once started."""
        return self._query

    def _spawn(self, name: str, target) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # --- start-up --------------------------------------------------------------------------------

    def _start_when_a_model_exists(self) -> None:
        try:
            point = self._wait_for_resume_point()
            if point is None:
                return
            self._resume(point)
            self._query = start_input_query(self.config, self.state.covered, self._process_batch)
            self._model_ready.set()
            self._query_started.set()
            self._load_challenger()   # a challenger set while the layer was down (none: nothing to do)
            if any(version != self.state.base_version for version in self._notices):
                self._rebase()
        except BaseException as exc:  # noqa: BLE001 (reported by await_termination)
            self._failure = exc
            log.exception("speed layer: start-up failed")

    def _wait_for_resume_point(self):
        poll = max(1.0, self.config.get("headwater.speed.trigger-interval-sec"))
        attempts = 0
        while not self._stopping.is_set():
            try:
                point = registry.resume_point(self.config)
            except Exception:  # the registry may be starting up: keep trying
                log.exception("speed layer: reading the registry failed; retrying in %s s", poll)
                point = None
            if point is not None:
                return point
            if attempts % 60 == 0:
                log.info("speed layer: no %r model registered for %s yet; waiting (input stays in Kafka and is "
                         "folded in once a model is there)", registry.CHAMPION, self.config.app_id)
            attempts += 1
            self._stopping.wait(poll)
        return None

    def _resume(self, point) -> None:
        """Install the chosen version, catch up with the update topic, re-fold what was published on it."""
        from headwater.topic_tail import TopicTail

        chosen, champion = point.chosen, point.champion
        live = self.model_class.from_registered(chosen, self.config)
        alone = live.copy() if chosen.version == champion.version else \
            self.model_class.from_registered(champion, self.config)
        covered = registry.parse_offsets_tag(chosen.tags.get(registry.TAG_INPUT_OFFSETS)) or self._input_ends_at_start
        self.state.install(live, alone, champion.version, covered, point.update_offset)
        self.evaluation.reset(champion.version,
                              chosen.tags.get(registry.TAG_PREQUENTIAL) if chosen.version != champion.version else None)
        self.drift.reset(champion.version, registry.run_json(self.config, champion.run_id,
                                                             registry.DRIFT_PROFILE_ARTIFACT))
        log.info("speed layer: loaded %s version %s (%s layer, base %s) covering input %s; following %s from %s",
                 chosen.name, chosen.version, chosen.tags.get(registry.TAG_LAYER, "?"), champion.version, covered,
                 self.config.update_topic, point.update_offset)
        self._tail = TopicTail(self.kafka, self.config.update_topic, self._on_update_records,
                               start={UPDATE_PARTITION: point.update_offset},
                               poll_timeout_ms=self.config.get("headwater.kafka.poll-timeout-ms"),
                               name="speed-update-tail").start()
        while not self._stopping.is_set() and not self._tail.caught_up():
            self._stopping.wait(0.2)
        recorded, self._recorded = self._recorded, None
        for record in recorded:
            self._refold_batch(self.state.covered, record.input_offsets)
            self.evaluation.add(record.base_version, record.events, record.scores)
        self.state.published(max(point.update_offset, self._tail.positions.get(UPDATE_PARTITION, 0)))
        log.info("speed layer: re-folded %d published batches; input covered up to %s", len(recorded),
                 self.state.covered)
        # the versions that learned beside the champion, as the last published batch (else the snapshot) left them
        kept = chosen.tags.get(registry.TAG_ROLLOUT)
        beside = recorded[-1].rollout if recorded else None if kept is None else json.loads(kept)
        with self.state.lock:
            self.rollout.resume(self.state, beside, lambda version: self._load_beside(
                registry.download_version(self.config, version), publish=False))

    def _on_update_records(self, records) -> None:
        for record in records:
            message = decode_update(record.value)
            if message is None:
                continue
            if message.type is MessageType.BATCH and self._recorded is not None \
                    and message.payload.base_version == self.state.base_version:
                self._recorded.append(message.payload)
            elif message.type is MessageType.MODEL and message.payload.alias == registry.CHALLENGER \
                    and self._model_ready.is_set():
                self._spawn("speed-challenger", self._load_challenger)
            elif message.type is MessageType.MODEL and message.payload.alias == registry.CHAMPION:
                if not self._model_ready.is_set():
                    self._notices.append(message.payload.version)
                elif message.payload.version != self.state.base_version:
                    try:
                        self._rebase()
                    except Exception:  # keep following: the next notice (or a restart) loads it
                        log.exception("speed layer: rebasing on champion version %s failed", message.payload.version)

    def _rebase(self) -> None:
        """Move to the registry's current champion and fold into it the events after its data cut-off."""
        champion = registry.download_alias(self.config, registry.CHAMPION)
        if champion is None or champion.version == self.state.base_version:
            return
        # loaded outside the lock, so micro-batches go on meanwhile
        live = self.model_class.from_registered(champion, self.config)
        alone = live.copy()
        cutoff = registry.parse_offsets_tag(champion.tags.get(registry.TAG_INPUT_OFFSETS))
        profile = registry.run_json(self.config, champion.run_id, registry.DRIFT_PROFILE_ARTIFACT)
        with self.state.lock:
            now = dict(self.state.covered)
            self.rollout.start(self.state, champion.version)
            self.state.install(live, alone, champion.version, cutoff or now, self.state.update_offset)
            self.evaluation.reset(champion.version, None)
            self.drift.reset(champion.version, profile)
            self._fold_range(cutoff or now, now, publish=True)
        log.info("speed layer: rebased on champion version %s; re-folded the input from its cut-off %s to %s",
                 champion.version, cutoff, now)

    def _load_challenger(self) -> None:
        """The ``challenger`` alias's version, learning beside the champion from now on (and tested against it
        with ``headwater.rollout.auto-promote``)."""
        try:
            found = registry.download_alias(self.config, registry.CHALLENGER)
            if found is None or self.rollout.versions().get(found.version) == CHALLENGER:
                return
            with self.state.lock:
                if found.version != self.state.base_version:
                    model = self._load_beside(found, publish=True)
                    self.rollout.start_challenge(self.state, model, found.version)
        except Exception:  # the champion serves on; the next challenger notice (or a restart) tries again
            log.exception("speed layer: loading the challenger failed")

    def _load_beside(self, registered, publish: bool):
        """A version to learn beside the champion, brought up to where the champion stands: the input after its
        data cut-off folded in, its UPs published under its own version (``publish``; not when they were
        published before a restart). Under the state lock."""
        model = self.model_class.from_registered(registered, self.config)
        cutoff = registry.parse_offsets_tag(registered.tags.get(registry.TAG_INPUT_OFFSETS)) or self.state.covered
        for lines, _ in input_pieces(self.config, cutoff, self.state.covered):
            payloads = model.learn_many(self.input_format.parse([line or "" for line in lines]).table)
            next_offset = self._publisher.publish({registered.version: payloads}, None) if publish else None
            if next_offset is not None:
                self.state.published(next_offset)
        return model

    def _refold_batch(self, starts: dict[int, int], ends: dict[int, int]) -> None:
        """Fold, without publishing, one micro-batch this layer published before a restart, as it was folded:
        the same records in the same order (partition, then offset, as the Kafka source delivers them)."""
        lines = input_lines(self.config, starts, ends)
        if lines:
            self._fold_lines(lines, ends, publish=False, score=False)

    def _fold_range(self, starts: dict[int, int], ends: dict[int, int], publish: bool) -> None:
        """Fold into the champion the input records between two positions; ``publish`` sends their UPs and
        BATCH records."""
        for lines, end in input_pieces(self.config, starts, ends):
            self._fold_lines(lines, end, publish=publish, score=False)

    # --- micro-batches ---------------------------------------------------------------------------

    def _process_batch(self, batch_df, batch_id: int) -> None:
        if self._stopping.is_set():
            return  # the next start resumes from the snapshot and BATCH records, not from this query
        records = batch_df.toArrow()
        partitions = records.column("partition").to_numpy(zero_copy_only=False)
        offsets = records.column("offset").to_numpy(zero_copy_only=False)
        # a rebase may have moved the live model past where the query stands: those events are in it already
        covered = self.state.covered
        fresh = offsets >= np.array([covered.get(int(p), 0) for p in partitions], dtype=np.int64).reshape(-1)
        if not fresh.any():
            return
        ends = {int(p): int(offsets[fresh & (partitions == p)].max()) + 1 for p in np.unique(partitions[fresh])}
        lines = records.column("value").filter(pa.array(fresh)).to_pylist()
        self.fold(lines, ends, batch_id)

    def fold(self, lines: list[str | None], ends: dict[int, int], batch_id: int | None = None) -> int:
        """Score, learn and publish one micro-batch whose input ends at ``ends``; the number of UPs published."""
        started = time.perf_counter()
        published, parsed = self._fold_lines(lines, ends, publish=True, score=True)
        skipped = f" ({len(parsed.rejected)} unparseable lines skipped, first: {parsed.rejected[0][1]})" \
            if parsed.rejected else ""
        log.info("speed batch %s: folded %d events into %d updates in %.2f s%s", batch_id, parsed.table.num_rows,
                 published, time.perf_counter() - started, skipped)
        return published

    def _fold_lines(self, lines, ends: dict[int, int], publish: bool, score: bool):
        """Parse, (score,) learn and (publish) under the lock, so no rebase or snapshot slips in between."""
        parsed = self.input_format.parse([line or "" for line in lines])
        with self.state.lock:
            scored = (self.state.score(parsed.table)
                      if score and parsed.table.num_rows and hasattr(self.state.live, "score_many") else {})
            beside = {}
            if score and parsed.table.num_rows:
                # the versions beside the champion learn the same events, scored first: their live metric goes
                # out beside the champion's, their UPs under their own versions
                self._guarded("rollout test", self.rollout.observe, self.state, parsed.table, scored.get("live"))
                scored.update(self.rollout.scores if scored else {})
                beside = self.rollout.payloads
            scores = prequential.summarize(scored) if scored else {}
            payloads = self.state.learn(parsed.table, ends)
            if not publish:
                return 0, parsed
            drift = self._guarded("drift check", self.drift.add, parsed.table, self.state.live) if score else None
            record = BatchRecord(self.state.base_version, dict(self.state.covered), parsed.table.num_rows, scores,
                                 drift=drift, rollout=self.rollout.records())
            next_offset = self._publisher.publish({self.state.base_version: payloads, **beside}, record)
            if next_offset is not None:
                self.state.published(next_offset)
            self.evaluation.add(record.base_version, record.events if scores else 0, scores)
        return len(payloads), parsed

    @staticmethod
    def _guarded(what: str, action, *args):
        """Run a watcher of the micro-batch (rollout test, drift check); its failure never stops the fold."""
        try:
            return action(*args)
        except Exception:
            log.exception("speed layer: the %s failed on this micro-batch; the batch is folded all the same", what)
            return None

    # --- snapshots and live evaluation -----------------------------------------------------------

    def _snapshot_loop(self) -> None:
        interval = self.config.get("headwater.speed.snapshot-interval-sec")
        while not self._stopping.wait(interval):
            try:
                self.snapshot()
            except Exception:  # a registry hiccup must not end the speed layer
                log.exception("speed snapshot failed; retrying in %s s", interval)

    def _evaluation_loop(self) -> None:
        stopping = False
        while not stopping:   # once more after the stop: the figures since the last flush are logged too
            stopping = self._stopping.wait(5.0)
            try:
                self.evaluation.flush()
                self.drift.log_to_mlflow(self.config)
            except Exception:  # MLflow away: the totals stay and the next flush logs them
                log.warning("speed layer: logging the live evaluation to MLflow failed", exc_info=True)

    def snapshot(self):
        """Register the live model with alias ``speed``; None when nothing changed since the last one."""
        with self.state.lock:
            frozen = self.state.frozen()
            beside = self.rollout.records()
        if frozen is None:
            return None
        try:
            return register_snapshot(self.config, frozen, self.evaluation, beside)
        except Exception:
            self.state.unfreeze(frozen.changes)
            raise


__all__ = ["SpeedLayer"]
