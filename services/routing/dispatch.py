"""Work items on ``gridline.dispatch.<department code>``: what a department's own system receives.

One message per event that concerns the department (assigned to it, added as co-handler, taken away
from it). CloudEvents 1.0 in Kafka binary mode like the case log (``ce_type`` =
``gridline.dispatch.work-item.v1``, key = case id), JSON body = ``WorkItem``. Personal data is masked:
names and phone numbers as intake masked them, and any phone or ID number typed into the free text.
The contract is documented in docs/routing.md.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from cloudevents.core.bindings.kafka import to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import BaseModel, ConfigDict

from contracts.envelope import TRACE_HEADERS, OutboundMessage
from contracts.events.routing import Assignee, AssigneeKind, RoutingBasis
from runtime.logging import mask_pii

WORK_ITEM_TYPE = "gridline.dispatch.work-item.v1"
_FORMAT = JSONFormat()


class Named(BaseModel):
    model_config = ConfigDict(frozen=True)
    code: str
    name: str | None = None


class WorkItem(BaseModel):
    """One message on a department's dispatch topic (schema_version 1; fields are only ever added)."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    work_item_id: str
    action: Literal["assigned", "co-handle", "recalled"]
    role: Literal["primary", "co-handler"]
    case_id: str
    assignment_id: str
    attempt: int
    department: Named
    occurred_at: datetime
    received_at: datetime | None = None
    source: str | None = None
    appeal_type: str | None = None
    urgency: str | None = None
    reply_required: bool | None = None
    category: Named | None = None
    title: str | None = None
    description: str | None = None
    address: str | None = None
    location: dict[str, Any] | None = None  # {"lat", "lon", "crs": "WGS84"}
    area_code: str | None = None
    grid_code: str | None = None
    citizen: dict[str, str | None] = {}
    basis: RoutingBasis = RoutingBasis()
    recall_reason: str | None = None
    actions: dict[str, str] = {}


def _masked(text: str | None) -> str | None:
    return mask_pii(text) if text else text


def work_item(
    *,
    action: Literal["assigned", "co-handle", "recalled"],
    department: Assignee,
    case_id: str,
    assignment_id: str,
    attempt: int,
    basis: RoutingBasis,
    received: dict[str, Any] | None,
    category_name: str | None,
    occurred_at: datetime,
    primary: bool = True,
    recall_reason: str | None = None,
) -> WorkItem:
    """A work item from routing's record of the case (``received`` = the CaseReceived payload)."""
    r = received or {}
    citizen = r.get("citizen") or {}
    location = r.get("location")
    base = f"/v1/cases/{case_id}"
    return WorkItem(
        work_item_id=str(uuid.uuid4()),
        action=action,
        role="primary" if primary else "co-handler",
        case_id=case_id,
        assignment_id=assignment_id,
        attempt=attempt,
        department=Named(code=department.code, name=department.name),
        occurred_at=occurred_at,
        received_at=r.get("received_at"),
        source=r.get("source"),
        appeal_type=r.get("appeal_type"),
        urgency=r.get("urgency"),
        reply_required=r.get("reply_required"),
        category=Named(code=basis.category_code, name=category_name) if basis.category_code else None,
        title=_masked(r.get("title")),
        description=_masked(r.get("description")),
        address=_masked(r.get("address")),
        location={"lat": location["lat"], "lon": location["lon"], "crs": "WGS84"} if location else None,
        area_code=basis.area_code,
        grid_code=basis.grid_code,
        citizen={"name_masked": citizen.get("name_masked"), "phone_masked": citizen.get("phone_masked")},
        basis=basis,
        recall_reason=recall_reason,
        actions={}
        if action == "recalled"
        else {
            name: f"{base}/{name}"
            for name in (
                ("accept", "return", "transfer", "reply", "extension", "co-handle") if primary else ()
            )
        },
    )


def encode_work_item(
    item: WorkItem, *, source: str, topic: str, trace_headers: dict[str, str] | None = None
) -> OutboundMessage:
    """The work item as a Kafka message for the outbox, to the department's dispatch ``topic``."""
    value = orjson.dumps(item.model_dump(mode="json"))  # serialised once: the SDK passes bytes through
    ce = CloudEvent(
        attributes={
            "id": item.work_item_id,
            "source": source,
            "type": WORK_ITEM_TYPE,
            "subject": item.case_id,
            "time": datetime.now(UTC),
            "datacontenttype": "application/json",
        },
        data=value,
    )
    headers = list(to_binary(ce, _FORMAT).headers.items())
    for name, context in (trace_headers or {}).items():
        if name in TRACE_HEADERS:
            headers.append((name, context.encode()))
    return OutboundMessage(
        event_id=item.work_item_id,
        topic=topic,
        key=item.case_id,
        headers=headers,
        value=value,
        type=WORK_ITEM_TYPE,
    )


def is_department(assignee: Assignee | None) -> bool:
    return assignee is not None and assignee.kind is AssigneeKind.DEPARTMENT
