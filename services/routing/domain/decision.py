"""The routing decision: where is it, what is it, who handles it — or district triage.

1. Location: the WGS84 point's grid (STRtree point-in-polygon) gives grid → community → town; with no
   point, or a point outside every grid, the address text is matched against the gazetteer.
2. Category: the case's code (or a source code listed as its alias); with no code, the title and
   description are searched for the category keywords. An unknown code is never guessed at.
3. Matrix: the category's rules, most specific level first, limited to levels the location supports;
   inside a rule the assignees are tried in order, skipping any that already returned the case.
Anything missing sends the case to triage. Every decision carries the rule id, the rule-set version and
a Chinese sentence saying why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from contracts.events.routing import Assignee, AssigneeKind, RoutingBasis
from services.routing.domain.gazetteer import Gazetteer
from services.routing.domain.geo import GridIndex
from services.routing.domain.refdata import (
    GRID_ASSIGNEE,
    LEVEL_ORDER,
    Area,
    Category,
    Department,
    Grid,
    Level,
    Rule,
    RuleSet,
)

LEVEL_ZH = {Level.GRID: "网格级", Level.COMMUNITY: "社区/村级", Level.TOWN: "街镇级", Level.DISTRICT: "区级"}


@dataclass(frozen=True)
class CaseFacts:
    """What routing needs to know about a case (from CaseReceived)."""

    category_code: str | None = None  # the source's own code (06028, event:06028, 矛盾纠纷/7, 9001 …)
    lon: float | None = None  # WGS84
    lat: float | None = None
    address: str | None = None
    title: str | None = None
    description: str = ""
    unified_category: str | None = None  # intake's coarse category (noise, city_appearance …)
    town_code: str | None = None  # what intake already resolved, when it did
    community_code: str | None = None
    grid_code: str | None = None
    outside_jurisdiction: bool = False


@dataclass(frozen=True)
class Decision:
    """An assignee (or None: triage) and the basis to explain and audit it."""

    assignee: Assignee | None
    basis: RoutingBasis

    @property
    def triage(self) -> bool:
        return self.assignee is None


def assignee_key(assignee: Assignee) -> str:
    """How exclusions name an assignee: ``department:CGJ`` or ``grid:<code>``."""
    return f"{assignee.kind.value}:{assignee.code}"


@dataclass(frozen=True)
class Located:
    grid: Grid | None = None
    community: Area | None = None
    town: Area | None = None
    method: str = "none"
    note: str = ""

    @property
    def precision(self) -> Level | None:
        if self.grid:
            return Level.GRID
        if self.community:
            return Level.COMMUNITY
        if self.town:
            return Level.TOWN
        return None

    @property
    def area(self) -> Area | None:
        return self.community or self.town

    def covers(self, area_code: str) -> bool:
        return any(a is not None and a.code == area_code for a in (self.community, self.town))


@dataclass
class ReferenceData:
    """Everything a decision reads, indexed once per rule-set version."""

    areas: dict[str, Area]
    departments: dict[str, Department]
    categories: dict[str, Category]
    grids: list[Grid]
    rule_set: RuleSet
    grid_index: GridIndex = field(init=False)
    gazetteer: Gazetteer = field(init=False)
    grids_by_code: dict[str, Grid] = field(init=False, default_factory=dict)
    _category_alias: dict[str, str] = field(init=False, default_factory=dict)
    _keywords: list[tuple[str, str]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.grid_index = GridIndex(self.grids)
        self.grids_by_code = {g.code: g for g in self.grids}
        self.gazetteer = Gazetteer(self.areas.values())
        for category in self.categories.values():
            for alias in category.aliases:
                self._category_alias.setdefault(alias, category.code)
            self._keywords.extend((kw, category.code) for kw in category.keywords)
        self._keywords.sort(key=lambda kc: len(kc[0]), reverse=True)

    def category(self, code: str) -> Category | None:
        """A category by its own code or by a source code listed as its alias (``event:`` etc. ignored)."""
        code = code.strip()
        for prefix in ("event:", "component:", "dcm:"):
            code = code.removeprefix(prefix)
        return self.categories.get(code) or self.categories.get(self._category_alias.get(code, ""))

    def infer_category(self, texts: Iterable[str | None]) -> tuple[Category, str] | None:
        """The category whose keyword (longest first) appears in the texts."""
        joined = " ".join(t for t in texts if t)
        for keyword, code in self._keywords:
            if keyword in joined:
                return self.categories[code], keyword
        return None


def locate(facts: CaseFacts, ref: ReferenceData) -> Located:
    """Grid by point; else the grid or area intake resolved; else area by address text."""
    note = ""
    if facts.outside_jurisdiction:
        return Located(note="受理时判定位置在章丘区外")
    if facts.lon is not None and facts.lat is not None:
        grid = ref.grid_index.locate(facts.lon, facts.lat)
        if grid is not None:
            community = ref.areas.get(grid.community_code)
            return Located(
                grid=grid,
                community=community,
                town=ref.areas.get(grid.town_code),
                method="point-in-polygon",
                note=f"坐标位于网格「{grid.name}」（{_area_path(ref, community)}）",
            )
        note = f"坐标（{facts.lon:.6f}, {facts.lat:.6f}）不在任何网格内"
    elif facts.grid_code and facts.grid_code in ref.grids_by_code:
        grid = ref.grids_by_code[facts.grid_code]
        community = ref.areas.get(grid.community_code)
        return Located(
            grid=grid,
            community=community,
            town=ref.areas.get(grid.town_code),
            method="reported-grid",
            note=f"上报网格为「{grid.name}」（{_area_path(ref, community)}）",
        )
    known = ref.areas.get(facts.community_code or "") or ref.areas.get(facts.town_code or "")
    if known is not None and not note:
        town = known if known.level is Level.TOWN else ref.gazetteer.town_of(known)
        return Located(
            community=known if known.level is Level.COMMUNITY else None,
            town=town,
            method="address-text",
            note=f"受理时地址识别为{_area_path(ref, known)}",
        )
    match = ref.gazetteer.resolve(facts.address)
    if match is not None:
        community = match.area if match.area.level is Level.COMMUNITY else None
        said = f"地址中的「{match.matched}」对应{_area_path(ref, match.area)}"
        return Located(
            community=community,
            town=match.town,
            method="address-text",
            note=f"{note}；{said}" if note else said,
        )
    if facts.address:
        note = f"{note}；地址「{facts.address}」无法识别" if note else f"地址「{facts.address}」无法识别"
    return Located(note=note or "未提供坐标和地址")


def _area_path(ref: ReferenceData, area: Area | None) -> str:
    names = []
    while area is not None and area.level is not Level.DISTRICT:
        names.append(area.name)
        area = ref.areas.get(area.parent_code or "")
    return "".join(reversed(names)) or "章丘区"


def _usable_levels(precision: Level | None) -> tuple[Level, ...]:
    if precision is None:
        return ()
    return LEVEL_ORDER[LEVEL_ORDER.index(precision) :]


def decide(facts: CaseFacts, ref: ReferenceData, *, exclude: frozenset[str] = frozenset()) -> Decision:
    """Route one case. ``exclude`` holds assignee keys that returned the case and may not get it again."""
    where = locate(facts, ref)
    version = ref.rule_set.version

    def triage(reason: str, category_code: str | None = None) -> Decision:
        return Decision(
            None,
            RoutingBasis(
                rule_set_version=version,
                grid_code=where.grid.code if where.grid else None,
                area_code=where.area.code if where.area else None,
                category_code=category_code or facts.category_code,
                method=where.method,
                reason=f"{where.note}；{reason}，转区级人工分拨"
                if where.note
                else f"{reason}，转区级人工分拨",
            ),
        )

    category = ref.category(facts.category_code) if facts.category_code else None
    unified = ref.category(facts.unified_category) if facts.unified_category else None
    if category is not None:
        how = f"分类「{category.name}」（{category.code}）"
    elif unified is not None:
        category = unified
        how = f"受理分类「{category.name}」（{category.code}）"
    elif facts.category_code:
        return triage(f"分类代码「{facts.category_code}」不在分类表中")
    else:
        inferred = ref.infer_category([facts.title, facts.description])
        if inferred is None:
            return triage("未提供分类代码，诉求内容也未匹配到分类关键词")
        category, keyword = inferred
        how = f"未提供分类代码，按诉求中的「{keyword}」识别为「{category.name}」（{category.code}）"
    if where.precision is None:
        return triage(f"{how}，但无法确定案件位置", category.code)
    rules = ref.rule_set.by_category.get(category.code, ())
    if not rules:
        return triage(f"{how}在第{version}版职责清单中没有规则", category.code)
    levels = _usable_levels(where.precision)
    skipped: list[str] = []
    for rule in rules:
        if rule.level not in levels or (rule.area and not where.covers(rule.area)):
            continue
        for token in rule.assignees:
            assignee = _assignee(token, where, ref)
            if assignee is None:
                continue
            if assignee_key(assignee) in exclude:
                skipped.append(assignee.name)
                continue
            return Decision(assignee, _basis(rule, assignee, where, category, how, skipped, version))
    if skipped:
        return triage(f"{how}，可派单位（{'、'.join(skipped)}）均已退单", category.code)
    return triage(f"{how}，定位精度不足以适用任何规则", category.code)


def _assignee(token: str, where: Located, ref: ReferenceData) -> Assignee | None:
    if token == GRID_ASSIGNEE:
        if where.grid is None:
            return None
        return Assignee(kind=AssigneeKind.GRID, code=where.grid.code, name=where.grid.name)
    department = ref.departments.get(token)
    if department is None:
        return None
    return Assignee(kind=AssigneeKind.DEPARTMENT, code=department.code, name=department.name)


def _basis(
    rule: Rule,
    assignee: Assignee,
    where: Located,
    category: Category,
    how: str,
    skipped: list[str],
    version: int,
) -> RoutingBasis:
    parts = [where.note, how]
    if skipped:
        parts.append(f"{'、'.join(skipped)}已退单")
    parts.append(f"按第{version}版职责清单规则 {rule.id}（{LEVEL_ZH[rule.level]}）派至{assignee.name}")
    return RoutingBasis(
        rule_id=rule.id,
        rule_set_version=version,
        grid_code=where.grid.code if where.grid else None,
        area_code=where.area.code if where.area else None,
        category_code=category.code,
        method=where.method,
        reason="；".join(p for p in parts if p),
    )
