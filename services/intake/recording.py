"""Recording appeals, in batches: the appeal row, its encrypted PII and its events in one transaction.

Each request hands its appeal to the process's ``Recorder`` and waits for the answer. The recorder writes
whatever arrived while it wrote the previous batch (at most ``max_batch``) in one transaction. At low load
a batch is one appeal and waits for nothing; under load the round trips, the commit and PostgreSQL's
per-statement work are shared by the batch:

1. BEGIN with every lock the batch needs (dedupe and Idempotency-Key locks), in key order, one round trip;
2. one read: the Idempotency-Keys already answered, each appeal's earlier submission (a retry) and the
   open cases it may repeat;
3. the decisions, appeal by appeal in arrival order, each seeing those before it in the batch as it would
   have seen them committed (a retry of one is answered with its case, a repeat of one is linked to it);
4. one write of the appeals, vault rows, outbox rows and Idempotency-Keys;
5. COMMIT, and then every request gets its answer. A 2xx still means the appeal is committed.

An appeal the batch refuses (409: its order number was used for other content; 422: its Idempotency-Key
for another body) gets its problem while the others are recorded. A batch that fails otherwise is written
again appeal by appeal, so a bad appeal fails alone; an outage fails each with 503.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
from prometheus_client import Histogram

from contracts.envelope import OutboundMessage
from contracts.events import CaseEvent
from runtime.consumer import is_infrastructure_error
from runtime.db import transaction_with_locks
from runtime.outbox import current_trace_headers, outbox_columns, outbox_insert_from_arrays
from runtime.problems import Problem
from runtime.sql import custom_plans
from services.intake import domain
from services.intake.categories import UNCLASSIFIED
from services.intake.tables import NEARBY_CELL

if TYPE_CHECKING:
    from services.intake.handlers import Intake

BATCH_SIZE = Histogram(
    "gridline_intake_recording_batch_appeals",
    "Appeals written per recording transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)


@dataclass(frozen=True)
class IdempotencyKey:
    """The Idempotency-Key header of a request, scoped to the calling client."""

    client_id: str
    key: str


@dataclass(frozen=True)
class Recorded:
    case_id: str
    created: bool
    status: str = "received"
    duplicate_of: str | None = None
    token: str | None = None

    def as_json(self) -> dict:
        return {
            "case_id": self.case_id,
            "status": self.status,
            "duplicate_of": self.duplicate_of,
            "token": self.token,
        }


@dataclass(eq=False)
class _Pending:
    """One appeal waiting for its batch."""

    appeal: domain.Appeal
    fingerprint: str
    idempotency: IdempotencyKey | None
    citizen_ref: str | None
    dedupe: bool  # look for the open case it repeats (a classified appeal with a caller or a place)
    locks: list[int]
    trace: dict[str, str]  # W3C trace context of the request, carried by the appeal's events
    answer: asyncio.Future[Recorded]

    @property
    def external(self) -> tuple[str, str]:
        return self.appeal.source.value, self.appeal.external_id

    @property
    def lat(self) -> float | None:
        return self.appeal.location.lat if self.appeal.location else None

    @property
    def lon(self) -> float | None:
        return self.appeal.location.lon if self.appeal.location else None


@dataclass
class RecorderStats:
    batches: int = 0
    appeals: int = 0
    largest: int = 0
    retried_alone: int = 0


@dataclass
class Recorder:
    """The process's recorder: a queue of appeals and the task that writes it out, batch by batch."""

    max_batch: int = 64
    # Batches written at once: a second lets appeals arriving during a batch's round trips start theirs
    # (half the queueing at low load); they serialise only where their locks meet.
    max_writers: int = 2
    stats: RecorderStats = field(default_factory=RecorderStats)
    _queue: deque[_Pending] = field(default_factory=deque)
    _writers: set[asyncio.Task] = field(default_factory=set)

    async def record(
        self, intake: Intake, appeal: domain.Appeal, submission: dict, idempotency: IdempotencyKey | None
    ) -> Recorded:
        dedupe = appeal.category.category != UNCLASSIFIED and not appeal.resolved_on_spot
        ref = domain.citizen_ref(appeal.contact.phone, intake.settings.citizen_ref_secret)
        location = appeal.location
        lat, lon = (location.lat, location.lon) if location else (None, None)
        locks = (
            dedupe_lock_keys(appeal.category.category, ref, lat, lon, intake.duplicate_policy)
            if dedupe
            else []
        )
        dedupe = bool(locks)  # with neither a caller nor a place there is nothing it could repeat
        # Requests carrying the same Idempotency-Key queue on its lock: 50 simultaneous retries, one winner.
        if idempotency is not None:
            locks.append(_lock_key(f"idem:{idempotency.client_id}:{idempotency.key}"))
        pending = _Pending(
            appeal,
            domain.fingerprint(appeal.source, submission),
            idempotency,
            ref,
            dedupe,
            locks,
            current_trace_headers(),  # the request's trace, not the writer task's
            asyncio.get_running_loop().create_future(),
        )
        self._queue.append(pending)
        if len(self._writers) < self.max_writers:
            writer = asyncio.create_task(self._write_all(intake), name="intake-recorder")
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        return await pending.answer

    async def _write_all(self, intake: Intake) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch))]
            try:
                await self._write(intake, batch)
            except BaseException as exc:  # cancelled (shutdown): nobody may wait for ever
                for pending in [*batch, *self._queue]:
                    _settle(pending, exc)
                self._queue.clear()
                raise

    async def _write(self, intake: Intake, batch: list[_Pending]) -> None:
        try:
            outcomes = await _record_batch(intake, batch)
        except Exception as exc:
            if len(batch) > 1 and not is_infrastructure_error(exc):
                self.stats.retried_alone += len(batch)
                for pending in batch:  # the culprit fails alone
                    await self._write(intake, [pending])
                return
            for pending in batch:
                _settle(pending, exc)
            return
        self.stats.batches += 1
        self.stats.appeals += len(batch)
        self.stats.largest = max(self.stats.largest, len(batch))
        BATCH_SIZE.observe(len(batch))
        for pending, outcome in zip(batch, outcomes, strict=True):
            _settle(pending, outcome)


def _settle(pending: _Pending, outcome: Recorded | BaseException) -> None:
    if pending.answer.done():  # its request went away (cancelled); the appeal is recorded all the same
        return
    if isinstance(outcome, BaseException):
        pending.answer.set_exception(outcome)
    else:
        pending.answer.set_result(outcome)


# --- one batch --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Planned:
    """An appeal the batch inserts, and the answer it gets if the insert wins."""

    pending: _Pending
    recorded: Recorded
    row: tuple
    messages: list[OutboundMessage]  # its events, encoded with its request's trace


async def _record_batch(intake: Intake, batch: list[_Pending]) -> list[Recorded | Problem]:
    locks = [key for pending in batch for key in pending.locks]
    async with intake.recording.acquire() as db, transaction_with_locks(db, locks):
        keys = [p.idempotency for p in batch if p.idempotency is not None]
        remembered = await _remembered(db, keys) if keys else {}
        earlier, candidates = await _earlier(db, intake, batch)
        decide = _Decisions(intake, remembered, earlier, candidates)
        outcomes = [await decide.next(db, n, pending) for n, pending in enumerate(batch)]
        if decide.planned:
            inserted = await _insert(db, intake, decide.planned)
            lost = [p for p in decide.planned if p.recorded.case_id not in inserted]
            if lost:  # a concurrent retry in another replica won the race; its row is committed now
                existing = await _existing(db, [p.pending.external for p in lost])
                for n, pending in enumerate(batch):
                    if decide.answered_by.get(n) in lost:
                        outcomes[n] = _replay_or_problem(existing[pending.external], pending)
    return outcomes


class _Decisions:
    """Each appeal's answer, in arrival order; what the batch plans to insert is part of what later
    appeals of the batch see."""

    def __init__(
        self,
        intake: Intake,
        remembered: dict[tuple[str, str], asyncpg.Record],
        earlier: dict[int, asyncpg.Record],
        candidates: dict[int, list[domain.OpenCase]],
    ) -> None:
        self.intake = intake
        self.remembered, self.earlier, self.candidates = remembered, earlier, candidates
        self.planned: list[_Planned] = []
        self.by_external: dict[tuple[str, str], _Planned] = {}
        self.by_key: dict[IdempotencyKey, _Planned] = {}
        self.primaries: list[domain.OpenCase] = []  # open primaries planned in this batch
        self.answered_by: dict[int, _Planned] = {}  # appeals whose answer is a planned insert's
        self.now = datetime.now(UTC)

    async def next(self, db: asyncpg.Connection, n: int, pending: _Pending) -> Recorded | Problem:
        try:
            return await self._decide(db, n, pending)
        except Problem as problem:
            return problem

    async def _decide(self, db: asyncpg.Connection, n: int, pending: _Pending) -> Recorded:
        key = pending.idempotency
        if key is not None:
            row = self.remembered.get((key.client_id, key.key))
            if row is not None:
                return _remembered_answer(row, pending.fingerprint)
            if key in self.by_key:
                plan = self.by_key[key]
                if plan.pending.fingerprint != pending.fingerprint:
                    raise _key_reused(plan.recorded.case_id)
                return self._answered_by(n, plan, pending)
        existing = self.earlier.get(n)
        if existing is not None:
            return _replay(existing, pending.fingerprint, pending.appeal.external_id)
        if pending.external in self.by_external:
            return self._answered_by(n, self.by_external[pending.external], pending)
        plan = await self._plan(db, n, pending)
        self.planned.append(plan)
        self.answered_by[n] = plan
        self.by_external[pending.external] = plan
        if key is not None:
            self.by_key[key] = plan
        return plan.recorded

    def _answered_by(self, n: int, plan: _Planned, pending: _Pending) -> Recorded:
        """The answer of a retry of an appeal planned earlier in the batch."""
        self.answered_by[n] = plan
        first = plan.recorded
        row = {
            "case_id": first.case_id,
            "fingerprint": plan.pending.fingerprint,
            "duplicate_of": first.duplicate_of,
            "token": first.token,
            "status": "closed" if first.status == "closed" else "open",
        }
        return _replay(row, pending.fingerprint, pending.appeal.external_id)

    async def _plan(self, db: asyncpg.Connection, n: int, pending: _Pending) -> _Planned:
        intake, appeal, now = self.intake, pending.appeal, self.now
        settings = intake.settings
        match = None
        if pending.dedupe:
            match = domain.find_duplicate(
                appeal.category.category,
                pending.citizen_ref,
                pending.lat,
                pending.lon,
                appeal.received_at,
                [*self.candidates.get(n, ()), *self.primaries],
                intake.duplicate_policy,
            )
        case_id = domain.case_number(settings.case_id_prefix, now, await intake.case_numbers.next(db))
        primary = match.primary_case_id if match else None
        event = domain.case_received(appeal, case_id, now, settings.citizen_ref_secret, duplicate_of=primary)
        events: list[CaseEvent] = [event]
        if match is not None:
            events.append(domain.duplicate_linked(case_id, match, now))
        if appeal.resolved_on_spot:
            events.append(domain.closed_on_spot(case_id, now, appeal.actor))
        elif pending.dedupe and primary is None:
            self.primaries.append(
                domain.OpenCase(
                    case_id,
                    appeal.category.category,
                    pending.citizen_ref,
                    pending.lat,
                    pending.lon,
                    appeal.received_at,
                )
            )
        # Encoded here, once: the CaseReceived's JSON is both the appeal row's ``event`` and its outbox value.
        messages = intake.encode(events, pending.trace)
        token = str(uuid.uuid4())
        contact = appeal.contact
        masked_text = appeal.description != appeal.description_clear
        seal = intake.cipher.seal
        row = (
            case_id,
            appeal.source.value,
            appeal.external_id,
            pending.fingerprint,
            event.received_at,
            "closed" if appeal.resolved_on_spot else "open",
            messages[0].value.decode(),
            appeal.category.category,
            event.citizen.citizen_ref,
            pending.lat,
            pending.lon,
            primary,
            appeal.service_code,
            token,
            "即知即改，已办结" if appeal.resolved_on_spot else "已受理",
            bool(contact or masked_text),
            seal(case_id, "name", contact.name),
            seal(case_id, "phone", contact.phone),
            seal(case_id, "id_number", contact.id_number),
            seal(case_id, "description", appeal.description_clear if masked_text else None),
        )
        shown = "closed" if appeal.resolved_on_spot else ("duplicate" if primary else "received")
        recorded = Recorded(case_id=case_id, created=True, status=shown, duplicate_of=primary, token=token)
        return _Planned(pending, recorded, row, messages)


async def _insert(db: asyncpg.Connection, intake: Intake, planned: list[_Planned]) -> set[str]:
    """Write the planned appeals (those whose order number is not taken meanwhile) with their vault rows,
    outbox rows and Idempotency-Keys; returns the case ids written."""
    rows = [plan.row for plan in planned]
    columns = [list(column) for column in zip(*rows, strict=True)]
    messages = [message for plan in planned for message in plan.messages]
    keyed = [(plan, plan.pending.idempotency) for plan in planned if plan.pending.idempotency is not None]
    written = await db.fetch(
        _RECORD,
        *columns,
        *outbox_columns(messages),
        [key.client_id for _, key in keyed],
        [key.key for _, key in keyed],
        [plan.pending.fingerprint for plan, _ in keyed],
        [plan.recorded.case_id for plan, _ in keyed],
        [orjson.dumps(plan.recorded.as_json()).decode() for plan, _ in keyed],
    )
    return {row["case_id"] for row in written}


# Appeals, their vault rows (when there is personal data to keep), their outbox rows (in the order given:
# a case's events are published in outbox order) and the Idempotency-Keys answered by them, in one
# statement; the others are written only for the appeals written (not on a lost race with a retry).
_RECORD = (
    """
WITH r AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::float8[], $11::float8[], $12::text[],
                         $13::text[], $14::text[], $15::text[], $16::boolean[], $17::bytea[], $18::bytea[],
                         $19::bytea[], $20::bytea[]) WITH ORDINALITY
        AS r(case_id, source, external_id, fingerprint, received_at, status, event, category, citizen_ref,
             lat, lon, duplicate_of, service_code, token, status_notes, vaulted, name_enc, phone_enc,
             id_number_enc, description_enc, position)
), appeal AS (
    INSERT INTO appeals (case_id, source, external_id, fingerprint, received_at, status, event, category,
                         citizen_ref, lat, lon, duplicate_of, service_code, token, status_notes)
    SELECT case_id, source, external_id, fingerprint, received_at, status, event::jsonb, category,
           citizen_ref, lat, lon, duplicate_of, service_code, token, status_notes
    FROM r ORDER BY position
    ON CONFLICT ON CONSTRAINT appeals_source_external_id DO NOTHING
    RETURNING case_id
), vault AS (
    INSERT INTO pii_vault (case_id, citizen_ref, name_enc, phone_enc, id_number_enc, description_enc)
    SELECT r.case_id, r.citizen_ref, r.name_enc, r.phone_enc, r.id_number_enc, r.description_enc
    FROM r JOIN appeal USING (case_id) WHERE r.vaulted
), remembered AS (
    INSERT INTO idempotency_keys (client_id, key, fingerprint, case_id, response)
    SELECT k.client_id, k.key, k.fingerprint, k.case_id, k.response::jsonb
    FROM unnest($27::text[], $28::text[], $29::text[], $30::text[], $31::text[])
        AS k(client_id, key, fingerprint, case_id, response)
    JOIN appeal USING (case_id)
), queued AS (
"""  # noqa: S608 - fixed text, every value is a bind parameter
    + outbox_insert_from_arrays(21, where="WHERE m.key IN (SELECT case_id FROM appeal)")
    + ")\nSELECT case_id FROM appeal"
)


async def _remembered(db: asyncpg.Connection, keys: list[IdempotencyKey]) -> dict[tuple[str, str], Any]:
    rows = await db.fetch(
        "SELECT client_id, key, fingerprint, response::text AS response FROM idempotency_keys"
        " WHERE (client_id, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [k.client_id for k in keys],
        [k.key for k in keys],
    )
    return {(row["client_id"], row["key"]): row for row in rows}


def _remembered_answer(row: Mapping, fingerprint: str) -> Recorded:
    answer = orjson.loads(row["response"])
    if row["fingerprint"] != fingerprint:
        raise _key_reused(answer["case_id"])
    return Recorded(
        answer["case_id"],
        False,
        answer.get("status", "received"),
        answer.get("duplicate_of"),
        answer.get("token"),
    )


def _key_reused(case_id: str) -> Problem:
    return Problem(
        422,
        "idempotency-key-reused",
        "This Idempotency-Key was already used for a different request body.",
        field="Idempotency-Key",
        case_id=case_id,
    )


def _replay(existing: Mapping, fingerprint: str, external_id: str) -> Recorded:
    if existing["fingerprint"] != fingerprint:
        raise Problem(
            409,
            "external-id-conflict",
            f"{external_id!r} was already submitted with different content as case {existing['case_id']}.",
            case_id=existing["case_id"],
        )
    status = (
        "duplicate"
        if existing["duplicate_of"]
        else ("closed" if existing["status"] == "closed" else "received")
    )
    return Recorded(existing["case_id"], False, status, existing["duplicate_of"], existing["token"])


def _replay_or_problem(existing: Mapping, pending: _Pending) -> Recorded | Problem:
    try:
        return _replay(existing, pending.fingerprint, pending.appeal.external_id)
    except Problem as problem:
        return problem


async def _existing(db: asyncpg.Connection, externals: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    rows = await db.fetch(
        "SELECT source, external_id, case_id, fingerprint, duplicate_of, token, status FROM appeals"
        " WHERE (source, external_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [source for source, _ in externals],
        [external for _, external in externals],
    )
    return {(row["source"], row["external_id"]): row for row in rows}


# --- what the batch's appeals may repeat -------------------------------------------------------------------


async def _earlier(
    db: asyncpg.Connection, intake: Intake, batch: list[_Pending]
) -> tuple[dict[int, Any], dict[int, list[domain.OpenCase]]]:
    """Each appeal's earlier submission and, for those that dedupe, the open cases it may repeat (both by
    position in the batch), read holding the batch's dedupe locks, so two repeats
    arriving together cannot both become primaries."""
    policy = intake.duplicate_policy
    caller, nearby = policy.same_caller_window, policy.nearby_window
    columns: list[list] = [[] for _ in range(15)]
    for n, pending in enumerate(batch):
        appeal, lat, lon = pending.appeal, pending.lat, pending.lon
        d_lat, d_lon = _box(policy, lat) if lat is not None else (0.0, 0.0)
        values = (
            n,
            appeal.source.value,
            appeal.external_id,
            appeal.category.category,
            appeal.received_at - caller,
            appeal.received_at + caller,
            pending.citizen_ref,
            lat is not None,
            (lat or 0.0) - d_lat,
            (lat or 0.0) + d_lat,
            (lon or 0.0) - d_lon,
            (lon or 0.0) + d_lon,
            appeal.received_at - nearby,
            appeal.received_at + nearby,
            pending.dedupe,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    earlier: dict[int, Any] = {}
    candidates: dict[int, list[domain.OpenCase]] = {}
    # A generic plan cached while the table was small read the whole 48-hour window of appeals, 13 ms per
    # batch at 6,000 (auto_explain, 2026-11-28). Only this statement pays for planning (~0.4 ms): for the
    # whole pool it added ~0.8 ms per batch, the insert and its foreign-key checks too.
    async with custom_plans(db):
        rows = await db.fetch(_EARLIER, *columns)
    for row in rows:
        pending = batch[row["n"]]
        if row["earlier"]:
            earlier[row["n"]] = row
        else:
            candidates.setdefault(row["n"], []).append(
                domain.OpenCase(
                    row["case_id"],
                    pending.appeal.category.category,
                    row["citizen_ref"],
                    row["lat"],
                    row["lon"],
                    row["received_at"],
                )
            )
    return earlier, candidates


# For each appeal of the batch (q): its earlier submission, then its duplicate candidates in two
# index-friendly parts: the caller's own appeals in the caller window (appeals_citizen), and the
# category's appeals near the place in the shorter nearby window (appeals_nearby: one probe per 0.01° map
# cell the search box touches, usually 1–4, each a range of received_at in index order). The cells are
# joined laterally, each probe with its own LIMIT, so the cell is part of the index condition whatever the
# planner estimates: written as `cell = ANY(cells)`, PostgreSQL kept the cell as a filter and read the
# category's whole window (e2e replay, 8,340 appeals: ~10,000 buffers and 5.1 ms per batch of 16, now
# ~180 and 1.0 ms, the same rows). A case found by both parts is a candidate twice, which find_duplicate
# takes alike.
_EARLIER = f"""
SELECT q.n, e.*
FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::text[],
            $8::boolean[], $9::float8[], $10::float8[], $11::float8[], $12::float8[], $13::timestamptz[],
            $14::timestamptz[], $15::boolean[])
    AS q(n, q_source, q_external_id, q_category, caller_from, caller_to, q_citizen_ref, placed, lat_from,
         lat_to, lon_from, lon_to, nearby_from, nearby_to, dedupe)
CROSS JOIN LATERAL (
    SELECT true AS earlier, a.case_id, a.fingerprint, a.duplicate_of, a.token, a.status,
           NULL::text AS citizen_ref, NULL::float8 AS lat, NULL::float8 AS lon,
           NULL::timestamptz AS received_at
    FROM appeals a WHERE a.source = q.q_source AND a.external_id = q.q_external_id
    UNION ALL (
        SELECT false, a.case_id, NULL, NULL, NULL, NULL, a.citizen_ref, a.lat, a.lon, a.received_at
        FROM appeals a
        WHERE q.dedupe AND a.citizen_ref = q.q_citizen_ref AND a.category = q.q_category
          AND a.status IN ('open', 'replied') AND a.duplicate_of IS NULL
          AND a.received_at BETWEEN q.caller_from AND q.caller_to
        ORDER BY a.received_at
        LIMIT 200
    )
    UNION ALL (
        SELECT false, a.case_id, NULL, NULL, NULL, NULL, a.citizen_ref, a.lat, a.lon, a.received_at
        FROM generate_series(floor(q.lat_from * 100)::int8, floor(q.lat_to * 100)::int8) AS r
        CROSS JOIN generate_series(floor(q.lon_from * 100)::int8, floor(q.lon_to * 100)::int8) AS c
        CROSS JOIN LATERAL (
            SELECT a.case_id, a.citizen_ref, a.lat, a.lon, a.received_at
            FROM appeals a
            WHERE a.category = q.q_category AND {NEARBY_CELL} = r * 100000 + c
              AND a.received_at BETWEEN q.nearby_from AND q.nearby_to
              AND a.status IN ('open', 'replied') AND a.duplicate_of IS NULL
              AND a.lat BETWEEN q.lat_from AND q.lat_to AND a.lon BETWEEN q.lon_from AND q.lon_to
            ORDER BY a.received_at
            LIMIT 200
        ) a
        WHERE q.dedupe AND q.placed
        ORDER BY a.received_at
        LIMIT 200
    )
) e
"""  # noqa: S608 - fixed text, every value is a bind parameter


# --- locks ----------------------------------------------------------------------------------------------


def _lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for ``name``."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def dedupe_lock_keys(
    category: str, citizen: str | None, lat: float | None, lon: float | None, policy: domain.DuplicatePolicy
) -> list[int]:
    """Locks that any two appeals which could repeat each other have in common.

    Same caller and category: both lock (category, caller). Same category within the radius: each locks
    every grid cell its search box touches (cells as wide as the box), so the cell holding the other
    appeal's point is locked by both. Unrelated appeals rarely share a lock, so they do not queue.
    """
    keys = []
    if citizen:
        keys.append(_lock_key(f"dedupe:{category}:caller:{citizen}"))
    if lat is not None and lon is not None:
        d_lat, d_lon = _box(policy, lat)
        cell = 2 * d_lat
        rows = range(math.floor((lat - d_lat) / cell), math.floor((lat + d_lat) / cell) + 1)
        columns = range(math.floor((lon - d_lon) / cell), math.floor((lon + d_lon) / cell) + 1)
        keys.extend(_lock_key(f"dedupe:{category}:cell:{row}:{column}") for row in rows for column in columns)
    return sorted(set(keys))


def _box(policy: domain.DuplicatePolicy, lat: float) -> tuple[float, float]:
    """Half-sides (degrees) of a search box a little larger than the radius; the domain decides distance."""
    d_lat = policy.nearby_radius_m / 111_000 * 1.5
    return d_lat, d_lat / max(0.1, math.cos(math.radians(lat)))
