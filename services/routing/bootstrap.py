"""Routing's composition root."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from runtime.service import ConsumerSpec, ServiceRuntime, create_app
from services.routing import consumer
from services.routing.config import RoutingSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def build_app(settings: RoutingSettings | None = None) -> FastAPI:
    settings = settings or RoutingSettings()
    runtime = ServiceRuntime.build(settings)
    return create_app(
        runtime,
        title="Gridline routing",
        description="Assigns each case to a grid or department and publishes work to per-department topics.",
        consumers=[ConsumerSpec(settings.consumer_group, [settings.case_events_topic], consumer.handle)],
    )
