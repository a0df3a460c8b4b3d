"""The random forest as an MLflow pyfunc, for offline scoring without Spark or the serving layer.

    model = mlflow.pyfunc.load_model("models:/<app id>@champion")
    model.predict(pd.DataFrame({"mean_radius": [14.1], ...}))

The input has one column per predictor (numeric or, for a categorical feature, its string value).
The output has a ``prediction`` column (the class name for classification, the value for
regression) and, for classification, one probability column per class, named by the class. A
categorical value the model never saw raises an error that names the feature and the value.

>>> import pandas as pd
>>> from headwater.apps.forest.arrays import ForestArrays
>>> from headwater.apps.forest.encoding import CategoricalEncoding
>>> leaf = lambda stats: dict(feature=-1, threshold=0.0, categories=None, left=-1, right=-1, stats=stats)
>>> forest = ForestArrays.from_nodes("regression", 1, [[
...     dict(id=0, feature=0, threshold=0.0, categories=[0], left=1, right=2, stats=[2, 3, 5]),
...     dict(id=1, **leaf([1, 1, 1])), dict(id=2, **leaf([1, 2, 4]))]])
>>> pyfunc = ForestPyfuncModel(ForestModel(forest, CategoricalEncoding(["c"], {"c": ["a", "b"]})))
>>> pyfunc.predict(None, pd.DataFrame({"c": ["b", "a"]}))
   prediction
0         2.0
1         1.0
"""
from __future__ import annotations

import pandas as pd
import pyarrow as pa
from mlflow.pyfunc import PythonModel

from headwater.apps.forest.model import ForestModel
from headwater.registry import MODEL_ARTIFACT


class ForestPyfuncModel(PythonModel):
    """Loads the saved :class:`~headwater.apps.forest.model.ForestModel` and predicts with numpy."""

    def __init__(self, model=None):
        self.model = model  # None until load_context reads the logged artifacts

    def load_context(self, context) -> None:
        self.model = ForestModel.load(context.artifacts[MODEL_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        encoding = self.model.encoding
        rows = pa.table({name: _column(model_input, name, encoding.is_categorical(name))
                         for name in encoding.predictors})
        result = pd.DataFrame({"prediction": self.model.predict(rows)}, index=model_input.index)
        if self.model.task == "classification":
            for name, column in zip(self.model.classes, self.model.probabilities(rows).T):
                result[name] = column
        return result


def _column(frame: pd.DataFrame, name: str, categorical: bool) -> pa.Array:
    if name not in frame.columns:
        raise ValueError(f"the input has no column for feature {name!r}")
    values = frame[name]
    if categorical:
        return pa.array([None if pd.isna(v) else str(v) for v in values], pa.string())
    return pa.array(pd.to_numeric(values, errors="coerce").astype(float), pa.float64())


def signature(encoding):
    """One input column per predictor: string for categorical features, double for numeric ones."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string" if encoding.is_categorical(name) else "double", name)
                                         for name in encoding.predictors]))
