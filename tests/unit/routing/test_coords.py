from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts import coordinates
from services.routing.domain import coords

SHARED_BBOX = {
    "gcj": (117.182712, 36.433925, 117.747306, 37.076264),
    "wgs": (117.17669, 36.4337, 117.74124, 37.07571),
}


@pytest.mark.parametrize(
    ("lon", "lat"), [(117.54069, 36.71209), (117.182712, 36.433925), (116.397428, 39.90923), (121.47, 31.23)]
)
def test_gcj02_to_wgs84_inverts_the_forward_transform_to_within_a_centimetre(lon, lat):
    wlon, wlat = coords.gcj02_to_wgs84(lon, lat)
    back = coords.wgs84_to_gcj02(wlon, wlat)
    assert back == pytest.approx((lon, lat), abs=1e-7)


def test_the_offset_at_zhangqiu_is_the_documented_few_hundred_metres():
    wlon, wlat = coords.gcj02_to_wgs84(117.54069, 36.71209)
    assert 0.004 < 117.54069 - wlon < 0.008  # ≈ 0.006° of longitude
    assert 0.0 < 36.71209 - wlat < 0.001


def test_the_district_bounding_box_converts_to_the_values_the_data_pack_derived():
    gcj, wgs = SHARED_BBOX["gcj"], SHARED_BBOX["wgs"]
    assert coords.gcj02_to_wgs84(gcj[0], gcj[1]) == pytest.approx(wgs[:2], abs=1e-5)
    assert coords.gcj02_to_wgs84(gcj[2], gcj[3]) == pytest.approx(wgs[2:], abs=1e-5)


def test_points_outside_china_are_left_alone():
    assert coords.gcj02_to_wgs84(2.35, 48.85) == (2.35, 48.85)
    assert coords.wgs84_to_gcj02(-74.0, 40.7) == (-74.0, 40.7)


def test_bd09_round_trips_through_gcj02_and_to_wgs84_names_every_system():
    lon, lat = 117.54069, 36.71209
    bd_lat, bd_lon = coordinates.gcj02_to_bd09(lat, lon)
    assert coordinates.bd09_to_gcj02(bd_lat, bd_lon) == pytest.approx((lat, lon), abs=1e-6)
    wgs = coords.gcj02_to_wgs84(lon, lat)
    assert coords.to_wgs84(bd_lon, bd_lat, "BD09") == pytest.approx(wgs, abs=1e-6)
    assert coords.to_wgs84(lon, lat, "GCJ-02") == pytest.approx(wgs, abs=1e-6)  # rounded to ~1 cm
    assert coords.to_wgs84(lon, lat, "WGS84") == (lon, lat)
    with pytest.raises(ValueError):
        coords.to_wgs84(lon, lat, "CGCS2000-local")


def test_the_shipped_grids_are_in_wgs84_not_in_the_source_gcj02():
    data = Path(__file__).resolve().parents[3] / "services" / "routing" / "data" / "grids.geojson"
    assert "WGS84" in json.loads(data.read_text())["x_crs"]
