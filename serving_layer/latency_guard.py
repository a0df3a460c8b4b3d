"""The latency guard ("better wrong than late"): a new champion whose p99 is a multiple of its predecessor's is
rolled back.

Each replica keeps the latencies of the last ``headwater.rollout.latency-guard.window`` reads the
champion answered. When a new champion is swapped in, the p99 of the one it replaces (over its last
full window) becomes the baseline; once the new one has a full window of its own, a p99 above
``multiple`` times the baseline moves ``champion`` back (:func:`headwater.promotion.rollback`, cause
``latency guard``), once, and only while the registry's champion is still the version measured (so
several replicas that all see it roll back one step, not several).

>>> guard = LatencyGuard(window=100, multiple=3.0)
>>> guard.swapped(1); guard.observe_many(1, [0.010] * 100)
>>> guard.swapped(2); guard.observe_many(2, [0.050] * 99)
>>> guard.verdict()                        # not a full window yet
>>> guard.observe_many(2, [0.050])
>>> guard.verdict()
(2, 1, 0.05, 0.01)
"""
from __future__ import annotations

import collections
import logging
import threading

import numpy as np

log = logging.getLogger(__name__)

CAUSE_LATENCY = "latency guard"


class LatencyGuard:
    """Per-replica p99 of the champion against its predecessor's."""

    def __init__(self, window: int = 1000, multiple: float = 3.0):
        self.window, self.multiple = window, multiple
        self._lock = threading.Lock()
        self._version: int | None = None
        self._recent: collections.deque[float] = collections.deque(maxlen=window)
        self._baseline: tuple[int, float] | None = None   # (previous version, its p99)
        self._acted = False

    def swapped(self, version: int | None) -> None:
        """A new champion is served; the old one's p99 (over a full window) is the baseline."""
        with self._lock:
            if version == self._version:
                return
            if self._version is not None and len(self._recent) == self.window:
                self._baseline = (self._version, float(np.percentile(self._recent, 99)))
            else:
                self._baseline = None
            self._version, self._acted = version, False
            self._recent.clear()

    def observe_many(self, version: int | None, seconds: list[float]) -> None:
        with self._lock:
            if version == self._version:
                self._recent.extend(seconds)

    def verdict(self) -> tuple[int, int, float, float] | None:
        """(slow version, previous version, its p99, the previous p99) once the guard should act, else None."""
        with self._lock:
            if self._acted or self._baseline is None or self._version is None or len(self._recent) < self.window:
                return None
            p99 = float(np.percentile(self._recent, 99))
            previous, baseline = self._baseline
            if p99 <= self.multiple * baseline:
                return None
            self._acted = True
            return self._version, previous, p99, baseline


def init_app(app, manager, config, clock) -> LatencyGuard:
    """Time the champion's reads of the app's endpoints; roll back when the guard says so."""
    from flask import g, request

    from headwater import promotion, registry
    from serving_layer.model_router import UNROUTED

    section = config.section("headwater.rollout.latency-guard")
    guard = LatencyGuard(section["window"], section["multiple"])

    @app.before_request
    def _start():
        g.headwater_guard_started = clock()

    @app.after_request
    def _observe(response):
        started = g.pop("headwater_guard_started", None)
        if started is None or request.blueprint in (None, *UNROUTED) or "headwater_version" in g:
            return response
        guard.swapped(manager.base_version)
        guard.observe_many(manager.base_version, [clock() - started])
        found = guard.verdict()
        if found is not None:
            threading.Thread(target=_roll_back, args=(found,), daemon=True, name="latency-guard").start()
        return response

    def _roll_back(found) -> None:
        slow, previous, p99, baseline = found
        try:
            if registry.get_alias_version(config, registry.CHAMPION) != slow:
                return  # another replica (or a person) moved it already
            log.warning("latency guard: champion version %s answers at p99 %.1f ms, %.1f x version %s's %.1f ms: "
                        "rolling back", slow, p99 * 1000, p99 / baseline, previous, baseline * 1000)
            promotion.rollback(config, cause=CAUSE_LATENCY,
                               reason=f"p99 {p99 * 1000:.1f} ms > {guard.multiple:g} x {baseline * 1000:.1f} ms of "
                                      f"version {previous} over {guard.window} reads")
        except Exception:  # the champion serves on; the operator can still roll back by hand
            log.exception("latency guard: rolling back version %s failed", slow)

    return guard
