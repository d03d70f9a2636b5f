"""The shipped reference data: consistent, labelled, and routable."""

from __future__ import annotations

import csv
import json

import pytest
import shapely
from shapely.geometry import shape

from services.routing.domain.decision import CaseFacts, decide
from services.routing.refdata_files import DATA_DIR, read_bundle
from services.routing.refdata_gen import district_outline_wgs84


@pytest.fixture(scope="module")
def bundle():
    return read_bundle()


@pytest.fixture(scope="module")
def ref(bundle):
    return bundle.reference_data(1)


def test_every_division_of_the_2023_list_is_present_with_old_names_as_aliases(bundle):
    areas = {a["code"]: a for a in bundle.areas}
    assert len(areas) == 613
    assert areas["370114016000"]["aliases"] == ["刁镇"] and "黄河镇" in areas["370114017000"]["aliases"]
    assert "明一居委会" in areas["370114001001"]["aliases"]
    assert "章丘市" in areas["370114000000"]["aliases"]


def test_departments_are_each_labelled_verified_or_synthetic_and_include_the_usual_bureaus(bundle):
    departments = {d["code"]: d["status"] for d in bundle.departments}
    usual = {"CGJ", "STHJJ", "ZJJ", "JTYSJ", "SCJGJ", "GAJ", "SWJ", "WJJ", "JYJ", "RSJ", "MZJ", "ZRZYJ"}
    assert usual <= set(departments)
    assert set(departments.values()) == {"verified", "synthetic"}


def test_grids_are_synthetic_wgs84_polygons_that_tile_the_district_without_overlap(bundle):
    collection = json.loads((DATA_DIR / "grids.geojson").read_text())
    assert collection["x_synthetic"] is True and all(
        f["properties"]["synthetic"] for f in collection["features"]
    )
    polygons = [shape(g["geometry"]) for g in bundle.grids]
    assert all(p.is_valid and not p.is_empty for p in polygons)
    outline = district_outline_wgs84(DATA_DIR / "zhangqiu_boundary_gcj02.geojson")
    union = shapely.union_all(polygons)
    assert sum(p.area for p in polygons) == pytest.approx(union.area, rel=1e-4)  # no overlaps
    assert union.symmetric_difference(outline).area < outline.area * 1e-3  # covers the district


def test_grid_codes_follow_the_cjt349_layout_and_every_committee_has_a_grid(bundle):
    codes = [g["code"] for g in bundle.grids]
    assert len(set(codes)) == len(codes) and all(len(c) == 20 and c.isdigit() for c in codes)
    for grid in bundle.grids:
        assert grid["code"][6:18] == grid["community_code"]
    committees = {a["code"] for a in bundle.areas if a["level"] in ("community", "village", "community_like")}
    assert committees == {g["community_code"] for g in bundle.grids}


def test_every_category_but_the_operator_only_ones_has_a_rule_and_names_its_source(bundle):
    ruled = {r["category"] for r in bundle.rules}
    unruled = {c["code"] for c in bundle.categories} - ruled
    assert unruled == {"emergency", "government_affairs", "other"}  # an operator decides these
    for category in bundle.categories:
        assert category["source_file"].split(" ")[0].endswith(".csv")


def test_a_point_inside_a_shipped_grid_routes_to_that_grid_for_grid_level_categories(ref):
    for grid in ref.grids[::37]:
        point = grid.geometry.representative_point()
        decision = decide(CaseFacts(category_code="UM-E06010", lon=point.x, lat=point.y), ref)
        assert decision.assignee.code == grid.code


def test_the_api_key_departments_appear_in_the_matrix():
    with (DATA_DIR / "responsibility_matrix.yaml").open() as fh:
        text = fh.read()
    for code in ("CGJ", "STHJJ", "ZJJ", "SWJ"):
        assert code in text
    assert {r["code"] for r in csv.DictReader((DATA_DIR / "departments.csv").open())} >= {"CGJ", "SWJ"}
