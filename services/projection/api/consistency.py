"""GET /v1/positions/{token}: has the projection caught up to a write's position token?"""

from __future__ import annotations

from fastapi import APIRouter, Response

from services.projection.api.deps import CONSISTENCY_HEADER, ReaderDep, RuntimeDep, Timeout, wait_for_position
from services.projection.schemas import Consistency

router = APIRouter(prefix="/v1/positions", tags=["consistency"])


@router.get("/{token}", response_model=Consistency)
async def position(
    token: str, runtime: RuntimeDep, _reader: ReaderDep, response: Response, wait_s: Timeout = 0.0
):
    """Whether the event a position token names is projected, waiting up to ``timeout`` seconds."""
    caught = await wait_for_position(runtime.engine, runtime.settings.consumer_group, token, wait_s)
    response.headers[CONSISTENCY_HEADER] = "fresh" if caught else "stale"
    return Consistency(position=token, caught_up=caught)
