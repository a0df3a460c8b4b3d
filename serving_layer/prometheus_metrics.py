"""Prometheus metrics of one serving app: requests, latency, model version and freshness.

Each Flask app gets its own registry (tests build many apps in one process), served at /metrics.

>>> metrics = ServingMetrics()
>>> metrics.observe("als.recommend", "GET", 200, 0.004)
>>> b'headwater_requests_total{endpoint="als.recommend",method="GET",status="200"} 1.0' in metrics.render()
True
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from headwater import prequential

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RecentCounts:
    """Counts per ``bucket_sec`` over the last ``buckets`` intervals (the console's update-rate chart).

    >>> recent = RecentCounts(bucket_sec=10, buckets=3)
    >>> recent.add(5, now=100.0); recent.add(2, now=105.0); recent.add(1, now=121.0)
    >>> recent.series(now=125.0)
    [(100, 7), (110, 0), (120, 1)]
    """

    def __init__(self, bucket_sec: int = 10, buckets: int = 30):
        self.bucket_sec = bucket_sec
        self._counts: deque[list[int]] = deque(maxlen=buckets)  # [bucket start, count]
        self._lock = threading.Lock()

    def add(self, count: int, now: float | None = None) -> None:
        start = int((time.time() if now is None else now) // self.bucket_sec * self.bucket_sec)
        with self._lock:
            if self._counts and self._counts[-1][0] == start:
                self._counts[-1][1] += count
            else:
                self._counts.append([start, count])

    def series(self, now: float | None = None) -> list[tuple[int, int]]:
        """(bucket start, count) for every bucket of the window ending now, empty ones included."""
        last = int((time.time() if now is None else now) // self.bucket_sec * self.bucket_sec)
        with self._lock:
            counts = {start: count for start, count in self._counts}
        first = last - (self._counts.maxlen - 1) * self.bucket_sec
        return [(t, counts.get(t, 0)) for t in range(first, last + 1, self.bucket_sec)]


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("headwater_requests", "HTTP requests answered",
                                ["endpoint", "method", "status"], registry=self.registry)
        self.latency = Histogram("headwater_request_seconds", "time to answer a request", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.model_version = Gauge("headwater_model_version", "registry version of the served model",
                                   registry=self.registry)
        self.updates = Counter("headwater_updates_applied", "UP messages applied to the served model",
                               registry=self.registry)
        self.bad_updates = Counter("headwater_updates_skipped", "update messages that could not be applied",
                                   registry=self.registry)
        self.ignored_updates = Counter("headwater_updates_ignored",
                                       "UP messages computed on another champion version than the served one's",
                                       registry=self.registry)
        self.load_failures = Counter("headwater_model_load_failures",
                                     "model loads from the registry that failed (each is retried)",
                                     registry=self.registry)
        self.swaps = Counter("headwater_model_swaps", "models loaded and swapped in", registry=self.registry)
        self._last_update = Gauge("headwater_last_update_age_seconds",
                                  "seconds since the last update message was applied (-1: none yet)",
                                  registry=self.registry)
        self._last_update_time: float | None = None
        self._last_update.set_function(self._age)
        self.prequential = Gauge("headwater_prequential", "live evaluation of each live version: each event "
                                 "scored before it was learned, by the live model (batch + speed) and by the "
                                 "champion alone (RMSE, accuracy, hit rate@10, mean distance, ...)",
                                 ["version", "model", "figure"], registry=self.registry)
        self.prequential_events = Gauge("headwater_prequential_events", "events in the live evaluation",
                                        registry=self.registry)
        self._prequential_base: int | None = None
        self._prequential_events = 0
        self._prequential_totals: dict = {}
        self.model_memory = Gauge("headwater_model_memory_bytes", "approximate memory held by each loaded model "
                                  "version (role: champion, previous, challenger)", ["version", "role"],
                                  registry=self.registry)
        self.loaded = Gauge("headwater_loaded_versions", "model versions held in memory", registry=self.registry)
        self.drift_alarm = Gauge("headwater_drift_alarm", "1 when the last window of live input drifted from the "
                                 "version's training profile (speed layer, calibrated per window)", ["version"],
                                 registry=self.registry)
        self.drift_score = Gauge("headwater_drift_score", "-log10 of a feature's Holm-adjusted drift p-value in the "
                                 "last window", ["version", "feature"], registry=self.registry)
        self.drift_p_value = Gauge("headwater_drift_p_value", "a feature's Holm-adjusted drift p-value in the last "
                                   "window", ["version", "feature"], registry=self.registry)
        self.drift_reports: dict[int, dict] = {}
        self.shadow_requests = Counter("headwater_shadow_requests", "champion reads replayed on the challenger "
                                       "(outcome: compared, dropped: the queue was full, failed)",
                                       ["version", "outcome"], registry=self.registry)
        self.shadow_measure = Gauge("headwater_shadow_measure", "running mean of the challenger-vs-champion "
                                    "comparison (overlap_at_k, abs_difference, agreement)", ["version", "measure"],
                                    registry=self.registry)   # version -> its last drift report (the console shows it)
        self.recent_updates = RecentCounts()
        self.updates_applied = 0

    def _age(self) -> float:
        age = self.seconds_since_update()
        return -1.0 if age is None else age

    def seconds_since_update(self) -> float | None:
        """Freshness: seconds since the last update message was applied, None before the first."""
        return None if self._last_update_time is None else time.time() - self._last_update_time

    def updated(self, count: int = 1) -> None:
        self.updates.inc(count)
        self.updates_applied += count
        self._last_update_time = time.time()
        self.recent_updates.add(count, self._last_update_time)

    def reset_prequential(self, base_version: int | None, events: int = 0, totals: dict | None = None) -> None:
        """Start the live evaluation of a newly served champion (from a snapshot's totals when it has them)."""
        self._prequential_base, self._prequential_events, self._prequential_totals = base_version, events, totals or {}
        self.prequential.clear()
        self._publish_prequential()

    def add_prequential(self, base_version: int, events: int, totals: dict) -> None:
        """One speed-layer micro-batch's scores (BATCH record); batches of another champion are not counted."""
        if base_version != self._prequential_base or not totals:
            return
        self._prequential_events += events
        self._prequential_totals = prequential.merge(self._prequential_totals, totals)
        self._publish_prequential()

    def prequential_figures(self) -> dict[str, dict[str, float]]:
        return prequential.readable(self._prequential_totals)

    @property
    def prequential_event_count(self) -> int:
        return self._prequential_events

    def _publish_prequential(self) -> None:
        self.prequential_events.set(self._prequential_events)
        for model, figures in self.prequential_figures().items():
            kind, beside = prequential.model_and_version(model)   # beside: a version learning beside the champion
            version = str(self._prequential_base if beside is None else beside)
            for name, value in figures.items():
                self.prequential.labels(version, kind, name).set(value)

    def set_loaded(self, versions: list[tuple[int | None, str, int]]) -> None:
        """(version, role, bytes) of every model in memory."""
        self.model_memory.clear()
        for version, role, size in versions:
            self.model_memory.labels(str(version), role).set(size)
        self.loaded.set(len(versions))

    def set_drift(self, version: int, report: dict) -> None:
        """A speed-layer drift report (BATCH record) of one version's input window."""
        self.drift_reports[version] = report
        self.drift_alarm.labels(str(version)).set(int(bool(report.get("alarm"))))
        for feature in report.get("features", []):
            self.drift_score.labels(str(version), str(feature["name"])).set(float(feature["score"]))
            self.drift_p_value.labels(str(version), str(feature["name"])).set(float(feature["p_adjusted"]))

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def init_app(app, metrics: ServingMetrics, clock: Callable[[], float] = time.perf_counter) -> None:
    """Time every request and expose /metrics."""
    from flask import Response, g, request

    @app.before_request
    def _start_timer():
        g.headwater_started = clock()

    @app.after_request
    def _record(response):
        started = g.pop("headwater_started", None)
        if started is not None:
            metrics.observe(request.endpoint or "unknown", request.method, response.status_code, clock() - started)
        return response

    app.add_url_rule("/metrics", "metrics",
                     lambda: Response(metrics.render(), mimetype="text/plain; version=0.0.4"))
