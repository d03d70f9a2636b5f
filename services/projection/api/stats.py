"""GET /v1/stats/...: volumes and performance from the aggregate table, hot spots from open cases."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query

from services.projection.api.deps import Reader, ReaderDep, RuntimeDep
from services.projection.domain.areas import town_name
from services.projection.schemas import Hotspot, StatRow, StatTable
from services.projection.tables import case_stats_daily as st
from services.projection.tables import case_summary as cs

router = APIRouter(prefix="/v1/stats", tags=["stats"])

GROUPS = {"day": st.c.day, "category": st.c.category_code, "town": st.c.town_code}
GROUPS |= {"department": st.c.department_code, "source": st.c.source}
By = Literal["day", "category", "town", "department", "source"]
SUMMED = (
    "received", "open", "closed", "timed", "on_time", "returned_cases", "handled", "handling_seconds",
    "rated", "satisfied", "basically_satisfied", "red", "yellow", "escalated",
)  # fmt: skip


def _ratio(part: int, whole: int, scale: float = 1.0) -> float | None:
    return round(part / whole / scale, 4) if whole else None


def stat_row(key: Any, sums: dict[str, Any], by: str) -> StatRow:
    """Counters of one group turned into the rates operators read."""
    s = {name: int(sums[name] or 0) for name in SUMMED}
    return StatRow(
        key=key,
        name=town_name(key) if by == "town" else None,
        received=s["received"],
        open=s["open"],
        closed=s["closed"],
        on_time_rate=_ratio(s["on_time"], s["timed"]),
        return_rate=_ratio(s["returned_cases"], s["received"]),
        avg_handling_hours=_ratio(s["handling_seconds"], s["handled"], 3600.0),
        satisfaction_rate=_ratio(s["satisfied"] + s["basically_satisfied"], s["rated"]),
        rated=s["rated"],
        red=s["red"],
        yellow=s["yellow"],
        escalated=s["escalated"],
    )


def _scope(reader: Reader, day_from: date | None, day_to: date | None) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if not reader.all_cases:
        where.append(st.c.department_code.in_(sorted(reader.departments)))
    if day_from:
        where.append(st.c.day >= day_from)
    if day_to:
        where.append(st.c.day <= day_to)
    return where


async def _grouped(runtime: Any, reader: Reader, by: str, day_from: date | None, day_to: date | None):
    group = GROUPS[by]
    sums = [sa.func.sum(st.c[name]).label(name) for name in SUMMED]
    where = _scope(reader, day_from, day_to)
    async with runtime.engine.connect() as conn:
        # one snapshot, so the total is the sum of the groups even while batches commit (as cases.py)
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        rows = (await conn.execute(sa.select(group.label("key"), *sums).where(*where).group_by(group))).all()
        total = (await conn.execute(sa.select(*sums).where(*where))).mappings().one()
    items = [stat_row(r.key, r._mapping, by) for r in rows]
    items.sort(key=lambda r: r.key if by == "day" else -r.received)
    return StatTable(by=by, items=items, total=stat_row("total", total, by))


From = Annotated[date | None, Query(alias="from", description="First received day (local), inclusive.")]
To = Annotated[date | None, Query(alias="to", description="Last received day (local), inclusive.")]


@router.get("/volume", response_model=StatTable)
async def volume(
    runtime: RuntimeDep, reader: ReaderDep, by: By = "day", day_from: From = None, day_to: To = None
):
    """Cases received, open and closed, by day, category, town, department or source."""
    return await _grouped(runtime, reader, by, day_from, day_to)


@router.get("/performance", response_model=StatTable)
async def performance(
    runtime: RuntimeDep, reader: ReaderDep, by: By = "department", day_from: From = None, day_to: To = None
):
    """On-time rate, return rate, average handling time and satisfaction per group."""
    return await _grouped(runtime, reader, by, day_from, day_to)


@router.get("/hotspots", response_model=list[Hotspot])
async def hotspots(
    runtime: RuntimeDep,
    reader: ReaderDep,
    by: Literal["grid", "community", "town"] = "grid",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
):
    """Where open cases cluster: per grid (or community, town), with the mean position for the map.

    Open cases not yet placed on a grid are bucketed by a ~1 km cell of their coordinates."""
    column = {"grid": cs.c.grid_code, "community": cs.c.community_code, "town": cs.c.town_code}[by]
    cell = sa.func.concat("cell:", sa.func.round(sa.cast(cs.c.lat, sa.Numeric), 2), ",",
                          sa.func.round(sa.cast(cs.c.lon, sa.Numeric), 2))  # fmt: skip
    key = sa.func.coalesce(column, sa.case((cs.c.lat.is_not(None), cell), else_=None)).label("key")
    now = datetime.now(UTC)
    overdue = sa.or_(cs.c.case_due_at < now, cs.c.card == "red")
    where = [cs.c.is_open]
    if not reader.all_cases:
        where.append(cs.c.handler_departments.overlap(sorted(reader.departments)))
    query = (
        sa.select(
            key,
            sa.func.count().label("open"),
            sa.func.count().filter(overdue).label("overdue"),
            sa.func.avg(cs.c.lat).label("lat"),
            sa.func.avg(cs.c.lon).label("lon"),
        )
        .where(*where)
        .group_by(key)
        .having(key.is_not(None))
        .order_by(sa.desc("open"), key)
        .limit(limit)
    )
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [Hotspot(**r, name=town_name(r["key"]) if by == "town" else None) for r in rows]
