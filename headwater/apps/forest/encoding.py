"""How input rows become the numbers a forest sees: one encoding, built in batch, stored with the model.

Numeric features pass through; each categorical feature's values get codes 0..n-1 in sorted order,
fixed when the batch layer trains and saved next to the forest, so the batch layer, the speed layer
and the serving layer all turn ``"red"`` into the same number (Oryx's CategoricalValueEncodings).
A categorical target's codes are the forest's class indices, and :meth:`decode` turns a predicted
index back into the original string. A value the encoding has never seen cannot be routed down a
tree: :meth:`features` raises :class:`UnknownCategory` naming the feature and value (the serving
layer's 400), and :meth:`known_rows` says which rows a learner can use (the speed layer skips the rest).

>>> import pyarrow as pa
>>> rows = pa.table({"size": [1.0, 3.0], "colour": ["red", "blue"], "label": ["yes", "no"]})
>>> encoding = CategoricalEncoding.fit(["size", "colour"], ["colour", "label"], rows, target="label")
>>> encoding.features(rows).tolist()
[[1.0, 1.0], [3.0, 0.0]]
>>> encoding.target(rows).tolist(), encoding.decode("label", [1, 0])
([1.0, 0.0], ['yes', 'no'])
>>> encoding.features(pa.table({"size": [2.0], "colour": ["green"]}))
Traceback (most recent call last):
...
headwater.apps.forest.encoding.UnknownCategory: feature 'colour' has no category 'green' (known: blue, red)
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FILE_NAME = "encoding.json"


class UnknownCategory(ValueError):
    """A categorical value the model was not trained with."""

    def __init__(self, feature: str, value, known: Sequence[str], row: int | None = None):
        shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
        super().__init__(f"feature {feature!r} has no category {value!r} (known: {shown})")
        self.feature = feature
        self.value = value
        self.row = row  # index of the first offending row


class CategoricalEncoding:
    """Predictor order, each categorical feature's values (code = position) and the target's name."""

    def __init__(self, predictors: Sequence[str], categories: Mapping[str, Sequence[str]],
                 target: str | None = None):
        self.predictors = list(predictors)
        self.categories = {name: [str(v) for v in values] for name, values in categories.items()}
        self.target_name = target
        unknown = sorted(set(self.categories) - set(self.predictors) - {target})
        if unknown:
            raise ValueError(f"categories given for {unknown}, which are neither predictors nor the target")
        self._value_sets = {name: pa.array(values, pa.string()) for name, values in self.categories.items()}

    @classmethod
    def fit(cls, predictors: Sequence[str], categorical: Sequence[str], columns, target: str | None = None):
        """Codes from the distinct non-null values of ``columns`` (a pyarrow Table or name -> values)."""
        categories = {}
        for name in categorical:
            values = columns[name]
            distinct = pc.unique(values if isinstance(values, (pa.Array, pa.ChunkedArray))
                                 else pa.array(list(values), pa.string()))
            categories[name] = sorted(str(v) for v in distinct.to_pylist() if v is not None)
        return cls(predictors, categories, target)

    def is_categorical(self, name: str) -> bool:
        return name in self.categories

    @property
    def categorical_predictors(self) -> dict[int, int]:
        """Predictor index -> number of categories (Spark's ``categoricalFeaturesInfo``)."""
        return {i: len(self.categories[name]) for i, name in enumerate(self.predictors)
                if name in self.categories}

    @property
    def classes(self) -> list[str] | None:
        """The target's values in class-index order, or None for a numeric (regression) target."""
        return self.categories.get(self.target_name)

    def codes(self, name: str, values) -> np.ndarray:
        """Codes of one categorical column as float64; NaN where a value is unknown or null."""
        array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(list(values), pa.string())
        indices = pc.index_in(array.cast(pa.string()), value_set=self._value_sets[name])
        return indices.to_numpy(zero_copy_only=False).astype(np.float64)

    def column(self, table: pa.Table, name: str) -> np.ndarray:
        """One column of ``table`` as float64: numeric values as they are, categories as codes (NaN unknown)."""
        if name not in table.column_names:
            raise KeyError(f"rows have no column {name!r}")
        values = table.column(name)
        if name in self.categories:
            return self.codes(name, values)
        return values.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)

    def features(self, table: pa.Table) -> np.ndarray:
        """The predictors of every row (rows × predictors); raises :class:`UnknownCategory`."""
        X = self._matrix(table)
        missing = np.isnan(X)
        if missing.any():
            row, column = np.argwhere(missing)[0]
            name = self.predictors[column]
            if name not in self.categories:
                raise ValueError(f"feature {name!r} is missing or not a number in row {int(row)}")
            raise UnknownCategory(name, table.column(name)[int(row)].as_py(), self.categories.get(name, []), int(row))
        return X

    def target(self, table: pa.Table) -> np.ndarray:
        """The target of every row: class index (NaN for an unknown class) or the numeric value."""
        if self.target_name is None:
            raise ValueError("the encoding has no target feature")
        return self.column(table, self.target_name)

    def known_rows(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(X, y, mask) of the rows whose predictors and target are all known, and which rows those are."""
        X, y = self._matrix(table), self.target(table)
        mask = ~(np.isnan(X).any(axis=1) | np.isnan(y))
        return X[mask], y[mask], mask

    def decode(self, name: str, codes) -> list[str]:
        values = self.categories[name]
        return [values[int(c)] for c in codes]

    def _matrix(self, table: pa.Table) -> np.ndarray:
        X = np.empty((table.num_rows, len(self.predictors)), dtype=np.float64)
        for i, name in enumerate(self.predictors):
            X[:, i] = self.column(table, name)
        return X

    def to_json(self) -> dict:
        return {"predictors": self.predictors, "categories": self.categories, "target": self.target_name}

    @classmethod
    def from_json(cls, body: Mapping) -> CategoricalEncoding:
        return cls(body["predictors"], body["categories"], body.get("target"))

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / FILE_NAME).write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, directory: str | Path) -> CategoricalEncoding:
        return cls.from_json(json.loads((Path(directory) / FILE_NAME).read_text()))

    def __repr__(self) -> str:
        sizes = {name: len(values) for name, values in self.categories.items()}
        return (f"CategoricalEncoding(predictors={len(self.predictors)}, categories={sizes}, "
                f"target={self.target_name!r})")


__all__ = ["CategoricalEncoding", "UnknownCategory"]
