"""Checks every app's layer classes share, run once over all apps (River's contract tests).

For each app: the serving layer answers 503 with a reason before a model is loaded; a speed model
saved as registry artifacts loads in both layers; the UP payloads it learns survive the wire format
and applying them twice leaves the serving model as applying them once; and the model registers as
an MLflow pyfunc model that loads back.
"""
from __future__ import annotations

import numpy as np
import pytest

from headwater.als_factors import ALSFactors
from headwater.apps import BUILTIN_APPS, load_app
from headwater.input_format import input_format_for
from headwater.kmeans_clusters import KMeansClusters
from headwater.messages import decode_update, encode_up
from headwater.registry import RegisteredModel
from serving_layer.app import create_app
from serving_layer.model_manager import ModelManager
from tests.forest_helpers import random_forest_model, small_lines, small_schema


def _als():
    from speed_layer.als import ALSSpeedModel

    rng = np.random.default_rng(0)
    factors = ALSFactors([f"u{n}" for n in range(5)], rng.normal(size=(5, 3)), [f"i{n}" for n in range(8)],
                         rng.normal(size=(8, 3)), {"u0": {"i0", "i1"}, "u1": {"i2"}}, implicit=True,
                         regularization=0.1)
    lines = ["u0,i3,2", "u1,i2,", "new-user,i4,1", "new-user,new-item,1", "u2,i5,3,1700000000000"]
    return {}, ALSSpeedModel(factors), lines, lambda m: (m.users.view.vectors.copy(), m.items.view.vectors.copy(),
                                                         dict(m.known_items))


def _kmeans():
    from speed_layer.kmeans import KMeansSpeedModel

    clusters = KMeansClusters(["a", "b"], np.array([[0.0, 0.0], [5.0, 5.0]]), np.array([10.0, 10.0]))
    lines = ["0.5,0.2", "4.5,5.5", "5.2,4.9", "-0.3,0.1"]
    return ({"input-schema.feature-names": ["a", "b"]}, KMeansSpeedModel(clusters), lines,
            lambda m: m.clusters.centers.copy())


def _forest(task: str):
    from speed_layer.random_forest import RandomForestSpeedModel

    return (small_schema(task), RandomForestSpeedModel(random_forest_model(task)), small_lines(task, 40),
            lambda m: m.model.forest.stats.copy())


CASES = {"als": _als, "kmeans": _kmeans, "rdf-classification": lambda: _forest("classification"),
         "rdf-regression": lambda: _forest("regression")}


def test_every_builtin_app_is_covered():
    assert set(CASES) == set(BUILTIN_APPS)


@pytest.fixture(params=sorted(CASES))
def case(request, make_config):
    overrides, speed, lines, state = CASES[request.param]()
    config = make_config(app=request.param, **overrides)
    return config, speed, lines, state


def _layers(config):
    app = load_app(config.get("headwater.app"))
    return app.layer_module("speed").SPEED_MODEL, app.layer_module("serving").ServingModel


def test_serving_answers_503_with_a_reason_before_a_model(case):
    config, *_ = case
    _, serving_model = _layers(config)
    client = create_app(config, ModelManager(config, serving_model)).test_client()
    answer = client.get("/ready")
    assert answer.status_code == 503
    assert answer.get_json()["message"].startswith("not ready")


def test_artifacts_load_in_both_layers_and_updates_apply_idempotently(case, tmp_path):
    config, speed, lines, state = case
    speed_model, serving_model = _layers(config)
    speed.to_artifacts(tmp_path / "model")
    registered = RegisteredModel(name=config.app_id, version=1, path=tmp_path / "model")
    serving = serving_model.from_registered(registered)
    assert serving.ready_reason() is None
    learner = speed_model.from_registered(registered, config)
    parsed = input_format_for(config).parse(lines)
    assert not parsed.rejected
    payloads = learner.learn_many(parsed.table)
    assert payloads, "a micro-batch of new data produces UP payloads"
    wire = [encode_up(p) for p in payloads]
    for raw in wire:
        serving.apply_update(decode_update(raw).payload)
    once = state(serving)
    for raw in wire:
        serving.apply_update(decode_update(raw).payload)
    for a, b in zip(once, state(serving)) if isinstance(once, tuple) else [(once, state(serving))]:
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b
    # the speed layer's copy is independent of the model it keeps learning into
    assert learner.copy() is not learner


def test_registers_as_a_pyfunc_model(case, tmp_path):
    import mlflow

    from headwater.registry import download_alias, log_and_register

    config, speed, _, _ = case
    speed.to_artifacts(tmp_path / "model")
    registered = log_and_register(config, tmp_path / "model", speed.python_model(), {"layer": "speed"}, ["speed"])
    assert download_alias(config, "speed").version == registered.version
    mlflow.set_tracking_uri(config.get("headwater.mlflow.tracking-uri"))
    assert mlflow.pyfunc.load_model(f"models:/{config.app_id}@speed") is not None
