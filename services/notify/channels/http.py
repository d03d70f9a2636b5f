"""The HTTP client of notify's channels (webhooks, the SMS gateway, intake's contact lookup): one aiohttp
session per process, its connections kept and reused.

aiohttp rather than httpx here: against one local receiver at 32 requests in flight, httpx cost ~4.5 ms of
CPU and ~30 ms per request on this machine, aiohttp ~0.4 ms (`python -m bench http_clients`). The W3C
trace context of the delivery's span goes out in the request headers, so a receiver's spans (intake's
contact endpoint) join the trace.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from opentelemetry.propagate import inject

from services.notify.channels import DeliveryError


def new_session(send_timeout_s: float, *, connections: int = 64) -> aiohttp.ClientSession:
    """A session for a worker whose attempts are cut off after ``send_timeout_s``. Its own timeout, a few
    seconds longer, is only a backstop for use outside the worker: within it the worker's timeout ends a
    slow attempt first (recorded as "timeout after …s")."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=send_timeout_s + 5),
        connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=30),
        raise_for_status=False,
    )


def traced(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` plus the current trace context (``traceparent``, ``tracestate``)."""
    carrier = dict(headers)
    inject(carrier)
    return carrier


async def request(
    session: aiohttp.ClientSession, method: str, url: str, who: str, **kwargs
) -> tuple[int, bytes]:
    """One request: its status and body, read whole so the connection goes back to the pool. A transport
    failure or timeout is a retryable ``DeliveryError`` naming ``who``, never the URL's query or body."""
    headers = traced(kwargs.pop("headers", {}))
    try:
        async with session.request(method, url, headers=headers, **kwargs) as response:
            return response.status, await response.read()
    except TimeoutError:
        raise DeliveryError(f"timeout calling {who}") from None
    except aiohttp.ClientError as exc:
        raise DeliveryError(f"{type(exc).__name__} calling {who}") from None
