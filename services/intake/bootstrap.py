"""Intake's composition root."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request

from runtime.housekeeping import Retention
from runtime.problems import problem_response
from runtime.service import ConsumerSpec, ServiceRuntime, create_app
from services.intake import api, consumer, domain
from services.intake.config import IntakeSettings
from services.intake.deps import RateLimited, rate_limited_response
from services.intake.handlers import Intake
from services.intake.limits import BodySizeLimit, RateLimiter
from services.intake.open311 import api as open311_api

MIGRATIONS = Path(__file__).parent / "migrations"


def retentions(settings: IntakeSettings) -> list[Retention]:
    """Intake's expiring rows besides the outbox and inbox: Idempotency-Key answers."""
    return [Retention("idempotency_keys", "created_at", settings.idempotency_keep_hours * 3600)]


def build_app(settings: IntakeSettings | None = None, runtime: ServiceRuntime | None = None) -> FastAPI:
    """The intake app; tests may hand in a runtime (e.g. one whose lifespan they do not run)."""
    settings = settings or IntakeSettings()
    runtime = runtime or ServiceRuntime.build(settings)
    app = create_app(
        runtime,
        title="Gridline intake",
        description=(
            "Accepts appeals from the 12345 hotline, grid members and Open311 clients "
            "(Open311 GeoReport v2 under /open311/v2/)."
        ),
        routers=[api.router, open311_api.router],
        consumers=[
            ConsumerSpec(
                settings.consumer_group,
                [settings.case_events_topic],
                unit_of_work=consumer.open_unit,
                handles=consumer.HANDLES,
            )
        ],
        retentions=retentions(settings),
    )
    app.state.intake = intake = Intake.build(runtime.engine, settings, runtime.source)
    runtime.closers.append(intake.close)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_exception_handler(RateLimited, rate_limited_response)

    @app.exception_handler(domain.InvalidField)
    async def _invalid_field(request: Request, exc: domain.InvalidField):
        return problem_response(
            422,
            "validation-error",
            "The request body or parameters are invalid.",
            str(request.url.path),
            errors=[{"location": f"body.{exc.field}", "message": exc.reason, "type": "value_error"}],
        )

    return app
