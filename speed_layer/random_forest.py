"""The random forest speed model: labelled rows update the statistics of the leaves they reach.

Each row of a micro-batch is routed to its leaf in every tree (one vectorised walk for the whole
batch); classification adds one to the leaf's count of the row's class, regression adds
``[1, y, y²]`` to ``[count, sum, sum of squares]`` (so a leaf predicts the running mean). The UP
messages carry the changed leaves' *new* statistics (:mod:`headwater.apps.forest.updates`), so the
serving layer can apply them twice without harm. Rows with a category or class the batch model
never saw cannot reach a leaf and are skipped (Oryx would fail on them).

>>> import pyarrow as pa
>>> from headwater.apps.forest.arrays import ForestArrays
>>> from headwater.apps.forest.encoding import CategoricalEncoding
>>> forest = ForestArrays.from_nodes("regression", 1, [[dict(
...     id=0, feature=-1, threshold=0.0, categories=None, left=-1, right=-1, stats=[1, 10, 100])]])
>>> model = RandomForestSpeedModel(ForestModel(forest, CategoricalEncoding(["x"], {}, target="y")))
>>> model.learn_many(pa.table({"line_index": [0], "x": [3.0], "y": [20.0]}))[0][2:]
[[0], [[2.0, 30.0, 500.0]]]
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from headwater.apps.forest import updates
from headwater.apps.forest.model import ForestModel


class RandomForestSpeedModel:
    """A :class:`~headwater.apps.forest.model.ForestModel` whose leaves learn from parsed input tables."""

    def __init__(self, model: ForestModel):
        self.model = model

    @classmethod
    def from_registered(cls, registered, config=None) -> RandomForestSpeedModel:
        return cls(ForestModel.load(registered.path))

    def learn_many(self, parsed: pa.Table) -> list[list]:
        return [updates.encode(change) for change in self.model.learn(parsed)]

    def apply_update(self, payload) -> None:
        self.model.apply_update(updates.decode(payload))

    def copy(self) -> RandomForestSpeedModel:
        return RandomForestSpeedModel(self.model.copy())

    def save(self, directory: Path) -> None:
        self.model.save(directory)

    def state_summary(self) -> dict:
        return self.model.summary()

    def __repr__(self) -> str:
        return f"RandomForestSpeedModel({self.model!r})"


__all__ = ["RandomForestSpeedModel"]
