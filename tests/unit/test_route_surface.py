"""Routes kept out of the OpenAPI documents are reviewed here, since the route-by-route security test
(tests/e2e/test_security.py) can only see what the documents list.

Every service's app is built in process (no server, no database connection) and walked; each route it
serves without documenting must be on the list below, with the reason it may answer without a key.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount

SERVICES = ("intake", "routing", "sla", "notify", "projection")
EVERY_SERVICE = {
    "/openapi.json": "the API description itself",
    "/docs": "Swagger UI (static; it calls the API with the reader's key)",
    "/docs/oauth2-redirect": "Swagger UI helper page",
    "/redoc": "ReDoc (static)",
    "/metrics": "Prometheus scrape: counters and latencies, no case data",
}
HIDDEN_BY_DESIGN: dict[tuple[str, str], str] = {
    **{(service, path): why for service in SERVICES for path, why in EVERY_SERVICE.items()},
    ("projection", "/console"): "redirect to the console",
    ("projection", "/console/*"): "operators' console: static HTML/JS; its data comes from the keyed API",
    ("intake", "/open311/v2/{rest:path}"): "Open311's 404 error array for anything else under /open311/v2/",
}


def _walk(routes) -> Iterator:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI 0.165 wraps included routers
        if included is not None:
            yield from _walk(included.routes)
        else:
            yield route


def _undocumented(service: str) -> set[tuple[str, str]]:
    app = importlib.import_module(f"services.{service}.bootstrap").build_app()
    routes = list(_walk(app.routes))
    documented = [r for r in routes if isinstance(r, APIRoute) and r.include_in_schema]
    assert documented, f"walking {service}'s routes found nothing documented: the walk is broken"
    return {
        (service, r.path + "/*" if isinstance(r, Mount) else r.path)
        for r in routes
        if not (isinstance(r, APIRoute) and r.include_in_schema)
    }


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_a_service_does_not_document_is_reviewed(service):
    reviewed = {key for key in HIDDEN_BY_DESIGN if key[0] == service}
    assert _undocumented(service) == reviewed
