"""RFC 9457 problem details for every HTTP error."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from runtime.consumer import INFRASTRUCTURE_ERRORS, is_infrastructure_error
from runtime.openapi import install_problem_documentation

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://gridline.example/problems/"
UNAVAILABLE_RETRY_AFTER_S = 5


class Problem(Exception):
    """Raise to answer with a problem+json body."""

    def __init__(self, status: int, type_: str, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.type = type_
        self.detail = detail
        self.extensions = extensions


def problem_response(
    status: int, type_: str, detail: str, instance: str | None = None, **extensions: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + type_ if type_ != "about:blank" else type_,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of the app, including validation and 404s, a problem+json response (and say so
    in its OpenAPI document)."""
    install_problem_documentation(app)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.type, exc.detail, str(request.url.path), **exc.extensions)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"location": ".".join(str(p) for p in err["loc"]), "message": err["msg"], "type": err["type"]}
            for err in exc.errors()
        ]
        return problem_response(
            422,
            "validation-error",
            "The request body or parameters are invalid.",
            str(request.url.path),
            errors=errors,
        )

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        # The database or broker is down: a retry later can succeed. Clients (the hotline above all)
        # must see 503 and retry, not a bare 500 they may treat as final.
        if not is_infrastructure_error(exc):
            raise exc
        response = problem_response(
            503,
            "service-unavailable",
            "A backing service (database or broker) is unreachable. Retry later.",
            str(request.url.path),
        )
        response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
        return response

    # Every class an outage can surface as, SQLAlchemy-wrapped or raw asyncpg (intake's hot path); the
    # handler answers 503 only for outages and re-raises the rest (a bug stays a 500). InternalClientError
    # is no InterfaceError: left out, "cannot switch to state 15; another operation (2) is in progress"
    # while PostgreSQL shut down was a 500 in a CI fault run.
    for failure in (
        *INFRASTRUCTURE_ERRORS,
        DBAPIError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.exceptions.InternalClientError,
    ):
        app.add_exception_handler(failure, _unavailable)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, "about:blank", str(exc.detail), str(request.url.path))
