"""Prequential evaluation (score each event, then learn it): sums per loss, merged over batches, and the
figures people read (RMSE, accuracy, hit rate), shared by the speed layer (MLflow) and serving (/metrics).

A speed model's ``score_many`` gives per-event losses (NaN where it cannot score); a micro-batch is
summarised as ``[sum, count]`` per loss so batches add up exactly, whatever their sizes.

>>> batch = summarize({"live": {"squared_error": np.array([1.0, 4.0, np.nan])},
...                    "champion": {"squared_error": np.array([4.0, 4.0, 9.0])}})
>>> batch["live"]
{'squared_error': [5.0, 2.0]}
>>> totals = merge(merge({}, batch), batch)
>>> readable(totals)["live"]
{'rmse': 1.5811388300841898}
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping

import numpy as np

log = logging.getLogger(__name__)

# loss name -> (figure name, figure from the mean loss)
FIGURES = {
    "squared_error": ("rmse", math.sqrt),
    "absolute_error": ("mae", lambda mean: mean),
    "error": ("accuracy", lambda mean: 1.0 - mean),
    "miss_at_10": ("hit_rate_at_10", lambda mean: 1.0 - mean),
    "distance": ("mean_distance", lambda mean: mean),
}

Totals = dict[str, dict[str, list[float]]]


def summarize(scores: Mapping[str, Mapping[str, np.ndarray]]) -> Totals:
    """``{model: {loss: [sum, count]}}`` over the finite per-event values."""
    result: Totals = {}
    for model, losses in scores.items():
        result[model] = {}
        for loss, values in losses.items():
            values = np.asarray(values, dtype=np.float64)
            finite = np.isfinite(values)
            result[model][loss] = [float(values[finite].sum()), float(finite.sum())]
    return result


def merge(totals: Totals, batch: Totals) -> Totals:
    """``totals`` plus one batch's sums (a new dict; the inputs are not changed)."""
    merged = {model: {loss: list(pair) for loss, pair in losses.items()} for model, losses in totals.items()}
    for model, losses in batch.items():
        for loss, (total, count) in losses.items():
            pair = merged.setdefault(model, {}).setdefault(loss, [0.0, 0.0])
            pair[0] += total
            pair[1] += count
    return merged


def readable(totals: Totals) -> dict[str, dict[str, float]]:
    """``{model: {figure: value}}`` (RMSE, MAE, accuracy, hit rate@10, mean distance; ``mean_<loss>`` otherwise)."""
    result = {}
    for model, losses in totals.items():
        result[model] = {}
        for loss, (total, count) in losses.items():
            if not count:
                continue
            name, figure = FIGURES.get(loss, (f"mean_{loss}", lambda mean: mean))
            result[model][name] = float(figure(total / count))
    return result


def beside(version: int) -> str:
    """The scores' name of a version learning beside the champion (speed_layer.rollout): ``"live v<N>"``."""
    return f"live v{version}"


def model_and_version(name: str) -> tuple[str, int | None]:
    """``("live", N)`` for :func:`beside`'s ``"live v<N>"``; ``(name, None)`` for the champion's own models.

    >>> model_and_version(beside(4)), model_and_version("champion")
    (('live', 4), ('champion', None))
    """
    model, _, version = name.partition(" v")
    return (model, int(version)) if version.isdigit() else (name, None)


def totals_tag(events: int, totals: Totals) -> str:
    """The totals as a registry tag (a speed snapshot carries the live evaluation it includes)."""
    return json.dumps({"events": int(events), "totals": totals})


def parse_totals_tag(tag: str | None) -> tuple[int, Totals]:
    """(events, totals) of a :func:`totals_tag`; (0, {}) for none or an unreadable one."""
    if not tag:
        return 0, {}
    try:
        body = json.loads(tag)
        return int(body["events"]), merge({}, body["totals"])
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("ignoring an unreadable prequential totals tag %.100r", tag)
        return 0, {}


def from_metrics_text(text: str) -> tuple[int, dict[str, dict[str, float]]]:
    """(events, ``{model: {figure: value}}``) as a serving layer's ``/metrics`` page shows them (demos print them).

    >>> page = 'headwater_prequential{figure="rmse",model="live"} 0.9\\nheadwater_prequential_events 12.0\\n'
    >>> from_metrics_text(page)
    (12, {'live': {'rmse': 0.9}})
    """
    from prometheus_client.parser import text_string_to_metric_families

    events, figures = 0, {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "headwater_prequential_events":
                events = int(sample.value)
            elif sample.name == "headwater_prequential":
                figures.setdefault(sample.labels["model"], {})[sample.labels["figure"]] = float(sample.value)
    return events, figures


__all__ = ["FIGURES", "beside", "from_metrics_text", "merge", "model_and_version", "parse_totals_tag", "readable",
           "summarize", "totals_tag"]
