"""The shared contract checks (:mod:`headwater.app_checks`) over every app that is found, plus a plug-in app.

Apps are discovered as the runners find them (the ``headwater.apps`` entry points), so a new built-in
app is covered without editing this file; ``tests.plugin_app`` is an app outside headwater with
keys of its own.
"""
from __future__ import annotations

import pytest

from headwater.app_checks import check_app
from headwater.apps import available_apps, find_app
from serving_layer.app import create_app
from serving_layer.model_manager import ModelManager

APPS = [*sorted(available_apps()), "tests.plugin_app:APP"]


@pytest.fixture(params=APPS)
def app_config(request, make_config):
    example = find_app(request.param).resolve("example")()
    return make_config(app=request.param, **example.config_overrides)


def test_every_app_passes_the_shared_checks(app_config, tmp_path):
    check_app(app_config, tmp_path)


def test_serving_answers_503_with_a_reason_before_a_model(app_config):
    manager = ModelManager(app_config, app_config.app.resolve("serving_model"))
    answer = create_app(app_config, manager).test_client().get("/ready")
    assert answer.status_code == 503
    assert answer.get_json()["message"].startswith("not ready")


def test_the_checks_catch_an_app_whose_serving_layer_drifts_from_its_speed_layer(make_config, tmp_path,
                                                                                monkeypatch):
    from serving_layer.kmeans import KMeansServingModel

    monkeypatch.setattr(KMeansServingModel, "apply_update", lambda self, payload: None)  # drops every UP
    config = make_config(app="kmeans", **find_app("kmeans").resolve("example")().config_overrides)
    with pytest.raises(AssertionError, match="serving after the UPs vs speed"):
        check_app(config, tmp_path, register=False)
