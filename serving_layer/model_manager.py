"""The serving model behind an atomic reference: load from the registry, follow updates, hot-swap.

App-agnostic (Oryx's ``AbstractServingModelManager``): an app supplies a
:class:`headwater.api.ServingModel` class; this module owns the registry, the ``<id>.update`` tail
and the threads. A new model is built completely and then swapped in with one reference assignment,
so a request either sees the old model or the new one and never waits.

Start-up follows the registry's one rule (:func:`headwater.registry.resume_point`, which the speed
layer uses too): the ``speed`` snapshot built on the champion, else the champion, and the tail from
its ``update_offset``. ``UP`` messages go to ``model.apply_update``; a ``MODEL`` notice loads the new
champion in the background, replays the UPs that arrived meanwhile, and swaps.

>>> class Echo:
...     version = 7
...     def apply_update(self, payload): self.last = payload
...     def ready_reason(self): return None
>>> manager = ModelManager(model_class=Echo)
>>> manager.ready_reason()
'no model is loaded yet'
>>> manager.swap(Echo()); manager.apply_payloads([["X", "u1", [1.0], None]]); manager.model.last
['X', 'u1', [1.0], None]
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from typing import Any

from headwater import prequential, registry
from headwater.config import Config
from headwater.messages import MessageType, decode_update
from serving_layer.errors import ApiError
from serving_layer.prometheus_metrics import ServingMetrics

log = logging.getLogger(__name__)


def _return_freed_memory() -> None:
    """Give the heap freed by a model load (parsed JSON, the old model) back to the OS.

    Measured on a 1M-item model (bench/serving_als.py): RSS 535 MB -> 490 MB.
    """
    libc = ctypes.util.find_library("c")
    if libc:
        try:
            ctypes.CDLL(libc).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc
            pass


class ModelManager:
    """Holds the current model of one app and keeps it fresh from the update topic."""

    def __init__(self, config: Config | None = None, model_class=None, metrics: ServingMetrics | None = None):
        self.config = config
        self.model_class = model_class
        self.metrics = metrics or ServingMetrics()
        self.model = None
        self._status = "no model is loaded yet"
        self._loading = False
        self._pending: list[Any] = []
        self._lock = threading.Lock()  # orders UP application against loads; readers never take it
        self._tail = None
        self._stopped = threading.Event()

    # --- reads --------------------------------------------------------------------------------
    def ready_reason(self) -> str | None:
        model = self.model
        if model is None:
            return self._status
        return model.ready_reason()

    def require_model(self):
        """The current model, or a 503 that says why there is none yet."""
        model = self.model
        reason = self._status if model is None else model.ready_reason()
        if reason is not None:
            raise ApiError(503, f"not ready: {reason}", reason=reason)
        return model

    # --- writes -------------------------------------------------------------------------------
    def swap(self, model) -> None:
        """Make ``model`` the served one (fully built before this call)."""
        self.model = model
        _return_freed_memory()
        self.metrics.swaps.inc()
        if getattr(model, "version", None) is not None:
            self.metrics.model_version.set(model.version)
        log.info("serving %r", model)

    def apply_payloads(self, payloads: list[Any]) -> None:
        with self._lock:
            if self._loading:
                self._pending.extend(payloads)
            if self.model is None:
                return  # like Oryx: updates before any model have nothing to apply to
            self._apply_to(self.model, payloads)

    def _apply_to(self, model, payloads: list[Any]) -> None:
        """Apply UP payloads in order (caller holds the lock); a bad one is counted and skipped."""
        for payload in payloads:
            try:
                model.apply_update(payload)
            except (ValueError, TypeError, IndexError, KeyError) as exc:
                self.metrics.bad_updates.inc()
                log.warning("skipping bad UP payload %.200r: %s", payload, exc)
        if payloads:
            self.metrics.updated(len(payloads))

    def on_records(self, records) -> None:
        """TopicTail callback: UP payloads in order; a MODEL notice starts a background load."""
        payloads = []
        for record in records:
            message = decode_update(record.value)
            if message is None:
                self.metrics.bad_updates.inc()
            elif message.type is MessageType.UP:
                payloads.append(message.payload)
            elif message.type is MessageType.BATCH:
                record = message.payload
                self.metrics.add_prequential(record.base_version, record.events if record.scores else 0,
                                             record.scores)
            else:
                self.apply_payloads(payloads)
                payloads = []
                log.info("model notice: %s version %s", message.payload.model_name, message.payload.version)
                threading.Thread(target=self.load_from_registry, daemon=True, name="model-load").start()
        if payloads:
            self.apply_payloads(payloads)

    def load_from_registry(self) -> int | None:
        """Load the champion (or the speed snapshot built on it), swap it in; returns the update-topic offset."""
        with self._lock:
            self._loading, self._pending = True, []
        try:
            point = registry.resume_point(self.config)
            if point is None:
                self._status = f"no model has the registry alias {registry.CHAMPION!r} yet"
                log.info(self._status)
                with self._lock:
                    self._loading = False
                return None
            model = self.model_class.from_registered(point.chosen, self.config)
            log.info("loaded registry version %s (%s layer)", point.chosen.version,
                     point.chosen.tags.get(registry.TAG_LAYER, "?"))
        except Exception as exc:
            self._status = f"loading the {registry.CHAMPION} model failed: {exc}"
            log.exception(self._status)
            with self._lock:
                self._loading = False
            return None
        with self._lock:
            # UPs that arrived while loading, with the same bad-payload guard as live ones
            self._apply_to(model, self._pending)
            self._loading, self._pending = False, []
            self.swap(model)
        # the live evaluation of this champion: a snapshot built on it holds the totals up to its offset
        from_snapshot = point.chosen.version != point.champion_version
        tag = point.chosen.tags.get(registry.TAG_PREQUENTIAL) if from_snapshot else None
        self.metrics.reset_prequential(point.champion_version, *prequential.parse_totals_tag(tag))
        return point.update_offset

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Load the registry's model, then tail the update topic from its offsets (in a background thread)."""
        threading.Thread(target=self._start, daemon=True, name="model-manager-start").start()

    def _start(self) -> None:
        from headwater.topic_tail import TopicTail

        offset = self.load_from_registry()
        if self._stopped.is_set():
            return
        self._tail = TopicTail(self.config.kafka, self.config.update_topic,
                               self.on_records, start={0: offset or 0}, poll_timeout_ms=200).start()
        log.info("following %s from offset %s", self.config.update_topic, offset or 0)

    def stop(self) -> None:
        self._stopped.set()
        if self._tail is not None:
            self._tail.stop()
            self._tail = None
