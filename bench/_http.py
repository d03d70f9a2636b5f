"""A small keep-alive HTTP/1.1 client for load generation (httpx in one process tops out near 200 req/s).

Only what the benchmarks need: JSON or form POSTs and GETs to one host, bodies with Content-Length
(uvicorn's answers), a fixed pool of connections that requests wait for. Its ``post``/``get`` look enough
like httpx's for ``devtools.workload.followups`` to drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson


@dataclass(frozen=True)
class Response:
    status_code: int
    content: bytes

    def json(self) -> Any:
        return orjson.loads(self.content) if self.content else None


class ConnectionLost(Exception):
    """The server closed or broke the connection mid-request."""


class HttpPool:
    """Up to ``size`` keep-alive connections to ``host:port``; excess requests queue for a free one."""

    def __init__(self, host: str, port: int, size: int = 64) -> None:
        self.host, self.port = host, port
        self._free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = asyncio.Queue()
        for _ in range(size):
            self._free.put_nowait(None)  # a slot with no connection yet

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None):
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        payload = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        slot = await self._free.get()
        try:
            for attempt in (1, 2):
                fresh = slot is None
                if slot is None:
                    slot = await asyncio.open_connection(self.host, self.port)
                reader, writer = slot
                try:
                    writer.write(payload)
                    status, length, close = await self._read_head(reader)
                    content = await reader.readexactly(length) if length else b""
                except (OSError, asyncio.IncompleteReadError, ConnectionLost) as exc:
                    writer.close()
                    slot = None
                    # uvicorn closes keep-alive connections idle for 5 s: nothing was read, so send again.
                    unanswered = isinstance(exc, OSError) or (
                        isinstance(exc, asyncio.IncompleteReadError) and not exc.partial
                    )
                    if attempt == 1 and not fresh and unanswered:
                        continue
                    raise ConnectionLost(f"{method} {path}: {exc!r}") from exc
                if close:
                    writer.close()
                    slot = None
                return Response(status, content)
            raise AssertionError("unreachable")
        except OSError as exc:  # could not connect at all
            raise ConnectionLost(f"{method} {path}: {exc!r}") from exc
        finally:
            self._free.put_nowait(slot)

    @staticmethod
    async def _read_head(reader: asyncio.StreamReader) -> tuple[int, int, bool]:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ConnectionLost(f"not an HTTP response: {lines[0]!r}")
        fields = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        if "chunked" in fields.get("transfer-encoding", ""):
            raise ConnectionLost("chunked responses are not supported by this client")
        return int(parts[1]), int(fields.get("content-length", "0")), fields.get("connection") == "close"

    async def post(self, path: str, json: Any = None, data: dict | None = None, headers: dict | None = None):
        if data is not None:
            body, kind = urlencode(data).encode(), "application/x-www-form-urlencoded"
        else:
            body, kind = orjson.dumps(json), "application/json"
        return await self.request("POST", path, body, {"Content-Type": kind, **(headers or {})})

    async def get(self, path: str, headers: dict | None = None):
        return await self.request("GET", path, b"", headers)

    async def close(self) -> None:
        while not self._free.empty():
            slot = self._free.get_nowait()
            if slot is not None:
                slot[1].close()
                with contextlib.suppress(Exception):
                    await slot[1].wait_closed()
