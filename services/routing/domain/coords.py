"""Routing works in (lon, lat) order, as GeoJSON and shapely do; the datum conversions themselves live
once in contracts.coordinates, in (lat, lon) order. These adapters only swap the order."""

from __future__ import annotations

from contracts import coordinates
from contracts.events import CoordinateSystem


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """GCJ-02 → WGS84, (lon, lat) in and out."""
    w_lat, w_lon = coordinates.gcj02_to_wgs84(lat, lon)
    return w_lon, w_lat


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """WGS84 → GCJ-02, (lon, lat) in and out."""
    g_lat, g_lon = coordinates.wgs84_to_gcj02(lat, lon)
    return g_lon, g_lat


def to_wgs84(lon: float, lat: float, crs: str) -> tuple[float, float]:
    """A point reported in ``crs`` (WGS84, GCJ02 or GCJ-02, BD09) as WGS84, (lon, lat) in and out.

    An unknown system raises ValueError."""
    system = CoordinateSystem(crs.upper().replace("-", ""))
    if system is CoordinateSystem.WGS84:
        return lon, lat  # exactly as given: no rounding of points that need no conversion
    w_lat, w_lon = coordinates.to_wgs84(lat, lon, system)
    return w_lon, w_lat
