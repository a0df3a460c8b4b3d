"""The ALS model state every layer loads: factors, biases, each user's values, and the settings they came from.

The batch layer saves an :class:`ALSFactors` as a registry version's artifacts (:meth:`ALSFactors.save`);
the speed layer, the serving layer, the pyfunc model and the batch layer's champion evaluation load it
with :meth:`ALSFactors.load`. It holds

- X (users × k) and Y (items × k), float32, with their ids;
- explicit feedback: the global mean μ and the user and item biases (estimate = μ + b_u + b_i + x·y;
  a part the model does not know counts 0, so an unknown item is estimated μ + b_u);
- each user's *values* (the aggregated strengths the model was trained on, as stored values of
  :mod:`headwater.apps.als.strengths`): the exact solves of the speed layer and of anonymous queries need
  them, not only which items a user knows (the positive ones). A CSR :class:`RatingStore`, 12 bytes
  per value (int32 item, float32 value; plus 8 per user);
- :class:`ALSSettings`: λ, λ_b, α, ε (log strength), decay and zero threshold — so a layer learning on
  top of the model transforms and solves exactly as the batch layer did;
- the reference time of the stored values and the newest event the model has seen.

>>> import tempfile
>>> factors = ALSFactors(["u1"], [[0.5, 0.0]], ["i1", "i2"], np.eye(2), {"u1": {"i1": 4.0}},
...                      ALSSettings(implicit=False), mu=3.5, user_bias=[0.2], item_bias=[0.1, -0.3])
>>> factors.estimates(np.array([0, 0, -1]), np.array([0, -1, 1])).round(2).tolist()
[4.3, 3.7, 3.2]
>>> directory = tempfile.mkdtemp()
>>> factors.save(directory)
>>> ALSFactors.load(directory).values_of("u1"), ALSFactors.load(directory).known_items("u1")
({'i1': 4.0}, ['i1'])
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from headwater.apps.als.ratings import RatingStore


@dataclass(frozen=True)
class ALSSettings:
    """What a layer needs to solve and transform exactly as the batch model was trained."""

    implicit: bool
    regularization: float = 0.0        # λ, multiplied by each entity's number of values (Spark's ALS-WR)
    bias_regularization: float = 5.0   # λ_b of the biases (explicit), not multiplied by the count
    alpha: float = 1.0                 # implicit confidence 1 + α·|value|
    epsilon: float | None = None       # log strength log1p(value / ε), or None
    decay_factor: float = 1.0          # per day
    zero_threshold: float = 0.0


@dataclass
class FoldIn:
    """What one micro-batch changed: vectors and biases of users and items, and each user's changed values
    (NaN: the pair was removed)."""

    user_ids: list[str] = field(default_factory=list)
    user_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    user_biases: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    user_values: list[dict[str, float]] = field(default_factory=list)
    item_ids: list[str] = field(default_factory=list)
    item_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    item_biases: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


class ALSFactors:
    """The saved form of an ALS model; see the module docstring.

    ``ratings`` is a :class:`RatingStore` by user (rows: ``user_ids``, columns: ``item_ids``) or a mapping
    ``{user: {item: value}}``, where a plain collection of items means value 1 for each.
    """

    def __init__(self, user_ids: Sequence[str], X, item_ids: Sequence[str], Y,
                 ratings: RatingStore | Mapping[str, Mapping[str, float] | Iterable[str]], settings: ALSSettings,
                 mu: float = 0.0, user_bias=None, item_bias=None, reference_time_ms: int | None = None,
                 newest_event_ms: int | None = None):
        self.user_ids = [str(u) for u in user_ids]
        self.item_ids = [str(i) for i in item_ids]
        self.X = np.ascontiguousarray(X, dtype=np.float32).reshape(len(self.user_ids), -1)
        self.Y = np.ascontiguousarray(Y, dtype=np.float32).reshape(len(self.item_ids), -1)
        if self.X.shape[1] != self.Y.shape[1] and len(self.user_ids) and len(self.item_ids):
            raise ValueError(f"X has {self.X.shape[1]} features but Y has {self.Y.shape[1]}")
        if not isinstance(settings, ALSSettings):
            raise TypeError(f"settings must be an ALSSettings, got {settings!r:.100}")
        self.settings = settings
        self.mu = float(mu)
        self.user_bias = _biases(user_bias, len(self.user_ids))
        self.item_bias = _biases(item_bias, len(self.item_ids))
        self.ratings = ratings if isinstance(ratings, RatingStore) else self._store(ratings)
        if self.ratings.n_rows != len(self.user_ids):
            raise ValueError(f"the ratings have {self.ratings.n_rows} users, the model {len(self.user_ids)}")
        self.reference_time_ms = reference_time_ms
        self.newest_event_ms = newest_event_ms if newest_event_ms is not None else reference_time_ms

    def _store(self, ratings) -> RatingStore:
        rows, cols, values = [], [], []
        for user, items in ratings.items():
            if not isinstance(items, Mapping):
                items = dict.fromkeys(items, 1.0)
            for item, value in items.items():
                if str(item) not in self.item_index or str(user) not in self.user_index:
                    raise ValueError(f"the ratings name ({user!r}, {item!r}), which the model has no vector for")
                rows.append(self.user_index[str(user)])
                cols.append(self.item_index[str(item)])
                values.append(value)
        return RatingStore.from_pairs(len(self.user_ids), rows, cols, values)

    @property
    def implicit(self) -> bool:
        return self.settings.implicit

    # Built on first use: the serving layer never needs them and they cost ~100 MB per million ids.
    @cached_property
    def user_index(self) -> dict[str, int]:
        return {u: n for n, u in enumerate(self.user_ids)}

    @cached_property
    def item_index(self) -> dict[str, int]:
        return {i: n for n, i in enumerate(self.item_ids)}

    @property
    def features(self) -> int:
        return self.Y.shape[1] if len(self.item_ids) else self.X.shape[1]

    def values_of(self, user: str) -> dict[str, float]:
        """The user's stored values by item ({} for an unknown user)."""
        row = self.user_index.get(user)
        if row is None:
            return {}
        cols, values = self.ratings.row_values(row)
        return {self.item_ids[c]: float(v) for c, v in zip(cols, values)}

    def known_items(self, user: str) -> list[str]:
        """The items with a positive value for the user, as the serving layer excludes them."""
        return sorted(item for item, value in self.values_of(user).items() if value > 0)

    def estimates(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        """μ + b_u + b_i + x·y per (user row, item row); row −1 (unknown) contributes nothing."""
        return estimate_rows(self.mu, self.X, self.Y, self.user_bias, self.item_bias, user_rows, item_rows)

    # --- artifacts ----------------------------------------------------------------------------------
    def save(self, directory) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.ratings.compact()
        arrays = {"X": self.X, "Y": self.Y, "user_bias": self.user_bias, "item_bias": self.item_bias,
                  "ratings_indptr": self.ratings.indptr, "ratings_items": self.ratings.cols,
                  "ratings_values": self.ratings.values}
        for name, array in arrays.items():
            np.save(directory / f"{name}.npy", array)
        (directory / "user_ids.json").write_text(json.dumps(self.user_ids))
        (directory / "item_ids.json").write_text(json.dumps(self.item_ids))
        meta = {"features": self.features, "mu": self.mu, "reference_time_ms": self.reference_time_ms,
                "newest_event_ms": self.newest_event_ms, "settings": dataclasses.asdict(self.settings)}
        (directory / "meta.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory) -> ALSFactors:
        directory = Path(directory)
        meta = json.loads((directory / "meta.json").read_text())
        array = {name: np.load(directory / f"{name}.npy") for name in
                 ("X", "Y", "user_bias", "item_bias", "ratings_indptr", "ratings_items", "ratings_values")}
        ratings = RatingStore(array["ratings_indptr"], array["ratings_items"], array["ratings_values"])
        return cls(json.loads((directory / "user_ids.json").read_text()), array["X"],
                   json.loads((directory / "item_ids.json").read_text()), array["Y"], ratings,
                   ALSSettings(**meta["settings"]), meta["mu"], array["user_bias"], array["item_bias"],
                   meta["reference_time_ms"], meta["newest_event_ms"])

    def __repr__(self) -> str:
        return (f"ALSFactors(users={len(self.user_ids)}, items={len(self.item_ids)}, "
                f"features={self.features}, implicit={self.implicit})")


def estimate_rows(mu: float, X, Y, user_bias, item_bias, user_rows, item_rows) -> np.ndarray:
    """μ + b_u + b_i + x·y for rows of X and Y; a row of −1 (an unknown id) contributes 0."""
    u, i = np.asarray(user_rows, dtype=np.int64), np.asarray(item_rows, dtype=np.int64)
    known_user, known_item = u >= 0, i >= 0
    estimate = np.full(len(u), float(mu))
    estimate[known_user] += user_bias[u[known_user]]
    estimate[known_item] += item_bias[i[known_item]]
    both = known_user & known_item
    estimate[both] += np.einsum("ij,ij->i", X[u[both]].astype(np.float64), Y[i[both]].astype(np.float64))
    return estimate


def _biases(values, n: int) -> np.ndarray:
    if values is None:
        return np.zeros(n, np.float32)
    values = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    if len(values) != n:
        raise ValueError(f"{len(values)} biases for {n} ids")
    return values


def summarize(users: Mapping[str, np.ndarray], items: Mapping[str, np.ndarray],
              ratings: Mapping[str, Mapping[str, float]]) -> dict:
    """The layers' common view of a model, independent of row order: ``[vector..., bias]`` by id and
    each user's values (users without any left out)."""
    return {"users": {u: np.asarray(v, np.float32) for u, v in users.items()},
            "items": {i: np.asarray(v, np.float32) for i, v in items.items()},
            "ratings": {u: dict(values) for u, values in ratings.items() if values}}


__all__ = ["ALSFactors", "ALSSettings", "FoldIn", "estimate_rows", "summarize"]
