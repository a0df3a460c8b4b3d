"""The batch layer's ML template (Oryx's MLUpdate), written once for every app.

One generation: split the data → choose hyperparameter combinations → build and evaluate each
candidate (:mod:`batch_layer.candidates`) → pick the best (higher score is better) → gate it
(:mod:`batch_layer.gate`: threshold, baseline, champion on the same test split) → register it →
announce it (:mod:`batch_layer.publishing`). Either way the parent run records ``promoted`` and
``reason``, the baseline's metrics (``baseline_*``) and the champion's beside the candidates', and the
best candidate is registered, with ``headwater.gate`` = ``passed`` or ``failed``.

Refit (``headwater.ml.eval.refit``, on by default): the chosen hyperparameters are trained once more on
all of the version's data (``BatchApp.all_training_data``) and that model is registered, so the newest
events are in the champion; the metrics logged stay the held-out ones of the candidate.

No evaluation (``headwater.ml.eval.test-fraction = 0``, as Oryx): one combination is chosen, built on all
of the version's data (``all_training_data``), registered and promoted without a gate; the run's reason
says so. There is nothing held out to compare a champion or a baseline on, and nothing to refit.

An app subclasses :class:`headwater.api.BatchApp` and implements only the model-specific steps; what
they derive from one split (id maps, encodings, samples) comes back from ``prepare`` as a
:class:`headwater.api.SplitData` and is handed to every candidate, so apps keep no per-generation state.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batch_layer import gate, publishing
from batch_layer.candidates import Candidate, build_candidates, finite_metrics
from headwater import registry
from headwater.api import BatchApp, SplitData
from headwater.config import Config
from headwater.messages import ModelNotice

log = logging.getLogger(__name__)


@dataclass
class UpdateResult:
    run_id: str
    promoted: bool
    reason: str
    candidates: list[Candidate] = field(default_factory=list)
    best: Candidate | None = None
    registered: registry.RegisteredModel | None = None
    champion_version: int | None = None
    champion_metrics: dict[str, float] | None = None


class MLUpdate:
    """Runs one generation of ``app`` on a version of the data; ``publish`` announces a promotion."""

    def __init__(self, app: BatchApp, config: Config, publish: Callable[[ModelNotice], None] | None = None,
                 before_promotion: Callable[[int], None] | None = None):
        self.app = app
        self.config = config
        self.publish = publish
        self.before_promotion = before_promotion
        self.state_class = config.app.resolve("state")

    def run(self, data, delta_version: int | None, input_offsets: dict[int, int] | None = None,
            data_window: dict[str, Any] | None = None) -> UpdateResult:
        """``data_window``: which recent part of the version was used (:mod:`batch_layer.recency`), logged
        with the run and on the registered version."""
        import mlflow

        from batch_layer.hyperparams import choose_combinations

        ev = self.config.section("headwater.ml.eval")
        evaluated = ev["test-fraction"] > 0
        data.persist()
        if evaluated:
            train, test = self.app.split(data)
        else:
            train = self.app.all_training_data(data)
            test = train.limit(0)
        train.persist()
        test.persist()
        try:
            counts = {"input_rows": data.count(), "train_rows": train.count(), "test_rows": test.count()}
            split = self.app.prepare(data, train, test)
            combos = choose_combinations(self.app.hyperparameter_space(), ev["candidates"] if evaluated else 1,
                                         ev["search"], ev["seed"])
            experiment = registry.experiment_id(self.config)
            with mlflow.start_run(experiment_id=experiment, run_name=f"batch delta v{delta_version}") as parent:
                run_id = parent.info.run_id
                mlflow.set_tags({registry.TAG_LAYER: "batch", registry.TAG_DELTA_VERSION: str(delta_version)})
                mlflow.log_params({"delta_version": delta_version, "search": ev["search"], "seed": ev["seed"],
                                   "test_fraction": ev["test-fraction"], "candidates": len(combos)})
                mlflow.log_metrics({k: float(v) for k, v in counts.items()})
                if data_window:
                    mlflow.log_params(data_window)
                candidates = build_candidates(self.app, self.config, combos, split, experiment, run_id, evaluated)
                lineage = {registry.TAG_INPUT_OFFSETS: registry.offsets_tag(input_offsets)} if input_offsets else {}
                lineage.update({k: str(v) for k, v in (data_window or {}).items()})
                decide = self._decide if evaluated else self._decide_unevaluated
                result = decide(candidates, split, delta_version, {**counts, **lineage}, run_id)
        finally:
            for frame in (test, train, data):
                frame.unpersist()
        if result.promoted:
            failed = publishing.promote(self.config, result.registered, delta_version, result.reason, result.run_id,
                                        self.before_promotion, self.publish)
            if failed is not None:
                result = dataclasses.replace(result, promoted=False, reason=failed)
        log.info("batch generation on delta version %s: %s (%s)", delta_version,
                 "promoted" if result.promoted else "not promoted", result.reason)
        return result

    def _decide(self, candidates, split: SplitData, delta_version, version_tags, run_id) -> UpdateResult:
        import mlflow

        from batch_layer.evaluation_plot import evaluation_figure

        scored = [c for c in candidates if c.score is not None]
        best = max(scored, key=lambda c: (c.score, -c.index)) if scored else None
        champion_version, champion_metrics, champion_note, comparable = gate.evaluate_champion(
            self.app, self.config, self.state_class, split)
        baseline_metrics = gate.evaluate_baseline(self.app, split)
        compared = (champion_metrics or {}).get("score") if comparable else None
        baseline_score = (baseline_metrics or {}).get("score") if self.config.get("headwater.ml.eval.beat-baseline") \
            else None
        promoted, reason = gate.promotion_decision(
            best.score if best else None, self.config.get("headwater.ml.eval.threshold"), compared,
            self.config.get("headwater.ml.eval.max-regression"), champion_version,
            None if baseline_score is None or math.isnan(baseline_score) else baseline_score)
        if champion_version is not None and champion_metrics is None and promoted:
            promoted, reason = False, "not compared with the champion, so not promoted"
        reason += champion_note
        mlflow.log_figure(evaluation_figure([(c.hyperparams, c.metrics) for c in candidates],
                                            best.index if best else None, champion_metrics,
                                            self.config.get("headwater.ml.eval.threshold"), baseline_metrics),
                          "evaluation.png")
        for prefix, metrics in (("champion", champion_metrics), ("baseline", baseline_metrics)):
            if metrics:
                mlflow.log_metrics({f"{prefix}_{k}": v for k, v in finite_metrics(metrics).items()})
        registered = None
        if best is not None:
            mlflow.log_params({f"best_{k}": v for k, v in best.hyperparams.items()})
            mlflow.log_metrics({f"best_{k}": v for k, v in finite_metrics(best.metrics).items()})
            model, model_split = self._refit(best, split)
            registered = publishing.register(self.app, self.config, best, model, model_split, delta_version,
                                             version_tags, run_id, refit=model_split is not split,
                                             gate_passed=promoted)
        if best is not None:
            self._log_drift_profile(model_split)
        mlflow.set_tags({"promoted": str(promoted).lower(), "reason": reason[:5000],
                         "registered_version": registered.version if registered else "none"})
        return UpdateResult(run_id, promoted, reason, candidates, best, registered, champion_version, champion_metrics)

    def _log_drift_profile(self, split: SplitData) -> None:
        """The version's reference profile, an artifact of its run (the run its model is logged in)."""
        import mlflow

        started = time.monotonic()
        try:
            profile = self.app.drift_profile(split)
        except Exception:  # the model is good without it; the speed layer then raises no drift alarms
            log.exception("building the drift profile failed; version registered without one")
            return
        if profile is not None:
            mlflow.log_dict(profile, registry.DRIFT_PROFILE_ARTIFACT)
            mlflow.log_metric("drift_profile_seconds", time.monotonic() - started)

    def _decide_unevaluated(self, candidates, split: SplitData, delta_version, version_tags, run_id) -> UpdateResult:
        """test-fraction = 0: the one candidate, built on all the data, is registered and promoted ungated."""
        import mlflow

        best = next((c for c in candidates if c.model is not None), None)
        registered = None
        if best is None:
            promoted, reason = False, "no candidate could be built"
        else:
            promoted, reason = True, "no evaluation (test-fraction = 0): built on all of the data, published ungated"
            mlflow.log_params({f"best_{k}": v for k, v in best.hyperparams.items()})
            registered = publishing.register(self.app, self.config, best, best.model, split, delta_version,
                                             version_tags, run_id, refit=True, gate_passed=True)
            self._log_drift_profile(split)
        mlflow.set_tags({"promoted": str(promoted).lower(), "reason": reason,
                         "registered_version": registered.version if registered else "none"})
        return UpdateResult(run_id, promoted, reason, candidates, best, registered)

    def _refit(self, best: Candidate, split: SplitData) -> tuple[Any, SplitData]:
        """(the model to register, the split it was trained on): the best candidate's hyperparameters on all
        of the version's data, or the candidate itself without ``headwater.ml.eval.refit`` (or if the refit fails)."""
        import mlflow

        if not self.config.get("headwater.ml.eval.refit"):
            return best.model, split
        started = time.monotonic()
        everything = self.app.all_training_data(split.data).persist()
        try:
            rows = everything.count()
            full = self.app.prepare(split.data, everything, split.test)
            model = self.app.build_model(full, best.hyperparams)
        except Exception:  # the held-out candidate is still a good model
            log.exception("refitting %s on all the data failed; registering the candidate", best.hyperparams)
            return best.model, split
        finally:
            everything.unpersist()
        mlflow.log_metrics({"refit_seconds": time.monotonic() - started, "refit_rows": float(rows)})
        log.info("refit %s on all of the version's data in %.1f s", best.hyperparams, time.monotonic() - started)
        return (best.model, split) if model is None else (model, full)
