"""The random decision forest apps (Oryx's RDF): ``rdf-classification`` and ``rdf-regression``.

Shared by the layers: the forest as flat numpy arrays (:mod:`.arrays`), the forest with its
categorical encoding (:mod:`.model`, :mod:`.encoding`), the UP messages (:mod:`.updates`), the
pyfunc model (:mod:`.pyfunc`) and the demos (:mod:`.demo`). Each layer adapts them in one module:
``batch_layer/random_forest.py``, ``speed_layer/random_forest.py``, ``serving_layer/random_forest.py``.
The two apps differ only in the target's kind (categorical or numeric) and the impurities they accept.
"""
from dataclasses import replace

from headwater.api import App
from headwater.constraints import BOOL, HyperParam, Interval, OfType, Optional, Options

_CONSTRAINTS = {
    "headwater.rdf.decay-factor": Interval(float, 0, 1, closed_low=False),
    "headwater.rdf.half-life": Optional(Interval(float, 0, closed_low=False)),
    "headwater.rdf.time-unit": Options(("batches", "points", "event-time")),
    "headwater.rdf.drift.detector": Options(("window", "none")),
    "headwater.rdf.drift.warning-delta": Interval(float, 0, 1, closed_low=False),
    "headwater.rdf.drift.drift-delta": Interval(float, 0, 1, closed_low=False),
    "headwater.rdf.drift.min-effect": Interval(float, 0),
    "headwater.rdf.drift.window-rows": Interval(int, 10),
    "headwater.rdf.drift.min-window-rows": Interval(int, 10),
    "headwater.rdf.drift.tree-depth": Interval(int, 1, 30),
    "headwater.rdf.drift.min-node-size": Interval(int, 1),
    "headwater.rdf.drift.regrow": BOOL,
    "headwater.rdf.time-feature": Optional(OfType((str,), "a feature name")),
    "headwater.rdf.num-trees": HyperParam(Interval(int, 1)),
    "headwater.rdf.hyperparams.max-depth": HyperParam(Interval(int, 1, 30)),
    "headwater.rdf.hyperparams.max-split-candidates": HyperParam(Interval(int, 2)),
    "headwater.rdf.hyperparams.min-node-size": HyperParam(Interval(int, 1)),
    "headwater.rdf.hyperparams.min-info-gain": HyperParam(Interval(float, 0)),
}

CLASSIFICATION = App(
    name="rdf-classification",
    package=__name__,
    config_section="headwater.rdf",
    input_format="headwater.input_format:SchemaCSVFormat.from_config",
    state="headwater.apps.forest.model:ForestModel",
    pyfunc="headwater.apps.forest.pyfunc:ForestPyfuncModel",
    batch="batch_layer.random_forest:RandomForestUpdate",
    speed="speed_layer.random_forest:RandomForestSpeedModel",
    serving_model="serving_layer.random_forest:RandomForestServingModel",
    serving_routes="serving_layer.random_forest:bp",
    demo="headwater.apps.forest.demo",
    example="headwater.apps.forest.example:classification_example",
    constraints={**_CONSTRAINTS,
                 "headwater.rdf.hyperparams.impurity": Optional(HyperParam(Options(("gini", "entropy"))))},
)

REGRESSION = replace(
    CLASSIFICATION, name="rdf-regression", example="headwater.apps.forest.example:regression_example",
    constraints={**_CONSTRAINTS, "headwater.rdf.hyperparams.impurity": Optional(HyperParam(Options(("variance",))))})
