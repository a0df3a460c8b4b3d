"""The MLflow pyfunc form of a k-means model: ``predict`` gives the nearest cluster of each row.

Batch versions and speed snapshots are logged with this class, so
``mlflow.pyfunc.load_model("models:/<id>@champion").predict(frame)`` scores offline without the
serving layer. Columns are matched by feature name; a frame without those names but with exactly
one column per feature is read in order (a plain numeric matrix). With the parameter ``with_distance``
the answer is a frame of ``cluster`` and ``distance`` (Euclidean, to that cluster's centre).

>>> import pandas as pd
>>> scorer = KMeansPyfuncModel(KMeansClusters(["x", "y"], [[0.0, 0.0], [5.0, 5.0]], [1, 1]))
>>> scorer.predict(None, pd.DataFrame({"y": [4.0, 0.1], "x": [6.0, 0.0]})).tolist()
[1, 0]
>>> scorer.predict(None, pd.DataFrame({"x": [3.0], "y": [5.0]}), params={"with_distance": True}).values.tolist()
[[1.0, 2.0]]
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from headwater.apps.kmeans.clusters import KMeansClusters
from headwater.registry import MODEL_ARTIFACT


class KMeansPyfuncModel(PythonModel):
    """Loads the saved :class:`~headwater.apps.kmeans.clusters.KMeansClusters` and assigns rows to clusters."""

    def __init__(self, clusters: KMeansClusters | None = None):
        self.clusters = clusters  # None until load_context reads the logged artifact

    def load_context(self, context) -> None:
        self.clusters = KMeansClusters.load(context.artifacts[MODEL_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.Series:
        frame = pd.DataFrame(model_input)
        features = self.clusters.features
        if all(f in frame.columns for f in features):
            points = frame[features].to_numpy(dtype=np.float64)
        elif frame.shape[1] == len(features):
            points = frame.to_numpy(dtype=np.float64)
        else:
            raise ValueError(f"expected columns {features} (or {len(features)} unnamed columns), "
                             f"got {list(frame.columns)}")
        cluster, distance = self.clusters.assign(points)
        if (params or {}).get("with_distance"):
            return pd.DataFrame({"cluster": cluster, "distance": distance}, index=frame.index)
        return pd.Series(cluster, index=frame.index, name="cluster")


def signature(features: list[str]):
    """One double column per clustered feature in, the cluster index out; parameter ``with_distance``."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("double", f) for f in features]),
                          params=ParamSchema([ParamSpec("with_distance", "boolean", False)]))
