"""The batch gate: is the best candidate good enough to become the champion?

It refuses promotion when the best score is below ``headwater.ml.eval.threshold``, does not beat
the app's baseline (``BatchApp.baseline``: most popular, biases only, one cluster, majority class),
scored on the same test split (``headwater.ml.eval.beat-baseline``), is below the current champion's
score *on the same test split* by more than ``headwater.ml.eval.max-regression`` (an absolute difference
of scores), or when the current champion cannot be evaluated (then nothing shows the candidate is not
worse). A refit champion (tag ``refit``) has seen part of any later test split, so its score there is
logged but not compared.

>>> promotion_decision(0.81, threshold=0.7, champion_score=0.8, max_regression=0.02, champion_version=3)
(True, 'score 0.81 vs champion version 3 at 0.8 (max regression 0.02)')
>>> promotion_decision(0.6, threshold=0.7, champion_score=None, max_regression=0.02, champion_version=None)[1]
'score 0.6 is below the threshold 0.7'
>>> promotion_decision(0.6, None, None, 0.02, None, baseline_score=0.65)[1]
'score 0.6 does not beat the baseline at 0.65'
"""
from __future__ import annotations

import logging

from batch_layer.candidates import format_metrics
from headwater import registry
from headwater.api import BatchApp, SplitData
from headwater.config import Config

log = logging.getLogger(__name__)

TAG_REFIT = "refit"  # version tag: "true" when the registered model was refit on all the version's data


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


def evaluate_champion(app: BatchApp, config: Config, state_class,
                      split: SplitData) -> tuple[int | None, dict[str, float] | None, str, bool]:
    """(version, metrics on this split, a note for the reason, whether the gate may compare the score)."""
    champion = registry.download_alias(config, registry.CHAMPION)
    if champion is None:
        return None, None, "", False
    try:
        metrics = app.evaluate(state_class.load(champion.path), split)
    except Exception as exc:  # recorded; without a comparison the candidate is not promoted
        log.exception("champion version %s could not be evaluated", champion.version)
        return (champion.version, None, f" (champion version {champion.version} could not be evaluated: {exc})",
                False)
    log.info("champion version %s on this test split: %s", champion.version, format_metrics(metrics))
    if champion.tags.get(TAG_REFIT) == "true":
        return champion.version, metrics, (f" (champion version {champion.version} was refit on all of its "
                                           "data, which this test split overlaps: its score is logged, not "
                                           "compared)"), False
    return champion.version, metrics, "", True


def evaluate_baseline(app: BatchApp, split: SplitData) -> dict[str, float] | None:
    """The app's baseline model's metrics on this split (None: the app has no baseline)."""
    baseline = app.baseline(split)
    if baseline is None:
        return None
    metrics = app.evaluate(baseline, split)
    log.info("baseline on this test split: %s", format_metrics(metrics))
    return metrics
