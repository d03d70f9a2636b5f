"""Intake's geography: the district's jurisdiction check and distances. Pure functions.

Datum conversions (GCJ-02, BD-09 -> WGS84) live in contracts.coordinates, shared with routing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import shapely
from shapely.geometry import MultiPolygon, Polygon

from contracts.coordinates import (  # noqa: F401  (re-exported for intake's callers)
    bd09_to_gcj02,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    to_wgs84,
    wgs84_to_gcj02,
)

DATA = Path(__file__).resolve().parent / "data"
EARTH_RADIUS_M = 6_371_008.8


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, h)))


@dataclass(frozen=True)
class Jurisdiction:
    """The district outline in GCJ-02 (as published); points are compared after converting to GCJ-02."""

    min_lat: float
    min_lon: float
    max_lat: float
    max_lon: float
    rings: tuple[tuple[tuple[float, float], ...], ...]  # outer rings, (lon, lat) GCJ-02

    def contains_wgs84(self, lat: float, lon: float) -> bool:
        """True when a WGS84 point lies inside the district (bbox first, then the outline)."""
        g_lat, g_lon = wgs84_to_gcj02(lat, lon)
        if not (self.min_lat <= g_lat <= self.max_lat and self.min_lon <= g_lon <= self.max_lon):
            return False
        if not self.rings:
            return True
        return bool(shapely.intersects_xy(self._outline, g_lon, g_lat))  # on the outline counts as in

    @cached_property
    def _outline(self) -> MultiPolygon:
        """The rings as one prepared geometry (shapely): ~47 → 8 µs a point against the 586-vertex
        outline, which a ray-casting loop in Python walked for every located appeal (same answers for
        20,000 random points of the bounding box)."""
        outline = MultiPolygon([Polygon(ring) for ring in self.rings])
        shapely.prepare(outline)
        return outline


@lru_cache(maxsize=1)
def zhangqiu() -> Jurisdiction:
    """章丘区 from the shipped outline (DataV 2019, generalised; GCJ-02). See data/README.md."""
    outline = json.loads((DATA / "zhangqiu_boundary.geojson").read_text(encoding="utf-8"))
    rings: list[tuple[tuple[float, float], ...]] = []
    for feature in outline["features"]:
        geometry = feature["geometry"]
        polygons = (
            geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
        )
        rings.extend(tuple((float(x), float(y)) for x, y in polygon[0]) for polygon in polygons)
    lons = [x for ring in rings for x, _ in ring]
    lats = [y for ring in rings for _, y in ring]
    return Jurisdiction(min(lats), min(lons), max(lats), max(lons), tuple(rings))
