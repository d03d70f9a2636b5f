"""Intake's dedupe locks: two appeals that could repeat each other always contend for one lock."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from services.intake.domain import DuplicatePolicy, distance_m
from services.intake.recording import dedupe_lock_keys

POLICY = DuplicatePolicy()
# Zhangqiu's extent, with margin
LATS = st.floats(36.4, 37.1)
LONS = st.floats(117.2, 117.8)


@settings(max_examples=500)
@given(LATS, LONS, st.floats(0, 2 * math.pi), st.floats(0, POLICY.nearby_radius_m))
def test_appeals_within_the_radius_share_a_lock(lat, lon, bearing, metres):
    other_lat = lat + metres * math.cos(bearing) / 111_320
    other_lon = lon + metres * math.sin(bearing) / (111_320 * math.cos(math.radians(lat)))
    assert distance_m(lat, lon, other_lat, other_lon) <= POLICY.nearby_radius_m * 1.01
    mine = set(dedupe_lock_keys("A01", None, lat, lon, POLICY))
    theirs = set(dedupe_lock_keys("A01", None, other_lat, other_lon, POLICY))
    assert mine & theirs


def test_same_caller_shares_a_lock_wherever_they_are():
    here = dedupe_lock_keys("A01", "c-1", 36.71, 117.54, POLICY)
    there = dedupe_lock_keys("A01", "c-1", 36.90, 117.30, POLICY)
    assert set(here) & set(there)
    assert dedupe_lock_keys("A01", "c-1", None, None, POLICY)


def test_unrelated_appeals_do_not_queue_behind_each_other():
    one = set(dedupe_lock_keys("A01", "c-1", 36.71, 117.54, POLICY))
    other_category = set(dedupe_lock_keys("B02", "c-1", 36.71, 117.54, POLICY))
    far_away = set(dedupe_lock_keys("A01", "c-2", 36.80, 117.60, POLICY))
    assert not one & other_category
    assert not one & far_away
    assert len(one) <= 1 + 9  # the caller and at most 3 x 3 cells
    assert dedupe_lock_keys("A01", None, None, None, POLICY) == []
