"""The random forest speed model: leaves that forget, trees replaced after a drift.

The rule is :mod:`headwater.apps.forest.learning`, shared with the benchmarks.

Each row of a micro-batch is routed to its leaf in every tree (one vectorised walk for the whole
batch); the leaves it reaches are aged by ``headwater.rdf.half-life`` and get the row (one to the
row's class count, or ``[1, y, y²]`` to ``[count, sum, sum of squares]``). Per tree, the batch's loss
before learning feeds a drift detector, and a drifting tree is replaced by one grown on recent rows
(``headwater.rdf.drift.*``). The UP messages carry replaced trees and the changed leaves' *new*
statistics (:mod:`headwater.apps.forest.updates`), so the serving layer can apply them twice without
harm. Rows with a category or class the batch model never saw cannot reach a leaf and are skipped.

A snapshot (:meth:`RandomForestSpeedModel.save`) holds the forest with its replaced trees plus the
drift state (detector windows, the recent rows, background and young trees, the generator), which a
restarted speed layer restores before it re-folds the micro-batches published after the snapshot
(:mod:`speed_layer.runner`); the rule is a function of that state and the rows, so the re-fold
replaces the same trees with the same ids as the UPs already on the topic.

>>> import pyarrow as pa
>>> from headwater.apps.forest.arrays import ForestArrays
>>> from headwater.apps.forest.encoding import CategoricalEncoding
>>> forest = ForestArrays.from_nodes("regression", 1, [[dict(
...     id=0, feature=-1, threshold=0.0, categories=None, left=-1, right=-1, stats=[1, 10, 100])]])
>>> model = RandomForestSpeedModel(ForestLearner(ForestModel(forest, CategoricalEncoding(["x"], {}, target="y"))))
>>> model.learn_many(pa.table({"line_index": [0], "x": [3.0], "y": [20.0]}))[0][3][0][2:]
[[0], [[2.0, 30.0, 500.0]]]
>>> model.score_many(pa.table({"x": [3.0], "y": [17.0]}))["squared_error"].tolist()
[4.0]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from headwater.apps.forest import updates
from headwater.apps.forest.decay import Decay
from headwater.apps.forest.learning import ForestLearner
from headwater.apps.forest.model import ForestModel
from headwater.apps.forest.replacement import ReplacementSettings
from headwater.constraints import ConfigError


class RandomForestSpeedModel:
    """A :class:`~headwater.apps.forest.learning.ForestLearner` fed parsed input tables."""

    def __init__(self, learner: ForestLearner):
        self.learner = learner

    @property
    def model(self) -> ForestModel:
        return self.learner.model

    @classmethod
    def from_registered(cls, registered, config=None) -> RandomForestSpeedModel:
        if config is None:
            return cls(ForestLearner(ForestModel.load(registered.path)))
        decay, time_feature = Decay.from_config(config), config.get("headwater.rdf.time-feature")
        if decay.unit == "event-time" and time_feature is None:
            raise ConfigError("headwater.rdf.time-unit = \"event-time\" needs headwater.rdf.time-feature "
                              "(the feature holding each row's event time)")
        return cls(ForestLearner.load(registered.path, decay, ReplacementSettings.from_config(config), time_feature))

    def learn_many(self, parsed: pa.Table) -> list[list]:
        return updates.encode_all(self.learner.learn(parsed))

    def score_many(self, parsed: pa.Table) -> dict[str, np.ndarray]:
        name = "error" if self.model.task == "classification" else "squared_error"
        return {name: self.learner.losses(parsed)}

    def apply_update(self, payload) -> None:
        self.learner.apply_update(updates.decode(payload))

    def copy(self) -> RandomForestSpeedModel:
        return RandomForestSpeedModel(self.learner.copy())

    def save(self, directory: Path) -> None:
        self.learner.save(directory)

    def state_summary(self) -> dict:
        return self.model.summary()

    def __repr__(self) -> str:
        return f"RandomForestSpeedModel({self.model!r})"


__all__ = ["RandomForestSpeedModel"]
