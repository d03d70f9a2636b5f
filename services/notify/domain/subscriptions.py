"""The subscription table: which event tells whom, with which template, over which channels.

Loaded from YAML (defaults in services/notify/data/subscriptions.yaml, replaceable by setting
``GRIDLINE_NOTIFY_SUBSCRIPTIONS_FILE``). Matching is pure: an event and the case facts in, audiences out.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from contracts.events import CaseEvent


class Audience(StrEnum):
    CITIZEN = "citizen"  # the appellant, through intake's contact directory
    ASSIGNEE = "assignee"  # event.assignee (assigned, returned, ...)
    TO_ASSIGNEE = "to_assignee"  # event.to_assignee (transferred)
    FROM_ASSIGNEE = "from_assignee"  # event.from_assignee (transferred)
    CO_HANDLERS = "co_handlers"  # event.co_handlers (assigned)
    CURRENT_ASSIGNEE = "current_assignee"  # who holds (or last held) the case, from the facts
    RECIPIENTS = "recipients"  # the fixed recipient ids listed on the rule (supervisors)


class Subscription(BaseModel):
    """One row of the table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    event: str = Field(description="Short event name, e.g. 'assigned' (gridline.case.assigned.v1).")
    when: dict[str, list[str]] = Field(
        default_factory=dict, description="Event attribute (dotted path) -> accepted values."
    )
    audience: Audience
    recipients: list[str] = Field(default_factory=list)
    template: str
    channels: list[str] | None = Field(None, description="Restrict to these channels; None = all routes.")
    once_per_case: bool = Field(False, description="Send at most once per case and recipient.")

    def matches(self, event: CaseEvent) -> bool:
        if event.name != self.event:
            return False
        return all(_as_text(_lookup(event, path)) in allowed for path, allowed in self.when.items())


class SubscriptionTable(BaseModel):
    model_config = ConfigDict(frozen=True)

    subscriptions: list[Subscription]

    @classmethod
    def from_yaml(cls, path: Path) -> SubscriptionTable:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for rule in data.get("subscriptions", []):
            rule["when"] = {
                k: [str(x) for x in (v if isinstance(v, list) else [v])]
                for k, v in (rule.get("when") or {}).items()
            }
        return cls.model_validate(data)

    def matching(self, event: CaseEvent) -> list[Subscription]:
        """Rules that fire for ``event``, in table order."""
        return [rule for rule in self.subscriptions if rule.matches(event)]


def _lookup(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part, None)
    return obj


def _as_text(value: Any) -> str:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
