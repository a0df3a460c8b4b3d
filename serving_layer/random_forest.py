"""Random forest endpoints with Oryx's paths: predict, classificationDistribution, feature/importance, train.

A datum is one input line following ``headwater.input-schema`` (CSV or a JSON array with every
feature of the schema; the target's value is ignored and may be empty), in the path or one per line
of a POST body. All the rows of a request are predicted in one vectorised walk over the numpy trees.
A datum that does not parse, or has a category the model never saw, is a 400 naming the line, the
feature and the value. ``/train`` writes labelled lines to ``<id>.input``; the leaves change when the
speed layer's UP messages come back on ``<id>.update``.

>>> import pyarrow as pa
>>> from headwater.apps.forest.arrays import ForestArrays
>>> from headwater.apps.forest.encoding import CategoricalEncoding
>>> forest = ForestArrays.from_nodes("regression", 1, [[dict(
...     id=0, feature=-1, threshold=0.0, categories=None, left=-1, right=-1, stats=[2, 10, 50])]])
>>> served = RandomForestServingModel(ForestModel(forest, CategoricalEncoding(["x"], {}, "y")), version=4)
>>> served.model.predict(pa.table({"x": [1.0]}))
[5.0]
>>> served.apply_update(["L", forest.structure_id, 1.0, [[0, forest.tree_sids[0], [0], [[3, 18, 114]]]]])
>>> served.model.predict(pa.table({"x": [1.0]}))
[6.0]
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from headwater.apps.forest import updates
from headwater.apps.forest.encoding import UnknownCategory
from headwater.apps.forest.model import ForestModel
from headwater.input_bounds import InputBounds
from headwater.input_format import InputSchema, SchemaCSVFormat
from serving_layer import formats
from serving_layer.app_context import models, send_input_lines
from serving_layer.errors import ApiError
from serving_layer.operations import SENT_ANSWER, id_values_answer, lines_body, operation, value_answer, values_answer

bp = Blueprint("random_forest", __name__)
DATUM = "one input line following headwater.input-schema (CSV or a JSON array; the target may be empty)"
# a class name (classification) or a number (regression)
PREDICTION = {"oneOf": [{"type": "string"}, {"type": "number"}]}


class RandomForestServingModel:
    """The served :class:`~headwater.apps.forest.model.ForestModel`; leaf UPs overwrite leaf statistics in place
    (a request reading a leaf while it is written sees the old or the new counts of that one leaf), a tree
    UP swaps in a whole new forest in one assignment (a request sees the old trees or the new ones)."""

    def __init__(self, model: ForestModel, version: int | None = None):
        self.model = model
        self.version = version
        self.updates_ignored = 0  # UPs built on another forest (a previous champion) or a replaced tree

    @classmethod
    def from_registered(cls, registered, config=None) -> RandomForestServingModel:
        return cls(ForestModel.load(registered.path), version=registered.version)

    def apply_update(self, payload) -> None:
        if not self.model.apply_update(updates.decode(payload)):
            self.updates_ignored += 1

    def state_summary(self) -> dict:
        return self.model.summary()

    def ready_reason(self) -> str | None:
        return None if self.model.forest.num_trees else "the forest has no trees"

    def __repr__(self) -> str:
        return f"RandomForestServingModel(version={self.version}, {self.model!r})"



def _formats() -> tuple[SchemaCSVFormat, SchemaCSVFormat]:
    """(parser of data to predict: the target is ignored, parser of labelled lines), built once per app."""
    cached = current_app.extensions.get("headwater.random_forest.formats")
    if cached is None:
        config = current_app.config["HEADWATER"]
        schema, bounds = InputSchema.from_config(config), InputBounds.from_config(config)
        unlabelled = InputSchema(schema.feature_names, schema.numeric, schema.categorical,
                                 [*schema.ignored, schema.target], schema.ids)
        cached = (SchemaCSVFormat(unlabelled, bounds), SchemaCSVFormat(schema, bounds))
        current_app.extensions["headwater.random_forest.formats"] = cached
    return cached


def _model() -> ForestModel:
    return models().require_model().model


def _rows(lines: list[str]):
    return formats.parse_lines(_formats()[0], lines)


def _answer(lines: list[str], method: str):
    """``getattr(model, method)(rows)``, with an unknown category as a 400 that names line, feature, value."""
    model, rows = _model(), _rows(lines)
    try:
        return model, getattr(model, method)(rows)
    except UnknownCategory as exc:
        where = f"datum {lines[0]!r}" if len(lines) == 1 else f"line {exc.row + 1}"
        raise ApiError(400, f"{where}: {exc}", feature=exc.feature, value=exc.value) from None


@operation("The predicted class (classification) or value (regression) of a datum.",
           answer=value_answer(PREDICTION, "one prediction"), path={"datum": DATUM}, errors=(400,))
@bp.get("/predict/<path:datum>")
def predict_one(datum):
    return formats.value(list(_answer([datum], "predict")[1])[0])


@operation("A prediction per datum, all or nothing.", answer=values_answer(PREDICTION),
           body=lines_body("Data following headwater.input-schema (the target may be empty)", "5.1,3.5,1.4,0.2,"),
           errors=(400,))
@bp.post("/predict")
def predict_many():
    lines = formats.body_lines()
    return formats.values(_answer(lines, "predict")[1] if lines else [])


@operation("The probability of each class for a datum (classification only).",
           answer=id_values_answer(what="classes with their probabilities"), path={"datum": DATUM}, errors=(400,))
@bp.get("/classificationDistribution/<path:datum>")
def classification_distribution(datum):
    if _model().task != "classification":
        raise ApiError(400, "classificationDistribution is only defined for classification models")
    model, probabilities = _answer([datum], "probabilities")
    return formats.id_values(list(zip(model.classes, probabilities[0].tolist())))


def _schema_importances() -> list[float]:
    """Spark's gain-based importance of every feature of ``input-schema.feature-names``, in schema order, 0
    for a feature that is not a predictor (ids, ignored, the target), so ``n`` is Oryx's feature number."""
    importances = _model().importances
    return [float(importances.get(name, 0.0)) for name in _formats()[1].input_schema.feature_names]


@operation("The importance of each feature of the input schema, in schema order (0 for a non-predictor).",
           answer=values_answer(), errors=())
@bp.get("/feature/importance")
def feature_importances():
    return formats.values(_schema_importances())


@operation("The importance of one feature (0 for a non-predictor).", answer=value_answer(what="one importance"),
           path={"number": "the feature's position in input-schema.feature-names (0-based)"}, errors=(400,))
@bp.get("/feature/importance/<number>")
def feature_importance(number):
    importances = _schema_importances()
    expected = f"an int in the range [0, {len(importances) - 1}] (a feature's position in the input schema)"
    return formats.value(importances[formats.int_value("featureNumber", number, 0, len(importances) - 1, expected)])


def _check_labelled(lines: list[str]) -> None:
    """A 400 unless every line parses and has a target value (a category may be new: the next batch learns it)."""
    labelled = _formats()[1]
    rows = formats.parse_lines(labelled, lines)
    target = labelled.input_schema.target
    empty = [i for i, value in enumerate(rows.column(target).to_pylist()) if value == ""]
    if empty:
        where = f"datum {lines[0]!r}" if len(lines) == 1 else f"line {empty[0] + 1}"
        raise ApiError(400, f"{where}: the target feature {target!r} is empty", feature=target)


@operation("Send one labelled datum to the input topic (the leaves change with the speed layer).",
           writes=True, answer=SENT_ANSWER, path={"datum": DATUM}, errors=(400,))
@bp.post("/train/<path:datum>")
def train_one(datum):
    _check_labelled([datum])
    return jsonify({"sent": send_input_lines([datum])})


@operation("Send labelled data to the input topic, all or nothing.", writes=True, answer=SENT_ANSWER,
           body=lines_body("Labelled data following headwater.input-schema", "5.1,3.5,1.4,0.2,setosa"),
           errors=(400,))
@bp.post("/train")
def train_many():
    """All-or-nothing, so a client can fix a bad line and resend without duplicating the rest."""
    lines = formats.body_lines()
    if lines:
        _check_labelled(lines)
    return jsonify({"sent": send_input_lines(lines) if lines else 0})
