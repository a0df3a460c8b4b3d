"""Which loaded model version answers a request, and the header that says so.

With ``headwater.serving.routing.challenger-percent`` > 0 and a challenger loaded, that share of the
app's reads goes to the challenger, sticky by a hash of the user id in the path (ALS) or of the
``X-Headwater-Key`` header (k-means, forests), else random: a key reaches the same version as long as
the split stands.

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
>>> answer = app.test_client().get("/item/allIDs?version=3")
>>> answer.status_code, answer.get_json()["message"]
(404, 'model version 3 is not loaded here (loaded: none)')
"""
from __future__ import annotations

import hashlib
import random

from flask import Flask, g, request

from serving_layer.errors import ApiError
from serving_layer.loaded_versions import CHALLENGER
from serving_layer.model_manager import ModelManager
from serving_layer.operations import Param

HEADER = "X-Headwater-Model-Version"
KEY_HEADER = "X-Headwater-Key"   # what makes a k-means or forest client sticky to one version of a split
_BUCKETS = 10_000
# Blueprints whose endpoints are the service's own, not the app's: no ?version, never split.
UNROUTED = ("openapi", "console")
VERSION = Param("version", {"type": "integer", "minimum": 1},
                "answer from this model version when this replica holds it (the champion, the challenger or "
                "the previous champion), else 404")


def in_challenger_share(key: str, percent: float) -> bool:
    """Whether ``key`` falls in the first ``percent`` % of the hash space: the same key, the same answer.

    >>> sum(in_challenger_share(f"user-{n}", 10) for n in range(10_000))
    961
    """
    bucket = int.from_bytes(hashlib.blake2b(key.encode("utf-8", "replace"), digest_size=8).digest(), "big")
    return bucket % _BUCKETS < percent * (_BUCKETS / 100)


def split_key() -> str | None:
    """What a request is sticky by: the user in its path, else the ``X-Headwater-Key`` header, else nothing."""
    user = (request.view_args or {}).get("user")
    return user if user is not None else request.headers.get(KEY_HEADER)


def init_app(app: Flask, manager: ModelManager) -> None:
    """Route reads by ``?version`` (or the challenger split) and name the answering version on every answer."""
    config = app.config["HEADWATER"]
    percent = config.get("headwater.serving.routing.challenger-percent")

    @app.before_request
    def _route():
        if request.method not in ("GET", "HEAD") or request.blueprint in (None, *UNROUTED):
            return   # writes, and the service's own endpoints (/ready, /metrics, the spec, the console)
        raw = request.args.get(VERSION.name)
        if raw is None:
            if percent > 0:
                _split(manager, percent)
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


def _split(manager: ModelManager, percent: float) -> None:
    """Send the challenger share of reads to the challenger, when one is loaded (random without a key)."""
    version = manager.versions.version_of(CHALLENGER)
    if version is None:
        return
    key = split_key()
    chosen = in_challenger_share(key, percent) if key is not None else random.random() * 100 < percent
    if chosen:
        model = manager.versions.get(version)
        if model is not None:
            g.headwater_model, g.headwater_version = model, version
