"""A random decision forest with its categorical encoding: what every layer loads, learns into and predicts with.

The batch layer saves one (:meth:`ForestModel.save`: the forest and its encoding); the speed layer
folds labelled rows into its leaf statistics (:mod:`.learning`) and publishes the changed leaves and
replaced trees; the serving layer and the MLflow pyfunc model load it (:meth:`ForestModel.load`),
predict with it and apply those updates.
Rows are pyarrow tables with one column per predictor (numeric float64, categorical string), as
:class:`~headwater.input_format.SchemaCSVFormat` parses them.

>>> import numpy as np, pyarrow as pa
>>> from headwater.apps.forest.encoding import CategoricalEncoding
>>> leaf = lambda counts: dict(feature=-1, threshold=0.0, categories=None, left=-1, right=-1, stats=counts)
>>> forest = ForestArrays.from_nodes("classification", 1, [[
...     dict(id=0, feature=0, threshold=0.5, categories=None, left=1, right=2, stats=[3, 3]),
...     dict(id=1, **leaf([3, 0])), dict(id=2, **leaf([0, 3]))]])
>>> model = ForestModel(forest, CategoricalEncoding(["x"], {"y": ["no", "yes"]}, target="y"))
>>> model.predict(pa.table({"x": [0.0, 1.0]}))
['no', 'yes']
>>> model.apply_update(updates.decode(["L", forest.structure_id, 1.0, [[0, forest.tree_sids[0], [2], [[4, 3]]]]]))
True
>>> model.predict(pa.table({"x": [1.0]})), model.probabilities(pa.table({"x": [1.0]})).tolist()
(['no'], [[0.5714285714285714, 0.42857142857142855]])
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from headwater.apps.forest import updates
from headwater.apps.forest.arrays import ForestArrays
from headwater.apps.forest.encoding import CategoricalEncoding

# the two parts of a saved model, each a subdirectory
FOREST_DIRECTORY, ENCODING_DIRECTORY = "forest", "encoding"


class ForestModel:
    """:class:`ForestArrays` plus the :class:`CategoricalEncoding` its rows were encoded with."""

    def __init__(self, forest: ForestArrays, encoding: CategoricalEncoding):
        if forest.num_features != len(encoding.predictors):
            raise ValueError(f"the forest has {forest.num_features} features, the encoding "
                             f"{len(encoding.predictors)} predictors")
        if (forest.task == "classification") != (encoding.classes is not None):
            raise ValueError(f"a {forest.task} forest needs a "
                             f"{'categorical' if forest.task == 'classification' else 'numeric'} target")
        self.forest = forest
        self.encoding = encoding

    @classmethod
    def load(cls, directory: str | Path) -> ForestModel:
        directory = Path(directory)
        return cls(ForestArrays.load(directory / FOREST_DIRECTORY),
                   CategoricalEncoding.load(directory / ENCODING_DIRECTORY))

    def save(self, directory: str | Path) -> None:
        self.forest.save(Path(directory) / FOREST_DIRECTORY)
        self.encoding.save(Path(directory) / ENCODING_DIRECTORY)

    def copy(self) -> ForestModel:
        return ForestModel(self.forest.copy(), self.encoding)

    @property
    def task(self) -> str:
        return self.forest.task

    @property
    def classes(self) -> list[str] | None:
        return self.encoding.classes

    @property
    def importances(self) -> dict[str, float]:
        """Spark's feature importances, by predictor name, in predictor order."""
        return dict(zip(self.encoding.predictors, self.forest.importances.tolist()))

    # --- prediction (raises UnknownCategory for a value the encoding does not know) ---------------
    def predict_values(self, rows: pa.Table) -> np.ndarray:
        """Class index (classification) or predicted value (regression) of every row."""
        return self.forest.predict(self.encoding.features(rows))

    def predict(self, rows: pa.Table) -> list:
        """Class names (classification) or predicted values (regression)."""
        predicted = self.predict_values(rows)
        if self.task == "classification":
            return self.encoding.decode(self.encoding.target_name, predicted)
        return predicted.tolist()

    def probabilities(self, rows: pa.Table) -> np.ndarray:
        """(rows × classes) probabilities, in the order of :attr:`classes`."""
        return self.forest.predict_proba(self.encoding.features(rows))

    # --- updates ---------------------------------------------------------------------------------
    def apply_update(self, update: updates.LeafUpdate | updates.TreeUpdate) -> bool:
        """Apply one UP; False when it was built on another forest or on a tree replaced since (ignored).

        A tree UP builds a new forest and rebinds :attr:`forest` in one assignment, so a reader sees
        the old trees or the new ones, never half of a replacement.
        """
        if isinstance(update, updates.TreeUpdate):
            replaced = self.forest.applied_tree_update(update)
            if replaced is None:
                return False
            self.forest = replaced
            return True
        return self.forest.apply_leaf_update(update)

    def summary(self) -> dict:
        """The forest's shape and leaf statistics as plain values (what the speed and serving layers compare)."""
        return {"structure_id": self.forest.structure_id, "tree_sids": list(self.forest.tree_sids),
                "stats": self.forest.stats.copy(), "asof": self.forest.asof.copy()}

    def __repr__(self) -> str:
        f = self.forest
        return (f"ForestModel({f.task}, trees={f.num_trees}, nodes={len(f.feature)}, "
                f"predictors={f.num_features}, structure={f.structure_id})")


__all__ = ["ForestModel"]
