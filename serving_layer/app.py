"""The serving layer's Flask app factory (``headwater serve --conf FILE`` runs it, :mod:`serving_layer.server`).

``create_app`` registers the error handler, the roles (:mod:`serving_layer.auth`), the version router
(:mod:`serving_layer.model_router`), compression,
``/ready``, ``/metrics``, the OpenAPI document and docs page, the console page at ``/`` and the
configured app's blueprint, mounts it all under the context path, and starts the model manager
(registry load + update-topic tail) only when it built the manager itself: importing a module
never opens Kafka, and tests hand in a manager they control.

>>> from headwater.config import load_config
>>> from serving_layer.model_manager import ModelManager
>>> app = create_app(load_config(overrides=["headwater.id=doc", "headwater.app=als"]), ModelManager())
>>> response = app.test_client().get("/ready")
>>> response.status_code, response.get_json()["reason"]
(503, 'no model is loaded yet')
"""
from __future__ import annotations

import logging
import os
import time

from flask import Flask, jsonify

from headwater.config import Config
from serving_layer import (
    auth,
    compression,
    console,
    errors,
    latency_guard,
    model_router,
    openapi,
    prometheus_metrics,
    server,
    shadow,
)
from serving_layer.app_context import MODELS, RESCORER, SHADOW, models
from serving_layer.model_manager import ModelManager
from serving_layer.operations import Answer, operation, public
from serving_layer.rescorers import load_provider

log = logging.getLogger(__name__)


@public
@operation("200 once a model is loaded, else 503 with the reason (for load balancers).",
           answer=Answer("ready", {"type": "object", "required": ["ready"],
                                   "properties": {"ready": {"type": "boolean"},
                                                  "model_version": {"type": "integer", "nullable": True}}},
                         csv=False), errors=())
def ready():
    manager = models()
    reason = manager.ready_reason()
    if reason is not None:
        raise errors.ApiError(503, f"not ready: {reason}", reason=reason)
    return jsonify({"ready": True, "model_version": getattr(manager.model, "version", None)})


def create_app(config: Config, model_manager: ModelManager | None = None) -> Flask:
    app = Flask(__name__, static_folder=None)  # the console blueprint serves the static files
    app.config["HEADWATER"] = config
    app.config["MAX_CONTENT_LENGTH"] = config.get("headwater.serving.max-body-bytes")
    # Oryx's paths carry IDs: a//b or a trailing slash is the client's ID list, not a redirect
    app.url_map.merge_slashes = False
    manager = model_manager or ModelManager(config, config.app.resolve("serving_model"))
    app.extensions[MODELS] = manager
    app.extensions[RESCORER] = load_provider(config)
    errors.init_app(app)
    auth.init_app(app, config)
    model_router.init_app(app, manager)
    prometheus_metrics.init_app(app, manager.metrics)
    public(app.view_functions["metrics"])
    compression.init_app(app, config.get("headwater.serving.api.compress-min-bytes"))
    if config.get("headwater.rollout.latency-guard.enabled"):
        latency_guard.init_app(app, manager, config, time.perf_counter)
    if config.get("headwater.serving.routing.shadow"):  # after compression: it sees the plain answer
        app.extensions[SHADOW] = shadow.init_app(app, manager, config.get("headwater.serving.routing.shadow-queue"))
    app.add_url_rule("/ready", "ready", ready)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(console.bp)
    app.register_blueprint(config.app.resolve("serving_routes"))
    server.mount(app, server.context_path(config))
    if model_manager is None:
        manager.start()
    return app


def serve(config: Config) -> None:
    """Serve until interrupted (HTTP or HTTPS, see :mod:`serving_layer.server`)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The model manager retries a failed load with its own back-off (at most 5 s apart); MLflow's HTTP
    # retries (7, backing off to minutes) would only delay noticing that the registry is back.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    tls = server.tls_files(config)  # a bad pair stops start-up before any model is loaded
    server.run(create_app(config), config, tls)
