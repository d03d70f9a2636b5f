"""Values derived from a folded summary: columns, statistics contributions, worklist items, search grams.

Everything here is a pure function of the summary, so live projection and rebuild derive the same rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")
DISTRICT_PREFIX = "370114"
CLOSED_STATUSES = frozenset({"closed", "withdrawn", "duplicate"})
STAGES_FOR_ON_TIME = ("reply", "case")
SATISFACTION_COUNTERS = {
    "satisfied": "satisfied",
    "basically_satisfied": "basically_satisfied",
    "dissatisfied": "dissatisfied",
}
STAT_COUNTERS = (
    "received",
    "open",
    "closed",
    "timed",
    "on_time",
    "returned_cases",
    "returns",
    "handled",
    "handling_seconds",
    "rated",
    "satisfied",
    "basically_satisfied",
    "dissatisfied",
    "yellow",
    "red",
    "escalated",
)
StatKey = tuple[Any, str, str, str, str]  # day, category, town, department, source


def derive(state: dict[str, Any]) -> dict[str, Any]:
    """Fill the derived columns of ``state`` (in place) and return it."""
    settle(state)
    department = state.get("assignee_code") if state.get("assignee_kind") == "department" else None
    state["department_code"] = department
    state["handler_departments"] = sorted(
        {d for d in [department, *(state.get("co_handler_departments") or [])] if d}
    )
    state["is_open"] = state["status"] not in CLOSED_STATUSES
    state["case_due_at"] = _due(state, "case") or _due(state, "reply")
    state["on_time"] = _on_time(state)
    closed, received = state.get("closed_at"), state.get("received_at")
    state["handling_seconds"] = int((closed - received).total_seconds()) if closed and received else None
    state["search_text"] = search_text(state)
    return state


def settle(state: dict[str, Any]) -> dict[str, Any]:
    """Fill the derived columns that later events build on (in place): due after every event.

    Opening time, town and community depend on the order of events (the first area names the town); every
    other derived column is a function of the state alone and no event reads it, so a run of events
    needs it once, at the end (``derive``). Idempotent.
    """
    if state.get("received_at"):
        state["opened_at"] = state["received_at"]
    area = state.get("area_code") or ""
    if len(area) == 12 and area.startswith(DISTRICT_PREFIX):
        state.setdefault("town_code", None)
        state["town_code"] = state["town_code"] or area[:9] + "000"
        if not area.endswith("000"):
            state["community_code"] = state.get("community_code") or area
    return state


def _due(state: dict[str, Any], stage: str) -> datetime | None:
    deadline = (state.get("deadlines") or {}).get(stage)
    return datetime.fromisoformat(deadline["due_at"]) if deadline else None


def _on_time(state: dict[str, Any]) -> bool | None:
    due = _due(state, "reply") or _due(state, "case")
    replied = state.get("replied_at")
    if replied and due:
        return replied <= due
    if any(c["colour"] == "red" and c["stage"] in STAGES_FOR_ON_TIME for c in state.get("cards") or []):
        return False
    return None


def search_text(state: dict[str, Any]) -> str:
    """The text keyword search looks in, normalised (lower case, no whitespace runs)."""
    parts = (state.get(k) for k in ("case_id", "external_id", "title", "description", "address", "reply"))
    return normalise("\n".join(p for p in parts if p))


def normalise(text: str) -> str:
    """Lower-case and drop whitespace, so keyword matching ignores both."""
    return "".join(text.lower().split())


def grams(text: str) -> list[str]:
    """Every single character and every two-character window of ``text`` (already normalised).

    A keyword of one or two characters occurs in the text exactly when it is one of these grams; a longer
    keyword occurs only if all its bigrams do (the index narrows, ``LIKE`` confirms).
    """
    return sorted({*text, *map(str.__add__, text, text[1:])})


def keyword_grams(keyword: str) -> list[str]:
    """The grams a text must contain to possibly contain ``keyword``."""
    word = normalise(keyword)
    return [word] if len(word) <= 2 else sorted({word[k : k + 2] for k in range(len(word) - 1)})


def stat_contribution(state: dict[str, Any] | None) -> tuple[StatKey, dict[str, int]] | None:
    """What one case adds to the statistics table, or None for a placeholder not yet received."""
    if not state or not state.get("received_at"):
        return None
    key: StatKey = (
        state["received_at"].astimezone(CHINA).date(),
        state.get("category_code") or "",
        state.get("town_code") or "",
        state.get("department_code") or "",
        state.get("source") or "",
    )
    closed = state["status"] == "closed"
    satisfaction = SATISFACTION_COUNTERS.get(state.get("satisfaction") or "")
    cards = {c["colour"] for c in state.get("cards") or []}
    counters = {
        "received": 1,
        "open": int(state["is_open"]),
        "closed": int(closed),
        "timed": int(state.get("on_time") is not None),
        "on_time": int(bool(state.get("on_time"))),
        "returned_cases": int(state["return_count"] > 0),
        "returns": state["return_count"],
        "handled": int(closed and state.get("handling_seconds") is not None),
        "handling_seconds": (state.get("handling_seconds") or 0) if closed else 0,
        "rated": int(satisfaction is not None),
        "satisfied": int(satisfaction == "satisfied"),
        "basically_satisfied": int(satisfaction == "basically_satisfied"),
        "dissatisfied": int(satisfaction == "dissatisfied"),
        "yellow": int("yellow" in cards),
        "red": int("red" in cards),
        "escalated": int(state["escalation_level"] > 0),
    }
    return key, counters


def stat_deltas(
    changes: list[tuple[dict[str, Any] | None, dict[str, Any]]],
) -> dict[StatKey, dict[str, int]]:
    """Summed counter changes for (before, after) pairs of summaries; keys whose change is zero vanish."""
    deltas: dict[StatKey, dict[str, int]] = {}
    for before, after in changes:
        for sign, state in ((-1, before), (1, after)):
            found = stat_contribution(state)
            if found is None:
                continue
            key, counters = found
            bucket = deltas.setdefault(key, dict.fromkeys(STAT_COUNTERS, 0))
            for name, value in counters.items():
                bucket[name] += sign * value
    return {k: v for k, v in deltas.items() if any(v.values())}


def worklist_items(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The worklist rows of an open case: one for its grid or department assignee, one per co-handler."""
    if not state["is_open"] or not state.get("assignee_code"):
        return []
    owners = [(state["assignee_kind"], state["assignee_code"], "assignee")]
    owners += [("department", code, "co_handler") for code in state.get("co_handler_departments") or []]
    return [
        {
            "owner_kind": kind,
            "owner_code": code,
            "case_id": state["case_id"],
            "role": role,
            "status": state["status"],
            "card": state.get("card"),
            "escalation_level": state["escalation_level"],
            "due_at": state.get("case_due_at"),
            "opened_at": state["opened_at"],
        }
        for kind, code, role in owners
    ]
