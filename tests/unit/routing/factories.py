"""A tiny, hand-made reference data set for the pure routing tests: two towns, two unit-square grids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shapely.geometry import box

from contracts.events.routing import Assignee, AssigneeKind
from services.routing.domain.assignment import Actor, CaseRouting, fold, route
from services.routing.domain.decision import CaseFacts, ReferenceData, decide
from services.routing.domain.refdata import Area, Category, Department, Grid, RuleSet, parse_rules

DISTRICT, TOWN_1, TOWN_2 = "370114000000", "370114001000", "370114002000"
COMMUNITY_1, COMMUNITY_2 = "370114001001", "370114002201"
GRID_1 = "00000037011400100100"  # [0,1]×[0,1]
GRID_2 = "00000037011400220100"  # [1,2]×[0,1]; shares the edge lon=1 with GRID_1
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def reference_data(version: int = 7) -> ReferenceData:
    areas = [
        Area(DISTRICT, "章丘区", "district", "370100000000", ("章丘市",)),
        Area(TOWN_1, "明水街道", "street", DISTRICT),
        Area(TOWN_2, "刁镇街道", "street", DISTRICT, ("刁镇",)),
        Area(COMMUNITY_1, "明一社区居民委员会", "community", TOWN_1, ("明一居委会",)),
        Area(COMMUNITY_2, "朱家峪村村民委员会", "village", TOWN_2, ("朱家峪村委会",)),
    ]
    departments = [
        Department(c, n) for c, n in (("CGJ", "区城市管理局"), ("STHJJ", "生态环境分局"), ("ZJJ", "区住建局"))
    ]
    categories = [
        Category("UM-E06010", "暴露垃圾", "dcm-event", ("06010",), ("垃圾成堆",)),
        Category("UM-E06028", "噪声扰民", "dcm-event", ("06028",), ("噪音", "噪声")),
        Category("HL-EMPTY", "无规则分类"),
    ]
    grids = [
        Grid(GRID_1, "明一社区网格", COMMUNITY_1, TOWN_1, box(0, 0, 1, 1)),
        Grid(GRID_2, "朱家峪网格", COMMUNITY_2, TOWN_2, box(1, 0, 2, 1)),
    ]
    rules = parse_rules(
        [
            {"id": "R-GARBAGE-G", "category": "UM-E06010", "level": "grid", "assignees": ["grid"]},
            {"id": "R-GARBAGE", "category": "UM-E06010", "level": "district", "assignees": ["CGJ"]},
            {
                "id": "R-NOISE",
                "category": "UM-E06028",
                "level": "district",
                "assignees": ["STHJJ", "CGJ", "ZJJ"],
            },
            {
                "id": "R-NOISE-DZ",
                "category": "UM-E06028",
                "level": "town",
                "area": TOWN_2,
                "assignees": ["ZJJ"],
            },
        ]
    )
    return ReferenceData(
        areas={a.code: a for a in areas},
        departments={d.code: d for d in departments},
        categories={c.code: c for c in categories},
        grids=grids,
        rule_set=RuleSet(version, "test", rules),
    )


def department(code: str) -> Assignee:
    names = {"CGJ": "区城市管理局", "STHJJ": "生态环境分局", "ZJJ": "区住建局"}
    return Assignee(kind=AssigneeKind.DEPARTMENT, code=code, name=names[code])


def dept_actor(code: str) -> Actor:
    return Actor(kind="department", id=f"dept-{code.lower()}", departments=frozenset({code}))


OPERATOR = Actor(kind="operator", id="operator-console")


def ids():
    counter = iter(range(1, 1000))
    return lambda: f"as_{next(counter):03d}"


def routed_case(facts: CaseFacts, ref: ReferenceData | None = None, *, at: datetime = T0, new_id=None):
    """A case routed by the real decision function; returns (state, events)."""
    ref = ref or reference_data()
    state = CaseRouting(case_id="ZQ20261126000001")
    events = route(state, decide(facts, ref), at, new_id=new_id or ids())
    return fold(state, events), events


def later(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)
