"""The key-means app tier: input lines ``key,value``, the per-key sums, UP messages, the pyfunc."""
from __future__ import annotations

import json
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pyarrow as pa

from headwater.api import AppExample
from headwater.input_bounds import DEFAULT_BOUNDS, InputBounds
from headwater.input_format import ParsedLines, parse_each
from headwater.registry import MODEL_ARTIFACT


class KeyValueFormat:
    """``key,value`` lines, checked against ``headwater.input.*`` with the framework's helpers."""

    schema = pa.schema([("key", pa.string()), ("value", pa.float64())])

    def __init__(self, bounds: InputBounds = DEFAULT_BOUNDS):
        self.bounds = bounds

    @classmethod
    def from_config(cls, config) -> KeyValueFormat:
        return cls(InputBounds.from_config(config))

    def parse(self, lines) -> ParsedLines:
        index, rows, rejected = parse_each(lines, self._parse_one)
        keys, values = zip(*rows) if rows else ((), ())
        return ParsedLines(pa.table({"line_index": pa.array(index, pa.int32()), "key": pa.array(keys, pa.string()),
                                     "value": pa.array(values, pa.float64())}), rejected)

    def _parse_one(self, line: str) -> tuple[str, float]:
        key, sep, raw = self.bounds.line(line).partition(",")
        if not sep or not key.strip():
            raise ValueError("expected key,value")
        return self.bounds.identifier(key, "key"), self.bounds.number(raw.strip(), "value", self.bounds.max_abs_feature)


class KeyMeans:
    """Per key: count and sum; an estimate shrinks the key's mean toward the global one by ``prior``."""

    def __init__(self, counts: dict[str, float], sums: dict[str, float], prior: float = 0.0):
        self.counts, self.sums, self.prior = dict(counts), dict(sums), float(prior)

    def estimate(self, key: str) -> float | None:
        total = sum(self.counts.values())
        overall = sum(self.sums.values()) / total if total else 0.0
        if key not in self.counts:
            return None
        return (self.sums[key] + self.prior * overall) / (self.counts[key] + self.prior)

    def save(self, directory) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "means.json").write_text(json.dumps([self.counts, self.sums, self.prior]))

    @classmethod
    def load(cls, directory) -> KeyMeans:
        return cls(*json.loads((Path(directory) / "means.json").read_text()))

    def copy(self) -> KeyMeans:
        return KeyMeans(self.counts, self.sums, self.prior)

    def summary(self) -> dict:
        return {"counts": dict(self.counts), "sums": {k: np.float64(v) for k, v in self.sums.items()}}


def encode(key: str, count: float, total: float) -> list:
    return ["M", key, count, total]


def decode(payload) -> tuple[str, float, float]:
    if not isinstance(payload, list) or len(payload) != 4 or payload[0] != "M":
        raise ValueError(f"not a key-means update: {payload!r:.100}")
    return str(payload[1]), float(payload[2]), float(payload[3])


class KeyMeansPyfunc(mlflow.pyfunc.PythonModel):
    def __init__(self, model: KeyMeans | None = None):
        self.model = model

    def load_context(self, context) -> None:
        self.model = KeyMeans.load(context.artifacts[MODEL_ARTIFACT])

    def predict(self, context, model_input, params=None):
        return [self.model.estimate(str(k)) for k in model_input["key"]]


def example() -> AppExample:
    return AppExample({}, KeyMeans({"a": 2.0, "b": 1.0}, {"a": 3.0, "b": 5.0}, prior=1.0), ["a,1", "c,4", "b,2"])
