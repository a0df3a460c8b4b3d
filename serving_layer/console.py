"""The console page at ``/``: what is served, how fresh it is, how well it learns, and a form per endpoint.

The page and its script and style are files of this package (``templates/console.html``,
``static/console.*``), served by the app: no CDN. The page carries no data, so it needs no
credentials; it reads ``/console/status`` (which does, like every data endpoint) with the token a
person types in, and builds one form per operation of ``/openapi.json``, so every app's console
has exactly its endpoints.

``/console/status`` answers the served model's registry version with its aliases and tags (the
events-table version it was trained on, its layer and base), the evaluation metrics of the run
that made it, the seconds since the last update was applied, the updates per 10 s over the last
5 minutes, and the live prequential evaluation of the served champion once the speed layer has
published one (its BATCH records on the update topic: each event scored before it was learned, by
the live model and by the champion alone; ``ServingMetrics.prequential_figures``), and the rollout:
the loaded versions with their roles and memory, the challenger split and the shadow's comparisons,
the last drift report of each version, and the last alias moves (``headwater history``). Registry facts
are fetched in the background once per version, so a slow or unreachable MLflow never slows the
page down.
"""
from __future__ import annotations

import logging
import threading
import time

from flask import Blueprint, current_app, jsonify, render_template, request

from serving_layer.app_context import models
from serving_layer.operations import Answer, operation, public

log = logging.getLogger(__name__)
REGISTRY_FACTS = "headwater.console.registry"

bp = Blueprint("console", __name__, static_folder="static", static_url_path="/console/static")


@bp.get("/")
@public
def page():
    config = current_app.config["HEADWATER"]
    return render_template("console.html", root=request.script_root, app_id=config.app_id,
                           app_name=config.get("headwater.app"))


STATUS_SCHEMA = {"type": "object", "required": ["app", "id", "ready", "model", "freshness_sec", "update_rate"],
                 "properties": {
                     "app": {"type": "string"}, "id": {"type": "string"}, "ready": {"type": "boolean"},
                     "reason": {"type": "string", "nullable": True},
                     "model": {"type": "object", "nullable": True},
                     "freshness_sec": {"type": "number", "nullable": True},
                     "updates_applied": {"type": "integer"},
                     "update_rate": {"type": "object"},
                     "prequential": {"type": "object", "nullable": True},
                     "rollout": {"type": "object"}}}


@operation("What the console shows: model version and aliases, data version, freshness, metrics, update rate.",
           answer=Answer("the serving layer's state", STATUS_SCHEMA, csv=False), errors=())
@bp.get("/console/status")
def status():
    manager = models()
    config = current_app.config["HEADWATER"]
    model = manager.model
    version = getattr(model, "version", None)
    metrics = manager.metrics
    recent = metrics.recent_updates
    return jsonify({
        "app": config.get("headwater.app"), "id": config.app_id,
        "ready": manager.ready_reason() is None, "reason": manager.ready_reason(),
        "model": None if model is None else {"version": version, **_registry_facts(version)},
        "freshness_sec": metrics.seconds_since_update(),
        "updates_applied": metrics.updates_applied,
        "update_rate": {"bucket_sec": recent.bucket_sec,
                        "series": [[start, count] for start, count in recent.series()]},
        "prequential": _prequential(metrics),
        "rollout": _rollout(manager, config),
    })


def _rollout(manager, config) -> dict:
    """Loaded versions (role, memory), the split, the shadow's comparisons, drift per version, alias history."""
    memory = {labels["version"]: value for labels, value in _samples(metrics_gauge(manager.metrics.model_memory))}
    shadow = {f"{labels['version']} {labels['measure']}": value
              for labels, value in _samples(metrics_gauge(manager.metrics.shadow_measure))}
    return {"loaded": [{"version": v, "role": role, "memory_bytes": memory.get(str(v))}
                       for v, role in sorted(manager.loaded_versions().items())],
            "challenger_percent": config.get("headwater.serving.routing.challenger-percent"),
            "shadow": config.get("headwater.serving.routing.shadow"), "shadow_measures": shadow,
            "drift": {str(v): r for v, r in manager.metrics.drift_reports.items()},
            "history": _history(config)}


def metrics_gauge(gauge):
    return gauge.collect()[0].samples


def _samples(samples) -> list[tuple[dict, float]]:
    return [(sample.labels, sample.value) for sample in samples]


HISTORY = "headwater.console.history"
HISTORY_TTL_SEC = 10.0


def _history(config) -> list[dict]:
    """The last alias moves (refreshed in the background at most every 10 s: MLflow never slows the page)."""
    cache = current_app.extensions.setdefault(HISTORY, {"moves": [], "at": 0.0})
    if time.monotonic() - cache["at"] > HISTORY_TTL_SEC:
        cache["at"] = time.monotonic()
        threading.Thread(target=_fetch_history, args=(config, cache), daemon=True, name="console-history").start()
    return cache["moves"]


def _fetch_history(config, cache: dict) -> None:
    from headwater import promotion

    try:
        cache["moves"] = promotion.history(config)[-20:]
    except Exception as exc:  # shown as no history; the model is served either way
        log.info("console: alias history unavailable: %s", exc)


def _prequential(metrics) -> dict | None:
    """``{"events": n, "figures": {figure: {model: value}}}``, or None before the first scored batch."""
    by_model = metrics.prequential_figures()
    figures: dict[str, dict[str, float]] = {}
    for model, values in by_model.items():
        for figure, value in values.items():
            figures.setdefault(figure, {})[model] = value
    return {"events": metrics.prequential_event_count, "figures": figures} if figures else None


def _registry_facts(version: int | None) -> dict:
    """Aliases, tags and run metrics of ``version`` once fetched; ``{"registry": "loading"}`` until then."""
    if version is None:
        return {}
    cache = current_app.extensions.setdefault(REGISTRY_FACTS, {})
    facts = cache.get(version)
    if facts is None:
        cache[version] = facts = {"registry": "loading"}
        config = current_app.config["HEADWATER"]
        threading.Thread(target=_fetch, args=(config, version, cache), daemon=True, name="console-registry").start()
    return facts


def _fetch(config, version: int, cache: dict) -> None:
    from headwater import registry

    started = time.monotonic()
    try:
        client = registry.client(config)
        found = client.get_model_version(registry.registered_model_name(config), str(version))
        run_metrics = client.get_run(found.run_id).data.metrics if found.run_id else {}
        tags = dict(found.tags or {})
        cache[version] = {
            "registry": "ok", "aliases": sorted(found.aliases or []),
            "layer": tags.get(registry.TAG_LAYER), "data_version": tags.get(registry.TAG_DELTA_VERSION),
            "base_version": tags.get(registry.TAG_BASE_VERSION),
            "registered_at": found.creation_timestamp and found.creation_timestamp / 1000,
            "evaluation": {k: v for k, v in sorted(run_metrics.items())},
        }
    except Exception as exc:  # the console shows it; the model is served either way
        log.info("console: registry facts of version %s unavailable after %.1f s: %s", version,
                 time.monotonic() - started, exc)
        cache[version] = {"registry": f"unavailable: {type(exc).__name__}"}
