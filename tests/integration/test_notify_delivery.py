"""Notify on real Kafka and PostgreSQL, delivering to a real SMTP server (aiosmtpd), a webhook receiver
that verifies signatures as docs/notify.md tells receivers to, and an SMS gateway stub speaking the
documented API. All three listen on loopback ports derived from GRIDLINE_TEST_PORT_BASE."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import hashlib
import hmac
import itertools
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import httpx
import orjson
import pytest
import sqlalchemy as sa
import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contracts.envelope import decode_message, encode_event
from runtime import kafka
from runtime.consumer import Delivery, EventConsumer
from runtime.db import inbox, outbox
from runtime.sql import local_settings
from services.notify import bootstrap
from services.notify.channels.http import new_session
from services.notify.config import NotifySettings
from services.notify.contacts import FakeContactDirectory
from services.notify.domain.directory import (
    Directory,
    RecipientEntry,
    WebhookEndpoint,
)
from services.notify.domain.directory import (
    Route as RecipientRoute,
)
from services.notify.tables import deliveries
from services.notify.worker import _RECORD, _STATE, ATTEMPTS, CLAIM, CLAIM_SETTINGS, claim_parameters
from tests.conftest import PORT_BASE
from tests.integration.conftest import migrated_engine
from tests.support import eventually
from tests.unit.notify import case_life

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SMTP_PORT, WEBHOOK_PORT, SMS_PORT = PORT_BASE + 610, PORT_BASE + 611, PORT_BASE + 612
SECRET = "it-webhook-secret"
SMS_KEY = "it-sms-key"
_names = itertools.count(1)


# --- the three counterparts -----------------------------------------------------------------------------


class ServerThread:
    """A Starlette app served by uvicorn on a loopback port, in its own thread and event loop."""

    def __init__(self, app: Starlette, port: int) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        config.timeout_graceful_shutdown = 1
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.server.started, "stub server did not start"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class WebhookReceiver:
    """Verifies every delivery the way docs/notify.md tells receivers to; ``/hooks/<name>`` behaves by name:
    ``broken`` answers 500, ``slow`` answers after 4 s (longer than the sender's timeout)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.app = Starlette(routes=[Route("/hooks/{name}", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        timestamp = request.headers["X-Gridline-Timestamp"]
        expected = (
            "sha256=" + hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        )
        valid = hmac.compare_digest(expected, request.headers["X-Gridline-Signature"])
        fresh = abs(time.time() - int(timestamp)) <= 300
        name = request.path_params["name"]
        self.calls.append(
            {"endpoint": name, "at": time.monotonic(), "valid": valid and fresh, "json": orjson.loads(body),
             "delivery": request.headers["X-Gridline-Delivery"]}
        )  # fmt: skip
        if not (valid and fresh):
            return Response(status_code=401)
        if name == "broken":
            return Response(status_code=500)
        if name == "slow":
            await asyncio.sleep(4)
        return Response(status_code=204)

    def to(self, name: str) -> list[dict]:
        return [c for c in self.calls if c["endpoint"] == name]


class SmsGatewayStub:
    """The documented SMS gateway API: POST /v1/sms with a bearer key, 202 on acceptance."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.app = Starlette(routes=[Route("/v1/sms", self.send, methods=["POST"])])

    async def send(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {SMS_KEY}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        message = await request.json()
        self.messages.append({**message, "idempotency_key": request.headers.get("idempotency-key")})
        return JSONResponse({"message_id": message["message_id"], "status": "accepted"}, status_code=202)


class Mailbox:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"


@pytest.fixture(scope="module")
def counterparts():
    mailbox, receiver, gateway = Mailbox(), WebhookReceiver(), SmsGatewayStub()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=SMTP_PORT, server_hostname="smtp.it.local")
    smtp.start()
    try:
        with ServerThread(receiver.app, WEBHOOK_PORT), ServerThread(gateway.app, SMS_PORT):
            yield mailbox, receiver, gateway
    finally:
        smtp.stop()


@pytest.fixture
def fresh(counterparts):
    """The counterparts, emptied for one test."""
    mailbox, receiver, gateway = counterparts
    mailbox.messages.clear()
    receiver.calls.clear()
    gateway.messages.clear()
    return counterparts


# --- notify, wired to them ------------------------------------------------------------------------------


@pytest.fixture
async def notify_engine(infrastructure):
    engine = await migrated_engine(infrastructure, "notify")
    yield engine
    await engine.dispose()


def settings_for(topic: str, **overrides) -> NotifySettings:
    values = dict(
        case_events_topic=topic,
        notify_smtp_host="127.0.0.1",
        notify_smtp_port=SMTP_PORT,
        notify_sms_gateway_url=f"http://127.0.0.1:{SMS_PORT}",
        notify_sms_gateway_key=SMS_KEY,
        notify_quiet_hours_start=clock_time(0, 0),  # no quiet hours unless a test asks for them
        notify_quiet_hours_end=clock_time(0, 0),
        notify_worker_poll_interval_s=0.05,
        notify_send_timeout_s=1.5,
        notify_backoff_base_s=0.05,
        notify_backoff_cap_s=0.2,
        notify_max_attempts=3,
        notify_circuit_threshold=3,
        notify_circuit_cooldown_s=0.3,
    )
    values.update(overrides)
    return NotifySettings(**values)


def directory_for(settings: NotifySettings, **extra_endpoints: str) -> Directory:
    """The default directory with the grid app (and any extra endpoints) pointing at the test receiver."""
    directory = bootstrap.load_directory(settings)
    endpoints = {
        name: WebhookEndpoint(url=f"http://127.0.0.1:{WEBHOOK_PORT}/hooks/{name}", secret=SECRET)
        for name in ("grid-app", *extra_endpoints)
    }
    recipients = dict(directory.recipients)
    for recipient in extra_endpoints:
        recipients[f"department:{recipient.upper()}"] = RecipientEntry(
            name=f"{recipient}单位", routes=[RecipientRoute(channel="webhook", endpoint=recipient)]
        )
    return directory.model_copy(update={"webhook_endpoints": endpoints, "recipients": recipients})


@contextlib.asynccontextmanager
async def running_worker(settings, engine, directory, contacts, **kwargs):
    async with new_session(settings.notify_send_timeout_s) as session:
        worker = bootstrap.build_worker(
            settings,
            engine,
            session,
            source="/gridline/notify",
            directory=directory,
            contacts=contacts,
            **kwargs,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            yield worker
        finally:
            stop.set()
            await task


@contextlib.asynccontextmanager
async def running_consumer(infrastructure, engine, producer, topic, open_unit, group):
    """Notify's consumer as the service runs it: a unit of work per consumed batch."""
    client = kafka.create_consumer(infrastructure.kafka_bootstrap, group, topic)
    await client.start()
    consumer = EventConsumer(
        name="it-notify", consumer=client, producer=producer, engine=engine, unit_of_work=open_unit
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield consumer
    finally:
        stop.set()
        await task
        await client.stop()


async def publish(producer, topic, events) -> None:
    for event in events:
        m = encode_event(event, source="/gridline/tests", topic=topic)
        await producer.send_and_wait(m.topic, m.value, key=m.key.encode(), headers=m.headers)


async def rows(engine, case_id=None):
    query = sa.select(deliveries).order_by(deliveries.c.seq)
    if case_id:
        query = query.where(deliveries.c.case_id == case_id)
    async with engine.connect() as conn:
        return (await conn.execute(query)).all()


async def outbox_events(engine, event_type: str):
    async with engine.connect() as conn:
        found = (await conn.execute(sa.select(outbox).where(outbox.c.event_type == event_type))).all()
    return [decode_message(r.key.encode(), [(n, v.encode()) for n, v in r.headers], r.value) for r in found]


async def all_done(engine, count: int) -> bool:
    found = await rows(engine)
    return len(found) == count and all(r.status != "pending" for r in found)


# --- acceptance -----------------------------------------------------------------------------------------


async def test_one_case_life_produces_exactly_the_expected_messages_in_chinese_with_masked_data(
    infrastructure, notify_engine, producer, topic, fresh
):
    mailbox, receiver, gateway = fresh
    case_id = case_life.new_case_id()
    events = case_life.life(case_id)
    settings = settings_for(topic)
    directory = directory_for(settings)
    contacts = FakeContactDirectory({f"cz_{case_id}": case_life.CLEAR_PHONE})
    notifier = bootstrap.build_notifier(settings, directory)
    await publish(producer, topic, events)

    async with (
        running_worker(settings, notify_engine, directory, contacts),
        running_consumer(infrastructure, notify_engine, producer, topic, notifier.open_unit, "g-life"),
    ):
        await eventually(lambda: all_done(notify_engine, len(case_life.EXPECTED)))

    found = await rows(notify_engine, case_id)
    assert [(r.recipient, r.channel, r.template) for r in found] == case_life.expected(case_id)
    assert {r.status for r in found} == {"sent"}

    # SMS: exactly four, to the clear number the vault gave, in Chinese, with the signature.
    assert [m["to"] for m in gateway.messages] == [case_life.CLEAR_PHONE] * 4
    texts = [m["text"] for m in gateway.messages]
    assert texts[0] == f"【章丘12345】您的诉求已受理，工单号{case_id}，我们将于2026年11月30日前答复您。"
    assert "请对办理结果进行评价：https://12345.zhangqiu.example/pj/" + case_id in texts[1]
    assert texts[3] == f"【章丘12345】您的工单{case_id}已办结，感谢您对章丘区工作的支持。"
    assert all(m["idempotency_key"] == m["message_id"] for m in gateway.messages)

    # E-mail: seven, subjects in Chinese, masked contact for handlers, nothing clear anywhere.
    # (Different recipients are served concurrently; each recipient's messages about a case come in order.)
    subjects = [(to[0], msg["Subject"]) for to, msg in mailbox.messages]
    assert sorted(subjects, key=lambda s: s[0]) == [
        ("cgj-dispatch@zhangqiu.example", f"【新派单】工单{case_id}：路灯不亮"),
        ("dispatch-swj@zhangqiu.example", f"【转办】工单{case_id}：路灯不亮"),
        ("dispatch-swj@zhangqiu.example", f"【重办】工单{case_id}：路灯不亮"),
        ("duban-12345@zhangqiu.example", f"【红牌】工单{case_id}已超答复时限"),
        ("duban-street@zhangqiu.example", f"【黄牌预警】工单{case_id}答复时限将至"),
        ("duban-street@zhangqiu.example", f"【红牌】工单{case_id}已超答复时限"),
        ("duban-street@zhangqiu.example", f"【1级督办】工单{case_id}"),
    ]
    bodies = [msg.get_content() for _, msg in mailbox.messages]
    assignment_mail = next(m for to, m in mailbox.messages if to == ["cgj-dispatch@zhangqiu.example"])
    assert case_life.MASKED_PHONE in assignment_mail.get_content()
    assert all(case_life.CLEAR_PHONE not in body for body in bodies)

    # Webhooks: two to the grid app, both correctly signed, with structured masked data.
    assert [c["valid"] for c in receiver.calls] == [True, True]
    assert [c["json"]["template"] for c in receiver.calls] == ["grid_task", "assignment_returned"]
    assert receiver.calls[0]["json"]["data"]["citizen_phone_masked"] == case_life.MASKED_PHONE
    assert case_life.CLEAR_PHONE not in orjson.dumps([c["json"] for c in receiver.calls]).decode()

    # Every delivery is on the log as NotificationSent; neither the log nor the queue holds the number.
    sent = await outbox_events(notify_engine, "gridline.case.notification-sent.v1")
    assert sorted(e.event.notification_id for e in sent) == sorted(r.id for r in found)
    assert case_life.CLEAR_PHONE not in str([tuple(r) for r in found])


async def test_replayed_events_send_nothing_twice_even_with_the_inbox_wiped(
    infrastructure, notify_engine, producer, topic, fresh
):
    mailbox, receiver, gateway = fresh
    case_id = case_life.new_case_id()
    events = case_life.life(case_id)
    settings = settings_for(topic)
    directory = directory_for(settings)
    contacts = FakeContactDirectory({f"cz_{case_id}": case_life.CLEAR_PHONE})
    notifier = bootstrap.build_notifier(settings, directory)
    await publish(producer, topic, events)
    expected = len(case_life.EXPECTED)

    async with running_worker(settings, notify_engine, directory, contacts):
        async with running_consumer(
            infrastructure, notify_engine, producer, topic, notifier.open_unit, "g-1"
        ):
            await eventually(lambda: all_done(notify_engine, expected))
        # Offsets reset: a new group reads the topic from the start (the inbox recognises every event).
        async with running_consumer(
            infrastructure, notify_engine, producer, topic, notifier.open_unit, "g-2"
        ) as c:
            await eventually(lambda: _processed(c, len(events)))
        # Worse: the inbox is gone, so the handler really runs again on every event.
        async with notify_engine.begin() as conn:
            await conn.execute(sa.delete(inbox))
        async with running_consumer(
            infrastructure, notify_engine, producer, topic, notifier.open_unit, "g-3"
        ) as c:
            await eventually(lambda: _processed(c, len(events)))
            # A fresh event after the replay: once its message is out, anything replayed would be out too.
            sentinel = case_life.life(case_id)[8]  # CaseEscalated, new event id
            await publish(producer, topic, [sentinel])
            await eventually(lambda: all_done(notify_engine, expected + 1))

    assert len(gateway.messages) == 4
    assert len(mailbox.messages) == 7 + 1
    assert len(receiver.calls) == 2
    assert len({m["message_id"] for m in gateway.messages}) == 4


async def _processed(consumer, count: int) -> bool:
    return consumer.status.processed >= count


async def test_a_failing_and_a_timing_out_webhook_are_retried_break_their_circuits_and_delay_no_one_else(
    notify_engine, fresh
):
    _, receiver, _ = fresh
    settings = settings_for("it.notify.unused")
    directory = directory_for(settings, broken="broken", slow="slow", healthy="healthy")
    notifier = bootstrap.build_notifier(settings, directory)
    cases = [case_life.new_case_id() for _ in range(4)]
    for case_id in cases:
        await handle_directly(notifier, notify_engine, case_life.received(case_id))
        await handle_directly(notifier, notify_engine, assignment(case_id))
    before = _counter("webhook:broken", "circuit-open") + _counter("webhook:slow", "circuit-open")

    async with running_worker(settings, notify_engine, directory, FakeContactDirectory()):
        await eventually(lambda: _sent_to(notify_engine, "webhook:healthy", len(cases)), timeout=10)
        # Measured: every healthy message is out while the broken and slow ones are still being retried.
        pending = [r for r in await rows(notify_engine) if r.status == "pending"]
        assert {r.endpoint for r in pending} == {"webhook:broken", "webhook:slow"}
        await eventually(lambda: all_done(notify_engine, 3 * len(cases)), timeout=60)

    found = {(r.endpoint, r.status) for r in await rows(notify_engine)}
    assert found == {("webhook:healthy", "sent"), ("webhook:broken", "failed"), ("webhook:slow", "failed")}
    failed = [r for r in await rows(notify_engine) if r.status == "failed"]
    assert all(r.attempts == settings.notify_max_attempts for r in failed)
    assert {r.last_error for r in failed} == {"HTTP 500 from webhook broken", "timeout after 1.5s"}
    # Each attempt reached the endpoint; once the circuit was open, calls came one trial per cooldown.
    broken = sorted(c["at"] for c in receiver.to("broken"))
    assert len(broken) == len(cases) * settings.notify_max_attempts
    later = broken[len(cases) :]
    gaps = [b - a for a, b in itertools.pairwise(later)]
    assert min(gaps) >= settings.notify_circuit_cooldown_s * 0.8
    assert _counter("webhook:broken", "circuit-open") + _counter("webhook:slow", "circuit-open") > before
    # After the last retry: NotificationFailed and a DLQ record for each, via the outbox.
    failures = await outbox_events(notify_engine, "gridline.case.notification-failed.v1")
    assert sorted(e.event.notification_id for e in failures) == sorted(r.id for r in failed)
    async with notify_engine.connect() as conn:
        dlq = (
            await conn.execute(sa.select(outbox).where(outbox.c.topic == settings.notify_delivery_dlq_topic))
        ).all()
    assert sorted(orjson.loads(r.value)["notification_id"] for r in dlq) == sorted(r.id for r in failed)


def assignment(case_id: str):
    from contracts.events.routing import Assignee, AssigneeKind, CaseAssigned, RoutingBasis

    def dept(code: str) -> Assignee:
        return Assignee(kind=AssigneeKind.DEPARTMENT, code=code, name=f"{code}单位")

    return CaseAssigned(
        case_id=case_id, occurred_at=datetime.now(UTC), actor="routing", assignment_id=f"a-{case_id}",
        assignee=dept("HEALTHY"), co_handlers=(dept("BROKEN"), dept("SLOW")), basis=RoutingBasis(),
    )  # fmt: skip


async def handle_directly(notifier, engine, event) -> None:
    """Run the consumer handler in a transaction, as the consumer loop would."""
    m = encode_event(event, source="/gridline/tests", topic="t")
    envelope = decode_message(m.key.encode(), m.headers, m.value)
    async with engine.begin() as conn:
        await notifier.handle(conn, Delivery(envelope, "t", 0, 0))


async def _sent_to(engine, endpoint: str, count: int) -> bool:
    return len([r for r in await rows(engine) if r.endpoint == endpoint and r.status == "sent"]) >= count


def _counter(endpoint: str, outcome: str) -> float:
    return ATTEMPTS.labels("webhook", endpoint, outcome)._value.get()


async def test_citizen_sms_in_quiet_hours_waits_until_eight_while_staff_mail_goes_at_once(
    notify_engine, fresh
):
    mailbox, _, gateway = fresh
    settings = settings_for(
        "it.notify.unused",
        notify_quiet_hours_start=clock_time(22, 0),
        notify_quiet_hours_end=clock_time(8, 0),
    )
    directory = directory_for(settings)
    notifier = bootstrap.build_notifier(settings, directory)
    today = datetime.now(UTC).date()
    late_evening = datetime(today.year, today.month, today.day, 14, 30, tzinfo=UTC)  # 22:30 in Zhangqiu
    eight_next_morning = late_evening.replace(hour=0, minute=0) + timedelta(days=1)
    now = [late_evening]
    notifier.clock = lambda: now[0]
    case_id = case_life.new_case_id()
    contacts = FakeContactDirectory({f"cz_{case_id}": case_life.CLEAR_PHONE})
    for event in case_life.life(case_id)[:5]:  # received, grid task, return, department assignment, deadline
        await handle_directly(notifier, notify_engine, event)

    async with running_worker(settings, notify_engine, directory, contacts, clock=lambda: now[0]):
        await eventually(lambda: _sent_count(notify_engine, 3))
        now[0] = eight_next_morning - timedelta(minutes=1)
        await asyncio.sleep(0.5)  # ten worker polls at 07:59
        sms = [r for r in await rows(notify_engine, case_id) if r.channel == "sms"]
        assert [(r.status, r.deferred_reason, r.next_attempt_at) for r in sms] == [
            ("pending", "quiet-hours", eight_next_morning)
        ]
        assert gateway.messages == [] and len(mailbox.messages) == 1
        now[0] = eight_next_morning
        await eventually(lambda: _sent_count(notify_engine, 4))
    assert [m["text"][:16] for m in gateway.messages] == ["【章丘12345】您的诉求已受理"]


async def _sent_count(engine, count: int) -> bool:
    return len([r for r in await rows(engine) if r.status == "sent"]) >= count


async def test_the_delivery_log_of_a_case_is_served_to_operators_only(notify_engine, fresh):
    settings = settings_for("it.notify.unused")
    directory = directory_for(settings)
    notifier = bootstrap.build_notifier(settings, directory)
    case_id = case_life.new_case_id()
    for event in case_life.life(case_id)[:4]:
        await handle_directly(notifier, notify_engine, event)
    app = bootstrap.build_app(settings)
    app.state.runtime.engine = notify_engine
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notify") as client:
        ok = await client.get(f"/v1/cases/{case_id}/notifications", headers={"X-API-Key": "dev-operator-key"})
        unknown = await client.get("/v1/cases/ZQ0/notifications", headers={"X-API-Key": "dev-sre-key"})
        anonymous = await client.get(f"/v1/cases/{case_id}/notifications")
        grid = await client.get(f"/v1/cases/{case_id}/notifications", headers={"X-API-Key": "dev-grid-key"})
    assert ok.status_code == 200
    log = ok.json()["notifications"]
    assert [(n["template"], n["status"]) for n in log] == [
        ("grid_task", "pending"),
        ("assignment_returned", "pending"),
        ("assignment_new", "pending"),
    ]
    assert case_life.MASKED_PHONE in log[2]["body"] and case_life.CLEAR_PHONE not in ok.text
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    assert (anonymous.status_code, grid.status_code) == (401, 403)


async def test_a_once_per_case_message_is_queued_once_within_a_batch_and_across_batches(notify_engine):
    """The citizen hears "accepted" once per case: a second acceptance in the same batch, or one in a
    later transaction (the delivery is then read from the table), queues nothing more for the citizen."""
    settings = settings_for("t")
    notifier = bootstrap.build_notifier(settings, directory_for(settings))
    case_id = case_life.new_case_id()
    life = case_life.life(case_id)
    accepted = life[5]  # after received, assigned, returned, assigned again, deadline set
    again = accepted.model_copy(update={"assignment_id": "a9", "occurred_at": datetime.now(UTC)})
    later = accepted.model_copy(update={"assignment_id": "a10", "occurred_at": datetime.now(UTC)})

    def delivery(event) -> Delivery:
        m = encode_event(event, source="/gridline/tests", topic="t")
        return Delivery(decode_message(m.key.encode(), m.headers, m.value), "t", 0, 0)

    async def run_unit(events) -> None:
        async with notify_engine.begin() as conn:
            unit = await notifier.open_unit(conn, [delivery(e) for e in events])
            for event in events:
                await unit.handle(delivery(event))
            await unit.finish()

    async def told() -> int:
        found = await rows(notify_engine, case_id)
        return len([r for r in found if r.template == "citizen_accepted"])

    await run_unit([*life[:6], again])
    assert await told() == 1
    await run_unit([later])
    assert await told() == 1
    other = case_life.new_case_id()
    await run_unit([e.model_copy(update={"case_id": other}) for e in life[:6]])
    assert len([r for r in await rows(notify_engine, other) if r.template == "citizen_accepted"]) == 1


async def test_the_claim_probes_earlier_pending_rows_per_due_row_never_joining_all_of_them(notify_engine):
    """The order check stays a per-row subplan whatever the statistics say: as an anti-join it compared every
    due row with every pending one (O(due × pending), 81 ms per claim during a burst)."""
    now = datetime.now(UTC)
    async with notify_engine.connect() as conn:
        compiled = CLAIM.compile(dialect=conn.dialect)
        values = compiled.construct_params(claim_parameters(now, now + timedelta(seconds=30), 64))
        params = tuple(values[name] for name in compiled.positiontup)
        plan = (await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled.string}", params)).scalar_one()
    text = orjson.dumps(plan).decode()
    assert "SubPlan" in text and "Anti Join" not in text


async def test_recording_outcomes_finds_each_row_by_its_key_even_before_statistics_exist(notify_engine):
    """A fresh table (never analysed): the planner must not take the partial index of pending deliveries,
    which it then believes holds one row, and hash every pending delivery to record a handful."""
    async with notify_engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO deliveries (id, case_id, trigger_event_id, trigger_type, subscription, recipient,"
            " recipient_kind, channel, endpoint, template, title, body, payload, quiet_hours,"
            " trace_headers, next_attempt_at)"
            " SELECT 'n-' || i, 'C-' || i, 'e-' || i, 'assigned', 's', 'department:CGJ', 'department',"
            " 'webhook', 'grid-app', 'assignment_new', '工单', '正文', '{}', false, '{}', now()"
            " FROM generate_series(1, 3000) AS i"
        )
        ids = [f"n-{i}" for i in range(100, 3000, 600)]
        values = {"ids": ids} | {column: [None] * len(ids) for column in _STATE}
        now = datetime.now(UTC)
        values |= {
            "status": ["sent"] * len(ids),
            "attempts": [1] * len(ids),
            "next_attempt_at": [now] * len(ids),
        }
        plan = "\n".join(r[0] for r in (await conn.execute(sa.text(f"EXPLAIN {_RECORD.text}"), values)).all())
        assert "deliveries_due" not in plan and "deliveries_pkey" in plan, plan
        recorded = set((await conn.execute(_RECORD, values)).scalars())
    assert recorded == set(ids)


async def test_a_claim_reads_the_due_rows_in_order_and_stops_at_its_limit_whatever_the_backlog(notify_engine):
    """Statistics from an ANALYZE taken when nothing was pending, then a backlog (a channel was down): the
    claim must walk the due rows in order and stop once it has its rows, not sort every due row (1,560
    rows, 3,555 buffers a claim in a replay's backlog), so a claim costs the same at any backlog."""
    insert = (
        "INSERT INTO deliveries (id, case_id, trigger_event_id, trigger_type, subscription, recipient,"
        " recipient_kind, channel, endpoint, template, title, body, payload, quiet_hours,"
        " trace_headers, next_attempt_at, status)"
        " SELECT '{p}-' || i, 'C-{p}-' || i, 'e-{p}-' || i, 'assigned', 's', 'department:CGJ', 'department',"
        " 'webhook', 'grid-app', 'assignment_new', '工单', '正文', '{{}}', false, '{{}}',"
        " now() - interval '1 hour' + i * interval '1 ms', '{status}' FROM generate_series(1, {n}) AS i"
    )
    async with notify_engine.begin() as conn:
        await conn.exec_driver_sql(insert.format(p="sent", n=300, status="sent"))
    async with notify_engine.connect() as conn:
        await conn.exec_driver_sql("ANALYZE deliveries")
        await conn.commit()
    now = datetime.now(UTC)
    async with notify_engine.begin() as conn:
        await conn.exec_driver_sql(insert.format(p="due", n=3000, status="pending"))
        compiled = CLAIM.compile(dialect=conn.dialect)
        values = compiled.construct_params(claim_parameters(now, now + timedelta(seconds=30), 8))
        params = tuple(values[name] for name in compiled.positiontup)
        async with local_settings(conn, **CLAIM_SETTINGS):
            plan = "\n".join(
                r[0]
                for r in (
                    await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, TIMING OFF) {compiled.string}", params)
                ).all()
            )
    assert "Sort" not in plan and "deliveries_due" in plan, plan
    scans = re.findall(r"Index Scan using (\w+) on deliveries (\w+) .*actual rows=(\d+)", plan)
    assert [(index, int(rows)) for index, alias, rows in scans if alias != "earlier"] == [
        ("deliveries_due", 8)
    ], plan
    probes = [index for index, alias, _ in scans if alias == "earlier"]
    # an index led by the case: the case's few rows, not the backlog
    assert probes and set(probes) <= {"deliveries_by_case", "deliveries_once_per_case"}, plan
    assert "Rows Removed by Filter: 3000" not in plan, plan
    async with notify_engine.begin() as conn:
        claimed = (await conn.execute(CLAIM, claim_parameters(now, now + timedelta(seconds=30), 8))).all()
    # the first eight were leased by the EXPLAIN ANALYZE (it runs the update): the next eight, in order
    assert sorted(r.id for r in claimed) == sorted(f"due-{i}" for i in range(9, 17))
