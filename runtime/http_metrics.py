"""Prometheus HTTP metrics for every service: request rate and latency by route template and status."""

from __future__ import annotations

import functools
import time
from typing import Any

from prometheus_client import Counter, Histogram

REQUESTS = Counter("gridline_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "gridline_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
SKIP = {"/metrics", "/healthz", "/readyz"}


class HttpMetricsMiddleware:
    """ASGI middleware; labels by the matched route template (``/v1/cases/{case_id}``), not raw paths."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in SKIP:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def record_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            counter, latency = _children(scope.get("method", "?"), template, status["code"])
            counter.inc()
            latency.observe(time.perf_counter() - start)


@functools.lru_cache(maxsize=1024)
def _children(method: str, template: str, status: int) -> tuple[Any, Any]:
    """The label children of one (method, route, status): found once, not on every request (templates,
    not raw paths, so the set is small; the cache bounds it anyway)."""
    return REQUESTS.labels(method, template, str(status)), LATENCY.labels(method, template)
