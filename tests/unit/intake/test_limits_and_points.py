"""Intake's edges: the body limit holds for streamed bodies too, and a reported point that converts to
no place on earth is an invalid field, never a crash."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from contracts.events import CoordinateSystem
from runtime.problems import install_problem_handlers
from services.intake.appeals import locate
from services.intake.domain import InvalidField
from services.intake.limits import BodySizeLimit

LIMIT = 1024


class Order(BaseModel):
    content: str


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=LIMIT)

    @app.post("/v1/intake/hotline")
    async def hotline(order: Order) -> dict:
        return {"length": len(order.content)}

    @app.post("/open311/v2/requests.json")
    async def open311(request: Request) -> dict:
        return dict(await request.form())

    return app


async def _chunks(total: int, size: int = 256) -> AsyncIterator[bytes]:
    yield b'{"content": "'
    for _ in range(total // size):
        yield b"x" * size
    yield b'"}'


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app()), base_url="http://intake"
    ) as client:
        yield client


async def test_a_body_streamed_past_the_limit_is_413_problem_json_not_the_parsers_400(client):
    streamed = await client.post(
        "/v1/intake/hotline", content=_chunks(4 * LIMIT), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert streamed.headers["content-type"] == "application/problem+json"
    assert streamed.json()["max_bytes"] == LIMIT


async def test_a_body_within_the_limit_streams_through_whole(client):
    within = await client.post(
        "/v1/intake/hotline", content=_chunks(LIMIT // 2), headers={"content-type": "application/json"}
    )
    assert within.status_code == 200 and within.json() == {"length": LIMIT // 2}


async def test_an_announced_oversize_open311_form_is_413_in_open311s_error_array(client):
    refused = await client.post("/open311/v2/requests.json", data={"description": "x" * 2 * LIMIT})
    assert refused.status_code == 413
    assert refused.json()[0]["code"] == 413


@given(
    lat=st.floats(-90, 90, allow_nan=False),
    lon=st.floats(-180, 180, allow_nan=False),
    crs=st.sampled_from(CoordinateSystem),
)
def test_any_valid_coordinate_in_any_datum_is_located_or_refused_as_an_invalid_field(lat, lon, crs):
    try:
        location, _outside = locate(lat, lon, crs)
    except InvalidField as refused:
        assert refused.field == "coordinates"
    else:
        assert -90 <= location.lat <= 90 and -180 <= location.lon <= 180


def test_a_baidu_point_at_the_pole_is_an_invalid_field():
    with pytest.raises(InvalidField):
        locate(-90.0, 0.0, CoordinateSystem.BD09)
