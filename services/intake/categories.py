"""Gridline's one category table (data/categories.csv) and the address gazetteer (data/zhangqiu_areas.csv).

Each source keeps its own codes; ``classify`` maps a source code into the unified category. An unknown
code is not an error: the case gets ``unclassified`` and routing sends it to triage.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from services.intake.normalise import normalise_text

DATA = Path(__file__).resolve().parent / "data"
UNCLASSIFIED = "unclassified"


@dataclass(frozen=True)
class Category:
    """Where one source code lands in Gridline's table."""

    category: str
    category_name: str
    source: str
    kind: str
    source_code: str
    source_name: str


UNKNOWN = Category(UNCLASSIFIED, "未分类（待人工分拨）", "", "", "", "")


class CategoryTable:
    """Rows keyed by (source, code) and (source, name)."""

    def __init__(self, rows: tuple[Category, ...]) -> None:
        self.rows = rows
        self.by_key: dict[tuple[str, str], list[Category]] = {}
        for row in rows:
            self.by_key.setdefault((row.source, row.source_code), []).append(row)
            if row.source_name != row.source_code:
                self.by_key.setdefault((row.source, row.source_name), []).append(row)

    def lookup(self, source: str, code: str, kinds: tuple[str, ...] = ()) -> Category | None:
        """The row for ``code`` in ``source`` (preferring ``kinds`` in order); None if unknown."""
        matches = self.by_key.get((source, normalise_text(code)), [])
        for kind in kinds:
            for row in matches:
                if row.kind == kind:
                    return row
        return matches[0] if matches else None

    def names(self) -> dict[str, str]:
        """Unified category code -> Chinese name."""
        names = {row.category: row.category_name for row in self.rows}
        names[UNCLASSIFIED] = UNKNOWN.category_name
        return names


@lru_cache(maxsize=1)
def table() -> CategoryTable:
    """The shipped table (rebuilt by ``python -m services.intake.data.build_categories``)."""
    with (DATA / "categories.csv").open(encoding="utf-8") as source:
        rows = tuple(
            Category(
                r["category"], r["category_name"], r["source"], r["kind"], r["source_code"], r["source_name"]
            )
            for r in csv.DictReader(source)
        )
    return CategoryTable(rows)


def classify(feed: str, code: str | None) -> Category:
    """Map a feed's category code into the unified table.

    A grid app may send a grid event class (``矛盾纠纷/7`` or its name) or a 数字城管 event/component code
    (``event:06018``, ``component:01001`` or a bare code, events first); the hotline sends its content
    classes (``9001`` or a name) and may also use 数字城管 event codes.
    """
    if not code or not code.strip():
        return UNKNOWN
    known = table()
    code = normalise_text(code)
    if code.startswith(("event:", "component:")):
        kind, _, bare = code.partition(":")
        return known.lookup("dcm", bare, (kind,)) or UNKNOWN
    return known.lookup(feed, code) or known.lookup("dcm", code, ("event", "component")) or UNKNOWN


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    level: str
    parent_code: str


@dataclass(frozen=True)
class Place:
    """What an address text names: the town (street/town) and the community or village, when found."""

    town_code: str | None = None
    town_name: str | None = None
    community_code: str | None = None
    community_name: str | None = None


_SUFFIXES = ("社区居民委员会", "居民委员会", "村民委员会", "居委会", "村委会")


@lru_cache(maxsize=1)
def _gazetteer() -> tuple[list[tuple[str, Area]], list[tuple[str, Area]]]:
    areas: dict[str, Area] = {}
    with (DATA / "zhangqiu_areas.csv").open(encoding="utf-8") as source:
        for r in csv.DictReader(source):
            areas[r["code"]] = Area(r["code"], r["name"], r["level"], r["parent_code"])
    aliases: dict[str, set[str]] = {code: {area.name} for code, area in areas.items()}
    # Citizens still use the 2022 names (明一居委会) and drop the committee suffix (明一社区, 东岭村).
    with (DATA / "zhangqiu_areas_changes_2022_2023.csv").open(encoding="utf-8") as source:
        for r in csv.DictReader(source):
            if r["code"] in aliases and r["name_2022"]:
                aliases[r["code"]].add(r["name_2022"])
    towns, communities = [], []
    for code, area in areas.items():
        names = set(aliases[code])
        for name in list(names):
            for suffix in _SUFFIXES:
                if name.endswith(suffix) and len(name) > len(suffix):
                    stem = name[: -len(suffix)]
                    names.add(stem + ("村" if "村" in suffix else "社区"))
        if area.level in {"street", "town"}:
            names.add(
                area.name.removesuffix("街道").removesuffix("镇") + ("街道" if "街道" in area.name else "镇")
            )
            towns.extend((name, area) for name in names)
        elif area.level.startswith("community") or area.level == "village":
            communities.extend((name, area) for name in names if len(name) >= 3)
    # Longest names first, so 桃花山西区社区 wins over 桃花山社区.
    towns.sort(key=lambda item: -len(item[0]))
    communities.sort(key=lambda item: -len(item[0]))
    return towns, communities


@dataclass(frozen=True)
class _NameIndex:
    """Gazetteer names by text, so an address is matched by looking up its substrings instead of testing
    every one of the district's ~2,000 names against it: at each position of the address only the lengths
    of the names that begin with its character there (a few dict probes, not one per name length)."""

    entries: list[tuple[str, Area]]
    positions: dict[str, list[int]]
    lengths_by_first: dict[str, tuple[int, ...]]

    @classmethod
    def of(cls, entries: list[tuple[str, Area]]) -> _NameIndex:
        positions: dict[str, list[int]] = {}
        for position, (name, _) in enumerate(entries):
            positions.setdefault(name, []).append(position)
        lengths: dict[str, set[int]] = {}
        for name in positions:
            lengths.setdefault(name[0], set()).add(len(name))
        return cls(entries, positions, {first: tuple(sorted(ls)) for first, ls in lengths.items()})

    def named_in(self, text: str) -> list[Area]:
        """Areas whose name occurs in ``text``, in gazetteer order (longest names first)."""
        found: set[int] = set()
        for start, first in enumerate(text):
            for length in self.lengths_by_first.get(first, ()):
                hit = self.positions.get(text[start : start + length])
                if hit:
                    found.update(hit)
        return [self.entries[position][1] for position in sorted(found)]


@lru_cache(maxsize=1)
def _indexes() -> tuple[_NameIndex, _NameIndex]:
    towns, communities = _gazetteer()
    return _NameIndex.of(towns), _NameIndex.of(communities)


def locate_address(address: str | None) -> Place:
    """Town and community named in an address text (章丘区明水街道明一社区…), by gazetteer match."""
    if not address:
        return Place()
    text = normalise_text(address)
    towns, communities = _indexes()
    town = next(iter(towns.named_in(text)), None)
    community = next(
        (area for area in communities.named_in(text) if town is None or area.parent_code == town.code),
        None,
    )
    if community is not None and town is None:
        town = next((area for _, area in towns.entries if area.code == community.parent_code), None)
    return Place(
        town.code if town else None,
        town.name if town else None,
        community.code if community else None,
        community.name if community else None,
    )
