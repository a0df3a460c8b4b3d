"""The ALS model as an MLflow pyfunc, for offline scoring without Spark or the serving layer.

    model = mlflow.pyfunc.load_model("models:/<app id>@champion")
    model.predict(pd.DataFrame({"user": ["u1", "u2"], "item": ["i1", "i9"]}))   # estimates
    model.predict(pd.DataFrame({"user": ["u1"]}), params={"how_many": 5})       # recommendations

With an ``item`` column, ``predict`` returns ``user, item, estimate``: μ + b_u + b_i + x·y (implicit
feedback: x·y), where what the model does not know of a user counts 0, and an item the model does not
know is 0 (as Oryx answers) — as the serving layer's ``/estimate`` answers. Without one it returns the
top ``how_many`` (default 10) items per user by that same score that the user does not already know, as
rows ``user, rank, item, score``; unknown users get no rows. With the parameter ``per_row`` (what
``headwater score`` uses: Spark needs one answer per input row) each input row gets its user's lists
instead, ``items`` and ``scores`` (empty for an unknown user).
Only numpy and pandas are needed to load it.

>>> import numpy as np, pandas as pd
>>> from headwater.apps.als.factors import ALSFactors, ALSSettings
>>> model = ALSPyfuncModel(ALSFactors(["u"], [[1.0, 0.0]], ["a", "b", "c"], [[0.9, 0], [0.5, 0], [0.1, 0]],
...                                   {"u": {"a"}}, ALSSettings(implicit=False), mu=3.0, item_bias=[0, 0, 1]))
>>> model.predict(None, pd.DataFrame({"user": ["u"]}), params={"how_many": 2})
  user  rank item  score
0    u     1    c    4.1
1    u     2    b    3.5
>>> model.predict(None, pd.DataFrame({"user": ["u", "x", "u"], "item": ["a", "c", "z"]})).estimate.round(2).tolist()
[3.9, 4.0, 0.0]
>>> model.predict(None, pd.DataFrame({"user": ["u", "x"]}), params={"how_many": 2, "per_row": True})["items"].tolist()
[['c', 'b'], []]
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from headwater.apps.als.factors import ALSFactors
from headwater.registry import MODEL_ARTIFACT

DEFAULT_HOW_MANY = 10


class ALSPyfuncModel(PythonModel):
    """Loads the saved :class:`~headwater.apps.als.factors.ALSFactors` and estimates or recommends."""

    def __init__(self, factors=None):
        self.factors = factors  # None until load_context reads the logged artifact

    def load_context(self, context) -> None:
        self.factors = ALSFactors.load(context.artifacts[MODEL_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        users = model_input["user"].astype(str).tolist()
        if "item" in model_input.columns and model_input["item"].notna().any():
            return self._estimates(users, model_input["item"].astype(str).tolist())
        how_many = int((params or {}).get("how_many", DEFAULT_HOW_MANY))
        if (params or {}).get("per_row"):
            return self._recommendations_per_row(users, how_many)
        return self._recommendations(users, how_many)

    def _estimates(self, users: list[str], items: list[str]) -> pd.DataFrame:
        f = self.factors
        u = np.array([f.user_index.get(x, -1) for x in users], dtype=np.int64)
        i = np.array([f.item_index.get(x, -1) for x in items], dtype=np.int64)
        return pd.DataFrame({"user": users, "item": items, "estimate": np.where(i >= 0, f.estimates(u, i), 0.0)})

    def _recommendations(self, users: list[str], how_many: int) -> pd.DataFrame:
        f = self.factors
        rows = []
        for user in dict.fromkeys(users):
            index = f.user_index.get(user)
            if index is None:
                continue
            scores = f.estimates(np.full(len(f.item_ids), index), np.arange(len(f.item_ids)))
            cols, values = f.ratings.row_values(index)
            scores[cols[values > 0]] = -np.inf
            top = np.argsort(-scores, kind="stable")[:how_many]
            top = top[np.isfinite(scores[top])]
            rows.extend((user, rank + 1, f.item_ids[i], float(scores[i])) for rank, i in enumerate(top))
        return pd.DataFrame(rows, columns=["user", "rank", "item", "score"])


    def _recommendations_per_row(self, users: list[str], how_many: int) -> pd.DataFrame:
        top = self._recommendations(users, how_many)
        by_user = {user: (group["item"].tolist(), group["score"].tolist()) for user, group in top.groupby("user")}
        lists = [by_user.get(user, ([], [])) for user in users]
        return pd.DataFrame({"items": [items for items, _ in lists], "scores": [scores for _, scores in lists]})


def signature():
    """Input ``user`` (and optional ``item``) strings; parameters ``how_many`` and ``per_row``."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string", "user"), ColSpec("string", "item", required=False)]),
                          params=ParamSchema([ParamSpec("how_many", "long", DEFAULT_HOW_MANY),
                                               ParamSpec("per_row", "boolean", False)]))
