"""Routing's reference data as plain values: areas, departments, grids, categories and the rule set.

Built once per rule-set version (from the database or straight from the data files) and then only read,
so the decision function can stay pure and fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shapely.geometry.base import BaseGeometry


class Level(StrEnum):
    """Area levels of the responsibility matrix, most specific first."""

    GRID = "grid"
    COMMUNITY = "community"  # community, village or community-like committee
    TOWN = "town"  # street (街道) or town (镇)
    DISTRICT = "district"


LEVEL_ORDER: tuple[Level, ...] = (Level.GRID, Level.COMMUNITY, Level.TOWN, Level.DISTRICT)
NBS_LEVEL = {
    "district": Level.DISTRICT,
    "street": Level.TOWN,
    "town": Level.TOWN,
    "community": Level.COMMUNITY,
    "village": Level.COMMUNITY,
    "community_like": Level.COMMUNITY,
}
GRID_ASSIGNEE = "grid"  # the matrix's token for "the grid the point lies in"


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    nbs_level: str  # district | street | town | community | village | community_like
    parent_code: str | None
    aliases: tuple[str, ...] = ()

    @property
    def level(self) -> Level:
        return NBS_LEVEL[self.nbs_level]


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    kind: str = "district department"
    status: str = "synthetic"  # verified | synthetic


@dataclass(frozen=True)
class Grid:
    code: str
    name: str
    community_code: str
    town_code: str
    geometry: BaseGeometry
    synthetic: bool = True


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    scheme: str = ""
    aliases: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    """One row of the matrix: for ``category`` at ``level`` (inside ``area`` if set), these assignees."""

    id: str
    category: str
    level: Level
    assignees: tuple[str, ...]
    area: str | None = None


@dataclass(frozen=True)
class RuleSet:
    version: int
    label: str
    rules: tuple[Rule, ...]
    by_category: dict[str, tuple[Rule, ...]] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        grouped: dict[str, list[Rule]] = {}
        for rule in self.rules:
            grouped.setdefault(rule.category, []).append(rule)
        # Most specific first; an area-restricted rule before an unrestricted one at the same level.
        for category, rules in grouped.items():
            rules.sort(key=lambda r: (LEVEL_ORDER.index(r.level), r.area is None))
            self.by_category[category] = tuple(rules)


def parse_rules(items: list[dict[str, Any]]) -> tuple[Rule, ...]:
    """Matrix rows from YAML or JSON (``assignees`` a list of department codes and/or ``grid``)."""
    seen: set[str] = set()
    rules = []
    for item in items:
        rule = Rule(
            id=str(item["id"]),
            category=str(item["category"]),
            level=Level(item["level"]),
            assignees=tuple(str(a) for a in item["assignees"]),
            area=str(item["area"]) if item.get("area") else None,
        )
        if rule.id in seen:
            raise ValueError(f"duplicate rule id {rule.id}")
        if not rule.assignees:
            raise ValueError(f"rule {rule.id} names no assignee")
        if GRID_ASSIGNEE in rule.assignees and rule.level is not Level.GRID:
            raise ValueError(f"rule {rule.id}: only grid-level rules can assign to the grid")
        seen.add(rule.id)
        rules.append(rule)
    return tuple(rules)
