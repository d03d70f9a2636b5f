"""Message templates: Jinja2, Simplified Chinese, one per template name and channel.

Files are ``<template>.<channel>.j2``; webhook and e-mail fall back to ``<template>.text.j2`` and SMS to
the first line of it. For e-mail and webhooks the first rendered line is the title (subject). SMS texts
get the gateway signature in front and are cut to the configured number of segments.

Templates only see the context built by ``context_for``, which leaves out whatever the audience is not
entitled to: citizens see their own case number and dates, staff see masked contact data only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

from contracts.events import CaseEvent
from services.notify.domain import sms
from services.notify.domain.facts import CaseFacts

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
CHINA_TZ = ZoneInfo("Asia/Shanghai")
STAGE_NAMES = {"sign_for": "签收", "return_window": "退单", "reply": "答复", "case": "办结"}
CLOSE_REASONS = {
    "resolved_on_spot": "已现场处置",
    "citizen_satisfied": "已办结",
    "no_feedback": "已办结",
    "withdrawn": "已按您的要求撤销",
    "duplicate": "已与相同诉求合并办理",
}
# Which kinds of recipient may see the appeal's content and the citizen's masked contact.
STAFF_HANDLING = frozenset({"department", "grid"})


@dataclass(frozen=True)
class Rendered:
    title: str
    body: str
    segments: int = 0  # SMS only


def cn_date(value: datetime | None) -> str:
    return (
        value.astimezone(CHINA_TZ).strftime("%Y年%m月%d日").replace("年0", "年").replace("月0", "月")
        if value
        else "—"
    )


def cn_datetime(value: datetime | None) -> str:
    return f"{cn_date(value)} {value.astimezone(CHINA_TZ):%H:%M}" if value else "—"


def clip(text: str | None, length: int) -> str:
    if not text:
        return ""
    return text if len(text) <= length else text[: max(0, length - 1)] + sms.ELLIPSIS


class Renderer:
    """Renders a template for a channel. Missing variables are errors, not blanks.

    The template files ship with the service and are read once: Jinja's file loader would otherwise
    check each file's modification time on every render, and the SMS fallback listed the directory on
    every message (os.walk: ~4 % of notify's samples under bench/e2e, 2026-11-28)."""

    def __init__(
        self, directory: Path = TEMPLATES_DIR, *, sms_signature: str = "", sms_max_segments: int = 2
    ):
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(directory),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # plain text: SMS, text/plain e-mail, JSON-encoded webhook fields
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            auto_reload=False,
        )
        self._env.filters.update(cn_date=cn_date, cn_datetime=cn_datetime, clip=clip)
        self._files = tuple(self._env.list_templates(extensions=["j2"]))
        self._selected: dict[tuple[str, str], jinja2.Template] = {}
        self._sms_signature = sms_signature
        self._sms_max_segments = sms_max_segments

    def render(self, template: str, channel: str, context: dict) -> Rendered:
        text = self._source(template, channel).render(**context).strip()
        title, _, rest = text.partition("\n")
        if channel == "sms":
            # A staff template without its own SMS file sends its title line as the text.
            lines = text.splitlines() if self._has(template, "sms") else [title]
            body = self._sms_signature + "".join(line.strip() for line in lines)
            body = sms.fit(body, self._sms_max_segments)
            return Rendered(title=title.strip(), body=body, segments=sms.segments(body))
        return Rendered(title=title.strip(), body=rest.strip() or title.strip())

    def names(self) -> list[str]:
        return list(self._files)

    def _has(self, template: str, channel: str) -> bool:
        return f"{template}.{channel}.j2" in self._files

    def _source(self, template: str, channel: str) -> jinja2.Template:
        key = (template, channel)
        if (found := self._selected.get(key)) is None:
            found = self._env.select_template([f"{template}.{channel}.j2", f"{template}.text.j2"])
            self._selected[key] = found
        return found


def context_for(
    facts: CaseFacts, event: CaseEvent, recipient_kind: str, recipient_name: str, links: dict[str, str]
) -> dict:
    """What a template for this kind of recipient may use."""
    context: dict = {
        "case_no": facts.case_id,
        "recipient_name": recipient_name,
        "deadlines": facts.deadlines,
        "reply_due": facts.deadlines.get("reply") or facts.deadlines.get("case"),
        "stage_name": STAGE_NAMES.get(str(getattr(getattr(event, "stage", None), "value", "")), ""),
        "close_reason": CLOSE_REASONS.get(str(getattr(event, "reason", "")), "已办结"),
        "assignee_name": _assignee_name(event, facts),
        "links": links,
        "occurred_at": event.occurred_at,
    }
    if recipient_kind == "citizen":
        return context  # the citizen's own case number, dates and links; nothing about anyone else
    context.update(
        event=event,
        title=facts.title or clip(facts.description, 20),
        category_code=facts.category_code,
        address=facts.address,
        urgency=facts.urgency,
        escalation_level=facts.escalation_level,
    )
    if recipient_kind in STAFF_HANDLING:
        context.update(
            description=facts.description,
            citizen_name_masked=facts.citizen_name_masked,
            citizen_phone_masked=facts.citizen_phone_masked,
        )
    return context


def _assignee_name(event: CaseEvent, facts: CaseFacts) -> str:
    for attr in ("to_assignee", "assignee"):
        holder = getattr(event, attr, None)
        if holder is not None:
            return holder.name
    holder = facts.assignee or facts.last_assignee
    return holder.name if holder else "承办单位"
