"""Intake's service layer: record an appeal, its encrypted PII and its events in one transaction.

A 2xx answer means the appeal row, the vault row and the outbox rows are committed together.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.envelope import OutboundMessage, encode_event
from contracts.events import CaseEvent
from runtime.db import DirectPool, transaction_with_locks
from runtime.outbox import current_trace_headers, enqueue, outbox_columns, outbox_insert_from_arrays
from runtime.problems import Problem
from services.intake import domain
from services.intake.appeals import Normalisation
from services.intake.categories import UNCLASSIFIED
from services.intake.config import IntakeSettings
from services.intake.tables import NEARBY_CELL
from services.intake.vault import VaultCipher


class CaseNumbers:
    """Case-number sequence values, taken from PostgreSQL a block at a time (one round trip per block, not
    per case). A restart or a second replica leaves gaps, never repeats: each block is a fresh ``nextval``."""

    BLOCK = 32

    def __init__(self) -> None:
        self._ready: list[int] = []
        self._lock = asyncio.Lock()

    async def next(self, db: asyncpg.Connection) -> int:
        if not self._ready:
            async with self._lock:
                if not self._ready:
                    values = await db.fetch(
                        "SELECT nextval('case_number_seq') AS n FROM generate_series(1, $1)", self.BLOCK
                    )
                    self._ready = sorted((r["n"] for r in values), reverse=True)
        return self._ready.pop()


@dataclass(frozen=True)
class Intake:
    """What the handlers need: the database (SQLAlchemy, and a pool of its own for recording appeals),
    settings, the vault cipher and the CloudEvents source."""

    engine: AsyncEngine
    settings: IntakeSettings
    cipher: VaultCipher
    recording: DirectPool
    source: str = "/gridline/intake"
    case_numbers: CaseNumbers = field(default_factory=CaseNumbers)

    @classmethod
    def build(cls, engine: AsyncEngine, settings: IntakeSettings, source: str) -> Intake:
        cipher = VaultCipher.from_setting(settings.pii_vault_keys)
        return cls(
            engine, settings, cipher, DirectPool(settings.database_url, settings.recording_pool_size), source
        )

    async def close(self) -> None:
        await self.recording.close()

    @property
    def rules(self) -> Normalisation:
        return Normalisation(self.settings.default_area_code, self.settings.max_attachments)

    @property
    def duplicate_policy(self) -> domain.DuplicatePolicy:
        s = self.settings
        return domain.DuplicatePolicy(
            timedelta(days=s.duplicate_same_caller_days),
            s.duplicate_radius_m,
            timedelta(hours=s.duplicate_nearby_hours),
        )

    def encode(self, events: list[CaseEvent]) -> list[OutboundMessage]:
        """The events as Kafka messages for the case-events topic, carrying the current trace."""
        trace = current_trace_headers()
        topic = self.settings.case_events_topic
        return [encode_event(e, source=self.source, topic=topic, trace_headers=trace) for e in events]

    async def emit(self, conn: AsyncConnection, events: list[CaseEvent]) -> None:
        """Put events in the outbox inside the caller's transaction."""
        await enqueue(conn, self.encode(events))


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


async def record_appeal(
    intake: Intake,
    appeal: domain.Appeal,
    submission: dict,
    idempotency: IdempotencyKey | None = None,
) -> Recorded:
    """Insert appeal + vault + outbox rows atomically; a retry of the same submission returns the same case.

    Retries are recognised by (source, external id) and, when given, by the client's Idempotency-Key;
    a concurrent retry that loses the race reads the winner's answer.

    This is intake's hot path, so it speaks to asyncpg directly, on connections of its own pool
    (SQLAlchemy's per-statement overhead was a third of a request's CPU, its pool checkout ~60 µs) and
    needs three round trips: BEGIN with the dedupe (and Idempotency-Key) locks, one read of the earlier
    submission and the duplicate candidates, one write of appeal + vault + outbox; then the commit.
    """
    fingerprint = domain.fingerprint(appeal.source, submission)
    dedupe = _dedupe_locks(intake, appeal)
    locks = list(dedupe)
    if (
        idempotency is not None
    ):  # serialise requests carrying the same key: 50 simultaneous retries, one winner
        locks.append(_lock_key(f"idem:{idempotency.client_id}:{idempotency.key}"))
    async with intake.recording.acquire() as db, transaction_with_locks(db, locks):
        if idempotency is not None:
            remembered = await _remembered(db, idempotency, fingerprint)
            if remembered is not None:
                return remembered
        existing, match = await _earlier(db, intake, appeal, dedupe=bool(dedupe))
        if existing is not None:
            return _replay(existing, fingerprint, appeal.external_id)
        recorded = await _insert(db, intake, appeal, fingerprint, match)
        if recorded.created and idempotency is not None:
            await db.execute(
                "INSERT INTO idempotency_keys (client_id, key, fingerprint, case_id, response)"
                " VALUES ($1, $2, $3, $4, $5::text::jsonb)",
                idempotency.client_id,
                idempotency.key,
                fingerprint,
                recorded.case_id,
                orjson.dumps(recorded.as_json()).decode(),
            )
    return recorded


async def _insert(
    db: asyncpg.Connection,
    intake: Intake,
    appeal: domain.Appeal,
    fingerprint: str,
    match: domain.DuplicateMatch | None,
) -> Recorded:
    settings = intake.settings
    now = datetime.now(UTC)
    case_id = domain.case_number(settings.case_id_prefix, now, await intake.case_numbers.next(db))
    primary = match.primary_case_id if match else None
    event = domain.case_received(appeal, case_id, now, settings.citizen_ref_secret, duplicate_of=primary)
    token = str(uuid.uuid4())
    events: list[CaseEvent] = [event]
    if match is not None:
        events.append(domain.duplicate_linked(case_id, match, now))
    if appeal.resolved_on_spot:
        events.append(domain.closed_on_spot(case_id, now, appeal.actor))
    contact = appeal.contact
    masked_text = appeal.description != appeal.description_clear
    seal = intake.cipher.seal
    messages = intake.encode(events)  # the first is the CaseReceived, serialised once for both its rows
    inserted = await db.fetchval(
        _RECORD,
        case_id,
        appeal.source.value,
        appeal.external_id,
        fingerprint,
        event.received_at,
        "closed" if appeal.resolved_on_spot else "open",
        messages[0].value.decode(),
        appeal.category.category,
        event.citizen.citizen_ref,
        appeal.location.lat if appeal.location else None,
        appeal.location.lon if appeal.location else None,
        primary,
        appeal.service_code,
        token,
        "即知即改，已办结" if appeal.resolved_on_spot else "已受理",
        bool(contact or masked_text),
        seal(case_id, "name", contact.name),
        seal(case_id, "phone", contact.phone),
        seal(case_id, "id_number", contact.id_number),
        seal(case_id, "description", appeal.description_clear if masked_text else None),
        *outbox_columns(messages),
    )
    if inserted is None:  # a concurrent retry won the race; its row is committed now
        existing = await db.fetchrow(_EXISTING, appeal.source.value, appeal.external_id)
        assert existing is not None
        return _replay(existing, fingerprint, appeal.external_id)
    shown = "closed" if appeal.resolved_on_spot else ("duplicate" if primary else "received")
    return Recorded(case_id=case_id, created=True, status=shown, duplicate_of=primary, token=token)


# Appeal, vault row (when there is personal data to keep) and outbox rows in one statement: the vault and
# outbox rows are written only when the appeal row is (not on a lost race with a concurrent retry).
_RECORD = """
WITH appeal AS (
    INSERT INTO appeals (case_id, source, external_id, fingerprint, received_at, status, event, category,
                         citizen_ref, lat, lon, duplicate_of, service_code, token, status_notes)
    VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8, $9, $10, $11, $12, $13, $14, $15)
    ON CONFLICT ON CONSTRAINT appeals_source_external_id DO NOTHING
    RETURNING case_id
), vault AS (
    INSERT INTO pii_vault (case_id, citizen_ref, name_enc, phone_enc, id_number_enc, description_enc)
    SELECT case_id, $9, $17, $18, $19, $20 FROM appeal WHERE $16::boolean
), queued AS (
"""  # noqa: S608 - fixed text, every value is a bind parameter
_RECORD += outbox_insert_from_arrays(21, join="CROSS JOIN appeal") + ")\nSELECT case_id FROM appeal"

_EXISTING = (
    "SELECT case_id, fingerprint, duplicate_of, token, status FROM appeals"
    " WHERE source = $1 AND external_id = $2"
)


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


def _dedupe_applies(appeal: domain.Appeal) -> bool:
    return appeal.category.category != UNCLASSIFIED and not appeal.resolved_on_spot


def _dedupe_locks(intake: Intake, appeal: domain.Appeal) -> list[int]:
    """The dedupe locks the appeal's transaction must hold before it looks for what it repeats: none when
    dedupe does not apply, or with neither a caller nor a place (nothing it could repeat)."""
    if not _dedupe_applies(appeal):
        return []
    ref = domain.citizen_ref(appeal.contact.phone, intake.settings.citizen_ref_secret)
    lat = appeal.location.lat if appeal.location else None
    lon = appeal.location.lon if appeal.location else None
    return dedupe_lock_keys(appeal.category.category, ref, lat, lon, intake.duplicate_policy)


async def _earlier(
    db: asyncpg.Connection, intake: Intake, appeal: domain.Appeal, *, dedupe: bool
) -> tuple[asyncpg.Record | None, domain.DuplicateMatch | None]:
    """The earlier submission of this appeal (a retry), and, when ``dedupe``, the open case it repeats, if
    any (decided holding the dedupe locks, so two repeats arriving together cannot both become primaries)."""
    if not dedupe:
        return await db.fetchrow(_EXISTING, appeal.source.value, appeal.external_id), None
    policy = intake.duplicate_policy
    category = appeal.category.category
    ref = domain.citizen_ref(appeal.contact.phone, intake.settings.citizen_ref_secret)
    lat = appeal.location.lat if appeal.location else None
    lon = appeal.location.lon if appeal.location else None
    caller, nearby = policy.same_caller_window, policy.nearby_window
    d_lat, d_lon = _box(policy, lat) if lat is not None else (0.0, 0.0)
    rows = await db.fetch(
        _EARLIER,
        appeal.source.value,
        appeal.external_id,
        category,
        appeal.received_at - caller,
        appeal.received_at + caller,
        ref,
        lat is not None,
        (lat or 0.0) - d_lat,
        (lat or 0.0) + d_lat,
        (lon or 0.0) - d_lon,
        (lon or 0.0) + d_lon,
        appeal.received_at - nearby,
        appeal.received_at + nearby,
    )
    existing = next((r for r in rows if r["earlier"]), None)
    candidates = [
        domain.OpenCase(r["case_id"], category, r["citizen_ref"], r["lat"], r["lon"], r["received_at"])
        for r in rows
        if not r["earlier"]
    ]
    return existing, domain.find_duplicate(category, ref, lat, lon, appeal.received_at, candidates, policy)


# The earlier submission, then the duplicate candidates in two index-friendly parts: the caller's own
# appeals in the caller window (appeals_citizen), and the category's appeals near the place in the shorter
# nearby window (appeals_nearby: probes of the 0.01° map cells the search box touches, usually 1–4, each a
# range of received_at; the category's whole window, read and filtered by place, was ~1.4 ms at 2,000
# appeals in it). One query over the category for the longer window scanned every appeal of the category
# in it; a case found by both parts is a candidate twice, which find_duplicate takes alike.
_EARLIER = f"""
SELECT true AS earlier, case_id, fingerprint, duplicate_of, token, status,
       NULL::text AS citizen_ref, NULL::float8 AS lat, NULL::float8 AS lon, NULL::timestamptz AS received_at
FROM appeals WHERE source = $1 AND external_id = $2
UNION ALL (
    SELECT false, case_id, NULL, NULL, NULL, NULL, citizen_ref, lat, lon, received_at
    FROM appeals
    WHERE citizen_ref = $6 AND category = $3 AND status IN ('open', 'replied') AND duplicate_of IS NULL
      AND received_at BETWEEN $4 AND $5
    ORDER BY received_at
    LIMIT 200
)
UNION ALL (
    SELECT false, case_id, NULL, NULL, NULL, NULL, citizen_ref, lat, lon, received_at
    FROM appeals
    WHERE $7 AND category = $3 AND status IN ('open', 'replied') AND duplicate_of IS NULL
      AND received_at BETWEEN $12 AND $13 AND lat BETWEEN $8 AND $9 AND lon BETWEEN $10 AND $11
      AND lat IS NOT NULL AND lon IS NOT NULL AND {NEARBY_CELL} = ANY(ARRAY(
          SELECT r * 100000 + c
          FROM generate_series(floor($8 * 100)::int8, floor($9 * 100)::int8) AS r,
               generate_series(floor($10 * 100)::int8, floor($11 * 100)::int8) AS c
      ))
    ORDER BY received_at
    LIMIT 200
)
"""


async def _remembered(db: asyncpg.Connection, key: IdempotencyKey, fingerprint: str) -> Recorded | None:
    row = await db.fetchrow(
        "SELECT fingerprint, response::text AS response FROM idempotency_keys"
        " WHERE client_id = $1 AND key = $2",
        key.client_id,
        key.key,
    )
    if row is None:
        return None
    answer = orjson.loads(row["response"])
    if row["fingerprint"] != fingerprint:
        raise Problem(
            422,
            "idempotency-key-reused",
            "This Idempotency-Key was already used for a different request body.",
            field="Idempotency-Key",
            case_id=answer["case_id"],
        )
    return Recorded(
        answer["case_id"],
        False,
        answer.get("status", "received"),
        answer.get("duplicate_of"),
        answer.get("token"),
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
