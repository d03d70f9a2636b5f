"""Limits on what one client may send: body size (413) and request rate per client key (429)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from runtime.problems import PROBLEM_BASE, PROBLEM_JSON


@dataclass
class TokenBucket:
    """Classic token bucket: ``rate`` tokens per second, at most ``burst`` saved up."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    stamp: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self, now: float) -> float:
        """Take one token; returns 0 when allowed, else the seconds until a token is available."""
        if self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """One bucket per client key, in process memory (each replica limits its own share)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate, self._burst, self._clock = rate, burst, clock
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, client: str) -> int:
        """0 if the request may proceed, else Retry-After seconds (at least 1)."""
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) > 10_000:  # anonymous callers by address: keep memory bounded
                self._buckets.clear()
            bucket = self._buckets[client] = TokenBucket(self._rate, self._burst)
        wait = bucket.take(self._clock())
        return 0 if wait == 0 else max(1, math.ceil(wait))


class BodySizeLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` with 413, by Content-Length or while streaming."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", ())).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(scope, send)
            return
        seen = 0
        started = cut = refused = False

        async def counting_receive() -> dict:
            # Past the limit, stop reading: answer 413 (unless the app already answered) and tell the app
            # the client has gone. Raising instead would reach the app's body parser, which turns any
            # error into its own 400 ("error parsing the body").
            nonlocal seen, cut, refused
            if cut:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    cut, refused = True, not started
                    if refused:
                        await self._refuse(scope, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if refused:
                return  # the 413 is sent: what the app answers to the "disconnect" is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise

    async def _refuse(self, scope: dict, send: Any) -> None:
        detail = f"The request body exceeds {self.max_bytes} bytes."
        if scope.get("path", "").startswith("/open311/"):
            body = orjson.dumps([{"code": 413, "description": detail}])
            media = b"application/json"
        else:
            body = orjson.dumps(
                {
                    "type": PROBLEM_BASE + "body-too-large",
                    "title": "Content Too Large",
                    "status": 413,
                    "detail": detail,
                    "max_bytes": self.max_bytes,
                }
            )
            media = PROBLEM_JSON.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", media), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
