"""The batch layer's ML template (Oryx's MLUpdate), written once for every app.

One generation: split the data → choose hyperparameter combinations → build and evaluate each
candidate (``headwater.ml.eval.parallelism`` at a time, threads sharing the Spark session, each a
nested MLflow run) → pick the best (higher score is better) → gate it → register it → announce it.

The gate refuses promotion when the best score is below ``headwater.ml.eval.threshold``, does not beat
the app's baseline (``BatchApp.baseline``: most popular, biases only, one cluster, majority class),
scored on the same test split (``headwater.ml.eval.beat-baseline``), is below the current champion's
score *on the same test split* by more than ``headwater.ml.eval.max-regression`` (an absolute difference
of scores), or when the current champion cannot be evaluated (then nothing shows the candidate is not
worse). Either way the parent run records ``promoted`` and ``reason``, the baseline's metrics
(``baseline_*``) beside the candidates', and the best candidate is registered (tags ``layer=batch``,
``delta_version``, row counts, ``headwater.gate`` = ``passed`` or ``failed``) so it can be inspected or
forced with ``headwater promote``; only a promoted version gets the ``champion`` alias, a MODEL notice on
the update topic and a line in the alias history (:mod:`headwater.promotion`, cause ``batch gate``).

Refit (``headwater.ml.eval.refit``, on by default): the chosen hyperparameters are trained once more on
all of the version's data (``BatchApp.all_training_data``) and that model is registered, so the newest
events are in the champion; the metrics logged stay the held-out ones of the candidate. A refit
champion has seen part of any later test split, so its score there is logged but not compared.

No evaluation (``headwater.ml.eval.test-fraction = 0``, as Oryx): one combination is chosen, built on all
of the version's data (``all_training_data``), registered and promoted without a gate; the run's reason
says so. There is nothing held out to compare a champion or a baseline on, and nothing to refit.

Promotion is three steps in this order: ``before_promotion(version)`` (the runner tags the version
with the update topic's end, ``update_offset``), the ``champion`` alias moves, ``publish`` sends the
MODEL notice. A layer that (re)starts between two steps finds a consistent registry: the old champion,
or the new one with its ``update_offset``. If a step fails, the alias is put back (or never moved), the
old champion keeps serving, and the run records why.

An app subclasses :class:`headwater.api.BatchApp` and implements only the model-specific steps; what
they derive from one split (id maps, encodings, samples) comes back from ``prepare`` as a
:class:`headwater.api.SplitData` and is handed to every candidate, so apps keep no per-generation state.

>>> promotion_decision(0.81, threshold=0.7, champion_score=0.8, max_regression=0.02, champion_version=3)
(True, 'score 0.81 vs champion version 3 at 0.8 (max regression 0.02)')
>>> promotion_decision(0.6, threshold=0.7, champion_score=None, max_regression=0.02, champion_version=None)[1]
'score 0.6 is below the threshold 0.7'
>>> promotion_decision(0.6, None, None, 0.02, None, baseline_score=0.65)[1]
'score 0.6 does not beat the baseline at 0.65'
"""
from __future__ import annotations

import dataclasses
import logging
import math
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headwater import promotion, registry
from headwater.api import BatchApp, SplitData
from headwater.config import Config
from headwater.messages import ModelNotice

log = logging.getLogger(__name__)

TAG_REFIT = "refit"  # version tag: "true" when the registered model was refit on all the version's data


@dataclass
class Candidate:
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


def promotion_decision(score: float | None, threshold: float | None, champion_score: float | None,
                       max_regression: float, champion_version: int | None,
                       baseline_score: float | None = None) -> tuple[bool, str]:
    """(promote?, why) for the best candidate's score."""
    if score is None:
        return False, "no candidate could be built and evaluated"
    if threshold is not None and score < threshold:
        return False, f"score {score:.6g} is below the threshold {threshold:.6g}"
    if baseline_score is not None and not score > baseline_score:
        return False, f"score {score:.6g} does not beat the baseline at {baseline_score:.6g}"
    beats = "" if baseline_score is None else f", baseline {baseline_score:.6g}"
    if champion_score is None:
        return True, f"score {score:.6g}{beats}; no champion to compare with"
    comparison = (f"score {score:.6g}{beats} vs champion version {champion_version} at {champion_score:.6g} "
                  f"(max regression {max_regression:.6g})")
    if score < champion_score - max_regression:
        return False, "worse than the champion: " + comparison
    return True, comparison


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
                candidates = self._build_candidates(combos, split, experiment, run_id, evaluated)
                lineage = {registry.TAG_INPUT_OFFSETS: registry.offsets_tag(input_offsets)} if input_offsets else {}
                lineage.update({k: str(v) for k, v in (data_window or {}).items()})
                decide = self._decide if evaluated else self._decide_unevaluated
                result = decide(candidates, split, delta_version, {**counts, **lineage}, run_id)
        finally:
            for frame in (test, train, data):
                frame.unpersist()
        if result.promoted:
            result = self._promote(result, delta_version)
        log.info("batch generation on delta version %s: %s (%s)", delta_version,
                 "promoted" if result.promoted else "not promoted", result.reason)
        return result

    # -- candidates ---------------------------------------------------------------------------------

    def _build_candidates(self, combos, split: SplitData, experiment: str, parent_run_id: str,
                          evaluated: bool = True) -> list[Candidate]:
        from rich.progress import Progress

        candidates = [Candidate(n, params) for n, params in enumerate(combos)]
        workers = min(self.config.get("headwater.ml.eval.parallelism"), len(candidates))
        with Progress(transient=True) as progress, ThreadPoolExecutor(workers, "candidate") as pool:
            task = progress.add_task("training candidates", total=len(candidates))
            futures = [pool.submit(self._build_candidate, c, split, experiment, parent_run_id, evaluated)
                       for c in candidates]
            for future in as_completed(futures):
                future.result()
                progress.advance(task)
        return candidates

    def _build_candidate(self, candidate: Candidate, split: SplitData, experiment: str, parent_run_id: str,
                         evaluated: bool = True) -> None:
        from mlflow.entities import Metric, Param

        mlflow_client = registry.client(self.config)
        run = mlflow_client.create_run(experiment, run_name=f"candidate {candidate.index}",
                                       tags={"mlflow.parentRunId": parent_run_id, registry.TAG_LAYER: "batch"})
        candidate.run_id = run.info.run_id
        started = time.monotonic()
        try:
            candidate.model = self.app.build_model(split, candidate.hyperparams)
            if candidate.model is not None and evaluated:
                candidate.metrics = self.app.evaluate(candidate.model, split)
        except Exception as exc:  # one failing candidate must not stop the others
            log.exception("candidate %d %s failed", candidate.index, candidate.hyperparams)
            candidate.error = f"{type(exc).__name__}: {exc}"
        seconds = time.monotonic() - started
        now = int(time.time() * 1000)
        metrics = {**_finite(candidate.metrics), "seconds": seconds}
        mlflow_client.log_batch(candidate.run_id,
                                params=[Param(k, str(v)) for k, v in candidate.hyperparams.items()],
                                metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
        if candidate.error:
            mlflow_client.set_tag(candidate.run_id, "error", candidate.error[:5000])
        mlflow_client.set_terminated(candidate.run_id, "FAILED" if candidate.error else "FINISHED")
        log.info("candidate %d %s: %s in %.1f s", candidate.index, candidate.hyperparams,
                 candidate.error or _format(candidate.metrics), seconds)

    # -- gate, register -----------------------------------------------------------------------------

    def _decide(self, candidates, split: SplitData, delta_version, version_tags, run_id) -> UpdateResult:
        import mlflow

        from batch_layer.evaluation_plot import evaluation_figure

        scored = [c for c in candidates if c.score is not None]
        best = max(scored, key=lambda c: (c.score, -c.index)) if scored else None
        champion_version, champion_metrics, champion_note, comparable = self._evaluate_champion(split)
        baseline_metrics = self._evaluate_baseline(split)
        compared = (champion_metrics or {}).get("score") if comparable else None
        baseline_score = (baseline_metrics or {}).get("score") if self.config.get("headwater.ml.eval.beat-baseline") \
            else None
        promoted, reason = promotion_decision(
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
                mlflow.log_metrics({f"{prefix}_{k}": v for k, v in _finite(metrics).items()})
        registered = None
        if best is not None:
            mlflow.log_params({f"best_{k}": v for k, v in best.hyperparams.items()})
            mlflow.log_metrics({f"best_{k}": v for k, v in _finite(best.metrics).items()})
            model, model_split = self._refit(best, split)
            registered = self._register(best, model, model_split, delta_version, version_tags, run_id,
                                        refit=model_split is not split, gate_passed=promoted)
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
            registered = self._register(best, best.model, split, delta_version, version_tags, run_id, refit=True,
                                        gate_passed=True)
            self._log_drift_profile(split)
        mlflow.set_tags({"promoted": str(promoted).lower(), "reason": reason,
                         "registered_version": registered.version if registered else "none"})
        return UpdateResult(run_id, promoted, reason, candidates, best, registered)

    def _register(self, best: Candidate, model, model_split: SplitData, delta_version, version_tags, run_id,
                  refit: bool, gate_passed: bool) -> registry.RegisteredModel:
        tags = {registry.TAG_LAYER: "batch", registry.TAG_DELTA_VERSION: delta_version,
                "candidate_run_id": best.run_id, **({} if best.score is None else {"score": best.score}),
                TAG_REFIT: str(refit).lower(), **version_tags, **self.app.describe(model),
                promotion.TAG_GATE: "passed" if gate_passed else "failed"}
        with tempfile.TemporaryDirectory(prefix="headwater-model-") as directory:
            self.app.save_model(model, model_split, Path(directory))
            return registry.log_and_register(
                self.config, Path(directory), self.config.app.resolve("pyfunc")(), tags,
                aliases=[], run_id=run_id, signature=self.app.model_signature(model))

    def _promote(self, result: UpdateResult, delta_version) -> UpdateResult:
        """Tag, move the alias, announce (see the module docstring); a failure leaves the old champion."""
        version = result.registered.version
        previous = registry.get_alias_version(self.config, registry.CHAMPION)
        try:
            if self.before_promotion is not None:
                self.before_promotion(version)
            registry.set_alias(self.config, registry.CHAMPION, version)
            try:
                if self.publish is not None:
                    self.publish(ModelNotice(result.registered.name, version, delta_version))
            except Exception:
                self._restore_champion(previous)
                raise
        except Exception as exc:  # the generation's model stays registered; the old champion serves on
            log.exception("promoting version %s failed; champion version %s stays", version, previous)
            reason = (f"{result.reason}; promotion failed, champion version {previous} stays: "
                      f"{type(exc).__name__}: {exc}")
            registry.client(self.config).set_tag(result.run_id, "promoted", "false")
            registry.client(self.config).set_tag(result.run_id, "reason", reason[:5000])
            return dataclasses.replace(result, promoted=False, reason=reason)
        try:
            promotion.record_move(self.config, registry.CHAMPION, version, previous, "promote", promotion.CAUSE_BATCH,
                                  result.reason)
        except Exception:  # the promotion stands; only its line in `headwater history` is missing
            log.exception("recording the promotion of version %s in the alias history failed", version)
        return result

    def _restore_champion(self, previous: int | None) -> None:
        if previous is None:
            registry.client(self.config).delete_registered_model_alias(registry.registered_model_name(self.config),
                                                                       registry.CHAMPION)
        else:
            registry.set_alias(self.config, registry.CHAMPION, previous)

    def _evaluate_champion(self, split: SplitData) -> tuple[int | None, dict[str, float] | None, str, bool]:
        """(version, metrics on this split, a note for the reason, whether the gate may compare the score)."""
        champion = registry.download_alias(self.config, registry.CHAMPION)
        if champion is None:
            return None, None, "", False
        try:
            metrics = self.app.evaluate(self.state_class.load(champion.path), split)
        except Exception as exc:  # recorded; without a comparison the candidate is not promoted
            log.exception("champion version %s could not be evaluated", champion.version)
            return (champion.version, None, f" (champion version {champion.version} could not be evaluated: {exc})",
                    False)
        log.info("champion version %s on this test split: %s", champion.version, _format(metrics))
        if champion.tags.get(TAG_REFIT) == "true":
            return champion.version, metrics, (f" (champion version {champion.version} was refit on all of its "
                                               "data, which this test split overlaps: its score is logged, not "
                                               "compared)"), False
        return champion.version, metrics, "", True

    def _evaluate_baseline(self, split: SplitData) -> dict[str, float] | None:
        baseline = self.app.baseline(split)
        if baseline is None:
            return None
        metrics = self.app.evaluate(baseline, split)
        log.info("baseline on this test split: %s", _format(metrics))
        return metrics

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


def _finite(metrics: dict[str, float] | None) -> dict[str, float]:
    return {k: float(v) for k, v in (metrics or {}).items() if v is not None and math.isfinite(v)}


def _format(metrics: dict[str, float] | None) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in (metrics or {}).items()) or "no model"
