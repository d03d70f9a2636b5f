"""Sla's composition root."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from runtime.service import ConsumerSpec, ServiceRuntime, create_app
from services.sla import api, consumer
from services.sla.config import SlaSettings
from services.sla.context import SlaContext
from services.sla.timers import TimerRunner

MIGRATIONS = Path(__file__).parent / "migrations"


def build_app(settings: SlaSettings | None = None) -> FastAPI:
    settings = settings or SlaSettings()
    runtime = ServiceRuntime.build(settings)
    ctx = SlaContext.from_settings(settings, runtime.source)
    runner = TimerRunner(runtime.engine, ctx, runtime.wake_relay)
    app = create_app(
        runtime,
        title="Gridline sla",
        description="Sets deadlines on the Chinese working calendar, warns and escalates.",
        routers=[api.router],
        consumers=[
            ConsumerSpec(
                settings.consumer_group,
                [settings.case_events_topic],
                unit_of_work=consumer.unit_of_work(ctx),
                handles=consumer.HANDLES,
            )
        ],
        background=[runner.run],
    )
    app.state.sla = ctx
    return app
