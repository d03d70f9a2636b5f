"""Deciding the messages one event causes: subscription rules x recipients x channels, rendered."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from contracts.events import CaseEvent
from contracts.events.routing import Assignee
from services.notify.domain.directory import Channel, Directory, endpoint_key
from services.notify.domain.facts import CaseFacts
from services.notify.domain.subscriptions import Audience, Subscription, SubscriptionTable
from services.notify.domain.templates import Renderer, context_for

# Context values a webhook receiver gets as structured data besides the rendered text.
PAYLOAD_KEYS = (
    "case_no",
    "title",
    "category_code",
    "address",
    "urgency",
    "description",
    "citizen_name_masked",
    "citizen_phone_masked",
    "assignee_name",
    "reply_due",
    "stage_name",
    "escalation_level",
)


@dataclass(frozen=True)
class Notice:
    """One message to send: at most one per (trigger event, recipient, channel)."""

    subscription: str
    recipient: str
    recipient_kind: str
    channel: str
    endpoint: str
    template: str
    title: str
    body: str
    payload: dict = field(default_factory=dict)
    quiet_hours: bool = False
    once_per_case: bool = False


def plan(
    event: CaseEvent,
    facts: CaseFacts,
    table: SubscriptionTable,
    directory: Directory,
    renderer: Renderer,
    links: dict[str, str],
) -> list[Notice]:
    """Every message ``event`` should cause, given the case facts after it."""
    notices: dict[tuple[str, str], Notice] = {}
    for rule in table.matching(event):
        for recipient_id, name in _audience(rule, event, facts):
            recipient = directory.recipient(recipient_id, name)
            if recipient is None:
                continue
            context = context_for(facts, event, recipient.kind, recipient.name, links)
            for route in recipient.routes:
                if rule.channels is not None and route.channel not in rule.channels:
                    continue
                if (recipient_id, route.channel) in notices:
                    continue  # an earlier rule already tells this recipient on this channel
                rendered = renderer.render(rule.template, route.channel, context)
                notices[(recipient_id, route.channel)] = Notice(
                    subscription=rule.id,
                    recipient=recipient_id,
                    recipient_kind=recipient.kind,
                    channel=route.channel.value,
                    endpoint=endpoint_key(route),
                    template=rule.template,
                    title=rendered.title,
                    body=rendered.body,
                    payload=_payload(context) if route.channel is Channel.WEBHOOK else {},
                    quiet_hours=recipient.kind == "citizen" and route.channel is Channel.SMS,
                    once_per_case=rule.once_per_case,
                )
    return list(notices.values())


def _audience(rule: Subscription, event: CaseEvent, facts: CaseFacts) -> list[tuple[str, str | None]]:
    match rule.audience:
        case Audience.CITIZEN:
            if facts.citizen_ref and facts.reply_required:
                return [(f"citizen:{facts.citizen_ref}", "市民")]
            return []
        case Audience.ASSIGNEE:
            return _assignees(getattr(event, "assignee", None))
        case Audience.TO_ASSIGNEE:
            return _assignees(getattr(event, "to_assignee", None))
        case Audience.FROM_ASSIGNEE:
            return _assignees(getattr(event, "from_assignee", None))
        case Audience.CO_HANDLERS:
            return _assignees(*getattr(event, "co_handlers", ()))
        case Audience.CURRENT_ASSIGNEE:
            return _assignees(facts.assignee or facts.last_assignee)
        case Audience.RECIPIENTS:
            return [(rid, None) for rid in rule.recipients]
    return []


def _assignees(*holders: Assignee | None) -> list[tuple[str, str | None]]:
    return [(f"{h.kind.value}:{h.code}", h.name) for h in holders if h is not None]


def _payload(context: dict) -> dict:
    data = {}
    for key in PAYLOAD_KEYS:
        value = context.get(key)
        if value is not None:
            data[key] = value.isoformat() if isinstance(value, datetime) else value
    return data
