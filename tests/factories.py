"""Factories for events and records, so tests don't repeat literals."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from contracts.envelope import OutboundMessage, encode_event
from contracts.events import CaseClosed, CaseReceived, CaseSource, CitizenContact

_counter = itertools.count(1)


def case_id() -> str:
    return f"TC{next(_counter):010d}"


def case_received(case: str | None = None, **overrides) -> CaseReceived:
    now = datetime.now(UTC)
    values = dict(
        case_id=case or case_id(),
        occurred_at=now,
        actor="hotline",
        source=CaseSource.HOTLINE,
        external_id=f"ext-{next(_counter)}",
        received_at=now,
        appeal_type="complaint",
        description="明水街道百脉泉路路灯不亮",
        address="章丘区明水街道百脉泉路",
        citizen=CitizenContact(name_masked="张*", phone_masked="138****1234", citizen_ref="cz_test"),
    )
    values.update(overrides)
    return CaseReceived(**values)


def case_closed(case: str, reason: str = "citizen_satisfied") -> CaseClosed:
    return CaseClosed(case_id=case, occurred_at=datetime.now(UTC), actor="intake", reason=reason)


def message(event, topic: str) -> OutboundMessage:
    return encode_event(event, source="/gridline/tests", topic=topic)
