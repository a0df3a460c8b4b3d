"""The OpenAPI document: every endpoint of every app described, valid OpenAPI 3, writes and bodies stated."""
from __future__ import annotations

import pytest
import schemathesis

from headwater.apps import available_apps, find_app
from serving_layer.app import create_app
from serving_layer.model_manager import ModelManager
from serving_layer.openapi import undescribed_routes


def app_for(make_config, name: str):
    example = find_app(name).resolve("example")()
    return create_app(make_config(app=name, **example.config_overrides), ModelManager())


@pytest.mark.parametrize("name", sorted(available_apps()))
def test_every_route_of_a_built_in_app_is_described_and_the_document_is_valid(make_config, name):
    app = app_for(make_config, name)
    assert undescribed_routes(app) == []
    spec = app.test_client().get("/openapi.json").get_json()
    operations = list(schemathesis.openapi.from_dict(spec).get_all_operations())  # validates the document
    assert len(operations) == sum(len(methods) for methods in spec["paths"].values())
    own = app.config["HEADWATER"].app.resolve("serving_routes").name
    routes = [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith(own + ".")]
    assert routes and all(rule.rule.replace("<", "{").replace(">", "}").replace("path:", "") in spec["paths"]
                          for rule in routes)
    for methods in spec["paths"].values():
        for entry in methods.values():
            assert entry["summary"] and "200" in entry["responses"] and "503" in entry["responses"]
            errors = [r for status, r in entry["responses"].items() if status != "200"]
            assert all(r["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
                       for r in errors)


def test_writes_bodies_and_parameters_of_the_als_app(make_config):
    spec = app_for(make_config, "als").test_client().get("/openapi.json").get_json()
    ingest = spec["paths"]["/ingest"]["post"]
    assert set(ingest["requestBody"]["content"]) == {"text/plain", "text/csv", "application/json"}
    assert "gzip" in ingest["requestBody"]["description"]
    encoding = [p for p in ingest["parameters"] if p["name"] == "Content-Encoding"]
    assert encoding[0]["in"] == "header" and encoding[0]["schema"]["enum"] == ["gzip", "deflate", "identity"]
    assert "read-only" in ingest["description"]
    recommend = spec["paths"]["/recommend/{user}"]["get"]
    assert [p["name"] for p in recommend["parameters"]] == ["user", "howMany", "offset", "rescorerParams",
                                                            "considerKnownItems", "version"]
    assert "404" in recommend["responses"] and "version" not in [p["name"] for p in ingest["parameters"]]
    answer = recommend["responses"]["200"]["content"]
    assert set(answer) == {"application/json", "text/csv"}
    assert answer["application/json"]["schema"]["items"]["required"] == ["id", "value"]
    assert spec["paths"]["/recommendToMany/{users}"]["get"]["parameters"][0]["description"].endswith(
        "(may contain '/')")
    assert spec["components"]["schemas"]["Error"]["required"] == ["error", "message"]


def test_a_plug_in_apps_undescribed_endpoint_is_in_the_document_too(make_config):
    app = app_for(make_config, "tests.plugin_app:APP")
    spec = app.test_client().get("/openapi.json").get_json()
    assert spec["paths"]["/mean/{key}"]["get"]["summary"]
    assert undescribed_routes(app) == ["/mean/<key>"]
