"""Build routing's reference data files in services/routing/data/ from the sourced shared pack.

    python -m services.routing.refdata_gen areas  [--shared ../shared/data]   # areas.csv
    python -m services.routing.refdata_gen grids                              # towns/grids .geojson
    python -m services.routing.refdata_gen all    [--shared ../shared/data]

``areas`` copies Zhangqiu's NBS 2023 division rows and adds the 2022 names (and the pre-2020 town names,
and 章丘市) as aliases, because citizens and older systems still use them.

``grids`` synthesises town and grid polygons: no township or grid boundaries were found in any source
(../shared/data/SOURCES_areas.md §2), so the district outline (GCJ-02 in the source, converted here to
WGS84) is cut into 18 Voronoi cells, one per street/town, and each cell into one grid per
community/village committee. Everything it writes is labelled ``synthetic``. The output is deterministic
for a given seed and GEOS version; the files are committed, so the service never runs this.

Grid codes follow the CJ/T 349-2010 layout (20 digits): 6-digit object code (000000 here: a
comprehensive grid, 综合网格; no CJ/T 348 object code applies) + 6-digit county code (370114) + 3-digit
street/town code + 3-digit community code + 2-digit grid sequence (00 = community not subdivided).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from collections.abc import Iterable
from pathlib import Path

import shapely
from shapely.geometry import MultiPoint, Point, Polygon, mapping, shape
from shapely.ops import unary_union

from services.routing.domain.coords import gcj02_to_wgs84

DATA = Path(__file__).resolve().parent / "data"
DEFAULT_SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
DISTRICT_CODE = "370114000000"
OBJECT_CODE = "000000"  # comprehensive grid; see module docstring
SEED = 370114
AREA_SOURCE = "NBS2023"  # see data/SOURCES.md

# Towns whose codes changed in 2020 (SOURCES_areas.md, caveat 2): old name -> current code.
PRE_2020_TOWN_NAMES = {"370114016000": ["刁镇"], "370114017000": ["黄河镇"]}
DISTRICT_ALIASES = ["章丘市", "章丘", "370181"]


# --- areas -------------------------------------------------------------------------------------------


def build_areas(shared: Path) -> list[dict[str, str]]:
    """Rows of areas.csv: every 2023 division plus its old names; removed villages become town aliases."""
    current = list(csv.DictReader((shared / "zhangqiu_areas.csv").open(encoding="utf-8")))
    changes = {r["code"]: r for r in csv.DictReader((shared / "zhangqiu_areas_changes_2022_2023.csv").open())}
    removed_by_town: dict[str, list[str]] = {}
    for code, change in changes.items():
        if change["change"] == "removed_2023":
            removed_by_town.setdefault(code[:9] + "000", []).append(change["name_2022"])
    rows = []
    for row in current:
        aliases: list[str] = []
        old = changes.get(row["code"], {}).get("name_2022", "")
        if old and old != row["name"]:
            aliases.append(old)
        aliases += PRE_2020_TOWN_NAMES.get(row["code"], [])
        aliases += removed_by_town.get(row["code"], [])
        if row["code"] == DISTRICT_CODE:
            aliases += DISTRICT_ALIASES
        rows.append(
            {
                "code": row["code"],
                "name": row["name"],
                "level": row["level"],
                "parent_code": row["parent_code"],
                "aliases": "|".join(aliases),
                "source": AREA_SOURCE,
            }
        )
    return rows


def write_areas(shared: Path) -> Path:
    rows = build_areas(shared)
    out = DATA / "areas.csv"
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out


# --- polygons ----------------------------------------------------------------------------------------


def district_outline_wgs84(boundary_gcj02: Path) -> Polygon:
    """The district outline, every vertex converted GCJ-02 → WGS84, as one valid polygon."""
    feature = json.loads(boundary_gcj02.read_text(encoding="utf-8"))["features"][0]
    geom = shape(feature["geometry"])
    parts = list(geom.geoms) if hasattr(geom, "geoms") else [geom]
    converted = []
    for part in parts:
        shell = [gcj02_to_wgs84(x, y) for x, y in part.exterior.coords]
        holes = [[gcj02_to_wgs84(x, y) for x, y in ring.coords] for ring in part.interiors]
        converted.append(Polygon(shell, holes))
    merged = unary_union(converted).buffer(0)
    if merged.geom_type == "MultiPolygon":  # keep the mainland piece; slivers are generalisation noise
        merged = max(merged.geoms, key=lambda g: g.area)
    return merged


def seed_points(region: Polygon, count: int, rng: random.Random, relax: int = 3) -> list[Point]:
    """``count`` well-spread points inside ``region``: rejection sampling, then Lloyd relaxation."""
    minx, miny, maxx, maxy = region.bounds
    points: list[Point] = []
    while len(points) < count:
        p = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if region.contains(p):
            points.append(p)
    for _ in range(relax):
        cells = voronoi_cells(region, points)
        points = [cell.representative_point() if cell.is_empty else cell.centroid for cell in cells]
        points = [p if region.contains(p) else region.representative_point() for p in points]
    return points


def voronoi_cells(region: Polygon, points: list[Point]) -> list[Polygon]:
    """Voronoi cells of ``points`` clipped to ``region``, in the order of ``points``."""
    if len(points) == 1:
        return [region]
    diagram = shapely.voronoi_polygons(MultiPoint(points), extend_to=region.envelope.buffer(0.1))
    cells = list(diagram.geoms)
    ordered = []
    for p in points:
        cell = next(c for c in cells if c.covers(p))
        clipped = cell.intersection(region)
        if clipped.geom_type == "MultiPolygon":
            clipped = max(clipped.geoms, key=lambda g: g.area)
        ordered.append(clipped if clipped.geom_type == "Polygon" else Polygon())
    return ordered


def reading_order(cells: Iterable[Polygon]) -> list[Polygon]:
    """North to south, then west to east ("从左到右、从上到下"), in bands of ~0.05°."""
    return sorted(cells, key=lambda c: (-round(c.centroid.y / 0.05), c.centroid.x))


def _round(geom: Polygon, digits: int = 6) -> dict:
    return json.loads(json.dumps(mapping(shapely.set_precision(geom, 10**-digits))))


def grid_code(community_code: str, sequence: int = 0) -> str:
    """CJ/T 349-2010 style: object(6) + county(6) + street(3) + community(3) + sequence(2)."""
    return f"{OBJECT_CODE}{community_code[:6]}{community_code[6:9]}{community_code[9:12]}{sequence:02d}"


def build_polygons(
    outline: Polygon, areas: list[dict[str, str]], *, seed: int = SEED, grids_per_committee: int = 1
) -> tuple[list[dict], list[dict]]:
    """Town and grid GeoJSON features. ``grids_per_committee`` > 1 subdivides (bench uses it)."""
    rng = random.Random(seed)
    towns = sorted((a for a in areas if a["level"] in ("street", "town")), key=lambda a: a["code"])
    communities: dict[str, list[dict[str, str]]] = {}
    for area in areas:
        if area["level"] in ("community", "village", "community_like"):
            communities.setdefault(area["parent_code"], []).append(area)
    town_cells = reading_order(voronoi_cells(outline, seed_points(outline, len(towns), rng)))
    town_features, grid_features = [], []
    for town, cell in zip(towns, town_cells, strict=True):
        town_features.append(
            {
                "type": "Feature",
                "properties": {
                    "code": town["code"],
                    "name": town["name"],
                    "level": town["level"],
                    "synthetic": True,
                    "note": "synthetic town polygon (Voronoi cell); no sourced township boundary exists",
                },
                "geometry": _round(cell),
            }
        )
        members = sorted(communities.get(town["code"], []), key=lambda a: a["code"])
        slots = [(m, seq) for m in members for seq in range(1, grids_per_committee + 1)]
        grid_cells = reading_order(voronoi_cells(cell, seed_points(cell, len(slots), rng, relax=2)))
        for (community, sequence), grid_cell in zip(slots, grid_cells, strict=True):
            seq = 0 if grids_per_committee == 1 else sequence
            short = community["name"].replace("村民委员会", "").replace("社区居民委员会", "社区")
            grid_features.append(
                {
                    "type": "Feature",
                    "properties": {
                        "code": grid_code(community["code"], seq),
                        "name": f"{short}网格" if seq == 0 else f"{short}第{seq}网格",
                        "community_code": community["code"],
                        "town_code": town["code"],
                        "synthetic": True,
                    },
                    "geometry": _round(grid_cell),
                }
            )
    return town_features, grid_features


def _collection(name: str, features: list[dict], note: str) -> dict:
    return {
        "type": "FeatureCollection",
        "name": name,
        "x_crs": "WGS84 (EPSG:4326), lon/lat",
        "x_synthetic": True,
        "x_note": note,
        "features": features,
    }


def write_polygons() -> tuple[Path, Path]:
    areas = list(csv.DictReader((DATA / "areas.csv").open(encoding="utf-8")))
    outline = district_outline_wgs84(DATA / "zhangqiu_boundary_gcj02.geojson")
    towns, grids = build_polygons(outline, areas)
    note = (
        f"SYNTHETIC. Generated by services/routing/refdata_gen.py (seed {SEED}) inside the district outline "
        "(DataV/AMap, GCJ-02, converted to WGS84). Not real town or grid boundaries."
    )
    towns_path, grids_path = DATA / "towns.geojson", DATA / "grids.geojson"
    towns_path.write_text(
        json.dumps(_collection("zhangqiu_towns_synthetic", towns, note), ensure_ascii=False)
    )
    grids_path.write_text(
        json.dumps(_collection("zhangqiu_grids_synthetic", grids, note), ensure_ascii=False)
    )
    return towns_path, grids_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["areas", "grids", "all"])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data pack folder")
    args = parser.parse_args(argv)
    if args.what in ("areas", "all"):
        print(write_areas(args.shared))
    if args.what in ("grids", "all"):
        for path in write_polygons():
            print(path)


if __name__ == "__main__":
    main()
