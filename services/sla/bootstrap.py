"""Sla's composition root."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from runtime.service import ConsumerSpec, ServiceRuntime, create_app
from services.sla import consumer
from services.sla.config import SlaSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def build_app(settings: SlaSettings | None = None) -> FastAPI:
    settings = settings or SlaSettings()
    runtime = ServiceRuntime.build(settings)
    return create_app(
        runtime,
        title="Gridline sla",
        description="Sets deadlines on the Chinese working calendar, warns and escalates.",
        consumers=[ConsumerSpec(settings.consumer_group, [settings.case_events_topic], consumer.handle)],
    )
