"""The HTTP layer every service shares: NUL characters refused at the door, and an OpenAPI document that
describes the problem+json answers the services really give."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel

from runtime.auth import require
from runtime.nul_guard import RejectNulCharacters
from runtime.problems import install_problem_handlers


class Note(BaseModel):
    text: str


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(RejectNulCharacters)

    @app.post("/notes/{name}")
    async def post_note(name: str, note: Note, request: Request) -> dict:
        return {"name": name, "text": note.text, "query": dict(request.query_params)}

    @app.post("/forms")
    async def post_form(request: Request) -> dict:
        return dict(await request.form())

    @app.get("/secured/{thing}", dependencies=[Depends(require("operator"))])
    async def secured(thing: str) -> dict:
        return {"thing": thing}

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t") as client:
        yield client


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.mark.parametrize(
    ("where", "url", "body"),
    [
        ("path", "/notes/a%00b", b'{"text": "x"}'),
        ("query", "/notes/a?tag=x%00y", b'{"text": "x"}'),
        ("body", "/notes/a", b'{"text": "before\\u0000after"}'),
        ("body", "/notes/a", b'{"text": "\\\\\\u0000"}'),  # an escaped backslash, then a real \u0000
    ],
)
async def test_a_nul_character_anywhere_is_a_422_problem_naming_where(client, where, url, body):
    response = await client.post(url, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["location"] == where


async def test_text_that_merely_mentions_u0000_and_clean_bodies_pass_whole_even_when_streamed(client):
    mention = await client.post(
        "/notes/a", content=b'{"text": "\\\\u0000"}', headers={"content-type": "application/json"}
    )
    assert mention.status_code == 200 and mention.json()["text"] == "\\u0000"
    streamed = await client.post(
        "/notes/b?tag=ok",
        content=_chunks(b'{"te', b'xt": "', "路灯".encode() * 1000, b'"}'),
        headers={"content-type": "application/json"},
    )
    assert streamed.status_code == 200
    assert streamed.json() == {"name": "b", "text": "路灯" * 1000, "query": {"tag": "ok"}}


async def test_a_form_field_with_an_encoded_nul_is_refused_and_a_clean_form_passes(client):
    refused = await client.post(
        "/forms", content=b"a=1&b=x%00", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert refused.status_code == 422
    assert (await client.post("/forms", data={"a": "1", "b": "路灯"})).json() == {"a": "1", "b": "路灯"}


def test_the_openapi_document_describes_errors_as_problem_json_and_secured_routes_their_refusals():
    document = _app().openapi()
    post_note = document["paths"]["/notes/{name}"]["post"]["responses"]
    assert list(post_note["422"]["content"]) == ["application/problem+json"]
    assert "401" not in post_note  # not secured
    secured = document["paths"]["/secured/{thing}"]["get"]
    assert secured["security"] == [{"ApiKey": ["operator"]}, {"Bearer": ["operator"]}]
    assert {status: list(secured["responses"][status]["content"]) for status in ("401", "403", "422")} == {
        status: ["application/problem+json"] for status in ("401", "403", "422")
    }
    assert "HTTPValidationError" not in document["components"]["schemas"]
