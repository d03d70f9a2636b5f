"""Intake's composition root."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from runtime.service import ConsumerSpec, ServiceRuntime, create_app
from services.intake import api, consumer
from services.intake.config import IntakeSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def build_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = ServiceRuntime.build(settings)
    return create_app(
        runtime,
        title="Gridline intake",
        description="Accepts appeals from the 12345 hotline, grid members and Open311 clients.",
        routers=[api.router],
        consumers=[ConsumerSpec(settings.consumer_group, [settings.case_events_topic], consumer.handle)],
    )
