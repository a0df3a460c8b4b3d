"""The candidates of a generation: one per hyperparameter combination, built and evaluated in threads.

Threads, not processes: the candidates share the driver's Spark session, so
``headwater.ml.eval.parallelism`` of them train at once while Spark spreads each one's work over the
executors. Each candidate is a nested MLflow run of the generation's run, and one that fails is
recorded as failed without stopping the others.
"""
from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from headwater import registry
from headwater.api import BatchApp, SplitData
from headwater.config import Config

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    """One hyperparameter combination of a generation: its model, metrics and MLflow run once built.

    >>> Candidate(0, {"features": 10}, metrics={"score": float("nan")}).score is None
    True
    """

    index: int
    hyperparams: dict[str, Any]
    model: Any = None
    metrics: dict[str, float] | None = None
    run_id: str | None = None
    error: str | None = None

    @property
    def score(self) -> float | None:
        value = (self.metrics or {}).get("score")
        return None if value is None or math.isnan(value) else float(value)


def build_candidates(app: BatchApp, config: Config, combos, split: SplitData, experiment: str, parent_run_id: str,
                     evaluated: bool = True) -> list[Candidate]:
    """Each combination built and, when ``evaluated``, scored on ``split``, ``parallelism`` at a time."""
    from rich.progress import Progress

    candidates = [Candidate(n, params) for n, params in enumerate(combos)]
    workers = min(config.get("headwater.ml.eval.parallelism"), len(candidates))
    with Progress(transient=True) as progress, ThreadPoolExecutor(workers, "candidate") as pool:
        task = progress.add_task("training candidates", total=len(candidates))
        futures = [pool.submit(_build_candidate, app, config, c, split, experiment, parent_run_id, evaluated)
                   for c in candidates]
        for future in as_completed(futures):
            future.result()
            progress.advance(task)
    return candidates


def _build_candidate(app: BatchApp, config: Config, candidate: Candidate, split: SplitData, experiment: str,
                     parent_run_id: str, evaluated: bool = True) -> None:
    from mlflow.entities import Metric, Param

    mlflow_client = registry.client(config)
    run = mlflow_client.create_run(experiment, run_name=f"candidate {candidate.index}",
                                   tags={"mlflow.parentRunId": parent_run_id, registry.TAG_LAYER: "batch"})
    candidate.run_id = run.info.run_id
    started = time.monotonic()
    try:
        candidate.model = app.build_model(split, candidate.hyperparams)
        if candidate.model is not None and evaluated:
            candidate.metrics = app.evaluate(candidate.model, split)
    except Exception as exc:  # one failing candidate must not stop the others
        log.exception("candidate %d %s failed", candidate.index, candidate.hyperparams)
        candidate.error = f"{type(exc).__name__}: {exc}"
    seconds = time.monotonic() - started
    now = int(time.time() * 1000)
    metrics = {**finite_metrics(candidate.metrics), "seconds": seconds}
    mlflow_client.log_batch(candidate.run_id,
                            params=[Param(k, str(v)) for k, v in candidate.hyperparams.items()],
                            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
    if candidate.error:
        mlflow_client.set_tag(candidate.run_id, "error", candidate.error[:5000])
    mlflow_client.set_terminated(candidate.run_id, "FAILED" if candidate.error else "FINISHED")
    log.info("candidate %d %s: %s in %.1f s", candidate.index, candidate.hyperparams,
             candidate.error or format_metrics(candidate.metrics), seconds)


def finite_metrics(metrics: dict[str, float] | None) -> dict[str, float]:
    return {k: float(v) for k, v in (metrics or {}).items() if v is not None and math.isfinite(v)}


def format_metrics(metrics: dict[str, float] | None) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in (metrics or {}).items()) or "no model"
