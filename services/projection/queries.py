"""Case list queries: filters, sorting and keyset cursors over case_summary."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import orjson
import sqlalchemy as sa

from runtime.problems import Problem
from services.projection.domain import CHINA, keyword_grams, normalise
from services.projection.tables import case_search
from services.projection.tables import case_summary as cs

SORTS = {"opened_at": cs.c.opened_at, "last_event_at": cs.c.last_event_at}
CARDS = {"yellow", "red", "none"}
# What a page returns: every column but the search index material.
LISTED = [c for c in cs.c if c.name != "search_text"]


@dataclass(frozen=True)
class CaseFilter:
    """Every filter of GET /v1/cases; None means not filtered."""

    status: list[str] | None = None
    town: str | None = None
    community: str | None = None
    grid: str | None = None
    department: str | None = None
    category: str | None = None
    source: str | None = None
    overdue: bool | None = None
    card: str | None = None
    escalation_level: int | None = None
    received_from: date | datetime | None = None
    received_to: date | datetime | None = None
    q: str | None = None
    departments: frozenset[str] | None = None  # department scoping; None = every case

    def conditions(self, now: datetime) -> list[sa.ColumnElement[bool]]:
        """The WHERE conditions of this filter."""
        where: list[sa.ColumnElement[bool]] = []
        if self.status:
            where.append(cs.c.status.in_(self.status))
        for value, column in (
            (self.town, cs.c.town_code),
            (self.community, cs.c.community_code),
            (self.grid, cs.c.grid_code),
            (self.department, cs.c.department_code),
            (self.category, cs.c.category_code),
            (self.source, cs.c.source),
            (self.escalation_level, cs.c.escalation_level),
        ):
            if value is not None:
                where.append(column == value)
        if self.card is not None:
            if self.card not in CARDS:
                raise Problem(400, "bad-filter", f"card must be one of {sorted(CARDS)}.", card=self.card)
            where.append(cs.c.card.is_(None) if self.card == "none" else cs.c.card == self.card)
        if self.overdue is not None:
            late = sa.and_(cs.c.is_open, sa.or_(cs.c.case_due_at < now, cs.c.card == "red"))
            where.append(late if self.overdue else sa.not_(sa.func.coalesce(late, False)))
        if self.received_from is not None:
            where.append(cs.c.received_at >= _instant(self.received_from, end=False))
        if self.received_to is not None:
            where.append(cs.c.received_at < _instant(self.received_to, end=True))
        if self.q:
            where.extend(keyword_conditions(self.q))
        if self.departments is not None:
            where.append(cs.c.handler_departments.overlap(sorted(self.departments)))
        return where


def keyword_conditions(keyword: str) -> list[sa.ColumnElement[bool]]:
    """Grams narrow through the GIN index; LIKE confirms the exact substring for longer keywords."""
    word = normalise(keyword)
    if not word:
        return []
    conditions: list[sa.ColumnElement[bool]] = [
        cs.c.case_id.in_(
            sa.select(case_search.c.case_id).where(case_search.c.grams.contains(keyword_grams(word)))
        )
    ]
    if len(word) > 2:
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(cs.c.search_text.like(f"%{escaped}%", escape="\\"))
    return conditions


def _instant(value: date | datetime, *, end: bool) -> datetime:
    """A date means the whole local (Asia/Shanghai) day; an end date is inclusive."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=CHINA)
    day = date.fromordinal(value.toordinal() + 1) if end else value
    return datetime.combine(day, time.min, tzinfo=CHINA)


def page_query(
    where: list[sa.ColumnElement[bool]], sort: str, limit: int, cursor: str | None
) -> sa.Select[Any]:
    """SELECT of one page: ``sort`` is a column name, ``-`` prefixed for descending."""
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    if name not in SORTS:
        allowed = sorted([*SORTS, *(f"-{s}" for s in SORTS)])
        raise Problem(400, "bad-sort", f"sort must be one of {allowed}.", sort=sort)
    column = SORTS[name]
    query = sa.select(*LISTED).where(*where)
    if cursor:
        value, case_id = decode_cursor(cursor, sort)
        key = sa.tuple_(column, cs.c.case_id)
        query = query.where(
            key < sa.tuple_(value, case_id) if descending else key > sa.tuple_(value, case_id)
        )
    order = (column.desc(), cs.c.case_id.desc()) if descending else (column.asc(), cs.c.case_id.asc())
    return query.order_by(*order).limit(limit + 1)


def encode_cursor(sort: str, value: datetime, case_id: str) -> str:
    """An opaque cursor: the sort and the last row's (sort value, case id)."""
    return base64.urlsafe_b64encode(orjson.dumps([sort, value.isoformat(), case_id])).decode()


def decode_cursor(cursor: str, sort: str) -> tuple[datetime, str]:
    """The (sort value, case id) a cursor resumes after; 400 if it is not ours or not for ``sort``."""
    try:
        cursor_sort, value, case_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        at = datetime.fromisoformat(value)
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise Problem(400, "bad-cursor", "The cursor is not one this API issued.") from exc
    if cursor_sort != sort:
        raise Problem(400, "bad-cursor", f"The cursor belongs to sort={cursor_sort}, not sort={sort}.")
    return at, str(case_id)
