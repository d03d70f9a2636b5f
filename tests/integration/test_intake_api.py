"""Intake's HTTP API in process, on a real migrated PostgreSQL: what each request commits to the outbox."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from opentelemetry import context as otel_context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from contracts.envelope import decode_message, encode_event
from contracts.events.intake import AppealWithdrawn, CaseClosed, CaseReopened, DuplicateLinked
from contracts.events.routing import (
    Assignee,
    AssigneeKind,
    AssignmentAccepted,
    CaseAssigned,
    CaseSentToTriage,
    CaseTransferred,
    ReplySubmitted,
    RoutingBasis,
)
from devtools.sample import hotline_order
from runtime import migrations
from runtime.consumer import Delivery, apply_in_unit
from runtime.db import asyncpg_dsn, outbox
from runtime.outbox import OutboxRelay
from runtime.service import ServiceRuntime
from services.intake import appeals as feeds
from services.intake import citizen, consumer, handlers, recording
from services.intake.bootstrap import MIGRATIONS, build_app
from services.intake.config import IntakeSettings
from services.intake.schemas import HotlineOrderCreate
from services.intake.tables import appeals, pii_access_log, pii_vault
from tests.integration.conftest import plan_nodes

pytestmark = pytest.mark.integration
_names = itertools.count(1)
HOTLINE = {"X-API-Key": "dev-hotline-key"}
GRID = {"X-API-Key": "dev-grid-key"}
# A point inside 明水街道 (WGS84) and one ~100 m east of it.
MINGSHUI = {"lat": 36.7118880, "lon": 117.5347582, "crs": "WGS84"}
MINGSHUI_EAST = {"lat": 36.7118880, "lon": 117.5358800, "crs": "WGS84"}


@pytest.fixture
async def intake_db(infrastructure) -> str:
    """A fresh database with intake's migrations applied."""
    name = f"it_intake_{infrastructure.run_id}_{next(_names)}"
    infrastructure.create_databases(name)
    url = infrastructure.database_url(name).replace("postgresql://", "postgresql+asyncpg://", 1)
    await asyncio.to_thread(migrations.upgrade, MIGRATIONS, url)
    return name


class InProcessIntake:
    """Intake's app without its lifespan (no Kafka): requests commit to the database and outbox only."""

    def __init__(self, infrastructure, database: str, **overrides) -> None:
        self.settings = IntakeSettings(
            environment="test",
            postgres_url=infrastructure.postgres_url,
            database_name=database,
            case_events_topic="it.intake.case-events",
            **overrides,
        )
        self.runtime = ServiceRuntime.build(self.settings)
        self.app = build_app(self.settings, self.runtime)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://intake")

    async def close(self) -> None:
        await self.client.aclose()
        await self.app.state.intake.close()
        await self.runtime.engine.dispose()

    async def events(self, case_id: str | None = None) -> list:
        """Decoded events in the outbox, in commit order (optionally of one case)."""
        async with self.runtime.engine.connect() as conn:
            rows = (await conn.execute(sa.select(outbox).order_by(outbox.c.id))).all()
        decoded = [
            decode_message(r.key.encode(), [(n, v.encode()) for n, v in r.headers], r.value).event
            for r in rows
        ]
        return [e for e in decoded if case_id is None or e.case_id == case_id]

    async def apply(self, *events) -> None:
        """Feed case events to intake's consumer, in one transaction, as the consumer loop applies a batch."""
        topic = self.settings.case_events_topic
        deliveries = []
        for offset, event in enumerate(events):
            message = encode_event(event, source="/gridline/tests", topic=topic)
            envelope = decode_message(message.key.encode(), message.headers, message.value)
            deliveries.append(Delivery(envelope, topic, 0, offset))
        async with self.runtime.engine.begin() as conn:
            await apply_in_unit(consumer.open_unit, conn, deliveries)


@pytest.fixture
async def intake(infrastructure, intake_db) -> AsyncIterator[InProcessIntake]:
    running = InProcessIntake(infrastructure, intake_db)
    yield running
    await running.close()


def grid_report(index: int, **overrides) -> dict:
    report = {
        "report_id": f"MS-0101-20261126-{index:04d}",
        "grid_code": "370114001001-01",
        "member_id": "WGY-0101-03",
        "event_class_code": "event:06010",
        "coordinates": MINGSHUI,
        "address": "章丘区明水街道明一社区百脉泉路12号",
        "photos": ["https://files.example.cn/grid/ms0101/0007-1.jpg"],
        "description": "路边暴露垃圾约两立方，影响通行",
        "found_at": "2026-11-26T08:10:00+08:00",
    }
    return report | overrides


async def test_fifty_concurrent_retries_of_one_work_order_create_exactly_one_case(intake):
    order = hotline_order(1, seed=3101)
    responses = await asyncio.gather(
        *(intake.client.post("/v1/intake/hotline", json=order, headers=HOTLINE) for _ in range(50))
    )
    assert sorted(r.status_code for r in responses) == [200] * 49 + [201]
    assert len({r.json()["case_id"] for r in responses}) == 1
    assert [type(e).__name__ for e in await intake.events()] == ["CaseReceived"]


async def test_fifty_concurrent_retries_with_one_idempotency_key_create_exactly_one_case(intake):
    form = {"service_code": "06010", "lat": "36.711888", "long": "117.5347582", "description": "垃圾没人清运",
            "api_key": "dev-open311-key"}  # fmt: skip
    headers = {"Idempotency-Key": "retry-me-3101"}
    responses = await asyncio.gather(
        *(intake.client.post("/open311/v2/requests.json", data=form, headers=headers) for _ in range(50))
    )
    assert sorted(r.status_code for r in responses) == [200] * 49 + [201]
    assert len({r.json()[0]["service_request_id"] for r in responses}) == 1
    assert len(await intake.events()) == 1


async def test_appeals_arriving_together_are_recorded_in_batches_each_seeing_those_before_it(intake):
    # Forty orders posted at once: most are new; among them a repeat of one (same caller and category),
    # a retry of another (same body), and a third's order number with other content. Whichever of each
    # pair is written first, in whichever batch, the answers are those of one-by-one recording.
    orders = [hotline_order(i, seed=3120) | {"category_code": "9001"} for i in range(36)]
    repeat = hotline_order(90, seed=3120) | {
        "category_code": "9001",
        "caller_phone": orders[3]["caller_phone"],
    }
    retry = dict(orders[5])
    conflict = hotline_order(91, seed=3120) | {"order_no": orders[6]["order_no"]}
    posted = [*orders, repeat, retry, conflict]
    responses = await asyncio.gather(
        *(intake.client.post("/v1/intake/hotline", json=o, headers=HOTLINE) for o in posted)
    )
    stats = intake.app.state.intake.recorder.stats
    assert stats.largest > 1 and stats.batches < len(posted)  # batches did form
    by_order = dict(zip(range(len(posted)), responses, strict=True))
    pair = sorted([by_order[3].json(), by_order[36].json()], key=lambda a: a["status"])
    assert [a["status"] for a in pair] == ["duplicate", "received"]
    assert pair[0]["duplicate_of"] == pair[1]["case_id"]
    assert sorted([by_order[5].status_code, by_order[37].status_code]) == [200, 201]
    assert by_order[5].json()["case_id"] == by_order[37].json()["case_id"]
    assert sorted([by_order[6].status_code, by_order[38].status_code]) == [201, 409]
    events = await intake.events()
    assert sum(type(e).__name__ == "CaseReceived" for e in events) == 37  # the 36, and the repeat
    duplicate = pair[0]["case_id"]
    assert [type(e).__name__ for e in events if e.case_id == duplicate] == ["CaseReceived", "DuplicateLinked"]
    async with intake.runtime.engine.connect() as conn:
        appeals = (await conn.execute(sa.text("SELECT count(*) FROM appeals"))).scalar_one()
    assert appeals == 37


def _recorder_of(intake):
    """record(order) → the recorder's answer, bypassing HTTP (so tests can reach into a request's context)."""
    service = intake.app.state.intake

    def record(order: dict):
        appeal = feeds.from_hotline(HotlineOrderCreate.model_validate(order), service.rules)
        return handlers.record_appeal(service, appeal, order)

    return service, record


async def test_an_appeal_that_fails_its_batch_fails_alone_and_the_others_are_recorded(intake, monkeypatch):
    service, record = _recorder_of(intake)
    seal = service.cipher.seal
    doomed = "13900000000"

    def failing_seal(case_id, field, clear):
        if clear and clear.endswith(doomed):
            raise RuntimeError("a bug that only this appeal meets")
        return seal(case_id, field, clear)

    monkeypatch.setattr(service.cipher, "seal", failing_seal)
    orders = [hotline_order(i, seed=3121) for i in range(12)]
    orders[4]["caller_phone"] = doomed
    outcomes = await asyncio.gather(*(record(o) for o in orders), return_exceptions=True)
    assert [type(o).__name__ for o in outcomes].count("RuntimeError") == 1
    assert isinstance(outcomes[4], RuntimeError)
    assert all(o.created for n, o in enumerate(outcomes) if n != 4)
    assert service.recorder.stats.retried_alone > 1  # its batch was written again appeal by appeal
    assert len(await intake.events()) == 11


async def test_each_appeal_of_a_batch_carries_its_own_requests_trace(intake):
    service, record = _recorder_of(intake)

    async def traced(order: dict, trace_id: int):
        span = NonRecordingSpan(SpanContext(trace_id, 0x1234, is_remote=True, trace_flags=TraceFlags(1)))
        token = otel_context.attach(set_span_in_context(span))
        try:
            return await record(order)
        finally:
            otel_context.detach(token)

    orders = [hotline_order(i, seed=3122) for i in range(10)]
    answers = await asyncio.gather(*(traced(o, 0xABC000 + n) for n, o in enumerate(orders)))
    assert service.recorder.stats.largest > 1
    async with intake.runtime.engine.connect() as conn:
        rows = (await conn.execute(sa.select(outbox.c.key, outbox.c.headers))).all()
    parents = {key: dict(headers).get("traceparent", "") for key, headers in rows}
    for n, answer in enumerate(answers):
        assert parents[answer.case_id].split("-")[1] == f"{0xABC000 + n:032x}"


async def test_an_idempotency_key_reused_for_another_body_is_refused_naming_the_header(intake):
    headers = HOTLINE | {"Idempotency-Key": "k-1"}
    order = hotline_order(2, seed=3101)
    first = await intake.client.post("/v1/intake/hotline", json=order, headers=headers)
    again = await intake.client.post("/v1/intake/hotline", json=order, headers=headers)
    other = await intake.client.post("/v1/intake/hotline", json=hotline_order(3, seed=3101), headers=headers)
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 422)
    assert other.json()["field"] == "Idempotency-Key"


async def test_a_grid_report_resolved_on_the_spot_is_received_and_closed_in_one_transaction(intake):
    response = await intake.client.post(
        "/v1/intake/grid", json=grid_report(1, resolved_on_spot=True), headers=GRID
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "closed"
    received, closed = await intake.events(response.json()["case_id"])
    assert received.resolved_on_spot is True and received.source == "grid"
    assert received.category == "city_appearance" and received.grid_code == "370114001001-01"
    assert received.town_code == "370114001000" and received.community_code == "370114001001"
    assert received.outside_jurisdiction is False
    assert closed.reason == "resolved_on_spot"


async def test_a_grid_point_outside_the_district_is_flagged_for_triage_not_dropped(intake):
    jinan_centre = {"lat": 36.6512, "lon": 117.1201, "crs": "WGS84"}
    response = await intake.client.post(
        "/v1/intake/grid",
        json=grid_report(2, coordinates=jinan_centre, event_class_code="不存在的类别"),
        headers=GRID,
    )
    assert response.status_code == 201
    (received,) = await intake.events(response.json()["case_id"])
    assert received.outside_jurisdiction is True
    assert set(received.triage_reasons) == {"outside_jurisdiction", "unclassified_category"}
    assert received.category == "unclassified"


async def test_the_same_caller_and_category_within_seven_days_is_linked_as_a_duplicate(intake):
    first = hotline_order(10, seed=3101) | {"category_code": "9001"}
    second = hotline_order(11, seed=3101) | {"category_code": "900101", "caller_phone": first["caller_phone"]}
    primary = (await intake.client.post("/v1/intake/hotline", json=first, headers=HOTLINE)).json()
    repeat = (await intake.client.post("/v1/intake/hotline", json=second, headers=HOTLINE)).json()
    assert repeat["status"] == "duplicate" and repeat["duplicate_of"] == primary["case_id"]
    received, linked = await intake.events(repeat["case_id"])
    assert received.duplicate_of == primary["case_id"]
    assert linked.primary_case_id == primary["case_id"] and linked.reason == "same_caller_same_category"


async def test_closing_a_primary_closes_its_open_duplicates_once_and_nothing_else(intake):
    first = hotline_order(14, seed=3103) | {"category_code": "9001"}
    second = hotline_order(15, seed=3103) | {"category_code": "9001", "caller_phone": first["caller_phone"]}
    other = hotline_order(16, seed=3104) | {"category_code": "9001"}
    primary = (await intake.client.post("/v1/intake/hotline", json=first, headers=HOTLINE)).json()
    repeat = (await intake.client.post("/v1/intake/hotline", json=second, headers=HOTLINE)).json()
    unrelated = (await intake.client.post("/v1/intake/hotline", json=other, headers=HOTLINE)).json()
    assert repeat["duplicate_of"] == primary["case_id"] and unrelated["duplicate_of"] is None
    closed = CaseClosed(
        case_id=primary["case_id"], occurred_at=datetime.now(UTC), actor="intake", reason="citizen_satisfied"
    )
    await intake.apply(closed)
    (_, _, with_primary) = await intake.events(repeat["case_id"])
    assert isinstance(with_primary, CaseClosed) and with_primary.reason == "duplicate"
    assert primary["case_id"] in (with_primary.note or "")
    assert [type(e).__name__ for e in await intake.events(unrelated["case_id"])] == ["CaseReceived"]
    await intake.apply(with_primary)  # the duplicate's own CaseClosed comes back from the log
    await intake.apply(closed.model_copy(update={"occurred_at": datetime.now(UTC)}))  # the primary again
    assert len(await intake.events(repeat["case_id"])) == 3  # closed once: it is no longer open


HISTORY_ENDS = datetime(2026, 11, 21, tzinfo=UTC)


def _case_history(primary: str, repeat: str, other: str, late: str) -> list:
    """A stretch of the case log over four appeals: the primary is answered, reopened, answered again
    and closed; ``late`` is linked to it as a duplicate on the way; ``other`` bounces and is withdrawn."""
    at = itertools.count()

    def when() -> datetime:
        return datetime(2026, 11, 20, 9, tzinfo=UTC) + timedelta(minutes=next(at))

    cgj = Assignee(kind=AssigneeKind.DEPARTMENT, code="CGJ", name="区城管局")
    zjj = Assignee(kind=AssigneeKind.DEPARTMENT, code="ZJJ", name="区住建局")
    basis = RoutingBasis(method="point-in-polygon", reason="test")
    return [
        CaseAssigned(case_id=primary, occurred_at=when(), actor="routing", assignment_id="p1", assignee=cgj,
                     basis=basis),
        CaseAssigned(case_id=other, occurred_at=when(), actor="routing", assignment_id="o1", assignee=cgj,
                     basis=basis),
        AssignmentAccepted(case_id=primary, occurred_at=when(), actor="CGJ", assignment_id="p1",
                           assignee=cgj),
        CaseTransferred(case_id=other, occurred_at=when(), actor="CGJ", from_assignment_id="o1",
                        from_assignee=cgj, to_assignee=zjj, reason="不属本单位"),
        ReplySubmitted(case_id=primary, occurred_at=when(), actor="CGJ", assignment_id="p1", assignee=cgj,
                       reply="已维修"),
        DuplicateLinked(case_id=late, occurred_at=when(), actor="intake", primary_case_id=primary,
                        similarity=0.9, reason="operator"),
        CaseReopened(case_id=primary, occurred_at=when(), actor="intake", reason="不满意", reopen_count=1),
        CaseSentToTriage(case_id=other, occurred_at=when(), actor="routing", reason="两次退单"),
        ReplySubmitted(case_id=primary, occurred_at=when(), actor="CGJ", assignment_id="p1", assignee=cgj,
                       reply="已更换灯具"),
        AppealWithdrawn(case_id=other, occurred_at=when(), actor="intake", reason="已自行解决"),
        CaseClosed(case_id=primary, occurred_at=when(), actor="intake", reason="citizen_satisfied"),
        CaseClosed(case_id=other, occurred_at=when(), actor="intake", reason="withdrawn"),
        ReplySubmitted(case_id=other, occurred_at=when(), actor="ZJJ", assignment_id="o2", assignee=zjj,
                       reply="迟到的答复"),
    ]  # fmt: skip


async def test_a_batch_of_case_events_leaves_the_appeals_as_the_events_one_by_one_would(intake):
    """The consumer applies a whole batch in memory and writes once; each event must still see the ones
    before it (a reply after the close keeps the case closed, a duplicate linked in the batch is closed
    with its primary), and the rows and the duplicates' CaseClosed must equal one-by-one application."""

    async def four_appeals(seed: int) -> list[str]:
        first = hotline_order(seed, seed=seed) | {"category_code": "9001"}
        repeat = hotline_order(seed + 1, seed=seed) | {
            "category_code": "9001",
            "caller_phone": first["caller_phone"],
        }
        other = hotline_order(seed + 2, seed=seed + 1) | {"category_code": "9002"}
        late = hotline_order(seed + 3, seed=seed + 2) | {"category_code": "9003"}
        ids = []
        for body in (first, repeat, other, late):
            answer = await intake.client.post("/v1/intake/hotline", json=body, headers=HOTLINE)
            assert answer.status_code == 201
            ids.append(answer.json()["case_id"])
            assert answer.json()["duplicate_of"] == (ids[0] if body is repeat else None)
        return ids

    one_by_one, batched = await four_appeals(3300), await four_appeals(3400)
    for event in _case_history(*one_by_one):
        await intake.apply(event)
    await intake.apply(*_case_history(*batched))

    async def state(ids: list[str]) -> list[tuple]:
        names = dict(zip(ids, ("primary", "repeat", "other", "late"), strict=True))
        async with intake.runtime.engine.connect() as conn:
            rows = {
                r.case_id: r for r in await conn.execute(sa.select(appeals).where(appeals.c.case_id.in_(ids)))
            }
        result = []
        for case_id in ids:
            row = rows[case_id]
            closing = [e for e in await intake.events(case_id) if isinstance(e, CaseClosed)]
            result.append((
                row.status, names.get(row.duplicate_of),
                row.status_notes.replace(row.duplicate_of or "-", "P"),
                row.agency_responsible, row.reply_count, row.reopen_count,
                row.updated_at if row.updated_at < HISTORY_ENDS else "when recorded",
                [(e.reason, e.note.replace(ids[0], "P")) for e in closing],
            ))  # fmt: skip
        return result

    expected = await state(one_by_one)
    assert [row[:2] for row in expected] == [
        ("closed", None),
        ("open", "primary"),
        ("withdrawn", None),
        ("open", "primary"),
    ]
    assert expected[0][4:6] == (2, 1) and expected[2][3] == "区住建局"
    assert [len(row[7]) for row in expected] == [0, 1, 0, 1]  # each duplicate told to close, once
    assert await state(batched) == expected


async def test_the_same_caller_five_days_later_is_linked_though_it_is_past_the_nearby_window(intake):
    earlier = datetime.now(UTC) - timedelta(days=5)  # caller window 7 days, nearby window 48 hours
    first = hotline_order(12, seed=3102, now=earlier) | {"category_code": "9001"}
    second = hotline_order(13, seed=3102) | {"category_code": "9001", "caller_phone": first["caller_phone"]}
    primary = (await intake.client.post("/v1/intake/hotline", json=first, headers=HOTLINE)).json()
    repeat = (await intake.client.post("/v1/intake/hotline", json=second, headers=HOTLINE)).json()
    assert repeat["duplicate_of"] == primary["case_id"]


async def test_the_same_category_nearby_is_a_duplicate_but_far_away_or_another_category_is_not(intake):
    first = await intake.client.post("/v1/intake/grid", json=grid_report(20), headers=GRID)
    near = await intake.client.post(
        "/v1/intake/grid", json=grid_report(21, coordinates=MINGSHUI_EAST), headers=GRID
    )
    other_kind = await intake.client.post(
        "/v1/intake/grid", json=grid_report(22, event_class_code="event:09006"), headers=GRID
    )
    far = await intake.client.post(
        "/v1/intake/grid", json=grid_report(23, coordinates={"lat": 36.80, "lon": 117.60}), headers=GRID
    )
    assert near.json()["duplicate_of"] == first.json()["case_id"]
    assert other_kind.json()["duplicate_of"] is None and far.json()["duplicate_of"] is None


async def test_a_nearby_duplicate_across_a_map_cell_corner_is_found(intake):
    """The nearby search probes 0.01° map cells: two reports ~3 m apart on either side of a cell corner
    (both latitude and longitude cells differ) are still one place."""
    west = {"lat": 36.699995, "lon": 117.539995, "crs": "WGS84"}
    east = {"lat": 36.700005, "lon": 117.540005, "crs": "WGS84"}
    first = await intake.client.post("/v1/intake/grid", json=grid_report(30, coordinates=west), headers=GRID)
    second = await intake.client.post("/v1/intake/grid", json=grid_report(31, coordinates=east), headers=GRID)
    assert first.status_code == second.status_code == 201
    assert second.json()["duplicate_of"] == first.json()["case_id"]


async def test_the_nearby_search_probes_each_map_cell_on_the_index_whatever_the_estimates(intake):
    """The cell is part of appeals_nearby's index condition, even on a custom plan for a batch: written as
    ``cell = ANY(cells)`` PostgreSQL kept it as a filter and read the category's whole 48-hour window
    (~10,000 buffers per batch at 8,340 appeals in bench/e2e's replay)."""
    at = datetime(2026, 11, 28, 8, tzinfo=UTC)
    batch = [  # the 15 columns of recording._earlier for two appeals (category, caller and nearby windows)
        [0, 1], ["hotline", "grid"], ["x-1", "x-2"], ["A01", "B02"], [at - timedelta(days=7)] * 2,
        [at + timedelta(days=7)] * 2, ["c-1", None], [True, True], [36.69, 36.70], [36.71, 36.72],
        [117.52, 117.53], [117.55, 117.56], [at - timedelta(hours=48)] * 2, [at + timedelta(hours=48)] * 2,
        [True, True],
    ]  # fmt: skip
    db = await asyncpg.connect(asyncpg_dsn(intake.settings.database_url), server_settings={"jit": "off"})
    try:
        async with db.transaction():
            await db.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            plan = await db.fetchval(f"EXPLAIN (FORMAT JSON) {recording._EARLIER}", *batch)
    finally:
        await db.close()
    scans = [node for node in plan_nodes(plan) if node.get("Index Name") == "appeals_nearby"]
    assert scans, "the nearby search does not use appeals_nearby"
    assert all("100000" in scan["Index Cond"] and "received_at" in scan["Index Cond"] for scan in scans)


async def test_the_contact_reveal_reads_the_vault_by_key_with_a_plan_made_on_a_small_vault(intake):
    """A fresh district's vault holds a handful of rows, never analysed, when notify's first lookups come:
    the statement's generic plan made then (asyncpg's prepared statement keeps one after five runs) reads
    each case by the vault's primary key. Written ``case_id = ANY($1)`` it was a sequential scan, which
    went on reading the whole vault: 4.7 ms a request after a 20,000-case replay. (The reveal is also
    planned for each call, for a plan made after an ANALYZE of a small vault: citizen._REVEAL says why.)"""
    for n in range(5):
        order = hotline_order(40 + n, seed=3200 + n)
        response = await intake.client.post("/v1/intake/hotline", json=order, headers=HOTLINE)
        assert response.status_code == 201
    db = await asyncpg.connect(
        asyncpg_dsn(intake.settings.database_url),
        server_settings={"jit": "off", "plan_cache_mode": "force_generic_plan"},
    )
    try:  # the plan of a prepared statement, as asyncpg's; EXPLAIN with parameters would plan their values
        await db.execute(f"PREPARE reveal(text[], text, text, text[]) AS {citizen._REVEAL}")
        arguments = "ARRAY['ZQ1', 'ZQ2'], 'notify-service', 'sms', ARRAY['phone']"
        plan = await db.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE reveal({arguments})")
    finally:
        await db.close()
    scans = [
        (n["Node Type"], n.get("Index Name"))
        for n in plan_nodes(plan)
        if n.get("Relation Name") == "pii_vault"
    ]
    assert scans == [("Index Scan", "pii_vault_pkey")]


async def test_personal_data_is_stored_encrypted_and_revealed_only_to_pii_read_with_an_audit_row(intake):
    order = hotline_order(30, seed=3101) | {"caller_id_number": "370114199001011234",
                                            "content": "请回电13912345678，路灯不亮"}  # fmt: skip
    case_id = (await intake.client.post("/v1/intake/hotline", json=order, headers=HOTLINE)).json()["case_id"]
    async with intake.runtime.engine.connect() as conn:
        stored = (await conn.execute(sa.select(pii_vault).where(pii_vault.c.case_id == case_id))).one()
    blob = b"".join(
        v for v in (stored.name_enc, stored.phone_enc, stored.id_number_enc, stored.description_enc)
    )
    assert order["caller_phone"].encode() not in blob and b"370114199001011234" not in blob
    (received,) = await intake.events(case_id)
    assert (
        "13912345678" not in received.model_dump_json()
        and order["caller_phone"] not in received.model_dump_json()
    )
    assert received.citizen.id_number_masked == "370114********1234"

    path = f"/v1/intake/cases/{case_id}/contact"
    refused = await intake.client.get(
        path, params={"purpose": "回访"}, headers={"X-API-Key": "dev-operator-key"}
    )
    assert refused.status_code == 403
    revealed = await intake.client.get(
        path, params={"purpose": "回访核实"}, headers={"X-API-Key": "dev-pii-officer-key"}
    )
    assert revealed.status_code == 200
    body = revealed.json()
    assert body["phone"] == "+86" + order["caller_phone"] and body["id_number"] == "370114199001011234"
    assert "13912345678" in body["description"]
    assert body["citizen_ref"] == received.citizen.citizen_ref
    officer = {"X-API-Key": "dev-pii-officer-key"}
    phone_only = await intake.client.get(
        path, params={"purpose": "短信回访", "fields": "phone"}, headers=officer
    )
    assert phone_only.status_code == 200
    assert phone_only.json() | {"access_id": 0} == {
        "case_id": case_id, "citizen_ref": received.citizen.citizen_ref,
        "phone": "+86" + order["caller_phone"],
        "name": None, "id_number": None, "description": None, "access_id": 0,
    }  # fmt: skip
    unknown = await intake.client.get(
        "/v1/intake/cases/ZQ-NONE/contact", params={"purpose": "回访"}, headers=officer
    )
    assert unknown.status_code == 404 and "No appeal ZQ-NONE" in unknown.json()["detail"]
    async with intake.runtime.engine.connect() as conn:
        audit = (await conn.execute(sa.select(pii_access_log).order_by(pii_access_log.c.id))).all()
    assert [(a.id, a.case_id, a.client_id, a.purpose, a.fields) for a in audit] == [
        (body["access_id"], case_id, "operator-pii-officer", "回访核实",
         ["name", "phone", "id_number", "description"]),
        (phone_only.json()["access_id"], case_id, "operator-pii-officer", "短信回访", ["phone"]),
    ]  # fmt: skip


async def test_several_contacts_in_one_request_each_audited_and_the_unknown_listed_apart(intake):
    orders = [hotline_order(31 + n, seed=3201 + n) for n in range(2)]
    cases = [
        (await intake.client.post("/v1/intake/hotline", json=o, headers=HOTLINE)).json()["case_id"]
        for o in orders
    ]
    refs = [(await intake.events(case_id))[0].citizen.citizen_ref for case_id in cases]
    officer = {"X-API-Key": "dev-pii-officer-key"}
    asked = {
        "case_ids": [cases[1], "ZQ-NONE", cases[0], cases[1]],
        "purpose": "短信回访",
        "fields": ["phone"],
    }
    refused = await intake.client.post(
        "/v1/intake/contacts/reveal", json=asked, headers={"X-API-Key": "dev-operator-key"}
    )
    assert refused.status_code == 403
    answer = await intake.client.post("/v1/intake/contacts/reveal", json=asked, headers=officer)
    assert answer.status_code == 200
    body = answer.json()
    assert [c | {"access_id": 0} for c in body["contacts"]] == [
        {"case_id": cases[n], "citizen_ref": refs[n], "phone": "+86" + orders[n]["caller_phone"],
         "name": None, "id_number": None, "description": None, "access_id": 0}
        for n in (1, 0)
    ]  # fmt: skip
    assert body["not_found"] == ["ZQ-NONE"]
    async with intake.runtime.engine.connect() as conn:
        audit = (await conn.execute(sa.select(pii_access_log).order_by(pii_access_log.c.id))).all()
    assert sorted((a.id, a.case_id, a.client_id, a.purpose, a.fields) for a in audit) == sorted(
        (c["access_id"], c["case_id"], "operator-pii-officer", "短信回访", ["phone"])
        for c in body["contacts"]
    )  # one row per case revealed, none for the unknown one or the repeat
    for wrong in ({**asked, "case_ids": []}, {**asked, "case_ids": ["ZQ1"] * 101}, {**asked, "fields": []}):
        bad = await intake.client.post("/v1/intake/contacts/reveal", json=wrong, headers=officer)
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")


async def test_withdrawing_twice_records_one_withdrawal_and_closes_the_case(intake):
    case_id = (
        await intake.client.post("/v1/intake/hotline", json=hotline_order(40, seed=3101), headers=HOTLINE)
    ).json()["case_id"]
    first = await intake.client.post(
        f"/v1/cases/{case_id}/withdraw", json={"reason": "已自行解决"}, headers=HOTLINE
    )
    again = await intake.client.post(f"/v1/cases/{case_id}/withdraw", json={}, headers=HOTLINE)
    assert first.json()["status"] == again.json()["status"] == "withdrawn"
    assert again.json()["events"] == []
    kinds = [type(e).__name__ for e in await intake.events(case_id)]
    assert kinds == ["CaseReceived", "AppealWithdrawn", "CaseClosed"]
    update = await intake.client.post(
        f"/v1/intake/cases/{case_id}/updates", json={"description_addendum": "补充"}, headers=HOTLINE
    )
    assert update.status_code == 409 and update.json()["current_status"] == "withdrawn"


async def test_dissatisfied_feedback_after_a_reply_reopens_the_case_and_satisfied_closes_it(intake):
    case_id = (
        await intake.client.post("/v1/intake/hotline", json=hotline_order(50, seed=3101), headers=HOTLINE)
    ).json()["case_id"]
    early = await intake.client.post(
        f"/v1/cases/{case_id}/feedback", json={"satisfaction": "满意"}, headers=HOTLINE
    )
    assert early.status_code == 409 and early.json()["current_status"] == "open"

    department = Assignee(kind=AssigneeKind.DEPARTMENT, code="CGJ", name="区城管局")
    reply = ReplySubmitted(case_id=case_id, occurred_at=datetime.now(UTC), actor="CGJ", assignment_id="a1",
                           assignee=department, reply="已维修")  # fmt: skip
    await intake.apply(reply)
    unhappy = await intake.client.post(
        f"/v1/cases/{case_id}/feedback",
        json={"satisfaction": "不满意", "comment": "灯还是不亮"},
        headers=HOTLINE,
    )
    retried = await intake.client.post(
        f"/v1/cases/{case_id}/feedback",
        json={"satisfaction": "不满意", "comment": "灯还是不亮"},
        headers=HOTLINE,
    )
    assert unhappy.json()["status"] == "open" and retried.json()["events"] == []

    await intake.apply(reply.model_copy(update={"reply": "已更换灯具"}))
    happy = await intake.client.post(
        f"/v1/cases/{case_id}/feedback", json={"satisfaction": "基本满意"}, headers=HOTLINE
    )
    assert happy.json()["status"] == "closed"
    kinds = [type(e).__name__ for e in await intake.events(case_id)]
    assert kinds == ["CaseReceived", "FeedbackReceived", "CaseReopened", "FeedbackReceived", "CaseClosed"]
    reopened = (await intake.events(case_id))[2]
    assert reopened.reopen_count == 1


async def test_an_oversized_body_is_413_and_too_many_photos_or_a_bad_phone_is_422_naming_the_field(intake):
    huge = hotline_order(60, seed=3101) | {"content": "很" * 40_000}
    assert (await intake.client.post("/v1/intake/hotline", json=huge, headers=HOTLINE)).status_code == 413
    photos = [f"https://files.example.cn/p/{i}.jpg" for i in range(10)]
    many = await intake.client.post("/v1/intake/grid", json=grid_report(61, photos=photos), headers=GRID)
    assert many.status_code == 422
    assert many.json()["errors"][0]["location"] == "body.photos"
    bad = await intake.client.post(
        "/v1/intake/hotline", json=hotline_order(62, seed=3101) | {"caller_phone": "12345"}, headers=HOTLINE
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["location"] == "body.caller_phone"


async def test_a_timestamp_outside_the_platforms_era_is_422_naming_the_field_not_a_500(intake):
    """Year 1 at +00:45 overflowed when converted to UTC (a 500 schemathesis found); year 9999 too."""
    for index, found_at in enumerate(("0001-01-01T00:00:00+00:45", "9999-12-31T23:59:00-01:00")):
        report = grid_report(70 + index, found_at=found_at, resolved_on_spot=True)
        answer = await intake.client.post("/v1/intake/grid", json=report, headers=GRID)
        assert answer.status_code == 422 and answer.json()["errors"][0]["location"] == "body.found_at"
    order = hotline_order(72, seed=3105) | {"called_at": "1999-12-31T23:59:59+00:00"}
    answer = await intake.client.post("/v1/intake/hotline", json=order, headers=HOTLINE)
    assert answer.status_code == 422 and answer.json()["errors"][0]["location"] == "body.called_at"


async def test_a_client_over_its_rate_budget_gets_429_with_retry_after(infrastructure, intake_db):
    limited = InProcessIntake(infrastructure, intake_db, rate_limit_per_s=0.01, rate_limit_burst=2)
    try:
        codes = [
            (
                await limited.client.post(
                    "/v1/intake/hotline", json=hotline_order(70 + i, seed=3101), headers=HOTLINE
                )
            )
            for i in range(3)
        ]
        assert [r.status_code for r in codes] == [201, 201, 429]
        assert int(codes[2].headers["retry-after"]) >= 1
        assert codes[2].headers["content-type"].startswith("application/problem+json")
        other_client = await limited.client.post("/v1/intake/grid", json=grid_report(79), headers=GRID)
        assert other_client.status_code == 201  # the budget is per client key
    finally:
        await limited.close()


async def test_migration_0002_encrypts_personal_data_stored_in_clear_by_0001(infrastructure):
    name = f"it_intake_{infrastructure.run_id}_{next(_names)}"
    infrastructure.create_databases(name)
    url = infrastructure.database_url(name).replace("postgresql://", "postgresql+asyncpg://", 1)
    await asyncio.to_thread(migrations.upgrade, MIGRATIONS, url, "intake_0001")
    engine = sa.ext.asyncio.create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(
                "INSERT INTO appeals (case_id, source, external_id, fingerprint, received_at, event) "
                "VALUES ('ZQ1', 'hotline', 'o1', 'f', now(), '{}'::jsonb)"))  # fmt: skip
            await conn.execute(
                sa.text("INSERT INTO pii_vault (case_id, name, phone) VALUES ('ZQ1', '张三', '13805311234')")
            )
        await asyncio.to_thread(migrations.upgrade, MIGRATIONS, url)
        async with engine.connect() as conn:
            row = (await conn.execute(sa.text("SELECT * FROM pii_vault"))).mappings().one()
        assert "phone" not in row and b"13805311234" not in row["phone_enc"]
        from services.intake.vault import VaultCipher

        cipher = VaultCipher.from_setting(IntakeSettings().pii_vault_keys)
        assert cipher.open("ZQ1", "phone", row["phone_enc"]) == "13805311234"
    finally:
        await engine.dispose()


async def test_migration_0003_swaps_the_duplicate_search_indexes_and_reverts(infrastructure, intake_db):
    from alembic import command

    url = infrastructure.database_url(intake_db).replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = sa.ext.asyncio.create_async_engine(url)

    async def indexes() -> set[str]:
        async with engine.connect() as conn:
            query = sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'appeals'")
            return set((await conn.execute(query)).scalars())

    try:
        at_head = await indexes()
        assert {"appeals_nearby", "appeals_duplicates"} <= at_head and "appeals_dedupe" not in at_head
        config = migrations.alembic_config(MIGRATIONS, url)
        await asyncio.to_thread(command.downgrade, config, "intake_0002")
        reverted = await indexes()
        assert "appeals_dedupe" in reverted and not {"appeals_nearby", "appeals_duplicates"} & reverted
        await asyncio.to_thread(migrations.upgrade, MIGRATIONS, url)
        assert await indexes() == at_head
    finally:
        await engine.dispose()


async def test_a_commit_wakes_a_relay_listening_in_another_process_and_it_listens_again_after_a_restart(
    intake, infrastructure
):
    """Intake's outbox notifies (migration intake_0004); a worker's relay listens. A restart of the server
    ends the listening connection: the relay connects again and hears the next commit."""
    url = infrastructure.database_url(intake.settings.database_name)
    relay = OutboxRelay(intake.runtime.engine, producer=None)  # type: ignore[arg-type]  # listens only
    woken = asyncio.Event()
    relay.wake = woken.set  # type: ignore[method-assign]
    stop = asyncio.Event()
    listening = asyncio.create_task(relay.listen(asyncpg_dsn(intake.settings.database_url), stop))
    try:
        for round_ in range(2):
            await asyncio.wait_for(woken.wait(), 10)  # connected: it wakes once for what it missed
            await asyncio.sleep(0.2)
            woken.clear()
            order = hotline_order(60 + round_, seed=3601)
            assert (
                await intake.client.post("/v1/intake/hotline", json=order, headers=HOTLINE)
            ).status_code == 201
            await asyncio.wait_for(woken.wait(), 5)
            woken.clear()
            admin = await asyncpg.connect(url)
            try:  # what a restart does to the listening backend
                ended = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            finally:
                await admin.close()
            assert ended == 1
    finally:
        stop.set()
        await asyncio.wait_for(listening, 10)
