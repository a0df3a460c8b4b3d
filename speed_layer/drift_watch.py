"""Drift alarms in the speed layer: each window of live input against the champion's reference profile.

The batch layer stores a profile with every version (``drift_profile.json`` in its run,
:mod:`headwater.drift_profile`). The speed layer collects the parsed input of its micro-batches into
windows of ``headwater.speed.drift.window-rows`` rows and tests each window (:mod:`headwater.drift_detector`;
ALS: :mod:`headwater.apps.als.drift`, with the ids the live model knew at the window's start), at
``headwater.speed.drift.alpha`` per window: data from the training distribution alarms in that share
of windows, whatever the number of features. The report goes out with the micro-batch's BATCH record
(serving shows it in ``/metrics`` and on the console) and into the champion's live-evaluation run.

>>> import numpy as np, pyarrow as pa
>>> from headwater.drift_profile import build_profile
>>> rng = np.random.default_rng(0)
>>> watch = DriftWatch(window_rows=500, alpha=0.01)
>>> watch.reset(3, build_profile({"x": rng.normal(0, 1, 20_000)}))
>>> watch.add(pa.table({"x": rng.normal(0, 1, 300)})) is None       # the window is not full yet
True
>>> report = watch.add(pa.table({"x": rng.normal(2, 1, 300)}))
>>> report["alarm"], report["rows"], report["version"], report["window"]
(True, 600, 3, 1)
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pyarrow as pa

log = logging.getLogger(__name__)


class DriftWatch:
    """Windows of parsed input for one champion's profile; ``add`` returns a report when a window closes."""

    def __init__(self, window_rows: int = 1000, alpha: float = 0.01):
        self.window_rows = window_rows
        self.alpha = alpha
        self.version: int | None = None
        self.detector: Any = None
        self.windows = 0
        self.last: dict | None = None
        self._pending: list[pa.Table] = []
        self._rows = 0
        self._known: tuple[Any, Any] | None = None
        self._logged: tuple[int | None, int] = (None, 0)  # (version, window) last logged to MLflow

    @classmethod
    def from_config(cls, config) -> DriftWatch:
        return cls(config.get("headwater.speed.drift.window-rows"), config.get("headwater.speed.drift.alpha"))

    def reset(self, version: int, profile: dict | None) -> None:
        """Watch a new champion (no profile: no alarms until the next one)."""
        from headwater.apps.als.drift import ALSDriftDetector
        from headwater.drift_detector import DriftDetector

        self.version, self.windows, self.last = version, 0, None
        self._pending, self._rows, self._known = [], 0, None
        self.detector = None
        if profile is not None:
            try:
                kind = ALSDriftDetector if profile.get("kind") == "als" else DriftDetector
                self.detector = kind(profile, alpha=self.alpha)
            except (ValueError, KeyError) as exc:
                log.warning("speed layer: version %s has an unusable drift profile: %s", version, exc)
        log.info("speed layer: drift alarms for version %s %s", version,
                 f"every {self.window_rows} rows" if self.detector is not None else "off (no profile)")

    def add(self, parsed: pa.Table, live_model: Any = None) -> dict | None:
        """Add a micro-batch's parsed rows; the report of the window they close, else None."""
        if self.detector is None or parsed.num_rows == 0:
            return None
        if not self._pending and live_model is not None and hasattr(live_model, "known_ids"):
            self._known = live_model.known_ids()   # what the model knew when the window opened
        self._pending.append(parsed)
        self._rows += parsed.num_rows
        if self._rows < self.window_rows:
            return None
        window = pa.concat_tables(self._pending, promote_options="default")
        self._pending, self._rows = [], 0
        report = self._check(window)
        self.windows += 1
        self.last = {**report.to_dict(), "version": self.version, "window": self.windows}
        if report.alarm:
            log.warning("speed layer: drift alarm on version %s, window %d of %d rows: %s", self.version,
                        self.windows, report.rows, report.worst)
        return self.last

    def mlflow_metrics(self) -> dict[str, float]:
        """The last report as metrics for the champion's live-evaluation run."""
        if self.last is None:
            return {}
        metrics = {"drift.alarm": float(self.last["alarm"]), "drift.rows": float(self.last["rows"])}
        metrics.update({f"drift.score.{f['name']}": f["score"] for f in self.last["features"]})
        return metrics

    def log_to_mlflow(self, config) -> None:
        """The last report into the champion's live-evaluation run (step: the window), once per window."""
        from headwater import registry

        if self.version is None or (self.version, self.windows) == self._logged or not self.last:
            return
        run = registry.live_evaluation_run(config, self.version)
        registry.log_metrics(config, run, self.mlflow_metrics(), step=self.windows)
        self._logged = (self.version, self.windows)

    def _check(self, window: pa.Table):
        from headwater.apps.als.drift import ALSDriftDetector

        if isinstance(self.detector, ALSDriftDetector):
            users, items = self._known or (set(), set())
            return self.detector.check(_column(window, "user"), _column(window, "item"),
                                       _column(window, "strength"), users, items)
        return self.detector.check({name: _column(window, name) for name in window.column_names})


def _column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)
