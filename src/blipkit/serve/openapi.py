"""The OpenAPI document: FastAPI's, plus the two request-body forms (JSON and multipart) of the endpoints
that read their body themselves."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from blipkit.serve.schemas import ErrorResponse

_REF = "#/components/schemas/{model}"

# The error answers every /v1 endpoint may give, documented once.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong API key."},
    413: {"model": ErrorResponse, "description": "Body, image bytes or pixels over the limit."},
    422: {"model": ErrorResponse, "description": "Invalid request or unusable input."},
    503: {"model": ErrorResponse, "description": "Queue full, model loading or stopping (see Retry-After)."},
}
IMAGE_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    403: {"model": ErrorResponse, "description": "Image URL refused (fetching disabled or not public)."},
    415: {"model": ErrorResponse, "description": "Body is neither JSON nor multipart/form-data."},
    501: {"model": ErrorResponse, "description": "The loaded model has no head for this task."},
}


def body_spec(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` of a route whose body is ``model`` as JSON or as a multipart form."""
    name = model.__name__
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": _REF.format(model=name)}},
        "multipart/form-data": {"schema": {"$ref": _REF.format(model=f"{name}Form")}},
    }}}


def form_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The multipart variant of ``model``'s schema: ``images`` are uploaded files, list fields repeat."""
    schema = copy.deepcopy(model.model_json_schema(ref_template=_REF, mode="validation"))
    schema.pop("$defs", None)
    schema["title"] = f"{model.__name__}Form"
    props = schema.get("properties", {})
    if "images" in props:
        files: dict[str, Any] = {"type": "array", "items": {"type": "string", "format": "binary"},
                                 "description": "Image files (one part per image)."}
        if "minItems" in props["images"]:
            files["minItems"] = props["images"]["minItems"]
        props["images"] = files
    return schema


def install_openapi(app: FastAPI, body_models: list[type[BaseModel]]) -> None:
    """Make ``app.openapi()`` include the JSON and form schemas of ``body_models``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description,
                          routes=app.routes)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for model in body_models:
            full = model.model_json_schema(ref_template=_REF, mode="validation")
            for name, sub in full.pop("$defs", {}).items():
                schemas.setdefault(name, sub)
            schemas[model.__name__] = full
            schemas[f"{model.__name__}Form"] = form_schema(model)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
