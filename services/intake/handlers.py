"""Intake's service layer: record an appeal, its encrypted PII and its events in one transaction.

A 2xx answer means the appeal row, the vault row and the outbox rows are committed together.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.envelope import encode_event
from contracts.events import CaseEvent
from runtime.outbox import current_trace_headers, enqueue
from runtime.problems import Problem
from runtime.sql import precompiled
from services.intake import domain
from services.intake.appeals import Normalisation
from services.intake.categories import UNCLASSIFIED
from services.intake.config import IntakeSettings
from services.intake.tables import appeals, idempotency_keys, pii_vault
from services.intake.vault import VaultCipher


@dataclass(frozen=True)
class Intake:
    """What the handlers need: the database, settings, the vault cipher and the CloudEvents source."""

    engine: AsyncEngine
    settings: IntakeSettings
    cipher: VaultCipher
    source: str = "/gridline/intake"

    @classmethod
    def build(cls, engine: AsyncEngine, settings: IntakeSettings, source: str) -> Intake:
        return cls(engine, settings, VaultCipher.from_setting(settings.pii_vault_keys), source)

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

    async def emit(self, conn: AsyncConnection, events: list[CaseEvent]) -> None:
        """Put events in the outbox inside the caller's transaction."""
        trace = current_trace_headers()
        await enqueue(
            conn,
            [
                encode_event(
                    e, source=self.source, topic=self.settings.case_events_topic, trace_headers=trace
                )
                for e in events
            ],
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


async def record_appeal(
    intake: Intake,
    appeal: domain.Appeal,
    submission: dict,
    idempotency: IdempotencyKey | None = None,
) -> Recorded:
    """Insert appeal + vault + outbox rows atomically; a retry of the same submission returns the same case.

    Retries are recognised by (source, external id) and, when given, by the client's Idempotency-Key;
    a concurrent retry that loses the race reads the winner's answer.
    """
    fingerprint = domain.fingerprint(appeal.source, submission)
    async with intake.engine.begin() as conn:
        if idempotency is not None:
            # Serialise requests carrying the same key, so 50 simultaneous retries see one winner.
            await conn.execute(
                sa.select(
                    sa.func.pg_advisory_xact_lock(
                        sa.func.hashtextextended(f"idem:{idempotency.client_id}:{idempotency.key}", 0)
                    )
                )
            )
            remembered = await _remembered(conn, idempotency, fingerprint)
            if remembered is not None:
                return remembered
        existing = await _existing(conn, appeal)
        if existing is not None:
            return _replay(existing, fingerprint, appeal.external_id)
        recorded = await _insert(conn, intake, appeal, fingerprint)
        if recorded.created and idempotency is not None:
            await conn.execute(
                sa.insert(idempotency_keys).values(
                    client_id=idempotency.client_id,
                    key=idempotency.key,
                    fingerprint=fingerprint,
                    case_id=recorded.case_id,
                    response=recorded.as_json(),
                )
            )
    return recorded


async def _insert(conn: AsyncConnection, intake: Intake, appeal: domain.Appeal, fingerprint: str) -> Recorded:
    settings = intake.settings
    now = datetime.now(UTC)
    match = await _find_duplicate(conn, intake, appeal)
    sequence = (await conn.execute(sa.text("SELECT nextval('case_number_seq')"))).scalar_one()
    case_id = domain.case_number(settings.case_id_prefix, now, sequence)
    primary = match.primary_case_id if match else None
    event = domain.case_received(appeal, case_id, now, settings.citizen_ref_secret, duplicate_of=primary)
    token = str(uuid.uuid4())
    status = "closed" if appeal.resolved_on_spot else "open"
    inserted = await conn.execute(
        _INSERT_APPEAL,
        {
            "case_id": case_id,
            "source": appeal.source.value,
            "external_id": appeal.external_id,
            "fingerprint": fingerprint,
            "received_at": event.received_at,
            "status": status,
            "event": event.model_dump(mode="json"),
            "category": appeal.category.category,
            "citizen_ref": event.citizen.citizen_ref,
            "lat": appeal.location.lat if appeal.location else None,
            "lon": appeal.location.lon if appeal.location else None,
            "duplicate_of": primary,
            "service_code": appeal.service_code,
            "token": token,
            "status_notes": "即知即改，已办结" if appeal.resolved_on_spot else "已受理",
        },
    )
    if inserted.first() is None:  # a concurrent retry won the race; its row is committed now
        existing = await _existing(conn, appeal)
        assert existing is not None
        return _replay(existing, fingerprint, appeal.external_id)
    contact = appeal.contact
    masked_text = appeal.description != appeal.description_clear
    if contact or masked_text:
        seal = intake.cipher.seal
        await conn.execute(
            sa.insert(pii_vault).values(
                case_id=case_id,
                citizen_ref=event.citizen.citizen_ref,
                name_enc=seal(case_id, "name", contact.name),
                phone_enc=seal(case_id, "phone", contact.phone),
                id_number_enc=seal(case_id, "id_number", contact.id_number),
                description_enc=seal(
                    case_id, "description", appeal.description_clear if masked_text else None
                ),
            )
        )
    events: list[CaseEvent] = [event]
    if match is not None:
        events.append(domain.duplicate_linked(case_id, match, now))
    if appeal.resolved_on_spot:
        events.append(domain.closed_on_spot(case_id, now, appeal.actor))
    await intake.emit(conn, events)
    shown = "closed" if appeal.resolved_on_spot else ("duplicate" if primary else "received")
    return Recorded(case_id=case_id, created=True, status=shown, duplicate_of=primary, token=token)


_APPEAL_COLUMNS = (
    "case_id",
    "source",
    "external_id",
    "fingerprint",
    "received_at",
    "status",
    "event",
    "category",
    "citizen_ref",
    "lat",
    "lon",
    "duplicate_of",
    "service_code",
    "token",
    "status_notes",
)
_INSERT_APPEAL = precompiled(
    insert(appeals)
    .on_conflict_do_nothing(constraint="appeals_source_external_id")
    .returning(appeals.c.case_id),
    _APPEAL_COLUMNS,
    returning=[appeals.c.case_id],
)


async def _find_duplicate(
    conn: AsyncConnection, intake: Intake, appeal: domain.Appeal
) -> domain.DuplicateMatch | None:
    category = appeal.category.category
    if category == UNCLASSIFIED or appeal.resolved_on_spot:
        return None
    # One writer per category at a time, so two repeats arriving together cannot both become primaries.
    await conn.execute(
        sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(f"dedupe:{category}", 0)))
    )
    policy = intake.duplicate_policy
    ref = domain.citizen_ref(appeal.contact.phone, intake.settings.citizen_ref_secret)
    window = max(policy.same_caller_window, policy.nearby_window)
    near = sa.false()
    if appeal.location is not None:
        # A bounding box a little larger than the radius; the exact distance is decided in the domain.
        d_lat = policy.nearby_radius_m / 111_000 * 1.5
        d_lon = d_lat / max(0.1, math.cos(math.radians(appeal.location.lat)))
        near = sa.and_(
            appeals.c.lat.between(appeal.location.lat - d_lat, appeal.location.lat + d_lat),
            appeals.c.lon.between(appeal.location.lon - d_lon, appeal.location.lon + d_lon),
        )
    same_caller = appeals.c.citizen_ref == ref if ref else sa.false()
    rows = (
        await conn.execute(
            sa.select(
                appeals.c.case_id,
                appeals.c.category,
                appeals.c.citizen_ref,
                appeals.c.lat,
                appeals.c.lon,
                appeals.c.received_at,
            )
            .where(
                appeals.c.category == category,
                appeals.c.status.in_(["open", "replied"]),
                appeals.c.duplicate_of.is_(None),
                appeals.c.received_at.between(appeal.received_at - window, appeal.received_at + window),
                sa.or_(same_caller, near),
            )
            .order_by(appeals.c.received_at)
            .limit(200)
        )
    ).all()
    candidates = [
        domain.OpenCase(r.case_id, r.category, r.citizen_ref, r.lat, r.lon, r.received_at) for r in rows
    ]
    lat = appeal.location.lat if appeal.location else None
    lon = appeal.location.lon if appeal.location else None
    return domain.find_duplicate(category, ref, lat, lon, appeal.received_at, candidates, policy)


async def _remembered(conn: AsyncConnection, key: IdempotencyKey, fingerprint: str) -> Recorded | None:
    row = (
        await conn.execute(
            sa.select(idempotency_keys.c.fingerprint, idempotency_keys.c.response).where(
                idempotency_keys.c.client_id == key.client_id, idempotency_keys.c.key == key.key
            )
        )
    ).first()
    if row is None:
        return None
    if row.fingerprint != fingerprint:
        raise Problem(
            422,
            "idempotency-key-reused",
            "This Idempotency-Key was already used for a different request body.",
            field="Idempotency-Key",
            case_id=row.response["case_id"],
        )
    answer = row.response
    return Recorded(
        answer["case_id"],
        False,
        answer.get("status", "received"),
        answer.get("duplicate_of"),
        answer.get("token"),
    )


async def _existing(conn: AsyncConnection, appeal: domain.Appeal):
    return (
        await conn.execute(
            sa.select(
                appeals.c.case_id,
                appeals.c.fingerprint,
                appeals.c.duplicate_of,
                appeals.c.token,
                appeals.c.status,
            ).where(appeals.c.source == appeal.source.value, appeals.c.external_id == appeal.external_id)
        )
    ).first()


def _replay(existing, fingerprint: str, external_id: str) -> Recorded:
    if existing.fingerprint != fingerprint:
        raise Problem(
            409,
            "external-id-conflict",
            f"{external_id!r} was already submitted with different content as case {existing.case_id}.",
            case_id=existing.case_id,
        )
    status = (
        "duplicate" if existing.duplicate_of else ("closed" if existing.status == "closed" else "received")
    )
    return Recorded(existing.case_id, False, status, existing.duplicate_of, existing.token)
