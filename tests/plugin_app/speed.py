"""The key-means speed layer: add each micro-batch's counts and sums; UPs carry a key's new totals."""
from __future__ import annotations

from tests.plugin_app.state import KeyMeans, decode, encode


class KeyMeansSpeedModel:
    def __init__(self, model: KeyMeans):
        self.model = model

    @classmethod
    def from_registered(cls, registered, config=None) -> KeyMeansSpeedModel:
        return cls(KeyMeans.load(registered.path))

    def learn_many(self, parsed) -> list[list]:
        m = self.model
        for key, value in zip(parsed.column("key").to_pylist(), parsed.column("value").to_pylist()):
            m.counts[key] = m.counts.get(key, 0.0) + 1.0
            m.sums[key] = m.sums.get(key, 0.0) + value
        return [encode(k, m.counts[k], m.sums[k]) for k in sorted(set(parsed.column("key").to_pylist()))]

    def score_many(self, parsed) -> dict:
        import numpy as np

        estimates = [self.model.estimate(k) for k in parsed.column("key").to_pylist()]
        predicted = np.array([np.nan if e is None else e for e in estimates], dtype=float)
        return {"squared_error": (predicted - parsed.column("value").to_numpy(zero_copy_only=False)) ** 2}

    def apply_update(self, payload) -> None:
        key, count, total = decode(payload)
        self.model.counts[key], self.model.sums[key] = count, total

    def copy(self) -> KeyMeansSpeedModel:
        return KeyMeansSpeedModel(self.model.copy())

    def save(self, directory) -> None:
        self.model.save(directory)

    def state_summary(self) -> dict:
        return self.model.summary()
