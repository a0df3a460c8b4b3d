"""The evaluation figure logged with every batch run: each metric per candidate, champion, baseline and threshold.

One panel per metric (for ALS: AUC or RMSE, precision@k, NDCG@k), one bar per candidate labelled with
its hyperparameters, the chosen candidate highlighted, the champion's value on the same test data as
a dashed line, the baseline's as a dash-dotted one and the promotion threshold as a dotted one. Built on
matplotlib's ``Figure`` directly
(Agg canvas), so no pyplot state and no display are involved.

>>> figure = evaluation_figure([({"rank": 4}, {"score": 0.8, "auc": 0.8}), ({"rank": 8}, None)],
...                            best=0, champion={"score": 0.75, "auc": 0.75}, threshold=0.7,
...                            baseline={"score": 0.6, "auc": 0.6})
>>> [axes.get_title() for axes in figure.axes]
['score', 'auc']
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

BEST_COLOUR, OTHER_COLOUR = "tab:green", "tab:blue"


def evaluation_figure(candidates: Sequence[tuple[Mapping[str, Any], Mapping[str, float] | None]],
                      best: int | None, champion: Mapping[str, float] | None = None,
                      threshold: float | None = None, baseline: Mapping[str, float] | None = None) -> Figure:
    """``candidates``: (hyperparameters, metrics or None if it failed) in candidate order."""
    names = _metric_names([metrics for _, metrics in candidates])
    figure = Figure(figsize=(max(4.0, 1.2 * len(candidates) + 2), 2.6 * max(1, len(names))),
                    layout="constrained")
    labels = [f"{n}: " + ", ".join(f"{k}={v}" for k, v in params.items()) for n, (params, _) in enumerate(candidates)]
    for row, name in enumerate(names):
        axes = figure.add_subplot(len(names), 1, row + 1)
        values = [_value(metrics, name) for _, metrics in candidates]
        colours = [BEST_COLOUR if n == best else OTHER_COLOUR for n in range(len(candidates))]
        axes.bar(range(len(candidates)), [0.0 if math.isnan(v) else v for v in values], color=colours)
        for reference, style, label in ((champion, "--", "champion"), (baseline, "-.", "baseline")):
            if reference is not None and not math.isnan(_value(reference, name)):
                axes.axhline(_value(reference, name), linestyle=style, color="black", label=label)
        if name == "score" and threshold is not None:
            axes.axhline(threshold, linestyle=":", color="red", label="threshold")
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="lower right", fontsize="small")
        axes.set_title(name)
        axes.set_xticks(range(len(candidates)))
        axes.set_xticklabels(labels if row == len(names) - 1 else [""] * len(candidates),
                             rotation=20, ha="right", fontsize="small")
    return figure


def _metric_names(all_metrics: Sequence[Mapping[str, float] | None]) -> list[str]:
    names: list[str] = []
    for metrics in all_metrics:
        for name in metrics or {}:
            if name not in names:
                names.append(name)
    # the primary score first, the rest in the order the app reported them
    return sorted(names, key=lambda name: name != "score")


def _value(metrics: Mapping[str, float] | None, name: str) -> float:
    value = (metrics or {}).get(name)
    return float("nan") if value is None else float(value)
