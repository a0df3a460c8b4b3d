"""The apps headwater knows and how a config names one.

An app is what Oryx calls an application: an input format, the constraints of its config section,
and one class per layer, named by import path so that no layer imports another's dependencies
(the serving layer never needs Spark). ``headwater.app`` is a short name below, or
``"package.module:APP"`` naming an :class:`App` object of the user's own.

>>> app = load_app("als")
>>> app.name, app.layer_path("serving")
('als', 'serving_layer.als')
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from headwater.config import BOOL, Config, ConfigError, Interval, ListOf, Optional, Options


@dataclass(frozen=True)
class App:
    """One app: its input format and a module per layer (``batch_layer.als`` and so on)."""

    name: str
    input_format: Callable[[Config], Any]
    layers: dict[str, str]
    config_constraints: dict[str, Any] = field(default_factory=dict)

    def layer_path(self, layer: str) -> str:
        try:
            return self.layers[layer]
        except KeyError:
            raise ConfigError(f"app {self.name!r} has no {layer} layer") from None

    def layer_module(self, layer: str):
        return importlib.import_module(self.layer_path(layer))


def _als_format(config: Config):
    from headwater.input_format import ALSFormat

    return ALSFormat()


def _schema_format(config: Config):
    from headwater.input_format import InputSchema, SchemaCSVFormat

    return SchemaCSVFormat(InputSchema.from_config(config))


_POSITIVE_NUMBERS = ListOf(Interval(float, 0, closed_low=False))

ALS = App(
    name="als",
    input_format=_als_format,
    layers={"batch": "batch_layer.als", "speed": "speed_layer.als", "serving": "serving_layer.als"},
    config_constraints={
        "headwater.als.implicit": BOOL,
        "headwater.als.log-strength": BOOL,
        "headwater.als.decay.factor": Interval(float, 0, 1, closed_low=False),
        "headwater.als.decay.zero-threshold": Interval(float, 0),
        "headwater.als.iterations": Interval(int, 1),
        "headwater.als.hyperparams.features": ListOf(Interval(int, 1)),
        "headwater.als.hyperparams.lambda": ListOf(Interval(float, 0)),
        "headwater.als.hyperparams.alpha": _POSITIVE_NUMBERS,
        "headwater.als.hyperparams.epsilon": _POSITIVE_NUMBERS,
    },
)

KMEANS = App(
    name="kmeans",
    input_format=_schema_format,
    layers={"batch": "batch_layer.kmeans", "speed": "speed_layer.kmeans", "serving": "serving_layer.kmeans"},
    config_constraints={
        "headwater.kmeans.iterations": Interval(int, 1),
        "headwater.kmeans.initialization-strategy": Options(("k-means||", "random")),
        "headwater.kmeans.evaluation-strategy": Options(("silhouette", "davies-bouldin", "sse")),
        "headwater.kmeans.silhouette-sample": Interval(int, 2),
        "headwater.kmeans.decay-factor": Interval(float, 0, 1),
        "headwater.kmeans.half-life": Optional(Interval(float, 0, closed_low=False)),
        "headwater.kmeans.time-unit": Options(("batches", "points")),
        "headwater.kmeans.hyperparams.k": ListOf(Interval(int, 2)),
    },
)

_RDF_CONSTRAINTS = {
    "headwater.rdf.num-trees": ListOf(Interval(int, 1)),
    "headwater.rdf.hyperparams.max-depth": ListOf(Interval(int, 1, 30)),
    "headwater.rdf.hyperparams.max-split-candidates": ListOf(Interval(int, 2)),
    "headwater.rdf.hyperparams.min-node-size": ListOf(Interval(int, 1)),
    "headwater.rdf.hyperparams.min-info-gain": ListOf(Interval(float, 0)),
}

RDF_CLASSIFICATION = App(
    name="rdf-classification",
    input_format=_schema_format,
    layers={"batch": "batch_layer.random_forest", "speed": "speed_layer.random_forest",
            "serving": "serving_layer.random_forest"},
    config_constraints={**_RDF_CONSTRAINTS,
                        "headwater.rdf.hyperparams.impurity": Optional(ListOf(Options(("gini", "entropy"))))},
)

RDF_REGRESSION = App(
    name="rdf-regression",
    input_format=_schema_format,
    layers=RDF_CLASSIFICATION.layers,
    config_constraints={**_RDF_CONSTRAINTS,
                        "headwater.rdf.hyperparams.impurity": Optional(ListOf(Options(("variance",))))},
)

BUILTIN_APPS = {app.name: app for app in (ALS, KMEANS, RDF_CLASSIFICATION, RDF_REGRESSION)}


def load_app(name: str, config: Config | None = None) -> App:
    """The app a config names: a built-in short name or ``module:attribute`` of an App."""
    if name in BUILTIN_APPS:
        return BUILTIN_APPS[name]
    module_name, sep, attribute = name.partition(":")
    if not sep:
        raise ConfigError(f"headwater.app must be one of {', '.join(BUILTIN_APPS)} or 'module:APP', "
                          f"got {name!r}")
    try:
        app = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"headwater.app {name!r} cannot be imported: {exc}") from None
    if not isinstance(app, App):
        raise ConfigError(f"headwater.app {name!r} is not a headwater.apps.App")
    return app


__all__ = ["App", "BUILTIN_APPS", "load_app"]
