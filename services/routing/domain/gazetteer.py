"""Address text → area: town and community names as citizens write them, old names included.

Citizens say 明水, 明水街道, 刁镇 (a town until 2020), 朱家峪村委会 (the 2022 name) or just 朱家峪. Each
area contributes its full name, its short forms and its aliases; the longest names found in the text
win. A community found together with its own town is the best answer; a community name that occurs in
one town only is accepted alone; an ambiguous one is ignored in favour of the town.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.routing.domain.refdata import Area, Level

# Suffixes of NBS committee names, longest first, and what remains a citizen would say.
_SUFFIXES = (
    ("社区居民委员会", ("社区", "")),
    ("类似居委会", ("",)),
    ("村村民委员会", ("村", "")),
    ("村民委员会", ("村", "")),
    ("居民委员会", ("",)),
    ("居委会", ("社区", "")),
    ("村委会", ("村", "")),
    ("街道", ("",)),
)
MIN_NAME = 2  # a one-character name would match almost any text
# A committee's name without 村/社区 is accepted from three characters on (朱家峪), and not when it is
# the start of a road's name: 门口 (a village) is in 政府门口, 汇泉 (a community) in 汇泉路.
MIN_BARE_COMMITTEE = 3
ROAD_SUFFIXES = "路街巷道大桥"


def name_variants(name: str, *, committee: bool = False) -> set[str]:
    """The ways one official name is written in addresses (``committee``: a village or community)."""
    variants = {name}
    for suffix, replacements in _SUFFIXES:
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            for repl in replacements:
                if repl or not committee or len(stem) >= MIN_BARE_COMMITTEE:
                    variants.add(stem + repl)
            break
    if name.endswith("镇"):
        variants.add(name[:-1])
    return {v for v in variants if len(v) >= MIN_NAME}


def _named_in(variant: str, text: str, bare: bool) -> bool:
    """Whether ``text`` names ``variant`` (a bare committee name must not start a road's name)."""
    start = text.find(variant)
    while start >= 0:
        after = text[start + len(variant) : start + len(variant) + 1]
        if not bare or not after or after not in ROAD_SUFFIXES:
            return True
        start = text.find(variant, start + 1)
    return False


@dataclass(frozen=True)
class Match:
    area: Area
    matched: str  # the text that matched
    town: Area | None


class Gazetteer:
    """Finds the most specific area an address names."""

    def __init__(self, areas: Iterable[Area]) -> None:
        self._areas = {a.code: a for a in areas}
        self._variants: dict[str, list[Area]] = {}
        self._bare: set[str] = set()
        for area in self._areas.values():
            if area.level is Level.DISTRICT:
                continue
            committee = area.level is Level.COMMUNITY
            names = name_variants(area.name, committee=committee)
            for alias in area.aliases:
                names |= name_variants(alias, committee=committee)
            for variant in names:
                self._variants.setdefault(variant, []).append(area)
                if committee and not variant.endswith(("村", "社区", "委员会", "居委会", "村委会")):
                    self._bare.add(variant)
        # Longest first, so 明水街道 is tried before 明水 and 朱家峪村委会 before 朱家峪.
        self._ordered = sorted(self._variants, key=len, reverse=True)

    def town_of(self, area: Area) -> Area | None:
        current: Area | None = area
        while current is not None and current.level is not Level.TOWN:
            current = self._areas.get(current.parent_code or "")
        return current

    def resolve(self, text: str | None) -> Match | None:
        """The best area named in ``text``, or None."""
        if not text:
            return None
        found: list[tuple[str, Area]] = []
        for variant in self._ordered:
            if variant in text and _named_in(variant, text, variant in self._bare):
                found.extend((variant, area) for area in self._variants[variant])
        if not found:
            return None
        towns = [(v, a) for v, a in found if a.level is Level.TOWN]
        communities = [(v, a) for v, a in found if a.level is Level.COMMUNITY]
        if towns:
            town_variant, town = max(towns, key=lambda va: len(va[0]))
            # 双山 names both 双山街道 and its 双山村: the words that named the town name only the town.
            inside = [(v, a) for v, a in communities if a.parent_code == town.code and v not in town_variant]
            if inside:
                variant, area = max(inside, key=lambda va: len(va[0]))
                return Match(area, variant, town)
            return Match(town, town_variant, town)
        by_variant: dict[str, set[str]] = {}
        for variant, area in communities:
            by_variant.setdefault(variant, set()).add(area.code)
        unique = [(v, a) for v, a in communities if len(by_variant[v]) == 1]
        if unique:
            variant, area = max(unique, key=lambda va: len(va[0]))
            return Match(area, variant, self.town_of(area))
        return None
