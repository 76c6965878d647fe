"""The nearest-cooperatives engine (coopgis.nearest), against a brute-force great-circle search."""

from __future__ import annotations

import numpy as np
import pytest

from coopgis.distance import haversine_km
from coopgis.nearest import (
    DIRECTIONS,
    STAND_IN_FACTOR,
    STAND_IN_KM,
    NearestIndex,
    direction,
    geo_uri,
    initial_bearing,
    nearest_rows,
    ranking_km,
)


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(7)
    lon = rng.uniform(44, 63, 5000)
    lat = rng.uniform(25, 40, 5000)
    lon[::97] = np.nan  # unlocated cooperatives are never returned
    return lon, lat


@pytest.mark.parametrize("radius, limit", [(30, 10), (150, 100), (500, 7), (0.5, 5)])
def test_nearest_rows_match_a_brute_force_search(points, radius, limit):
    lon, lat = points
    idx = NearestIndex.build(lon, lat)
    x, y = 51.39, 35.69
    hit = nearest_rows(idx, x, y, radius, limit)
    d = haversine_km(x, y, lon, lat)
    inside = np.flatnonzero(np.nan_to_num(d, nan=np.inf) <= radius)
    expected = inside[np.lexsort((inside, d[inside]))][:limit]
    assert hit.matched == len(inside)
    assert hit.rows.tolist() == expected.tolist()
    assert hit.distance_km == pytest.approx(d[expected], abs=1e-9)


def test_a_mask_keeps_only_allowed_rows(points):
    lon, lat = points
    idx = NearestIndex.build(lon, lat)
    mask = np.zeros(len(lon), bool)
    mask[::3] = True
    hit = nearest_rows(idx, 51.39, 35.69, 300, 50, mask)
    assert len(hit.rows) and mask[hit.rows].all()


def test_bearing_points_the_way():
    lon = np.array([51.0, 52.0, 51.0, 50.0])
    lat = np.array([36.0, 35.0, 34.0, 35.0])
    hit = nearest_rows(NearestIndex.build(lon, lat), 51.0, 35.0, 200, 4)
    words = {int(r): direction(b)[0] for r, b in zip(hit.rows, hit.bearing_deg, strict=True)}
    assert words == {0: "N", 1: "E", 2: "S", 3: "W"}


def test_direction_words():
    assert [direction(b) for b in (0, 45, 90, 135, 180, 225, 270, 315)] == list(DIRECTIONS)
    assert direction(359.9) == ("N", "شمال") and direction(22.4) == ("N", "شمال")
    assert direction(22.5) == ("NE", "شمال شرقی") and direction(337.4) == ("NW", "شمال غربی")
    assert [fa for _, fa in DIRECTIONS] == ["شمال", "شمال شرقی", "شرق", "جنوب شرقی", "جنوب", "جنوب غربی",
                                              "غرب", "شمال غربی"]


def test_geo_uri_is_rfc_5870_with_an_escaped_label():
    label = "%D8%AA%D8%B9%D8%A7%D9%88%D9%86%DB%8C%20%231"
    assert geo_uri(51.5, 35.25, "تعاونی #1") == f"geo:35.250000,51.500000?q=35.250000,51.500000({label})"
    assert geo_uri(51.5, 35.25, None) == "geo:35.250000,51.500000?q=35.250000,51.500000"


def test_stand_ins_rank_after_known_locations_at_similar_distances(points):
    lon, lat = points
    idx = NearestIndex.build(lon, lat)
    stand_in = np.zeros(len(lon), bool)
    stand_in[::2] = True
    x, y = 51.39, 35.69
    hit = nearest_rows(idx, x, y, 400, 60, stand_in=stand_in)
    d = haversine_km(x, y, lon, lat)
    inside = np.flatnonzero(np.nan_to_num(d, nan=np.inf) <= 400)
    rank = np.where(stand_in[inside], d[inside] * STAND_IN_FACTOR + STAND_IN_KM, d[inside])
    expected = inside[np.lexsort((inside, rank))][:60]
    assert hit.rows.tolist() == expected.tolist()
    assert hit.distance_km == pytest.approx(d[expected], abs=1e-9)      # the distance said is the true one
    shown = hit.rows.tolist()
    for a in range(len(shown)):       # no stand-in before a known location less than 25 % + 1 km farther
        for b in range(a + 1, len(shown)):
            if stand_in[shown[a]] and not stand_in[shown[b]]:
                assert d[shown[b]] >= d[shown[a]] * STAND_IN_FACTOR + STAND_IN_KM - 1e-9
    assert ranking_km(np.array([2.0, 2.0]), np.array([True, False])).tolist() == [3.5, 2.0]


@pytest.mark.parametrize("to, want", [((51.0, 36.0), 0.0), ((52.0, 35.0), 90.0), ((51.0, 34.0), 180.0),
                                      ((50.0, 35.0), 270.0)])
def test_initial_bearing_agrees_with_the_index(to, want):
    hit = nearest_rows(NearestIndex.build(np.array([to[0]]), np.array([to[1]])), 51.0, 35.0, 500, 1)
    assert initial_bearing(51.0, 35.0, *to) == pytest.approx(float(hit.bearing_deg[0]), abs=1e-9)
    assert min(abs(initial_bearing(51.0, 35.0, *to) - want), 360 - abs(initial_bearing(51.0, 35.0, *to) - want)) < 0.6
