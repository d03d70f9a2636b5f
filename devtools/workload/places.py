"""Where appeals come from: Zhangqiu's towns and committees, weighted by (synthetic) population.

Division names and codes are real (NBS 2023, intake's gazetteer ``services/intake/data/zhangqiu_areas.csv``);
grid polygons are routing's (``services/routing/data/grids.geojson``, themselves synthetic).

**Population weights are synthetic.** No per-town population figure for Zhangqiu was found in
``/work/shared/data``; each committee gets a plausible resident count by kind (an urban community
committee ~6,000, a village committee ~1,300, which puts the district near its ~1.07 million residents),
and a town weighs the sum of its committees. Road names other than Mingshui's are generic and synthetic.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from shapely import contains_xy
from shapely.geometry import shape

from contracts.coordinates import wgs84_to_gcj02

REPO = Path(__file__).resolve().parents[2]
AREAS_CSV = REPO / "services" / "intake" / "data" / "zhangqiu_areas.csv"
GRIDS_GEOJSON = REPO / "services" / "routing" / "data" / "grids.geojson"

# Synthetic residents per committee by kind (see the module docstring).
RESIDENTS = {"community": 6_000, "community_like": 4_000, "village": 1_300}
POINTS_PER_GRID = 24
# 明水街道 roads are real street names of the town centre; the rest is a generic, synthetic list.
MINGSHUI_ROADS = ("百脉泉路", "汇泉路", "明水路", "山泉路", "唐王山路", "绣水大街", "双山大街", "龙泉路")
GENERIC_ROADS = (
    "工业路", "文化路", "建设路", "胜利街", "和平路", "振兴路", "站前街", "商业街", "花园路", "新华路",
    "创业大道", "育才路", "福泰路", "东环路", "西环路", "南外环", "北外环", "顺河街",
)  # fmt: skip
VILLAGE_SPOTS = ("东头", "西头", "南大街", "北头小路", "村委会附近", "路口", "卫生室旁", "小学门口")


@dataclass(frozen=True)
class Committee:
    """A village or community committee (村/居委会) with its grid and a few points inside the grid."""

    code: str
    name: str
    short: str  # how residents say it: 明一社区, 东岭村
    is_village: bool
    residents: int
    grid_code: str | None
    points: tuple[tuple[float, float], ...]  # WGS84 (lat, lon) inside the grid polygon


@dataclass(frozen=True)
class Town:
    code: str
    name: str
    committees: tuple[Committee, ...]
    roads: tuple[str, ...]

    @property
    def residents(self) -> int:
        return sum(c.residents for c in self.committees)


def _short_name(name: str) -> str:
    for suffix, tail in (("社区居民委员会", "社区"), ("居民委员会", "社区"), ("村民委员会", "村")):
        if name.endswith(suffix) and len(name) > len(suffix):
            stem = name[: -len(suffix)]
            return stem if stem.endswith(tail) else stem + tail  # 东岭村村民委员会 → 东岭村
    return name


def _grid_points(rng: random.Random) -> dict[str, tuple[str, tuple[tuple[float, float], ...]]]:
    """community code -> (grid code, points inside its grid), sampled once and deterministically."""
    found: dict[str, tuple[str, tuple[tuple[float, float], ...]]] = {}
    for feature in json.loads(GRIDS_GEOJSON.read_text(encoding="utf-8"))["features"]:
        props, polygon = feature["properties"], shape(feature["geometry"])
        minx, miny, maxx, maxy = polygon.bounds
        points: list[tuple[float, float]] = []
        for _ in range(50):  # rejection sampling in batches; grids are compact, so few rounds suffice
            xs = [rng.uniform(minx, maxx) for _ in range(POINTS_PER_GRID)]
            ys = [rng.uniform(miny, maxy) for _ in range(POINTS_PER_GRID)]
            inside = contains_xy(polygon, xs, ys)
            points += [(round(y, 6), round(x, 6)) for x, y, ok in zip(xs, ys, inside, strict=True) if ok]
            if len(points) >= POINTS_PER_GRID:
                break
        point = polygon.representative_point()
        found[props["community_code"]] = (
            props["code"],
            tuple(points[:POINTS_PER_GRID]) or ((round(point.y, 6), round(point.x, 6)),),
        )
    return found


@lru_cache(maxsize=1)
def towns() -> tuple[Town, ...]:
    """The 18 towns (17 streets and 垛庄镇) with their committees, in code order."""
    grids = _grid_points(random.Random(370114))
    with AREAS_CSV.open(encoding="utf-8") as source:
        rows = list(csv.DictReader(source))
    committees: dict[str, list[Committee]] = {}
    for r in rows:
        if r["level"] in RESIDENTS:
            grid_code, points = grids.get(r["code"], (None, ()))
            committees.setdefault(r["parent_code"], []).append(
                Committee(
                    code=r["code"],
                    name=r["name"],
                    short=_short_name(r["name"]),
                    is_village=r["level"] == "village",
                    residents=RESIDENTS[r["level"]],
                    grid_code=grid_code,
                    points=points,
                )
            )
    result = []
    for r in (x for x in rows if x["level"] in {"street", "town"}):
        rng = random.Random(r["code"])
        roads = MINGSHUI_ROADS if r["name"] == "明水街道" else tuple(rng.sample(GENERIC_ROADS, 6))
        result.append(Town(r["code"], r["name"], tuple(committees.get(r["code"], ())), roads))
    return tuple(result)


@dataclass(frozen=True)
class Spot:
    """One place an appeal is about."""

    town: Town
    committee: Committee
    address: str  # 章丘区明水街道明一社区百脉泉路12号
    lat: float  # WGS84
    lon: float

    def gcj02(self) -> tuple[float, float]:
        """The point as a Chinese map SDK (a grid app) reports it."""
        lat, lon = wgs84_to_gcj02(self.lat, self.lon)
        return round(lat, 6), round(lon, 6)


class Places:
    """Draws towns by population and a committee, point and address inside them."""

    def __init__(self) -> None:
        self.towns = towns()
        self._town_weights = [t.residents for t in self.towns]
        self._committee_weights = {t.code: [c.residents for c in t.committees] for t in self.towns}

    def town_shares(self) -> dict[str, float]:
        """Town code -> share of appeals (its share of the synthetic population)."""
        total = sum(self._town_weights)
        return {t.code: w / total for t, w in zip(self.towns, self._town_weights, strict=True)}

    def draw(self, rng: random.Random) -> Spot:
        town = rng.choices(self.towns, self._town_weights)[0]
        committee = rng.choices(town.committees, self._committee_weights[town.code])[0]
        lat, lon = rng.choice(committee.points)
        if committee.is_village:
            where = f"{committee.short}{rng.choice(VILLAGE_SPOTS)}"
        else:
            where = f"{committee.short}{rng.choice(town.roads)}{rng.randint(1, 320)}号"
        return Spot(town, committee, f"章丘区{town.name}{where}", lat, lon)
