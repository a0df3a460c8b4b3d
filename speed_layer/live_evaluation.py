"""The live (prequential) evaluation of the champion being served: totals per model, logged to MLflow over time.

Each published micro-batch adds its scores (live model and champion alone, on the same events,
before learning them). The totals survive a restart exactly once: a speed snapshot records them
(tag ``headwater.prequential``) and the BATCH records after it add the rest. A background thread
logs the running figures to the run ``speed live evaluation v<N>`` of the champion's experiment,
step = events scored, so the MLflow UI charts "batch + speed" beside "champion alone"; a version
learning beside the champion (previous champion, challenger: ``live v<N>``) gets its figures in its
own run ``speed live evaluation v<N>``.

>>> evaluation = LiveEvaluation(config=None)
>>> evaluation.reset(7, "")
>>> evaluation.add(7, 2, {"live": {"error": [0.0, 2.0]}, "champion": {"error": [1.0, 2.0]}})
>>> evaluation.figures()
{'live': {'accuracy': 1.0}, 'champion': {'accuracy': 0.5}}
>>> prequential.parse_totals_tag(evaluation.tag())
(2, {'live': {'error': [0.0, 2.0]}, 'champion': {'error': [1.0, 2.0]}})
"""
from __future__ import annotations

import logging
import threading

from headwater import prequential, registry

log = logging.getLogger(__name__)

TAG = registry.TAG_PREQUENTIAL


class LiveEvaluation:
    def __init__(self, config) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.base_version: int | None = None
        self.events = 0
        self.totals: prequential.Totals = {}
        self._logged_events = 0
        self._runs: dict[int, str] = {}  # version -> its live evaluation run
        self._unlogged: list[tuple[int, int, dict]] = []  # (champion, events, figures) replaced before a flush

    def reset(self, base_version: int, tag: str | None) -> None:
        """Start the totals of a champion, from a snapshot's tag when it has one (the last figures of the
        champion before it are still logged by the next :meth:`flush`)."""
        with self.lock:
            if self.base_version is not None and self.events != self._logged_events:
                self._unlogged.append((self.base_version, self.events, prequential.readable(self.totals)))
            self.base_version = base_version
            self.events, self.totals = prequential.parse_totals_tag(tag)
            self._logged_events = self.events

    def add(self, base_version: int, events: int, totals: prequential.Totals) -> None:
        with self.lock:
            if base_version != self.base_version:
                return
            self.events += events
            self.totals = prequential.merge(self.totals, totals)

    def tag(self) -> str:
        with self.lock:
            return prequential.totals_tag(self.events, self.totals)

    def figures(self) -> dict[str, dict[str, float]]:
        with self.lock:
            return prequential.readable(self.totals)

    def flat_figures(self) -> dict[str, float]:
        return {f"{model}_{name}": value for model, values in self.figures().items() for name, value in values.items()}

    def flush(self) -> None:
        """Log the figures to MLflow if events were scored since the last flush: the champion's into its run,
        those of each version learning beside it into that version's own run (as
        ``beside_v<champion>_live_<figure>``), all at step = events scored on this champion."""
        with self.lock:
            pending, self._unlogged = self._unlogged, []
            if self.base_version is not None and self.events != self._logged_events:
                pending.append((self.base_version, self.events, prequential.readable(self.totals)))
                self._logged_events = self.events
        try:
            while pending:
                self._log(*pending[0])
                pending.pop(0)
        except Exception:
            with self.lock:   # the next flush tries these again
                self._unlogged = pending + self._unlogged
            raise

    def _log(self, base: int, events: int, figures: dict[str, dict[str, float]]) -> None:
        by_version: dict[int, dict[str, float]] = {base: {}}
        for model, values in figures.items():
            kind, version = prequential.model_and_version(model)
            if version is not None:   # a version learning beside the champion
                by_version.setdefault(version, {}).update(
                    {f"beside_v{base}_{kind}_{name}": value for name, value in values.items()})
            else:
                by_version[base].update({f"{model}_{name}": value for name, value in values.items()})
        for version, metrics in by_version.items():
            if version not in self._runs:
                self._runs[version] = registry.live_evaluation_run(self.config, version)
            registry.log_metrics(self.config, self._runs[version], metrics, step=events)


__all__ = ["TAG", "LiveEvaluation"]
