"""Events written by notify (the single writer of these types)."""

from __future__ import annotations

from contracts.events import CaseEvent

EVENTS: tuple[type[CaseEvent], ...] = ()
