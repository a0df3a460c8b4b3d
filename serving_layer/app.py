"""The serving layer's Flask app factory and its waitress runner (``headwater serve --conf FILE``).

``create_app`` registers the error handler, ``/ready``, ``/metrics`` and the configured app's
blueprint, and starts the model manager (registry load + update-topic tail) only when it built the
manager itself: importing a module never opens Kafka, and tests hand in a manager they control.

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
import pkgutil
from collections.abc import Callable

from flask import Flask, jsonify

from headwater.config import Config, ConfigError
from serving_layer import errors, prometheus_metrics
from serving_layer.app_context import MODELS, RESCORER, models
from serving_layer.model_manager import ModelManager

log = logging.getLogger(__name__)


def load_rescorer(config: Config) -> Callable | None:
    """The ``headwater.serving.rescorer`` callable (``module:callable``), imported once at start-up."""
    name = config.get("headwater.serving.rescorer", None)
    if not name:
        return None
    try:
        if ":" not in name:
            raise ImportError("expected 'package.module:callable'")
        rescorer = pkgutil.resolve_name(name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"headwater.serving.rescorer {name!r} in {config.source_of('headwater.serving.rescorer')} "
                          f"cannot be imported: {exc}") from None
    if not callable(rescorer):
        raise ConfigError(f"headwater.serving.rescorer {name!r} is not callable")
    return rescorer


def ready():
    manager = models()
    reason = manager.ready_reason()
    if reason is not None:
        raise errors.ApiError(503, f"not ready: {reason}", reason=reason)
    return jsonify({"ready": True, "model_version": getattr(manager.model, "version", None)})


def create_app(config: Config, model_manager: ModelManager | None = None) -> Flask:
    app = Flask(__name__)
    app.config["HEADWATER"] = config
    app.config["MAX_CONTENT_LENGTH"] = config.get("headwater.serving.max-body-bytes")
    manager = model_manager or ModelManager(config, config.app.resolve("serving_model"))
    app.extensions[MODELS] = manager
    app.extensions[RESCORER] = load_rescorer(config)
    errors.init_app(app)
    prometheus_metrics.init_app(app, manager.metrics)
    app.add_url_rule("/ready", "ready", ready)
    app.register_blueprint(config.app.resolve("serving_routes"))
    if model_manager is None:
        manager.start()
    return app


def serve(config: Config) -> None:
    """Run the app with waitress until interrupted."""
    from waitress import serve as waitress_serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The model manager retries a failed load with its own back-off (at most 5 s apart); MLflow's HTTP
    # retries (7, backing off to minutes) would only delay noticing that the registry is back.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    host, port = config.get("headwater.serving.host"), config.get("headwater.serving.port")
    app = create_app(config)
    log.info("serving %s (%s) on http://%s:%s", config.app_id, config.get("headwater.app"), host, port)
    try:
        waitress_serve(app, host=host, port=port, threads=8, ident="headwater")
    finally:
        app.extensions[MODELS].stop()
