"""Intake's pure domain: turning an appeal into a case, masking personal data, case numbers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import orjson

from contracts.events import (
    AppealType,
    CaseEvent,
    CaseSource,
    CitizenContact,
    Location,
    Urgency,
)
from contracts.events.intake import (
    AppealUpdated,
    AppealWithdrawn,
    CaseClosed,
    CaseReceived,
    CaseReopened,
    DuplicateLinked,
    FeedbackReceived,
)
from services.intake.categories import UNCLASSIFIED, Category, Place
from services.intake.geo import distance_m
from services.intake.normalise import mask_e164, mask_id_number

CHINA_TZ = ZoneInfo("Asia/Shanghai")


def case_number(prefix: str, received_at: datetime, sequence: int) -> str:
    """Human-readable case number: prefix, local date, six-digit sequence (ZQ20261126000042)."""
    local = received_at.astimezone(CHINA_TZ)
    return f"{prefix}{local:%Y%m%d}{sequence:06d}"


def mask_phone(phone: str | None) -> str | None:
    """138****5678 for mobiles; keep area code and last four for landlines."""
    if not phone:
        return None
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"


def mask_name(name: str | None) -> str | None:
    """张** / 欧阳** : keep the surname character, hide the rest."""
    if not name:
        return None
    return name[0] + "*" * max(1, len(name) - 1)


def citizen_ref(phone: str | None, secret: str) -> str | None:
    """Stable opaque reference for one citizen's phone (keyed hash), usable for dedupe without PII."""
    if not phone:
        return None
    digits = "".join(ch for ch in phone if ch.isdigit())
    return "cz_" + hashlib.blake2b(digits.encode(), key=secret.encode()[:64], digest_size=12).hexdigest()


def fingerprint(source: CaseSource, payload: dict) -> str:
    """Hash of a submission, to tell a retry (same body) from a conflicting reuse of an external id."""
    return hashlib.sha256(
        source.value.encode() + orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()


# --- Appeals: one normalised shape for every feed, and the events it becomes ---------------------------


class InvalidField(ValueError):
    """A submitted field that normalisation cannot accept (answered with 422 naming the field)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Contact:
    """A citizen's clear personal data: only ever written to the vault, never to events or logs."""

    name: str | None = None
    phone: str | None = None  # E.164
    id_number: str | None = None

    def __bool__(self) -> bool:
        return bool(self.name or self.phone or self.id_number)


@dataclass(frozen=True)
class Appeal:
    """A submission from any feed after normalisation, ready to become a case."""

    source: CaseSource
    external_id: str
    received_at: datetime
    description: str  # normalised, with numbers typed into the text masked
    description_clear: str  # normalised, unmasked (vault only, when it differs)
    category: Category
    category_code: str | None = None
    title: str | None = None
    appeal_type: AppealType | None = None
    address: str | None = None
    location: Location | None = None
    outside_jurisdiction: bool = False
    place: Place = Place()
    grid_code: str | None = None
    reporter_id: str | None = None
    urgency: Urgency = Urgency.NORMAL
    reply_required: bool = True
    attachments: tuple[str, ...] = ()
    resolved_on_spot: bool = False
    service_code: str | None = None
    contact: Contact = Contact()
    actor: str = "intake"

    def triage_reasons(self) -> tuple[str, ...]:
        reasons = []
        if self.outside_jurisdiction:
            reasons.append("outside_jurisdiction")
        if self.category.category == UNCLASSIFIED:
            reasons.append("unclassified_category")
        return tuple(reasons)


def case_received(
    appeal: Appeal, case_id: str, now: datetime, secret: str, duplicate_of: str | None = None
) -> CaseReceived:
    """The CaseReceived event of an appeal: masked contact, vault reference, normalised fields only."""
    contact = appeal.contact
    return CaseReceived(
        case_id=case_id,
        occurred_at=now,
        actor=appeal.actor,
        source=appeal.source,
        external_id=appeal.external_id,
        received_at=appeal.received_at,
        appeal_type=appeal.appeal_type,
        category_code=appeal.category_code,
        category=appeal.category.category,
        category_name=appeal.category.category_name,
        title=appeal.title,
        description=appeal.description,
        address=appeal.address,
        location=appeal.location,
        town_code=appeal.place.town_code,
        community_code=appeal.place.community_code,
        grid_code=appeal.grid_code,
        reporter_id=appeal.reporter_id,
        outside_jurisdiction=appeal.outside_jurisdiction,
        triage_reasons=appeal.triage_reasons(),
        urgency=appeal.urgency,
        reply_required=appeal.reply_required,
        citizen=CitizenContact(
            name_masked=mask_name(contact.name),
            phone_masked=mask_e164(contact.phone),
            citizen_ref=citizen_ref(contact.phone, secret),
            id_number_masked=mask_id_number(contact.id_number),
        ),
        attachments=appeal.attachments,
        resolved_on_spot=appeal.resolved_on_spot,
        duplicate_of=duplicate_of,
        service_code=appeal.service_code,
    )


def closed_on_spot(case_id: str, now: datetime, actor: str) -> CaseClosed:
    """即知即改: the grid member fixed it; the case is recorded and closed without dispatch."""
    return CaseClosed(case_id=case_id, occurred_at=now, actor=actor, reason="resolved_on_spot")


# --- Duplicates (重复件) ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DuplicatePolicy:
    same_caller_window: timedelta = timedelta(days=7)
    nearby_radius_m: float = 250.0
    nearby_window: timedelta = timedelta(hours=48)


@dataclass(frozen=True)
class OpenCase:
    """What dedupe needs to know about an earlier, still open, primary case."""

    case_id: str
    category: str
    citizen_ref: str | None
    lat: float | None
    lon: float | None
    received_at: datetime


@dataclass(frozen=True)
class DuplicateMatch:
    primary_case_id: str
    reason: str
    similarity: float


def find_duplicate(
    category: str,
    citizen: str | None,
    lat: float | None,
    lon: float | None,
    received_at: datetime,
    candidates: list[OpenCase],
    policy: DuplicatePolicy,
) -> DuplicateMatch | None:
    """The earliest open case this appeal repeats, or None.

    Same caller and category within the caller window, or same category within the radius and the nearby
    window. Unclassified appeals are never linked: without a category, "same problem" cannot be told.
    """
    if category == UNCLASSIFIED:
        return None
    matches: list[tuple[datetime, DuplicateMatch]] = []
    for case in candidates:
        if case.category != category:
            continue
        age = abs(received_at - case.received_at)
        if citizen and case.citizen_ref == citizen and age <= policy.same_caller_window:
            matches.append((case.received_at, DuplicateMatch(case.case_id, "same_caller_same_category", 1.0)))
            continue
        if None in (lat, lon, case.lat, case.lon) or age > policy.nearby_window:
            continue
        metres = distance_m(lat, lon, case.lat, case.lon)  # type: ignore[arg-type]
        if metres <= policy.nearby_radius_m:
            similarity = round(1.0 - metres / (2 * policy.nearby_radius_m), 3)
            matches.append(
                (
                    case.received_at,
                    DuplicateMatch(case.case_id, f"same_category_within_{metres:.0f}m", similarity),
                )
            )
    return min(matches, key=lambda item: item[0])[1] if matches else None


def duplicate_linked(case_id: str, match: DuplicateMatch, now: datetime) -> DuplicateLinked:
    return DuplicateLinked(
        case_id=case_id,
        occurred_at=now,
        actor="intake",
        primary_case_id=match.primary_case_id,
        similarity=match.similarity,
        reason=match.reason,
    )


# --- The citizen's side: an appeal's life as intake sees it ---------------------------------------------

SATISFACTION = {
    "满意": "satisfied",
    "基本满意": "basically_satisfied",
    "不满意": "dissatisfied",
    "satisfied": "satisfied",
    "basically_satisfied": "basically_satisfied",
    "dissatisfied": "dissatisfied",
}


class IllegalTransition(Exception):
    """The appeal's current status does not allow the action (answered with 409 naming it)."""

    def __init__(self, action: str, status: str) -> None:
        super().__init__(f"cannot {action} an appeal that is {status}")
        self.action = action
        self.status = status


def withdraw(case_id: str, status: str, reason: str | None, now: datetime, actor: str) -> list[CaseEvent]:
    """撤诉: withdrawn and closed. Already withdrawn: nothing more to do (idempotent)."""
    if status == "withdrawn":
        return []
    if status == "closed":
        raise IllegalTransition("withdraw", status)
    return [
        AppealWithdrawn(case_id=case_id, occurred_at=now, actor=actor, reason=reason),
        CaseClosed(case_id=case_id, occurred_at=now, actor=actor, reason="withdrawn", note=reason),
    ]


def update(
    case_id: str, status: str, addendum: str | None, attachments: tuple[str, ...], now: datetime, actor: str
) -> AppealUpdated:
    """补充诉求 on an appeal that is still open."""
    if status in {"closed", "withdrawn"}:
        raise IllegalTransition("update", status)
    return AppealUpdated(
        case_id=case_id, occurred_at=now, actor=actor, description_addendum=addendum, attachments=attachments
    )


def feedback(
    case_id: str,
    status: str,
    reopen_count: int,
    satisfaction: str,
    resolved: bool | None,
    comment: str | None,
    now: datetime,
    actor: str,
) -> list[CaseEvent]:
    """回访评价 after a reply: 满意/基本满意 close the case, 不满意 reopens it for rework (重办)."""
    if status != "replied":
        raise IllegalTransition("give feedback on", status)
    value = SATISFACTION[satisfaction]
    events: list[CaseEvent] = [
        FeedbackReceived(
            case_id=case_id,
            occurred_at=now,
            actor=actor,
            satisfaction=value,
            resolved=resolved,
            comment=comment,
        )
    ]
    if value == "dissatisfied":
        events.append(
            CaseReopened(
                case_id=case_id,
                occurred_at=now,
                actor=actor,
                reason=comment or "市民不满意",
                reopen_count=reopen_count + 1,
            )
        )
    else:
        events.append(CaseClosed(case_id=case_id, occurred_at=now, actor=actor, reason="citizen_satisfied"))
    return events
