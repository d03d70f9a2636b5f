"""OpenTelemetry set-up, identical in every service.

Export is configured by the standard OTEL_* variables: with OTEL_EXPORTER_OTLP_ENDPOINT (or
OTEL_TRACES_EXPORTER=otlp) spans go out over OTLP/HTTP and FastAPI, SQLAlchemy and httpx are
instrumented; without, nothing is instrumented and no span is recorded (off costs nothing), while trace
context still propagates through Kafka headers so a later-enabled service joins the same traces.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

_enabled: bool | None = None


def tracing_enabled() -> bool:
    """True when this process exports spans."""
    return bool(_enabled)


def configure_telemetry(service: str) -> None:
    """Install the tracer provider once per process."""
    global _enabled
    if _enabled is not None:
        return
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp" if _otlp_endpoint() else "none")
    _enabled = exporter_name == "otlp"
    if not _enabled:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": os.environ.get("OTEL_SERVICE_NAME", f"gridline-{service}"),
                "service.namespace": "gridline",
            }
        )
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()


def instrument_app(app, engine) -> None:  # type: ignore[no-untyped-def]
    """Instrument one service's FastAPI app and database engine (only when tracing is on)."""
    if not tracing_enabled():
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, enable_commenter=False)


def _otlp_endpoint() -> str | None:
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return traces or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
