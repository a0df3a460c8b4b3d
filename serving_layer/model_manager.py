"""The serving model behind an atomic reference: load from the registry, follow updates, hot-swap.

App-agnostic (Oryx's ``AbstractServingModelManager``): an app supplies a
:class:`headwater.api.ServingModel` class; this module owns the registry, the ``<id>.update`` tail
and the threads. A new model is built completely and then swapped in with one reference assignment,
so a request either sees the old model or the new one and never waits.

Start-up follows the registry's one rule (:func:`headwater.registry.resume_point`, which the speed
layer uses too): the ``speed`` snapshot built on the champion, else the champion, and the tail from
its ``update_offset``. ``UP`` messages go to ``model.apply_update``; a ``MODEL`` notice asks the one
loader thread for a load.

- One loader: loads never run in parallel, and notices that arrive during a load make one more load
  afterwards, which reads the alias then: the newest notice wins, and no older model is swapped in last.
- From the notice on, every UP is also kept, and the loaded model gets them before it is swapped in
  (under the lock that orders UPs, so none falls between).
- UPs carry the champion version they were computed on (``base``); a UP of another base (learned on
  the previous champion, or on the next one before this replica loaded it) is not applied, and counted.
- A model class with ``retain_recent(previous)`` keeps, in a new champion, what the served model learned
  from UPs and the new one lacks (ALS: users learned after the new champion's cut-off), until the
  speed layer's UPs on the new champion replace it: such a user does not answer 404 in between.
- Versions besides the champion (:mod:`serving_layer.loaded_versions`): the champion a new one replaces
  stays loaded as the previous one (at start, the one the alias history names), and a ``challenger``
  MODEL notice loads that alias (with the UPs computed on it between the notice and the load); each
  gets the UPs of its own base only. :meth:`ModelManager.require_model` answers with the version a
  request was routed to (:mod:`serving_layer.model_router`), else the champion.
- A champion notice for the version already served (the notice of the very promotion whose
  ``update_offset`` the replica started from) loads nothing: the champion is loaded once at start.
- Loads retry with back-off while the registry is unreachable or a download fails, so ``/ready``
  recovers by itself once MLflow is back. Whatever a record or a load raises, the served model and
  the manager's state stay as they were.

>>> class Echo:
...     version = 7
...     def apply_update(self, payload): self.last = payload
...     def ready_reason(self): return None
>>> manager = ModelManager(model_class=Echo)
>>> manager.ready_reason()
'no model is loaded yet'
>>> manager.swap(Echo(), base_version=7); manager.apply_payloads([["X", "u1", [1.0], None]], base=7)
>>> manager.model.last
['X', 'u1', [1.0], None]
>>> manager.apply_payloads([["X", "u1", [2.0], None]], base=6); manager.model.last  # another base: ignored
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
from serving_layer.loaded_versions import CHALLENGER, PREVIOUS, LoadedVersions, approximate_bytes
from serving_layer.prometheus_metrics import ServingMetrics

log = logging.getLogger(__name__)

# An UP from the update topic: (the champion version it was computed on, or None; its payload).
Update = tuple[int | None, Any]


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

    RETRY_MIN_SEC = 0.5
    RETRY_MAX_SEC = 5.0

    def __init__(self, config: Config | None = None, model_class=None, metrics: ServingMetrics | None = None):
        self.config = config
        self.model_class = model_class
        self.metrics = metrics or ServingMetrics()
        self.model = None
        self.base_version: int | None = None  # the champion the served model stands for
        self._status = "no model is loaded yet"
        self._pending: list[Update] | None = None  # UPs since the first notice of a load still to come
        self._lock = threading.Lock()  # orders UP application against swaps; readers never take it
        self._load_wanted = threading.Event()
        self._stopped = threading.Event()
        self._loader: threading.Thread | None = None
        self._tail = None
        max_loaded = config.get("headwater.serving.max-loaded-versions") if config is not None else 3
        self.versions = LoadedVersions(max_loaded)
        self._challenger_wanted = threading.Event()
        # the challenger announced and not loaded yet: its version and the UPs computed on it meanwhile
        self._challenger_pending: tuple[int, list[Update]] | None = None

    # --- reads --------------------------------------------------------------------------------
    def ready_reason(self) -> str | None:
        model = self.model
        if model is None:
            return self._status
        return model.ready_reason()

    def require_model(self):
        """The model the request was routed to (the champion unless ``?version`` or the split chose
        another), or a 503 that says why there is none yet."""
        from flask import g, has_app_context

        routed = g.get("headwater_model") if has_app_context() else None
        if routed is not None:
            return routed
        model = self.model
        reason = self._status if model is None else model.ready_reason()
        if reason is not None:
            raise ApiError(503, f"not ready: {reason}", reason=reason)
        return model

    def model_for(self, version: int):
        """The loaded model of ``version`` (the champion's or another's), or None."""
        if version == self.base_version and self.model is not None:
            return self.model
        return self.versions.get(version)

    def loaded_versions(self) -> dict[int, str]:
        """Version -> role (champion, previous, challenger) of every model in memory."""
        roles = self.versions.roles()
        if self.model is not None and self.base_version is not None:
            roles[self.base_version] = registry.CHAMPION
        return roles

    def _publish_memory(self) -> None:
        models = [(self.base_version, registry.CHAMPION, self.model)] if self.model is not None else []
        models += [(v, self.versions.roles().get(v, "?"), m) for v, m in self.versions.items()]
        self.metrics.set_loaded([(v, role, approximate_bytes(m)) for v, role, m in models])

    # --- writes -------------------------------------------------------------------------------
    def swap(self, model, base_version: int | None = None) -> None:
        """Make ``model`` the served one (fully built before this call); UPs of another base are ignored.
        The champion it replaces stays loaded as the previous one."""
        if self.model is not None and self.base_version is not None and base_version != self.base_version:
            self.versions.keep(self.base_version, PREVIOUS, self.model)
        self.versions.drop(base_version)
        self.model, self.base_version = model, base_version
        self._publish_memory()
        _return_freed_memory()
        self.metrics.swaps.inc()
        if getattr(model, "version", None) is not None:
            self.metrics.model_version.set(model.version)
        log.info("serving %r (champion version %s)", model, base_version)

    def apply_payloads(self, payloads: list[Any], base: int | None = None) -> None:
        """Apply UP payloads computed on champion ``base`` (None: unknown, applied to any model)."""
        self._apply([(base, payload) for payload in payloads])

    def _apply(self, updates: list[Update]) -> None:
        with self._lock:
            if self._pending is not None:
                self._pending.extend(updates)
            if self._challenger_pending is not None:
                version, kept = self._challenger_pending
                kept.extend(u for u in updates if u[0] == version)
            if self.model is not None:  # like Oryx: updates before any model have nothing to apply to
                self._apply_to(self.model, self.base_version, updates)
            for version, model in self.versions.items():  # the other versions: only UPs computed on them
                own = [u for u in updates if u[0] == version]
                if own:
                    self._apply_to(model, version, own)

    def _apply_to(self, model, base_version: int | None, updates: list[Update]) -> None:
        """Apply UPs in order (caller holds the lock); one of another base is counted and ignored, a bad
        one is counted and skipped, whatever it raises."""
        applied = 0
        for base, payload in updates:
            if base is not None and base_version is not None and base != base_version:
                self.metrics.ignored_updates.inc()
                continue
            try:
                model.apply_update(payload)
                applied += 1
            except Exception as exc:  # a bad message must not stop the tail or leave a half-made state
                self.metrics.bad_updates.inc()
                log.warning("skipping bad UP payload %.200r: %s: %s", payload, type(exc).__name__, exc)
        if applied:
            self.metrics.updated(applied)

    def on_records(self, records) -> None:
        """TopicTail callback: UPs in order; a champion's MODEL notice asks the loader for a load."""
        updates: list[Update] = []
        for record in records:
            message = decode_update(record.value)
            if message is None:
                self.metrics.bad_updates.inc()
            elif message.type is MessageType.UP:
                updates.append((message.base_version, message.payload))
            elif message.type is MessageType.BATCH:
                batch = message.payload
                self.metrics.add_prequential(batch.base_version, batch.events if batch.scores else 0, batch.scores)
                if batch.drift:
                    self.metrics.set_drift(batch.base_version, batch.drift)
            elif message.payload.alias == registry.CHAMPION:
                self._apply(updates)
                updates = []
                if message.payload.version == self.base_version and self.model is not None:
                    log.info("model notice: %s version %s, already served", message.payload.model_name,
                             message.payload.version)
                    continue
                log.info("model notice: %s version %s", message.payload.model_name, message.payload.version)
                self.request_load()
            elif message.payload.alias == registry.CHALLENGER:
                log.info("challenger notice: %s version %s", message.payload.model_name, message.payload.version)
                self._apply(updates)
                updates = []
                with self._lock:
                    if self.versions.version_of(CHALLENGER) != message.payload.version:
                        self._challenger_pending = (message.payload.version, [])
                self._challenger_wanted.set()
        if updates:
            self._apply(updates)

    def request_load(self) -> None:
        """Have the loader load the registry's model again; UPs from now on are kept for it."""
        with self._lock:
            if self._pending is None:
                self._pending = []
        self._load_wanted.set()

    # --- loading ------------------------------------------------------------------------------
    def load_from_registry(self) -> int | None:
        """Load the champion (or the speed snapshot built on it) and swap it in; retries with back-off
        while the registry or the download fails. Returns the update-topic offset to follow from, or
        None when there is no champion (or the manager stopped)."""
        delay, attempt = self.RETRY_MIN_SEC, 0
        while not self._stopped.is_set():
            attempt += 1
            try:
                point = registry.resume_point(self.config)
                if point is None:
                    self._no_champion()
                    return None
                model = self.model_class.from_registered(point.chosen, self.config)
            except Exception as exc:  # MLflow away, a download cut off: the next attempt may work
                self.metrics.load_failures.inc()
                log.warning("loading the %s model failed (attempt %d; retrying in %.1f s): %s: %s",
                            registry.CHAMPION, attempt, delay, type(exc).__name__, exc,
                            exc_info=attempt == 1)
                # no exception text here: /ready shows the status, and it may hold the registry's URI
                self._status = (f"loading the {registry.CHAMPION} model failed ({type(exc).__name__}, attempt "
                                f"{attempt}); retrying every {self.RETRY_MAX_SEC:g} s at most")
                self._stopped.wait(delay)
                delay = min(delay * 2, self.RETRY_MAX_SEC)
                continue
            log.info("loaded registry version %s (%s layer, champion %s)", point.chosen.version,
                     point.chosen.tags.get(registry.TAG_LAYER, "?"), point.champion_version)
            self._install(model, point.champion_version)
            # the live evaluation of this champion: a snapshot built on it holds the totals up to its offset
            from_snapshot = point.chosen.version != point.champion_version
            tag = point.chosen.tags.get(registry.TAG_PREQUENTIAL) if from_snapshot else None
            self.metrics.reset_prequential(point.champion_version, *prequential.parse_totals_tag(tag))
            return point.update_offset
        return None

    def load_challenger(self) -> int | None:
        """Load what the ``challenger`` alias names (once; a failure is logged, the next notice retries)."""
        try:
            found = registry.download_alias(self.config, registry.CHALLENGER)
            if found is None or found.version == self.base_version:
                return None
            if self.versions.version_of(CHALLENGER) != found.version:
                model = self.model_class.from_registered(found, self.config)
                with self._lock:   # with the UPs the speed layer computed on it while it loaded
                    pending, self._challenger_pending = self._challenger_pending, None
                    if pending is not None and pending[0] == found.version:
                        self._apply_to(model, found.version, pending[1])
                    self.versions.keep(found.version, CHALLENGER, model)
                log.info("loaded challenger version %s", found.version)
                self._publish_memory()
            return found.version
        except Exception as exc:  # the champion serves on
            self.metrics.load_failures.inc()
            log.warning("loading the challenger failed: %s: %s", type(exc).__name__, exc)
            return None

    def load_previous(self) -> int | None:
        """At start: the champion the current one replaced (the alias history's last move), so that
        ``?version`` and a rollback find it loaded; from here on it gets the UPs computed on it."""
        from headwater import promotion

        try:
            replaced = None if self.model is None else promotion.replaced_champion(self.config, self.base_version)
            if replaced is None:
                return None
            version = replaced[0]
            if self.versions.get(version) is None:
                model = self.model_class.from_registered(registry.download_version(self.config, version), self.config)
                self.versions.keep(version, PREVIOUS, model)
                log.info("loaded the previous champion, version %s", version)
                self._publish_memory()
            return version
        except Exception as exc:  # the champion serves on; ?version=<previous> is a 404 meanwhile
            self.metrics.load_failures.inc()
            log.warning("loading the previous champion failed: %s: %s", type(exc).__name__, exc)
            return None

    def _install(self, model, champion_version: int) -> None:
        with self._lock:
            retain = getattr(model, "retain_recent", None)
            if retain is not None and self.model is not None and type(self.model) is type(model):
                carried = retain(self.model)
                if carried:
                    log.info("kept %d ids learned since the last load that the new model lacks", carried)
            if self._pending:
                self._apply_to(model, champion_version, self._pending)
            # another notice came during this load: the load it asked for needs the UPs kept so far too
            # (those after that notice; the base check drops the others)
            if not self._load_wanted.is_set():
                self._pending = None
            self.swap(model, champion_version)

    def _no_champion(self) -> None:
        self._status = f"no model has the registry alias {registry.CHAMPION!r} yet"
        log.info(self._status)
        with self._lock:
            if not self._load_wanted.is_set():
                self._pending = None

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Load the registry's model, then tail the update topic from its offsets (in a background thread)."""
        self._loader = threading.Thread(target=self._run_loader, daemon=True, name="model-loader")
        self._loader.start()

    def _run_loader(self) -> None:
        from headwater.topic_tail import TopicTail

        offset = self.load_from_registry()
        if self._stopped.is_set():
            return
        self.load_challenger()
        self.load_previous()
        self._tail = TopicTail(self.config.kafka, self.config.update_topic,
                               self.on_records, start={0: offset or 0}, poll_timeout_ms=200).start()
        log.info("following %s from offset %s", self.config.update_topic, offset or 0)
        while not self._stopped.is_set():
            if self._load_wanted.wait(0.5):
                self._load_wanted.clear()
                self.load_from_registry()
            if self._challenger_wanted.is_set():
                self._challenger_wanted.clear()
                self.load_challenger()

    def stop(self) -> None:
        self._stopped.set()
        if self._tail is not None:
            self._tail.stop()
            self._tail = None
        if self._loader is not None:
            self._loader.join(timeout=10)
