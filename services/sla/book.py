"""The sla state of a set of cases, read at once, changed in memory and written at once (a unit of work).

``ClockBook.open`` locks the cases' rows (in case-id order, the order every writer of ``sla_cases`` uses)
and reads their stage clocks: two statements for a whole consumer batch. The decisions in handlers.py
change the book in memory, so a later event of the batch sees what an earlier one did; ``write`` then
stores the changed cases and clocks, cancels timers, stores new timers and queues the events, one
statement per kind of write. A batch of events thus costs the same handful of round trips as one event,
where applying them one by one cost four to seven each (and sla fell behind the case log under load).

The order of the writes keeps the meaning of the step-by-step order: a cancellation in the book marks the
timers the book itself queued earlier for that case and stage cancelled, and the stored timers are
cancelled before the book's timers are inserted (so a clock restarted in the batch keeps its new cards).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.envelope import OutboundMessage
from runtime.outbox import enqueue
from runtime.sql import ArrayInsert, custom_plans, do_update, rows_by_key
from services.sla import store
from services.sla.tables import cases, deadlines

ACTIVE = store.ACTIVE


@dataclass
class SlaCase:
    """A row of ``sla_cases``."""

    case_id: str
    appeal_type: str | None = None
    urgency: str | None = None
    category_code: str | None = None
    status: str = "open"
    escalation_level: int = 0
    first_breach_at: datetime | None = None
    extensions_used: int = 0


@dataclass
class StageClock:
    """A row of ``sla_deadlines``: the current clock of one stage of a case."""

    case_id: str
    stage: str
    generation: int
    assignment_id: str | None
    policy_id: str
    policy_version: int
    clock: str
    amount: float
    started_at: datetime
    due_at: datetime
    extension_days: int
    paused_seconds: float
    paused_at: datetime | None
    state: str
    provisional: bool
    calendar_basis: str
    stopped_at: datetime | None


_CASE_COLUMNS = tuple(f.name for f in dataclasses.fields(SlaCase))
_CLOCK_COLUMNS = tuple(f.name for f in dataclasses.fields(StageClock))
# Built once, at import; read case by case on the primary keys, with a plan for each batch
# (runtime.sql.rows_by_key says why: as ``case_id IN (…)`` on a fresh district's clocks with no statistics
# yet, 234 of a 20,000-case replay's reads scanned the whole table, 3.1 s of PostgreSQL in its first 75 s).
_LOCK_CASES = rows_by_key(cases, cases.c.case_id, "case_ids", lock=True)
_READ_CLOCKS = rows_by_key(deadlines, deadlines.c.case_id, "case_ids")


@dataclass
class ClockBook:
    conn: AsyncConnection
    cases: dict[str, SlaCase] = field(default_factory=dict)
    clocks: dict[str, dict[str, StageClock]] = field(default_factory=dict)  # case → stage → clock
    _changed_cases: set[str] = field(default_factory=set)
    _changed_clocks: dict[tuple[str, str], None] = field(default_factory=dict)  # in order of change
    _cancels: dict[tuple[str, str | None], datetime] = field(default_factory=dict)  # stage None: all
    _timers: list[store.NewTimer] = field(default_factory=list)
    _messages: list[OutboundMessage] = field(default_factory=list)

    @classmethod
    async def open(cls, conn: AsyncConnection, case_ids: Iterable[str]) -> ClockBook:
        """The book of ``case_ids``: their rows locked and read, with their clocks."""
        ids = sorted(set(case_ids))
        book = cls(conn)
        if not ids:
            return book
        keys = {"case_ids": ids}  # sorted: the rows are locked in this order
        async with custom_plans(conn):
            locked = (await conn.execute(_LOCK_CASES, keys)).all()
            clocks = (await conn.execute(_READ_CLOCKS, keys)).all()
        for row in locked:
            book.cases[row.case_id] = SlaCase(**{k: getattr(row, k) for k in _CASE_COLUMNS})
        for row in clocks:
            clock = StageClock(**{k: getattr(row, k) for k in _CLOCK_COLUMNS})
            book.clocks.setdefault(row.case_id, {})[row.stage] = clock
        return book

    # --- cases --------------------------------------------------------------------------------------------

    def ensure_case(self, case_id: str, **facts: Any) -> SlaCase:
        """The case, created on first sight; known facts (appeal type, ...) fill empty fields only."""
        case = self.cases.get(case_id)
        if case is None:
            case = self.cases[case_id] = SlaCase(case_id)
            self._changed_cases.add(case_id)
        for name, value in facts.items():
            if value is not None and getattr(case, name) is None:
                setattr(case, name, value)
                self._changed_cases.add(case_id)
        return case

    def update_case(self, case_id: str, **values: Any) -> None:
        """Change a case sla knows (one it has never seen stays unknown)."""
        case = self.cases.get(case_id)
        if case is None:
            return
        for name, value in values.items():
            setattr(case, name, value)
        self._changed_cases.add(case_id)

    # --- stage clocks -------------------------------------------------------------------------------------

    def clock_rows(self, case_id: str, stages: Iterable[str] | None = None) -> dict[str, StageClock]:
        """The case's clocks by stage (only ``stages`` if given), in stage order."""
        own = self.clocks.get(case_id, {})
        wanted = own.keys() if stages is None else {str(s) for s in stages} & own.keys()
        return {stage: own[stage] for stage in sorted(wanted)}

    def save_clocks(self, rows: Sequence[dict[str, Any]]) -> None:
        """Replace stage clocks (the caller has chosen each new generation)."""
        for values in rows:
            clock = StageClock(**values)
            self.clocks.setdefault(clock.case_id, {})[clock.stage] = clock
            self._changed_clocks[(clock.case_id, clock.stage)] = None

    def set_state(self, case_id: str, stages: Collection[str], state: str, at: datetime) -> list[str]:
        """Move the active clocks of ``stages`` to ``state``; returns the stages that changed."""
        changed = []
        for stage, clock in self.clock_rows(case_id, stages).items():
            if clock.state in ACTIVE:
                clock.state, clock.stopped_at = state, at
                self._changed_clocks[(case_id, stage)] = None
                changed.append(stage)
        return changed

    def pause(self, case_id: str, stages: Collection[str], at: datetime) -> None:
        """Mark running clocks paused since ``at``."""
        for stage, clock in self.clock_rows(case_id, stages).items():
            if clock.state == "running":
                clock.state, clock.paused_at = "paused", at
                self._changed_clocks[(case_id, stage)] = None

    # --- timers and events --------------------------------------------------------------------------------

    def cancel_timers(self, case_id: str, at: datetime, stages: Iterable[str] | None = None) -> None:
        """Cancel the case's pending timers (of ``stages``, or all): stored ones when the book is written,
        and those the book queued so far, which are stored already cancelled (as one event per
        transaction would have stored and then cancelled them: the case's card history shows them)."""
        chosen = None if stages is None else {str(s) for s in stages}
        self._timers = [
            dataclasses.replace(t, cancelled_at=at)
            if t.case_id == case_id and t.cancelled_at is None and (chosen is None or t.stage in chosen)
            else t
            for t in self._timers
        ]
        for stage in [None] if chosen is None else sorted(chosen):
            self._cancels.setdefault((case_id, stage), at)

    def schedule(self, timers: Iterable[store.NewTimer]) -> None:
        self._timers.extend(timers)

    def emit(self, messages: Iterable[OutboundMessage]) -> None:
        self._messages.extend(messages)

    # --- writing ------------------------------------------------------------------------------------------

    async def write(self) -> None:
        """Store what changed (cases, clocks, cancellations, new timers, events) and empty the queues."""
        conn = self.conn
        if self._changed_cases:
            # vars(), not dataclasses.asdict: flat rows, and asdict deep-copies every value (a datetime
            # through copy.deepcopy): 7.7 % of sla's samples under bench/e2e (py-spy, 2026-11-28)
            rows = [vars(self.cases[c]).copy() for c in sorted(self._changed_cases)]
            await _SAVE_CASES.execute(conn, rows)
        if self._changed_clocks:
            rows = [vars(self.clocks[c][s]).copy() for c, s in sorted(self._changed_clocks)]
            await store.save_deadline(conn, rows)
        if self._cancels:
            await store.cancel_timers_of(conn, [(c, s, at) for (c, s), at in self._cancels.items()])
        await store.schedule_many(conn, self._timers)
        await enqueue(conn, self._messages)
        self._changed_cases, self._changed_clocks, self._cancels = set(), {}, {}
        self._timers, self._messages = [], []


_SAVE_CASES = ArrayInsert(cases, _CASE_COLUMNS, do_update(["case_id"], _CASE_COLUMNS, updated_at="now()"))
