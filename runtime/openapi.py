"""The OpenAPI document says what the service answers: every error as the problem+json it is.

FastAPI documents its 422 as ``application/json`` (``HTTPValidationError``) and leaves statuses declared
without a body undescribed, while ``runtime.problems`` answers every error as ``application/problem+json``.
Clients, the docs and schemathesis read the document, so it is corrected once, here, for every service.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI

PROBLEM_JSON = "application/problem+json"
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}
SECURED_REFUSALS = {"401": "No valid API key", "403": "The key lacks the scope for this action"}
_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


def problem_response_doc(description: str) -> dict[str, Any]:
    """An OpenAPI response object for a problem+json answer."""
    return {"description": description, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Rewrite ``document`` in place: 422 and every bodiless 4xx/5xx as problem+json, and 401/403 on every
    operation that declares security."""
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status, response in responses.items():
                fastapi_422 = status == "422" and "application/json" in response.get("content", {})
                if fastapi_422 or (status[:1] in "45" and not response.get("content")):
                    description = response.get("description") or HTTPStatus(int(status)).phrase
                    if fastapi_422:
                        description = "Invalid request (the errors list names each field)"
                    responses[status] = problem_response_doc(description)
            if operation.get("security"):
                for status, description in SECURED_REFUSALS.items():
                    responses.setdefault(status, problem_response_doc(description))
    schemas = document.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 body, now referenced nowhere
        if unused in schemas and not _referenced(document, unused):
            del schemas[unused]
    return document


def _referenced(document: dict[str, Any], schema: str) -> bool:
    ref = f"#/components/schemas/{schema}"
    others = {k: v for k, v in document.get("components", {}).get("schemas", {}).items() if k != schema}
    return ref in json.dumps([document.get("paths", {}), others])


def install_problem_documentation(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document its problem+json answers (see ``document_problems``)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
