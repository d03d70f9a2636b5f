"""Notify's composition root."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from runtime.service import ConsumerSpec, ServiceRuntime, create_app
from services.notify import consumer
from services.notify.config import NotifySettings

MIGRATIONS = Path(__file__).parent / "migrations"


def build_app(settings: NotifySettings | None = None) -> FastAPI:
    settings = settings or NotifySettings()
    runtime = ServiceRuntime.build(settings)
    return create_app(
        runtime,
        title="Gridline notify",
        description="Tells departments, grid members, supervisors and citizens what happened.",
        consumers=[ConsumerSpec(settings.consumer_group, [settings.case_events_topic], consumer.handle)],
    )
