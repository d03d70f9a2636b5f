"""Intake's service layer: record an appeal, its PII and its CaseReceived event in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.envelope import encode_event
from contracts.events import CaseReceived, CaseSource, Location
from runtime.outbox import current_trace_headers, enqueue
from runtime.problems import Problem
from services.intake import domain
from services.intake.config import IntakeSettings
from services.intake.schemas import HotlineOrderCreate
from services.intake.tables import appeals, pii_vault


@dataclass(frozen=True)
class Recorded:
    case_id: str
    created: bool


@dataclass(frozen=True)
class Contact:
    name: str | None
    phone: str | None


async def receive_hotline_order(
    engine: AsyncEngine, settings: IntakeSettings, source: str, order: HotlineOrderCreate
) -> Recorded:
    """Turn a 12345 work order into a case (idempotent on the order number)."""
    contact = Contact(order.caller_name, order.caller_phone)
    location = None
    if order.coordinates is not None:
        location = Location(
            lat=order.coordinates.lat, lon=order.coordinates.lon, reported_crs=order.coordinates.crs
        )

    def build(case_id: str, now: datetime) -> CaseReceived:
        return CaseReceived(
            case_id=case_id,
            occurred_at=now,
            actor="hotline",
            source=CaseSource.HOTLINE,
            external_id=order.order_no,
            received_at=order.called_at,
            appeal_type=order.appeal_type,
            category_code=order.category_code,
            description=order.content,
            address=order.address,
            location=location,
            urgency=order.urgency,
            reply_required=order.reply_required,
            citizen=domain.citizen_contact(contact.name, contact.phone, settings.citizen_ref_secret),
        )

    return await record_appeal(
        engine,
        settings,
        source,
        CaseSource.HOTLINE,
        order.order_no,
        order.model_dump(mode="json"),
        contact,
        build,
    )


async def record_appeal(
    engine: AsyncEngine,
    settings: IntakeSettings,
    event_source: str,
    source: CaseSource,
    external_id: str,
    submission: dict,
    contact: Contact,
    build,
) -> Recorded:
    """Insert appeal + vault + outbox row atomically; a retry of the same submission returns the same case.

    ``build(case_id, now)`` makes the CaseReceived payload once the case number is known.
    """
    fingerprint = domain.fingerprint(source, submission)
    async with engine.begin() as conn:
        existing = await _existing(conn, source, external_id)
        if existing is not None:
            return _replay(existing, fingerprint, external_id)
        now = datetime.now(UTC)
        sequence = (await conn.execute(sa.text("SELECT nextval('case_number_seq')"))).scalar_one()
        case_id = domain.case_number(settings.case_id_prefix, now, sequence)
        event = build(case_id, now)
        inserted = await conn.execute(
            insert(appeals)
            .values(
                case_id=case_id,
                source=source.value,
                external_id=external_id,
                fingerprint=fingerprint,
                received_at=event.received_at,
                event=event.model_dump(mode="json"),
            )
            .on_conflict_do_nothing(constraint="appeals_source_external_id")
            .returning(appeals.c.case_id)
        )
        if inserted.first() is None:  # a concurrent retry won the race
            existing = await _existing(conn, source, external_id)
            assert existing is not None
            return _replay(existing, fingerprint, external_id)
        if contact.name or contact.phone:
            await conn.execute(
                sa.insert(pii_vault).values(
                    case_id=case_id,
                    citizen_ref=event.citizen.citizen_ref,
                    name=contact.name,
                    phone=contact.phone,
                )
            )
        message = encode_event(
            event,
            source=event_source,
            topic=settings.case_events_topic,
            trace_headers=current_trace_headers(),
        )
        await enqueue(conn, [message])
    return Recorded(case_id=case_id, created=True)


async def _existing(conn, source: CaseSource, external_id: str):
    return (
        await conn.execute(
            sa.select(appeals.c.case_id, appeals.c.fingerprint).where(
                appeals.c.source == source.value, appeals.c.external_id == external_id
            )
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
    return Recorded(case_id=existing.case_id, created=False)
