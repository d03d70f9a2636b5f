"""Projection's pure domain: the fold of case events into summaries, and what derives from a summary."""

from services.projection.domain.derive import (
    CHINA,
    CLOSED_STATUSES,
    STAT_COUNTERS,
    grams,
    keyword_grams,
    normalise,
    stat_contribution,
    stat_deltas,
    worklist_items,
)
from services.projection.domain.fold import Summary, apply, apply_all, new_summary

__all__ = [
    "CHINA",
    "CLOSED_STATUSES",
    "STAT_COUNTERS",
    "Summary",
    "apply",
    "apply_all",
    "grams",
    "keyword_grams",
    "new_summary",
    "normalise",
    "stat_contribution",
    "stat_deltas",
    "worklist_items",
]
