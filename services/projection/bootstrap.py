"""Projection's composition root."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from runtime.service import ConsumerSpec, ServiceRuntime, create_app
from services.projection import projector
from services.projection.api import ROUTERS
from services.projection.config import ProjectionSettings

MIGRATIONS = Path(__file__).parent / "migrations"
CONSOLE = Path(__file__).parent / "console"


def build_app(settings: ProjectionSettings | None = None) -> FastAPI:
    settings = settings or ProjectionSettings()
    runtime = ServiceRuntime.build(settings)
    app = create_app(
        runtime,
        title="Gridline projection",
        description="Read models of every case, built from the case event log; the operators' query API.",
        routers=ROUTERS,
        consumers=[
            ConsumerSpec(
                settings.consumer_group,
                [settings.case_events_topic],
                batch_handler=projector.project_batch,
            )
        ],
    )
    mount_console(app)
    return app


def mount_console(app: FastAPI) -> None:
    """Serve the operators' console (plain HTML/JS/CSS, no build step) at /console/."""

    @app.get("/console", include_in_schema=False)
    async def console_redirect() -> RedirectResponse:
        return RedirectResponse("console/")

    app.mount("/console/", StaticFiles(directory=CONSOLE, html=True), name="console")
