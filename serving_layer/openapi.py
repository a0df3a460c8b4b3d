"""The OpenAPI 3 document of a serving app, generated from its routes and their declared operations.

apispec (marshmallow-code's spec builder) assembles the document: the paths, methods and path
parameters come from the Flask URL map, everything else from the :class:`~serving_layer.operations.Operation`
each view declares, and the security schemes and 401/403 answers from the configured roles
(:mod:`serving_layer.auth`). apispec rather than flask-smorest or spectree: those two take over
request parsing and validation (webargs/marshmallow, pydantic) and answer with their own error
shape, while headwater's endpoints parse Oryx's paths themselves and answer the one JSON error
shape of :mod:`serving_layer.errors`; apispec only writes the document.

``/openapi.json`` serves it (with ``servers`` set to the context path) and ``/docs`` an
interactive page, Swagger UI from the ``swagger-ui-bundle`` package, served by the app itself.

>>> from headwater.config import load_config
>>> from serving_layer.app import create_app
>>> from serving_layer.model_manager import ModelManager
>>> app = create_app(load_config(overrides=["headwater.id=doc", "headwater.app=kmeans"]), ModelManager())
>>> spec = app.test_client().get("/openapi.json").get_json()
>>> spec["openapi"], sorted(spec["paths"]["/assign"])
('3.0.3', ['post'])
"""
from __future__ import annotations

import copy
import re
from http import HTTPStatus

from apispec import APISpec
from flask import Blueprint, Flask, current_app, jsonify, render_template, request, send_from_directory

import headwater
from serving_layer import auth, model_router
from serving_layer.formats import JSON
from serving_layer.operations import (
    Answer,
    Operation,
    described_or_default,
    is_public,
    operation,
    operation_of,
    public,
    schema_of,
)

SPEC = "headwater.openapi"
# every operation may answer these: no model yet or Kafka away (503), a body it cannot inflate (415),
# a body over the size limit (413)
COMMON_ERRORS = (413, 415, 503)
# Blueprints whose reads do not take ?version: the service's own endpoints, the spec, the console.
UNROUTED_BLUEPRINTS = ("service", *model_router.UNROUTED)
ERROR_SCHEMA = {"type": "object", "required": ["error", "message"], "additionalProperties": True,
                "properties": {"error": {"type": "string", "description": "the HTTP status phrase"},
                               "message": {"type": "string", "description": "what is wrong, for people"}},
                "description": "Every answer other than 2xx; more properties name the field, ID or line at fault."}
_RULE_PARAMETER = re.compile(r"<(?:(?P<converter>[^:<>]+):)?(?P<name>[^<>]+)>")

bp = Blueprint("openapi", __name__)


def build_spec(app: Flask) -> dict:
    """The document for ``app`` (its routes as registered now)."""
    config = app.config["HEADWATER"]
    spec = APISpec(title=f"headwater serving: {config.app_id} ({config.get('headwater.app')})",
                   version=headwater.__version__, openapi_version="3.0.3",
                   info={"description": "Answers are CSV by default and JSON with `Accept: application/json`; "
                                        "every error is JSON of the `Error` shape."})
    spec.components.schema("Error", ERROR_SCHEMA)
    access = app.extensions[auth.ACCESS]
    for name, scheme in access.security_schemes().items():
        spec.components.security_scheme(name, scheme)
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions[rule.endpoint]
        if is_public(rule.endpoint, view) and operation_of(view) is None:
            continue
        path, converters = _openapi_path(rule.rule)
        operations = {}
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operations[method.lower()] = _operation(rule, described_or_default(view, method), converters, access)
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _openapi_path(rule: str) -> tuple[str, dict[str, str]]:
    converters = {m["name"]: m["converter"] or "default" for m in _RULE_PARAMETER.finditer(rule)}
    return _RULE_PARAMETER.sub(lambda m: "{" + m["name"] + "}", rule), converters


def _operation(rule, described: Operation, converters: dict[str, str], access: auth.Access) -> dict:
    blueprint = rule.endpoint.partition(".")[0] if "." in rule.endpoint else "service"
    suffix = "" if rule.defaults is None else "_" + "_".join(sorted(rule.defaults))
    parameters = [{"name": name, "in": "path", "required": True,
                   "description": described.path.get(name, name)
                   + (" (may contain '/')" if converter == "path" else ""),
                   "schema": {"type": "string", "minLength": 1}}
                  for name, converter in converters.items()]
    parameters += [p.spec() for p in described.query]
    routed = not described.writes and blueprint not in UNROUTED_BLUEPRINTS
    if routed:  # the app's reads answer from any loaded version
        parameters.append(model_router.VERSION.spec())
    responses = {"200": {"description": described.answer.description, "content": schema_of(described.answer)}}
    statuses = {*described.errors, *COMMON_ERRORS, *access.statuses(described.writes)}
    if converters or routed:  # a path the router cannot match (e.g. an ID with a line break) is a 404
        statuses.add(404)
    for status in sorted(statuses):
        responses[str(status)] = {"description": HTTPStatus(status).phrase,
                                  "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}
    entry = {"operationId": f"{rule.endpoint.replace('.', '_')}{suffix}", "summary": described.summary,
             "tags": [blueprint], "parameters": parameters, "responses": responses}
    if described.writes:
        entry["description"] = "A write: 403 when headwater.serving.api.read-only is true."
    security = access.security(described.writes)
    if security:
        entry["security"] = security
    if described.body is not None:
        body = described.body
        entry["requestBody"] = {
            "description": body.description, "required": False,  # an empty body is an empty list
            "content": {media: {"schema": {"type": "string"}, "example": body.example} for media in body.media_types}}
        parameters.append({"name": "Content-Encoding", "in": "header", "required": False,
                           "description": "compression of the request body",
                           "schema": {"type": "string", "enum": ["gzip", "deflate", "identity"]}})
    return entry


def undescribed_routes(app: Flask) -> list[str]:
    """Routes that are neither described nor public (none in headwater's own apps: the tests check it)."""
    return sorted(rule.rule for rule in app.url_map.iter_rules()
                  if operation_of(app.view_functions[rule.endpoint]) is None
                  and not is_public(rule.endpoint, app.view_functions[rule.endpoint]))


@operation("This document: the OpenAPI 3 description of every endpoint.",
           answer=Answer("the OpenAPI document", {"type": "object"}, csv=False), errors=())
@bp.get("/openapi.json")
def openapi_json():
    spec = current_app.extensions.get(SPEC)
    if spec is None:
        spec = current_app.extensions[SPEC] = build_spec(current_app)
    answer = copy.copy(spec)
    answer["servers"] = [{"url": request.script_root or "/"}]
    return jsonify(answer)


@bp.get("/docs")
@public
def docs_page():
    return render_template("docs.html", root=request.script_root)


@bp.get("/docs/assets/<path:name>")
@public
def docs_assets(name):
    from swagger_ui_bundle import swagger_ui_path

    return send_from_directory(swagger_ui_path, name, max_age=3600)

