"""Routing's composition root."""

from __future__ import annotations

import getpass
from pathlib import Path

import structlog
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from runtime.service import ConsumerSpec, ServiceRuntime, create_app
from services.routing import api, consumer
from services.routing.config import RoutingSettings
from services.routing.handlers import RoutingContext
from services.routing.refdata_files import department_codes, read_bundle
from services.routing.refdata_store import LoadResult, RefDataCache, is_empty, load_refdata

MIGRATIONS = Path(__file__).parent / "migrations"
log = structlog.get_logger(__name__)


def build_app(settings: RoutingSettings | None = None) -> FastAPI:
    settings = settings or RoutingSettings()
    runtime = ServiceRuntime.build(settings)
    ctx = RoutingContext(settings, runtime.source, RefDataCache())

    def dispatch_topics() -> dict[str, int]:
        return {
            settings.dispatch_topic(code): settings.dispatch_partitions
            for code in department_codes(settings.refdata_dir)
        }

    app = create_app(
        runtime,
        title="Gridline routing",
        description=(
            "Assigns each case to a grid or department, publishes work items to per-department topics "
            "(gridline.dispatch.<code>), and takes the assignees' answers: accept, return, transfer, "
            "co-handle, reply, extension; operators assign and decide extensions."
        ),
        routers=[api.actions, api.queries],
        consumers=[
            ConsumerSpec(
                settings.consumer_group,
                [settings.case_events_topic],
                unit_of_work=consumer.unit_of_work(ctx),
                handles=consumer.HANDLES,
            )
        ],
        extra_topics=dispatch_topics,
    )
    app.state.routing = ctx
    return app


async def load_reference_data(
    settings: RoutingSettings, *, actor: str | None = None, only_if_empty: bool = False
) -> LoadResult | None:
    """Load the data folder as the active rule set (a new version only if it changed)."""
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            if only_if_empty and not await is_empty(conn):
                return None
            bundle = read_bundle(settings.refdata_dir)
            return await load_refdata(conn, bundle, actor or f"cli:{getpass.getuser()}")
    finally:
        await engine.dispose()
