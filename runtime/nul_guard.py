"""Refuse the one character PostgreSQL cannot store: NUL (U+0000), in the path, the query or the body.

PostgreSQL's ``text`` and ``jsonb`` reject U+0000, so a request carrying it (``/v1/cases/a%00b``, a JSON
string with ``\\u0000``, a form field with ``%00``) used to fail deep inside a handler as a database error,
a 500. It is the client's mistake: refused at the door with 422 problem+json naming where it was.
"""

from __future__ import annotations

import re
from typing import Any

from runtime.problems import problem_response

# A JSON ``\u0000`` escape: a backslash run of odd length before ``u0000`` (``\\u0000`` is a backslash
# followed by the text "u0000", which is fine).
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _json_has_nul(body: bytes) -> bool:
    # The substring test first: the escape-aware search over a whole body cost a request ~10 µs.
    return b"\\u0000" in body and _JSON_NUL.search(body) is not None


def _form_has_nul(body: bytes) -> bool:
    return b"%00" in body or b"\x00" in body


def _body_check(headers: list[tuple[bytes, bytes]]):
    content_type = dict(headers).get(b"content-type", b"").split(b";")[0].strip().lower()
    if content_type == b"application/json" or content_type.endswith(b"+json"):
        return _json_has_nul
    if content_type == b"application/x-www-form-urlencoded":
        return _form_has_nul
    return None


class RejectNulCharacters:
    """ASGI middleware: 422 for a NUL character anywhere in the path, the query or a JSON or form body.

    Such bodies are read whole before the app sees them, as FastAPI would read them anyway."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if "\x00" in scope.get("path", ""):
            await self._refuse(scope, send, "path")
            return
        if b"%00" in query or b"\x00" in query:
            await self._refuse(scope, send, "query")
            return
        check = _body_check(scope.get("headers", []))
        if check is None:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away (or a limit outside us answered): nothing to hand on
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if check(body):
            await self._refuse(scope, send, "body")
            return
        handed = False

        async def replay() -> dict:
            nonlocal handed
            if not handed:
                handed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: dict, send: Any, where: str) -> None:
        response = problem_response(
            422,
            "validation-error",
            "The request body or parameters are invalid.",
            scope.get("path", "").replace("\x00", "\\u0000"),
            errors=[
                {
                    "location": where,
                    "message": "NUL characters (U+0000) are not accepted.",
                    "type": "value_error",
                }
            ],  # fmt: skip
        )
        await response(scope, _no_receive, send)


async def _no_receive() -> dict:
    return {"type": "http.disconnect"}
