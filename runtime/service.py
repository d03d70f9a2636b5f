"""The composition every service shares: database, producer, outbox relay, consumers, HTTP app.

A service's bootstrap builds a ``ServiceRuntime`` and hands it its routers and its event handler;
``serve`` applies the service's migrations and runs uvicorn. Health, readiness and metrics endpoints,
problem+json errors, logging and tracing come with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.events import CaseEvent
from runtime import gc_tuning, housekeeping, kafka, migrations
from runtime.consumer import (
    BatchHandler,
    EventConsumer,
    Handler,
    UnitOfWorkFactory,
    is_infrastructure_error,
)
from runtime.db import asyncpg_dsn, create_engine
from runtime.http_metrics import HttpMetricsMiddleware
from runtime.logging import configure_logging
from runtime.nul_guard import RejectNulCharacters
from runtime.outbox import OutboxRelay
from runtime.problems import install_problem_handlers
from runtime.settings import ServiceSettings
from runtime.telemetry import configure_telemetry, instrument_app

log = structlog.get_logger(__name__)


@dataclass
class ConsumerSpec:
    """One consumer group of a service: its name (= group id), topics, and how it handles events: a
    handler per event, a handler of whole batches, or a unit of work per batch (see runtime.consumer)."""

    name: str
    topics: Sequence[str]
    handler: Handler | None = None
    batch_handler: BatchHandler | None = None
    unit_of_work: UnitOfWorkFactory | None = None
    handles: Collection[type[CaseEvent]] | None = None  # None: every event type


@dataclass
class ServiceRuntime:
    """Live infrastructure of one service process. Kafka clients need the running event loop, so the
    producer and relay are made in ``start`` (called by the app's lifespan)."""

    settings: ServiceSettings
    engine: AsyncEngine
    producer: AIOKafkaProducer | None = None
    relay: OutboxRelay | None = None
    consumers: list[EventConsumer] = field(default_factory=list)
    ready: bool = False
    # Resources of the service's own to release at shutdown, before the engine (e.g. intake's asyncpg pool)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: ServiceSettings) -> ServiceRuntime:
        return cls(settings=settings, engine=create_engine(settings))

    async def start_producer(self) -> None:
        settings = self.settings
        self.producer = kafka.create_producer(
            settings.kafka_bootstrap_servers, f"gridline-{settings.service_name}"
        )
        await self.producer.start()
        self.relay = OutboxRelay(
            self.engine,
            self.producer,
            batch_size=settings.outbox_batch_size,
            poll_interval_s=settings.outbox_poll_interval_s,
            linger_s=settings.outbox_linger_s,
        )

    def wake_relay(self) -> None:
        """Tell the outbox relay that a transaction just committed new events."""
        if self.relay is not None:
            self.relay.wake()

    @property
    def source(self) -> str:
        """CloudEvents ``source`` of events this service emits."""
        return f"/gridline/{self.settings.service_name}"


def create_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    consumers: Sequence[ConsumerSpec] = (),
    extra_topics: Callable[[], dict[str, int]] | None = None,
    background: Sequence[Callable[[asyncio.Event], Awaitable[None]]] = (),
    retentions: Sequence[housekeeping.Retention] = (),
) -> FastAPI:
    """The FastAPI app of a service, with lifespan-managed producer, relay and consumers; what the process
    runs of it follows ``settings.process_role`` (all, http: the routers only, worker: all but the routers).

    ``background``: long-running tasks of the service (e.g. sla's timer runner), each called with the
    stop event once the producer and relay run; a task that dies of a bug stops the process.
    ``retentions``: the service's own expiring rows, deleted by housekeeping with the outbox's and inbox's.
    """
    settings = runtime.settings
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    configure_telemetry(settings.service_name)

    role = settings.process_role
    runs_work = role != "http"  # consumers, the outbox relay and background jobs

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        tasks: list[asyncio.Task] = []
        if runs_work:
            tasks = await _start_work(runtime, consumers, extra_topics, background, retentions, stop)
        if getattr(app.state, "owns_process", False):  # not an app a test runs in its own process
            gc_tuning.settle(
                freeze=settings.gc_freeze_after_start, young_threshold=settings.gc_young_threshold
            )
        runtime.ready = True
        log.info(
            "service.started",
            port=settings.http_port,
            role=role,
            consumers=[c.name for c in runtime.consumers],
        )
        try:
            yield
        finally:
            runtime.ready = False
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for consumer in runtime.consumers:
                await stop_kafka_client(f"consumer {consumer.name}", consumer._consumer.stop)
            if runtime.producer is not None:
                await stop_kafka_client("producer", runtime.producer.stop)
            for close in runtime.closers:
                await close()
            await runtime.engine.dispose()
            log.info("service.stopped")

    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
    app.add_middleware(RejectNulCharacters)
    app.add_middleware(ForwardedPrefixMiddleware)
    app.add_middleware(HttpMetricsMiddleware)
    install_problem_handlers(app)
    instrument_app(app, runtime.engine)
    app.state.runtime = runtime
    app.include_router(_health_router(runtime))
    if role != "worker":
        for router in routers:
            app.include_router(router)
    return app


async def _start_work(
    runtime: ServiceRuntime,
    consumers: Sequence[ConsumerSpec],
    extra_topics: Callable[[], dict[str, int]] | None,
    background: Sequence[Callable[[asyncio.Event], Awaitable[None]]],
    retentions: Sequence[housekeeping.Retention],
    stop: asyncio.Event,
) -> list[asyncio.Task]:
    """Kafka topics, producer, outbox relay, consumers, background jobs and housekeeping: the part of a
    service that an ``http`` process leaves to its worker. Returns the running tasks."""
    settings = runtime.settings
    await kafka.wait_for_kafka(settings.kafka_bootstrap_servers, timeout_s=120)
    topics = {settings.case_events_topic: settings.case_events_partitions}
    topics[kafka.dlq_topic(settings.case_events_topic)] = 1
    if extra_topics:
        topics.update(extra_topics())
    await kafka.ensure_topics(
        settings.kafka_bootstrap_servers,
        topics,
        replication_factor=settings.kafka_replication_factor,
        retention_forever=frozenset({settings.case_events_topic}),
    )
    await runtime.start_producer()
    assert runtime.relay is not None and runtime.producer is not None
    tasks = [asyncio.create_task(runtime.relay.run(stop), name="outbox-relay")]
    if settings.process_role == "worker":  # the rows are written by other processes: listen for them
        listener = runtime.relay.listen(asyncpg_dsn(settings.database_url), stop)
        tasks.append(asyncio.create_task(listener, name="outbox-listener"))
    for spec in consumers:
        client = kafka.create_consumer(settings.kafka_bootstrap_servers, spec.name)
        consumer = EventConsumer(
            name=spec.name,
            consumer=client,
            producer=runtime.producer,
            engine=runtime.engine,
            handler=spec.handler,
            batch_handler=spec.batch_handler,
            unit_of_work=spec.unit_of_work,
            handles=spec.handles,
            batch_size=settings.consumer_batch_size,
            commit_interval_s=settings.consumer_commit_interval_s,
            fault_exit_after_db_commit=settings.fault_exit_after_db_commit,
            wake_relay=runtime.wake_relay,
            linger_s=settings.consumer_linger_s,
        )
        client.subscribe(list(spec.topics), listener=consumer.rebalance_listener())
        await client.start()
        runtime.consumers.append(consumer)
        task = asyncio.create_task(consumer.run(stop), name=f"consumer-{spec.name}")
        task.add_done_callback(_crash_on_failure)
        tasks.append(task)
    if settings.housekeeping_interval_s > 0:
        sweeping = functools.partial(
            housekeeping.run,
            runtime.engine,
            [*housekeeping.runtime_retentions(settings), *retentions],
            interval_s=settings.housekeeping_interval_s,
            batch_size=settings.housekeeping_batch_size,
        )
        background = [*background, sweeping]
    for index, job in enumerate(background):
        task = asyncio.create_task(job(stop), name=f"background-{index}")
        task.add_done_callback(_crash_on_failure)
        tasks.append(task)
    return tasks


class ForwardedPrefixMiddleware:
    """Honour the gateway's X-Forwarded-Prefix so /docs works both directly and under /services/<name>/."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope.get("headers", ()):
                if name == b"x-forwarded-prefix":
                    scope = dict(scope, root_path=value.decode("latin-1").rstrip("/"))
                    break
        await self.app(scope, receive, send)


async def stop_kafka_client(name: str, stop: Callable[[], Awaitable[None]]) -> None:
    """Stop a Kafka client at shutdown whatever state the broker is in.

    When Kafka goes first (``make run``'s supervisor signals every process at once), aiokafka's fetcher
    cancels its pending fetch while it backs off from the lost connection, and that CancelledError comes
    out of ``stop()``: the lifespan failed and uvicorn logged a traceback. Nothing is lost (offsets are
    committed after each unit of work, events leave through the outbox), so it is a warning; a
    cancellation of this task itself still propagates."""
    try:
        await stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.warning("service.kafka_client_stop_interrupted", client=name)
    except Exception as exc:  # noqa: BLE001 - shutdown goes on; the error is logged
        log.warning("service.kafka_client_stop_failed", client=name, error=repr(exc))


def _crash_on_failure(task: asyncio.Task) -> None:
    """A consumer that died of a bug must not leave a live-looking process: stop and let the supervisor
    restart us (crash-only)."""
    if task.cancelled() or task.exception() is None:
        return
    log.error("service.consumer_crashed", task=task.get_name(), error=repr(task.exception()))
    os.kill(os.getpid(), signal.SIGTERM)


def _health_router(runtime: ServiceRuntime) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "service": runtime.settings.service_name}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: database reachable, Kafka producer connected, consumers assigned."""
        checks: dict[str, str] = {}
        try:
            async with runtime.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(sa.text("SELECT 1")), timeout=2)
            checks["database"] = "ok"
        except Exception as exc:  # any failure means not ready
            checks["database"] = f"error: {type(exc).__name__}"
        if runtime.settings.process_role != "http":  # an http process has no Kafka client
            relay_ok = runtime.relay is not None and runtime.relay.healthy
            checks["kafka"] = "ok" if runtime.ready and relay_ok else "error: not connected"
        for consumer in runtime.consumers:
            status = consumer.status
            if status.last_error:
                checks[f"consumer:{consumer.name}"] = f"error: {status.last_error[:200]}"
            elif not status.assigned:
                checks[f"consumer:{consumer.name}"] = "waiting: no partitions assigned"
            else:
                checks[f"consumer:{consumer.name}"] = f"ok: {status.assigned} partitions"
        ok = runtime.ready and all(v.startswith("ok") for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not-ready", "checks": checks}, status_code=200 if ok else 503
        )

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus metrics of this process."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def migrate_when_reachable(
    migrations_dir: Path,
    database_url: str,
    *,
    timeout_s: float = 120.0,
    upgrade: Callable[[Path, str], None] = migrations.upgrade,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Apply migrations, waiting (bounded) while the database is unreachable or restarting: a service
    started during a database outage comes up when the database does, as it waits for Kafka, rather than
    exiting and relying on its supervisor. Any other failure is raised at once."""
    deadline = clock() + timeout_s
    delay = 0.5
    while True:
        try:
            upgrade(migrations_dir, database_url)
            return
        except Exception as exc:
            if not is_infrastructure_error(exc) or clock() + delay > deadline:
                raise
            log.warning(
                "service.waiting_for_database", error=f"{type(exc).__name__}: {exc}", retry_in_s=delay
            )
            sleep(delay)
            delay = min(delay * 2, 5.0)


def serve(settings: ServiceSettings, app_factory: Callable[[Any], FastAPI], migrations_dir: Path) -> None:
    """Entry point of ``python -m services.<name>``: migrate, then serve HTTP (uvloop where present)."""
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    if settings.run_migrations_on_start:
        migrate_when_reachable(migrations_dir, settings.database_url)
        log.info("service.migrated", database=settings.database_name)
    app = app_factory(settings)
    app.state.owns_process = True  # its lifespan tunes the garbage collector once started
    gc_tuning.measure_pauses()
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )
