"""The citizen's side of an appeal (withdraw, add information, rate the reply) and the operator's audited
read of clear personal data."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import get_args

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from runtime.problems import Problem
from runtime.sql import custom_plans
from services.intake import domain
from services.intake.handlers import Intake
from services.intake.normalise import mask_numbers_in_text, normalise_optional
from services.intake.schemas import ContactField
from services.intake.tables import appeal_updates, appeals, feedback

_STATUS_AFTER = {"AppealWithdrawn": "withdrawn", "CaseClosed": "closed", "CaseReopened": "open"}


async def _locked_appeal(conn, case_id: str):
    row = (
        await conn.execute(
            sa.select(appeals.c.status, appeals.c.reopen_count, appeals.c.reply_count)
            .where(appeals.c.case_id == case_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise Problem(404, "case-not-found", f"No appeal {case_id} was received by intake.", case_id=case_id)
    return row


def _conflict(exc: domain.IllegalTransition, case_id: str) -> Problem:
    return Problem(409, "illegal-transition", str(exc), case_id=case_id, current_status=exc.status)


async def _apply(intake: Intake, conn, case_id: str, events: list, status: str) -> tuple[str, list[str]]:
    """Emit events and keep intake's own view of the status in step at once (the consumer agrees later)."""
    now_status = status
    for event in events:
        if not (now_status == "withdrawn" and type(event).__name__ == "CaseClosed"):
            now_status = _STATUS_AFTER.get(type(event).__name__, now_status)
    values: dict = {"status": now_status, "updated_at": sa.func.now()}
    for event in events:
        if type(event).__name__ == "CaseReopened":
            values["reopen_count"] = event.reopen_count
    if events:
        await intake.emit(conn, events)
        await conn.execute(sa.update(appeals).where(appeals.c.case_id == case_id).values(**values))
    return now_status, [e.type_name() for e in events]


async def withdraw(intake: Intake, case_id: str, reason: str | None, actor: str) -> tuple[str, list[str]]:
    """撤诉 (idempotent: withdrawing twice records it once)."""
    async with intake.engine.begin() as conn:
        row = await _locked_appeal(conn, case_id)
        try:
            events = domain.withdraw(
                case_id, row.status, normalise_optional(reason), datetime.now(UTC), actor
            )
        except domain.IllegalTransition as exc:
            raise _conflict(exc, case_id) from None
        return await _apply(intake, conn, case_id, events, row.status)


async def update(
    intake: Intake, case_id: str, addendum: str | None, attachments: tuple[str, ...], actor: str
) -> tuple[str, list[str]]:
    """补充诉求 (idempotent by content: the same addendum twice is recorded once)."""
    if addendum is None and not attachments:
        raise Problem(
            422,
            "validation-error",
            "Nothing to add.",
            errors=[
                {
                    "location": "body.description_addendum",
                    "message": "give an addendum or attachments",
                    "type": "missing",
                }
            ],
        )
    if len(attachments) > intake.settings.max_attachments:
        raise Problem(
            422,
            "validation-error",
            "Too many attachments.",
            errors=[
                {
                    "location": "body.attachments",
                    "message": f"at most {intake.settings.max_attachments}",
                    "type": "too_long",
                }
            ],
        )
    text = normalise_optional(addendum)
    masked = mask_numbers_in_text(text) if text else None
    fingerprint = domain.fingerprint(domain.CaseSource.HOTLINE, {"a": text, "u": list(attachments)})
    async with intake.engine.begin() as conn:
        row = await _locked_appeal(conn, case_id)
        fresh = await conn.execute(
            insert(appeal_updates).values(case_id=case_id, fingerprint=fingerprint).on_conflict_do_nothing()
        )
        if fresh.rowcount == 0:
            return row.status, []
        try:
            event = domain.update(case_id, row.status, masked, attachments, datetime.now(UTC), actor)
        except domain.IllegalTransition as exc:
            raise _conflict(exc, case_id) from None
        return await _apply(intake, conn, case_id, [event], row.status)


async def rate(
    intake: Intake, case_id: str, satisfaction: str, resolved: bool | None, comment: str | None, actor: str
) -> tuple[str, list[str]]:
    """回访评价 of the latest reply; the same rating retried is recognised, a different one conflicts."""
    comment = normalise_optional(comment)
    masked = mask_numbers_in_text(comment) if comment else None
    fingerprint = domain.fingerprint(
        domain.CaseSource.HOTLINE, {"s": domain.SATISFACTION[satisfaction], "r": resolved, "c": comment}
    )
    async with intake.engine.begin() as conn:
        row = await _locked_appeal(conn, case_id)
        earlier = (
            await conn.execute(
                sa.select(feedback.c.fingerprint).where(
                    feedback.c.case_id == case_id, feedback.c.reply_round == row.reply_count
                )
            )
        ).first()
        if earlier is not None and row.reply_count > 0:
            if earlier.fingerprint == fingerprint:
                return row.status, []
            raise Problem(
                409,
                "feedback-already-given",
                "This reply was already rated differently.",
                case_id=case_id,
                current_status=row.status,
            )
        try:
            events = domain.feedback(
                case_id,
                row.status,
                row.reopen_count,
                satisfaction,
                resolved,
                masked,
                datetime.now(UTC),
                actor,
            )
        except domain.IllegalTransition as exc:
            raise _conflict(exc, case_id) from None
        await conn.execute(
            sa.insert(feedback).values(case_id=case_id, reply_round=row.reply_count, fingerprint=fingerprint)
        )
        return await _apply(intake, conn, case_id, events, row.status)


CONTACT_FIELDS: tuple[str, ...] = get_args(ContactField)

# One statement: read the requested fields' ciphertexts of the cases asked for and log each case's access
# (only the fields the vault holds and the caller asked for). An SMS needs the phone alone: notify asks for
# that and nothing else (PIPL's minimum necessary); a reveal was ~13 % of intake's CPU under bench/e2e as
# three statements in a transaction (py-spy, 2026-11-29).
# The vault is read case by case on its primary key (LATERAL ... LIMIT 1, which PostgreSQL cannot fold into
# a join), planned for each call (``_revealed``). Written ``case_id = ANY($1)`` and left to asyncpg's
# prepared statement, the generic plan PostgreSQL settles on after five runs, made on a fresh district's
# near-empty vault, read the whole vault on every call: in a 20,000-case replay's drain 4.7 ms a request,
# 0.33 ms of PostgreSQL a message sent and over half of its execution time (pg_stat_statements,
# 2026-11-30). The LATERAL form's generic plan reads by key on a vault never analysed, but one made
# after an ANALYZE of a few hundred rows scans the vault once per case (EXPLAIN, 5-300 rows): hence a
# plan for each call, which reads the vault's current size.
_REVEAL = """
WITH vault AS (
    SELECT v.* FROM unnest($1::text[]) AS k(case_id)
    CROSS JOIN LATERAL (
        SELECT case_id, citizen_ref,
               CASE WHEN 'name' = ANY($4::text[]) THEN name_enc END AS name_enc,
               CASE WHEN 'phone' = ANY($4::text[]) THEN phone_enc END AS phone_enc,
               CASE WHEN 'id_number' = ANY($4::text[]) THEN id_number_enc END AS id_number_enc,
               CASE WHEN 'description' = ANY($4::text[]) THEN description_enc END AS description_enc
        FROM pii_vault WHERE pii_vault.case_id = k.case_id LIMIT 1
    ) v
), logged AS (
    INSERT INTO pii_access_log (case_id, client_id, purpose, fields)
    SELECT case_id, $2, $3, to_jsonb(array_remove(ARRAY[
        CASE WHEN name_enc IS NOT NULL THEN 'name' END,
        CASE WHEN phone_enc IS NOT NULL THEN 'phone' END,
        CASE WHEN id_number_enc IS NOT NULL THEN 'id_number' END,
        CASE WHEN description_enc IS NOT NULL THEN 'description' END
    ]::text[], NULL))
    FROM vault
    RETURNING id, case_id
)
SELECT vault.*, logged.id AS access_id FROM vault JOIN logged USING (case_id)
"""


async def reveal_contact(
    intake: Intake, case_id: str, client_id: str, purpose: str, fields: Sequence[str]
) -> dict:
    """Decrypt the requested ``fields`` of one case's personal data for an authorised operator, recording
    the access in the same statement."""
    async with intake.recording.acquire() as db:
        rows = await _revealed(db, [case_id], client_id, purpose, fields)
        row = rows[0] if rows else None
        if row is None:
            known = await db.fetchval("SELECT EXISTS (SELECT FROM appeals WHERE case_id = $1)", case_id)
    if row is None:
        detail = "This case holds no personal data." if known else f"No appeal {case_id} was received."
        raise Problem(404, "contact-not-found", detail, case_id=case_id)
    return _clear(intake, row)


async def reveal_contacts(
    intake: Intake, case_ids: Sequence[str], client_id: str, purpose: str, fields: Sequence[str]
) -> dict:
    """``reveal_contact`` for several cases in one statement: the cases found, in the order asked, and
    those holding no personal data (or unknown) apart."""
    wanted = list(dict.fromkeys(case_ids))
    async with intake.recording.acquire() as db:
        rows = await _revealed(db, wanted, client_id, purpose, fields)
    found = {row["case_id"]: row for row in rows}
    return {
        "contacts": [_clear(intake, found[case_id]) for case_id in wanted if case_id in found],
        "not_found": [case_id for case_id in wanted if case_id not in found],
    }


async def _revealed(
    db: asyncpg.Connection, case_ids: list[str], client_id: str, purpose: str, fields: Sequence[str]
) -> list[asyncpg.Record]:
    """``_REVEAL``'s rows, planned for these cases and the vault's current size (a transaction of its own
    for the setting)."""
    async with db.transaction(), custom_plans(db, to_commit=True):
        return await db.fetch(_REVEAL, case_ids, client_id, purpose, list(fields))


def _clear(intake: Intake, row) -> dict:
    """A revealed row with its fields decrypted (those not asked for are None)."""
    case_id = row["case_id"]
    clear = {f: intake.cipher.open(case_id, f, row[f"{f}_enc"]) for f in CONTACT_FIELDS}
    return {"case_id": case_id, "citizen_ref": row["citizen_ref"], **clear, "access_id": row["access_id"]}
