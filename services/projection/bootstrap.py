"""Projection's composition root."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from runtime.service import ConsumerSpec, ServiceRuntime, create_app
from services.projection import api, projector
from services.projection.config import ProjectionSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def build_app(settings: ProjectionSettings | None = None) -> FastAPI:
    settings = settings or ProjectionSettings()
    runtime = ServiceRuntime.build(settings)
    return create_app(
        runtime,
        title="Gridline projection",
        description="Read models of every case, built from the case event log; the operators' query API.",
        routers=[api.router],
        consumers=[ConsumerSpec(settings.consumer_group, [settings.case_events_topic], projector.project)],
    )
