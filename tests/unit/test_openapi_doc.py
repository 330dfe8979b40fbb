"""The OpenAPI document describes what the service really accepts (schemathesis reads it)."""

from __future__ import annotations

from judge_service.app import create_app
from judge_service.config import load_settings
from judge_service.judge.labels import LABEL_SETS


def _refs(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                found.add(value)
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)
    return found


def test_every_reference_resolves_and_every_body_is_documented():
    doc = create_app(load_settings(backend="fake")).openapi()
    schemas = doc["components"]["schemas"]
    assert all(ref.rsplit("/", 1)[1] in schemas for ref in _refs(doc, set()))
    for path in ("/v1/score", "/v1/score/group", "/v1/analyze", "/v1/jobs"):
        body = doc["paths"][path]["post"]["requestBody"]["content"]
        assert set(body) == {"application/json", "multipart/form-data"}, path
        assert {"422", "429", "503"} <= set(doc["paths"][path]["post"]["responses"]), path
    form = doc["paths"]["/v1/score"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["emotion"]["enum"] == list(LABEL_SETS["emotion"])
    assert set(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
