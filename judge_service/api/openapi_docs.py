"""What the OpenAPI document says beyond what FastAPI infers, kept beside the wire models.

The scoring routes parse their bodies themselves (JSON or multipart), so FastAPI sees no body
model: each route documents both content types with ``openapi_extra``, and ``install_openapi``
adds the JSON request models those documents reference to ``components``. Every route lists
the error responses of ``error_table`` it can give.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from judge_service.judge.labels import LABEL_SETS
from judge_service.schemas import AnalyzeRequest, ErrorResponse, GroupRequest, JobRequest, ScoreRequest

REQUEST_MODELS = (ScoreRequest, GroupRequest, AnalyzeRequest, JobRequest)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "unreadable audio or base64 (single-item requests)"),
        (401, "no API key, or an unknown one (when keys are on)"),
        (403, "the key is disabled, or its class may not call this route"),
        (413, "body, clip or item count over a limit"),
        (415, "an audio container that is not accepted"),
        (422, "the request does not match its schema, or the audio is unusable"),
        (429, "queue full or rate limited; see Retry-After"),
        (503, "not ready or shutting down; see Retry-After"),
        (504, "the request's deadline passed"),
    )
}

SCORER_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    502: {"model": ErrorResponse, "description": "scorer_error: the LLM rubric scorer gave no verdict "
          "for the pair (single-item requests; in a batch it is that item's error)"},
}
"""Only the scoring routes can meet a remote scorer's failure."""

LABEL_FIELDS = {dim: {"type": "string", "enum": list(labels)} for dim, labels in LABEL_SETS.items()}
"""Known query labels as multipart form fields (the server accepts only these values)."""


def multipart_body(json_model: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """``openapi_extra`` for a route taking ``json_model`` as JSON or these multipart fields."""
    return {
        "requestBody": {
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{json_model}"}},
                "multipart/form-data": {"schema": {"type": "object", "required": required, "properties": properties}},
            },
            "required": True,
        }
    }


def install_openapi(app: FastAPI) -> None:
    """Generate the document once, with the request models in ``components.schemas``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in REQUEST_MODELS:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="validation")
            for name, definition in schema.pop("$defs", {}).items():
                schemas.setdefault(name, definition)
            schemas[model.__name__] = schema
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
