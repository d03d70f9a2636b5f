"""Notify's composition root: the one place that builds the notifier, channels and delivery worker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.service import ConsumerSpec, ServiceRuntime, create_app
from services.notify import api, consumer
from services.notify.channels.email import SmtpSender
from services.notify.channels.http import new_session
from services.notify.channels.sms import SmsGatewaySender
from services.notify.channels.webhook import WebhookSender
from services.notify.config import NotifySettings
from services.notify.contacts import ContactDirectory, IntakeContactDirectory
from services.notify.domain.directory import Directory
from services.notify.domain.policy import QuietHours
from services.notify.domain.subscriptions import SubscriptionTable
from services.notify.domain.templates import Renderer
from services.notify.handlers import Notifier
from services.notify.worker import DeliveryWorker, WorkerPolicy

MIGRATIONS = Path(__file__).parent / "migrations"


def load_directory(settings: NotifySettings) -> Directory:
    return Directory.from_yaml(
        settings.notify_recipients_file, allow_plain_secrets=settings.environment != "production"
    )


def quiet_hours(settings: NotifySettings) -> QuietHours:
    return QuietHours(
        settings.notify_quiet_hours_start, settings.notify_quiet_hours_end, settings.notify_timezone
    )


def build_notifier(settings: NotifySettings, directory: Directory | None = None) -> Notifier:
    """The consumer-side decision maker, from the configured tables and templates."""
    return Notifier(
        table=SubscriptionTable.from_yaml(settings.notify_subscriptions_file),
        directory=directory or load_directory(settings),
        renderer=Renderer(
            sms_signature=settings.notify_sms_signature, sms_max_segments=settings.notify_sms_max_segments
        ),
        quiet_hours=quiet_hours(settings),
        satisfaction_url=settings.notify_satisfaction_url,
    )


def build_worker(
    settings: NotifySettings,
    engine: AsyncEngine,
    session: aiohttp.ClientSession,
    *,
    source: str,
    directory: Directory | None = None,
    contacts: ContactDirectory | None = None,
    on_commit: Callable[[], None] = lambda: None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DeliveryWorker:
    """The delivery worker with the real channels (tests may swap the contact directory)."""
    directory = directory or load_directory(settings)
    senders = {
        "webhook": WebhookSender(session, directory),
        "email": SmtpSender(
            host=settings.notify_smtp_host,
            port=settings.notify_smtp_port,
            sender=settings.notify_mail_from,
            timeout_s=settings.notify_send_timeout_s,
            starttls=settings.notify_smtp_starttls,
            username=settings.notify_smtp_username,
            password=settings.notify_smtp_password,
            pool_size=settings.notify_smtp_connections,
        ),
        "sms": SmsGatewaySender(session, settings.notify_sms_gateway_url, settings.notify_sms_gateway_key),
    }
    contacts = contacts or IntakeContactDirectory(
        session,
        settings.notify_intake_url,
        settings.notify_intake_contacts_path,
        settings.notify_intake_api_key,
        max_batch=settings.notify_contact_lookup_batch,
    )
    policy = WorkerPolicy(
        max_attempts=settings.notify_max_attempts,
        backoff_base_s=settings.notify_backoff_base_s,
        backoff_cap_s=settings.notify_backoff_cap_s,
        circuit_threshold=settings.notify_circuit_threshold,
        circuit_cooldown_s=settings.notify_circuit_cooldown_s,
        send_timeout_s=settings.notify_send_timeout_s,
        max_in_flight=settings.notify_max_in_flight,
        poll_interval_s=settings.notify_worker_poll_interval_s,
        quiet_hours=quiet_hours(settings),
    )
    return DeliveryWorker(
        engine, senders, directory, contacts, policy,
        events_topic=settings.case_events_topic, dlq_topic=settings.notify_delivery_dlq_topic,
        source=source, on_commit=on_commit, clock=clock,
    )  # fmt: skip


def build_app(settings: NotifySettings | None = None) -> FastAPI:
    settings = settings or NotifySettings()
    runtime = ServiceRuntime.build(settings)
    directory = load_directory(settings)
    notifier = build_notifier(settings, directory)

    async def deliver(stop: asyncio.Event) -> None:
        async with new_session(settings.notify_send_timeout_s) as session:
            worker = build_worker(
                settings, runtime.engine, session, source=runtime.source, directory=directory,
                on_commit=runtime.wake_relay,
            )  # fmt: skip
            await worker.run(stop)

    return create_app(
        runtime,
        title="Gridline notify",
        description="Tells departments, grid members, supervisors and citizens what happened.",
        routers=[api.router],
        consumers=[
            ConsumerSpec(
                settings.consumer_group,
                [settings.case_events_topic],
                unit_of_work=consumer.unit_of_work(notifier),
                handles=consumer.HANDLES,
            )
        ],
        extra_topics=lambda: {settings.notify_delivery_dlq_topic: 1},
        background=[deliver],
    )
