"""The query API over real PostgreSQL: every filter, sorting, keyset pages, scoping, stats, worklists."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.util import await_only

from contracts.envelope import Envelope
from contracts.events import Location
from runtime.consumer import Delivery
from runtime.position import encode_position
from runtime.problems import install_problem_handlers
from runtime.service import ServiceRuntime
from services.projection.api import ROUTERS
from services.projection.config import ProjectionSettings
from services.projection.projector import project_batch
from tests import factories as f

pytestmark = pytest.mark.integration
OPERATOR, CGJ, OPEN311 = "dev-operator-key", "dev-dept-cgj-key", "dev-open311-key"
MINGSHUI, SHUANGSHAN = "370114001000", "370114002000"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
_offsets = itertools.count()


def delivery(event) -> Delivery:
    envelope = Envelope(
        str(uuid.uuid4()), event.type_name(), "/tests", event.case_id, event.occurred_at, event
    )
    return Delivery(envelope, "it.case-events", 0, next(_offsets))


async def feed(engine, *events) -> list[Delivery]:
    deliveries = [delivery(e) for e in events]
    async with engine.begin() as conn:
        await project_batch(conn, deliveries)
    return deliveries


@pytest.fixture
async def api(projection_engine):
    app = FastAPI()
    install_problem_handlers(app)
    app.state.runtime = ServiceRuntime(settings=ProjectionSettings(), engine=projection_engine)
    for router in ROUTERS:
        app.include_router(router)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://projection"
    ) as client:
        yield client


def get(api, path, key=OPERATOR, **params):
    return api.get(path, params=params, headers={"X-API-Key": key})


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


async def seed(engine) -> dict[str, str]:
    """Seven cases, each standing out on one filter; returns name -> case id."""
    ids = {name: f.case_id() for name in ("lamp", "noise", "water", "grid", "red", "closed", "open311")}
    far = datetime.now(UTC) + timedelta(days=30)
    c = ids
    await feed(
        engine,
        f.case_received(c["lamp"], occurred_at=at(0), received_at=at(0), category_code="01010",
                        description="百脉泉路路灯不亮", location=Location(lat=36.71, lon=117.53)),
        f.case_assigned(c["lamp"], "CGJ", at=at(1), area_code="370114001002", grid_code="G-MS-01"),
        f.deadline_set(c["lamp"], far, stage="case", at=at(1)),
        f.case_received(c["noise"], occurred_at=at(2), received_at=at(2), description="工地夜间施工噪音扰民"),
        f.case_assigned(c["noise"], "STHJJ", at=at(3), area_code="370114002001"),
        f.case_received(c["water"], occurred_at=at(4), received_at=at(4), description="自来水管破裂路面积水"),
        f.case_sent_to_triage(c["water"], at=at(5)),
        f.case_received(c["grid"], occurred_at=at(6), received_at=at(6), source="grid", description="占道"),
        f.case_received(c["red"], occurred_at=at(8), received_at=at(8), description="垃圾桶满溢无人清运"),
        f.case_assigned(c["red"], "CGJ", at=at(9), area_code="370114001003"),
        f.deadline_breached(c["red"], at(20), at=at(21)),
        f.case_escalated(c["red"], 2, at=at(22)),
        f.case_received(c["closed"], occurred_at=at(30), received_at=at(30), description="咨询医保缴费"),
        f.case_closed_at(c["closed"], at=at(31)),
        f.case_received(c["open311"], occurred_at=at(50), received_at=at(50), source="open311",
                        description="路口建议增设红绿灯", location=Location(lat=36.72, lon=117.54)),
        f.deadline_approaching(c["open311"], far, at=at(51)),
    )  # fmt: skip
    return ids


@pytest.fixture
async def seeded(projection_engine) -> dict[str, str]:
    return await seed(projection_engine)


FILTERS = [
    ({"status": "assigned"}, {"lamp", "noise", "red"}),
    ({"status": "triage,closed"}, {"water", "closed"}),
    ({"town": MINGSHUI}, {"lamp", "red"}),
    ({"community": "370114002001"}, {"noise"}),
    ({"grid": "G-MS-01"}, {"lamp"}),
    ({"department": "STHJJ"}, {"noise"}),
    ({"category": "01010"}, {"lamp"}),
    ({"source": "grid"}, {"grid"}),
    ({"overdue": "true"}, {"red"}),
    ({"card": "yellow"}, {"open311"}),
    ({"card": "red"}, {"red"}),
    ({"escalation_level": "2"}, {"red"}),
    ({"received_from": at(4).isoformat(), "received_to": at(30).isoformat()}, {"water", "grid", "red"}),
    ({"q": "灯"}, {"lamp", "open311"}),
    ({"q": "路灯"}, {"lamp"}),
    ({"q": "施工噪音"}, {"noise"}),
    ({"q": "灯路"}, set()),  # both bigrams' characters occur, the word does not
    ({"status": "assigned", "town": MINGSHUI}, {"lamp", "red"}),
]


@pytest.mark.parametrize(("params", "expected"), FILTERS, ids=[str(p) for p, _ in FILTERS])
async def test_each_filter_returns_exactly_the_cases_that_match_it(api, seeded, params, expected):
    response = await get(api, "/v1/cases", **params)
    assert response.status_code == 200, response.text
    names = {name for name, cid in seeded.items() if cid in {i["case_id"] for i in response.json()["items"]}}
    assert names == expected


async def test_a_received_date_range_in_local_days_and_sorting_both_ways(api, seeded):
    newest = (await get(api, "/v1/cases", sort="-opened_at")).json()["items"]
    oldest = (await get(api, "/v1/cases", sort="opened_at")).json()["items"]
    assert [i["case_id"] for i in newest] == [i["case_id"] for i in reversed(oldest)]
    assert newest[0]["case_id"] == seeded["open311"]
    day = (await get(api, "/v1/cases", received_from="2000-01-01", received_to="2000-01-02")).json()
    assert day["items"] == []


async def test_keyset_pages_stay_stable_while_cases_arrive_and_change(api, projection_engine):
    existing = [f.case_id() for _ in range(40)]
    await feed(
        projection_engine,
        *(f.case_received(c, occurred_at=at(k), received_at=at(k)) for k, c in enumerate(existing)),
    )
    seen: list[str] = []
    cursor = None
    for page in itertools.count():
        params = {"limit": 6, "sort": "-opened_at", **({"cursor": cursor} if cursor else {})}
        body = (await get(api, "/v1/cases", **params)).json()
        seen += [i["case_id"] for i in body["items"]]
        # Between pages: new cases arrive (newest of all) and listed and unlisted cases change.
        await feed(
            projection_engine,
            f.case_received(occurred_at=datetime.now(UTC)),
            f.case_assigned(existing[page % 40], at=datetime.now(UTC)),
            f.case_escalated(existing[-1 - page % 40], at=datetime.now(UTC)),
        )
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))  # nothing twice
    assert set(existing) <= set(seen)  # nothing that existed before the walk was skipped


async def test_a_bad_cursor_or_sort_is_a_400_problem(api, seeded):
    assert (await get(api, "/v1/cases", cursor="bm9wZQ==")).json()["type"].endswith("/bad-cursor")
    first = (await get(api, "/v1/cases", limit=1)).json()
    mixed = await get(api, "/v1/cases", limit=1, sort="last_event_at", cursor=first["next_cursor"])
    assert mixed.status_code == 400
    assert (await get(api, "/v1/cases", sort="title")).status_code == 400


async def test_a_department_key_sees_only_the_cases_its_department_handles(api, seeded):
    listed = {i["case_id"] for i in (await get(api, "/v1/cases", key=CGJ)).json()["items"]}
    assert listed == {seeded["lamp"], seeded["red"]}
    assert (await get(api, f"/v1/cases/{seeded['lamp']}", key=CGJ)).status_code == 200
    other = await get(api, f"/v1/cases/{seeded['noise']}", key=CGJ)
    assert other.status_code == 404 and other.json()["type"].endswith("/case-not-found")
    volume = (await get(api, "/v1/stats/volume", key=CGJ, by="department")).json()
    assert [row["key"] for row in volume["items"]] == ["CGJ"]


async def test_keys_without_a_read_scope_are_refused_and_open311_sees_no_citizen(api, seeded):
    assert (await api.get("/v1/cases")).status_code == 401
    assert (await get(api, "/v1/cases", key="dev-hotline-key")).status_code == 403
    case = (await get(api, f"/v1/cases/{seeded['lamp']}", key=OPEN311)).json()
    assert case["citizen_phone_masked"] is None and case["citizen_name_masked"] is None
    staff = (await get(api, f"/v1/cases/{seeded['lamp']}")).json()
    assert staff["citizen_phone_masked"] == "138****1234"


async def test_the_case_page_carries_timeline_deadlines_cards_and_escalation(api, seeded):
    case = (await get(api, f"/v1/cases/{seeded['red']}")).json()
    assert [e["event_type"].split(".")[2] for e in case["timeline"]] == [
        "received", "assigned", "deadline-breached", "escalated"
    ]  # fmt: skip
    assert case["card"] == "red" and case["cards"][0]["colour"] == "red" and case["escalation_level"] == 2
    assert case["overdue"] is True and case["town_name"] == "明水街道"
    lamp = (await get(api, f"/v1/cases/{seeded['lamp']}")).json()
    assert "case" in lamp["deadlines"] and lamp["overdue"] is False


async def test_a_read_with_a_position_token_waits_for_the_write_or_says_it_is_stale(api, projection_engine):
    event = f.case_received()
    pending = delivery(event)
    token = encode_position(event.case_id, pending.envelope.id)
    stale = await get(api, f"/v1/cases/{event.case_id}", wait_for=token, timeout=0.2)
    assert stale.status_code == 202 and stale.headers["x-gridline-consistency"] == "stale"

    async def project_soon():
        await asyncio.sleep(0.3)
        async with projection_engine.begin() as conn:
            await project_batch(conn, [pending])

    waiting = asyncio.create_task(get(api, f"/v1/cases/{event.case_id}", wait_for=token, timeout=5))
    await project_soon()
    fresh = await waiting
    assert fresh.status_code == 200 and fresh.headers["x-gridline-consistency"] == "fresh"
    assert fresh.json()["case_id"] == event.case_id
    assert (await get(api, f"/v1/positions/{token}")).json()["caught_up"] is True
    assert (await get(api, "/v1/positions/garbage")).status_code == 400


async def test_statistics_give_volumes_rates_and_hot_spots(api, projection_engine, seeded):
    c = seeded
    await feed(
        projection_engine,
        f.deadline_set(c["lamp"], at(100), stage="reply", at=at(40)),
        f.reply_submitted(c["lamp"], at=at(41)),
        f.feedback_received(c["lamp"], "satisfied", at=at(42)),
        f.case_closed_at(c["lamp"], at=at(42)),
        f.assignment_returned(c["noise"], "STHJJ", at=at(43)),
    )
    by_department = {r["key"]: r for r in (await get(api, "/v1/stats/performance")).json()["items"]}
    cgj = by_department["CGJ"]
    assert (cgj["received"], cgj["closed"], cgj["open"]) == (2, 1, 1)
    assert cgj["on_time_rate"] == 0.5  # lamp on time, red breached
    assert cgj["satisfaction_rate"] == 1.0 and cgj["avg_handling_hours"] == 42.0
    assert by_department["STHJJ"]["return_rate"] == 1.0
    by_town = {r["key"]: r for r in (await get(api, "/v1/stats/volume", by="town")).json()["items"]}
    assert by_town[MINGSHUI]["name"] == "明水街道" and by_town[MINGSHUI]["received"] == 2
    total = (await get(api, "/v1/stats/volume", by="source")).json()["total"]
    assert total["received"] == 7
    spots = (await get(api, "/v1/stats/hotspots")).json()
    assert {s["key"] for s in spots} == {"cell:36.72,117.54"}  # the open case with a position, no grid yet


async def test_worklists_hold_each_desks_open_cases(api, seeded):
    cgj = (await get(api, "/v1/worklists/department/CGJ", key=CGJ)).json()
    assert {i["case_id"] for i in cgj} == {seeded["lamp"], seeded["red"]}
    refused = await get(api, "/v1/worklists/department/STHJJ", key=CGJ)
    assert refused.status_code == 403


async def test_keyword_grams_are_rewritten_when_the_text_changes_not_with_every_event(api, projection_engine):
    case = f.case_id()

    async def grams_version():
        async with projection_engine.connect() as conn:
            return (
                await conn.execute(
                    sa.text("SELECT xmin::text FROM case_search WHERE case_id = :c"), {"c": case}
                )
            ).scalar_one()

    await feed(
        projection_engine, f.case_received(case, occurred_at=at(0), received_at=at(0), description="井盖缺失")
    )
    written = await grams_version()
    await feed(
        projection_engine, f.case_assigned(case, "CGJ", at=at(1)), f.assignment_accepted(case, at=at(2))
    )
    assert await grams_version() == written  # status changes leave the keyword index alone
    assert case in {i["case_id"] for i in (await get(api, "/v1/cases", q="井盖")).json()["items"]}

    await feed(projection_engine, f.reply_submitted(case, at=at(3), reply="已补装新井盖并加固"))
    assert await grams_version() != written  # the reply is searchable text
    assert case in {i["case_id"] for i in (await get(api, "/v1/cases", q="加固")).json()["items"]}


async def test_a_batch_holding_an_event_twice_or_again_applies_it_once_and_keeps_its_json(projection_engine):
    """The timeline's arrays insert names only the events not seen before: an event twice in one batch
    (published again) and a batch delivered again each apply once; the stored data is the event's JSON."""
    case = f.case_id()
    received = delivery(f.case_received(case, description="路灯不亮，已三天"))
    assigned = delivery(f.case_assigned(case, "CGJ"))
    async with projection_engine.begin() as conn:
        assert await project_batch(conn, [received, assigned, received]) == 2
    async with projection_engine.begin() as conn:
        assert await project_batch(conn, [received, assigned]) == 0
    async with projection_engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text(
                    "SELECT event_id, data, log_offset FROM case_timeline"
                    " WHERE case_id = :c ORDER BY log_offset"
                ),
                {"c": case},
            )
        ).all()
        applied = (
            await conn.execute(
                sa.text("SELECT events_applied FROM case_summary WHERE case_id = :c"), {"c": case}
            )
        ).scalar_one()
    assert [(r.event_id, r.log_offset) for r in rows] == [
        (received.envelope.id, received.offset),
        (assigned.envelope.id, assigned.offset),
    ]
    assert rows[0].data == received.envelope.event.model_dump(mode="json")
    assert rows[0].data["description"] == "路灯不亮，已三天"
    assert applied == 2


async def test_a_case_and_its_timeline_are_read_from_one_snapshot(api, projection_engine):
    """A batch committed between the read of the summary and the read of the timeline must not show: the
    summary folded one event and the timeline held two (seen by the crash test on a slow machine)."""
    case = f.case_id()
    await feed(projection_engine, f.case_received(case))
    committed = []

    def commit_an_event_in_between(conn, cursor, statement, parameters, context, executemany):
        if not committed and statement.lstrip().startswith("SELECT case_timeline."):
            committed.append(True)
            await_only(feed(projection_engine, f.case_assigned(case, "CGJ")))  # another connection

    sa.event.listen(projection_engine.sync_engine, "before_cursor_execute", commit_an_event_in_between)
    try:
        body = (await get(api, f"/v1/cases/{case}")).json()
    finally:
        sa.event.remove(projection_engine.sync_engine, "before_cursor_execute", commit_an_event_in_between)
    assert committed  # the second batch did commit between the two reads
    assert body["events_applied"] == len(body["timeline"]) == 1, body
    later = (await get(api, f"/v1/cases/{case}")).json()
    assert later["events_applied"] == len(later["timeline"]) == 2
