"""k-means endpoints with Oryx's paths: ``/assign``, ``/distanceToNearest``, ``/add``.

A datum is one input line following ``headwater.input-schema`` (CSV or a JSON array, every
feature of the schema, ids and ignored ones included), in the path or one per line of a POST
body. A datum that does not parse is a 400 naming the line and the field; nothing is answered or
sent for a request with a bad line. Answers are one value per datum, CSV by default, JSON on
``Accept: application/json``. ``/add`` writes the lines to ``<id>.input``; the centres move when
the speed layer's UP messages come back on ``<id>.update``.

>>> model = KMeansServingModel(KMeansClusters(["x", "y"], [[0.0, 0.0], [5.0, 5.0]], [2, 2]), version=1)
>>> model.assign(np.array([[4.0, 4.0]]))
(array([1]), array([1.41421356]))
>>> model.apply_update(["C", 1, [4.0, 4.0], 3.0]); model.assign(np.array([[4.0, 4.0]]))[1]
array([0.])
"""
from __future__ import annotations

import numpy as np
from flask import Blueprint, jsonify

from headwater.apps.kmeans import updates
from headwater.apps.kmeans.clusters import KMeansClusters
from serving_layer import formats
from serving_layer.app_context import input_format, models, send_input_lines
from serving_layer.operations import SENT_ANSWER, lines_body, operation, value_answer, values_answer

bp = Blueprint("kmeans", __name__)
DATUM = "one input line following headwater.input-schema (CSV or a JSON array), URL-encoded"
CLUSTER = {"type": "integer", "minimum": 0}


class KMeansServingModel:
    """The served centres; UP payloads replace one centre copy-on-write, so reads never lock."""

    def __init__(self, clusters: KMeansClusters, version: int | None = None):
        self.clusters = clusters
        self.version = version

    @classmethod
    def from_registered(cls, registered, config=None) -> KMeansServingModel:
        return cls(KMeansClusters.load(registered.path), version=registered.version)

    def apply_update(self, payload) -> None:
        self.clusters.apply_update(updates.decode(payload))

    def state_summary(self) -> dict:
        return self.clusters.summary()

    def ready_reason(self) -> str | None:
        return None

    def assign(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.clusters.assign(points)

    def __repr__(self) -> str:
        return f"KMeansServingModel(version={self.version}, {self.clusters!r})"



def _checked(lines: list[str]):
    return formats.parse_lines(input_format(), lines)


def _nearest(lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    model = models().require_model()
    table = _checked(lines)
    return model.assign(model.clusters.points(table))


@operation("The index of the nearest cluster centre to a datum.", answer=value_answer(CLUSTER, "one index"),
           path={"datum": DATUM}, errors=(400,))
@bp.get("/assign/<path:datum>")
def assign_one(datum):
    return formats.value(_nearest([datum])[0].tolist()[0])


@operation("The nearest cluster centre of each datum, all or nothing.", answer=values_answer(CLUSTER),
           body=lines_body("Data following headwater.input-schema", "1.0,2.0"), errors=(400,))
@bp.post("/assign")
def assign_many():
    lines = formats.body_lines()
    return formats.values(_nearest(lines)[0].tolist() if lines else [])


@operation("The distance from a datum to its nearest cluster centre.", answer=value_answer(what="one distance"),
           path={"datum": DATUM}, errors=(400,))
@bp.get("/distanceToNearest/<path:datum>")
def distance_to_nearest(datum):
    return formats.value(_nearest([datum])[1].tolist()[0])


@operation("Send one datum to the input topic (the centres move with the speed layer).", writes=True,
           answer=SENT_ANSWER, path={"datum": DATUM}, errors=(400,))
@bp.post("/add/<path:datum>")
def add_one(datum):
    _checked([datum])
    return jsonify({"sent": send_input_lines([datum])})


@operation("Send data to the input topic, all or nothing.", writes=True, answer=SENT_ANSWER,
           body=lines_body("Data following headwater.input-schema", "1.0,2.0"), errors=(400,))
@bp.post("/add")
def add_many():
    """All-or-nothing, so a client can fix a bad line and resend without duplicating the rest."""
    lines = formats.body_lines()
    if lines:
        _checked(lines)
    return jsonify({"sent": send_input_lines(lines) if lines else 0})
