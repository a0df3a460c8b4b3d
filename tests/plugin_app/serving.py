"""The key-means serving layer: ``GET /mean/<key>``."""
from __future__ import annotations

from flask import Blueprint

from serving_layer import formats
from serving_layer.app_context import models
from serving_layer.errors import not_found
from tests.plugin_app.state import KeyMeans, decode

bp = Blueprint("key_means", __name__)


class KeyMeansServingModel:
    def __init__(self, model: KeyMeans, version: int | None = None):
        self.model, self.version = model, version

    @classmethod
    def from_registered(cls, registered, config=None) -> KeyMeansServingModel:
        return cls(KeyMeans.load(registered.path), registered.version)

    def apply_update(self, payload) -> None:
        key, count, total = decode(payload)
        self.model.counts[key], self.model.sums[key] = count, total

    def ready_reason(self) -> str | None:
        return None

    def state_summary(self) -> dict:
        return self.model.summary()


@bp.get("/mean/<key>")
def mean(key):
    estimate = models().require_model().model.estimate(key)
    if estimate is None:
        raise not_found("key", key)
    return formats.values([estimate])
