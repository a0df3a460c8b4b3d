"""Which loaded model version answers a request, and the header that says so.

A read (GET) with ``?version=N`` is answered by version N when this replica holds it (the champion,
the challenger or the previous champion: :mod:`serving_layer.loaded_versions`); an N it does not
hold is a 404 in the JSON error shape that lists what it holds, a non-integer N a 400. Without
``?version`` the champion answers. Every answer carries ``X-Headwater-Model-Version``: the version that
answered, or the champion's when the request did not reach a model (errors, ``/metrics``), absent
only before any model is loaded. Blueprints do nothing for this: ``models().require_model()`` returns
the routed model.

>>> from headwater.config import load_config
>>> from serving_layer.app import create_app
>>> from serving_layer.model_manager import ModelManager
>>> app = create_app(load_config(overrides=["headwater.id=doc", "headwater.app=als"]), ModelManager())
>>> answer = app.test_client().get("/ready?version=3")
>>> answer.status_code, answer.get_json()["message"]
(404, 'model version 3 is not loaded here (loaded: none)')
"""
from __future__ import annotations

from flask import Flask, g, request

from serving_layer.errors import ApiError
from serving_layer.model_manager import ModelManager
from serving_layer.operations import Param

HEADER = "X-Headwater-Model-Version"
VERSION = Param("version", {"type": "integer", "minimum": 1},
                "answer from this model version when this replica holds it (the champion, the challenger or "
                "the previous champion), else 404")


def init_app(app: Flask, manager: ModelManager) -> None:
    """Route reads by ``?version`` and name the answering version on every answer."""

    @app.before_request
    def _route():
        raw = request.args.get(VERSION.name)
        if raw is None or request.method not in ("GET", "HEAD"):
            return
        try:
            version = int(raw)
        except ValueError:
            raise ApiError(400, f"version must be a model version number, got {raw[:40]!r}") from None
        model = manager.model_for(version)
        if model is None:
            loaded = manager.loaded_versions()
            held = ", ".join(f"{v} ({role})" for v, role in sorted(loaded.items())) or "none"
            raise ApiError(404, f"model version {version} is not loaded here (loaded: {held})",
                           loaded=sorted(loaded))
        g.headwater_model, g.headwater_version = model, version

    @app.after_request
    def _name_version(response):
        version = g.get("headwater_version", manager.base_version)
        if version is not None:
            response.headers[HEADER] = str(version)
        return response
