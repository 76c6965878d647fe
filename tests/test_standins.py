"""Honest field lists (coopgis.standins and what /nearest and /search say): a stand-in point is never offered
as a place to drive to. Checked against the gazetteer itself (a brute-force nearest sure place per county)."""

from __future__ import annotations

import math
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
import shapely

from coopgis.distance import haversine_km
from coopgis.vocab import STAND_IN_PRECISIONS

AREA = {"rural_district": "rural_district", "district": "district", "county": "county", "province": "province_name"}


@pytest.fixture(scope="module")
def guide(dataset):
    return dataset.field_guide()


@pytest.fixture(scope="module")
def sure_places(boundaries):
    p = boundaries.places
    sure = ((p["level"] == "village") & (p["point_strength"] == "strong") & ~p["point_outlier"] & p["settlement"]) \
        | (p["level"] == "city")
    return p[sure & p["lon"].notna() & p["county_osm"].notna()]


def test_stand_ins_are_the_area_precisions(dataset, guide):
    coll = dataset.collections["cooperatives"]
    located = np.isfinite(coll.lon)
    want = coll.frame["precision"].isin(STAND_IN_PRECISIONS).to_numpy() & located
    assert (guide.stand_in == want).all() and want.any() and (~want & located).any()
    for r in np.flatnonzero(want)[:200]:
        level = coll.frame["precision"].iat[r]
        name = coll.frame[AREA[level]].iat[r]
        assert guide.area[r] == (None if pd.isna(name) else name)     # an unnamed area stays unnamed


def test_directions_go_to_the_nearest_sure_place_of_the_county(dataset, guide, sure_places):
    coll = dataset.collections["cooperatives"]
    rows = np.flatnonzero(guide.stand_in)[:300]
    with_place = 0
    for r in rows:
        county = coll.frame["county_osm"].iat[r]
        places = sure_places[sure_places["county_osm"] == county]
        if places.empty:
            assert guide.goto_name[r] is None
            continue
        d = haversine_km(coll.lon[r], coll.lat[r], places["lon"].to_numpy(), places["lat"].to_numpy())
        best = places.iloc[int(np.argmin(d))]
        assert (guide.goto_lon[r], guide.goto_lat[r]) == pytest.approx((best["lon"], best["lat"]))
        assert guide.goto_level[r] == best["level"] and guide.goto_name[r] in best["name"]
        with_place += 1
    assert with_place > 0.8 * len(rows)


def test_nearest_never_sends_a_stand_in_to_its_point(client, dataset, guide, sure_places):
    coll = dataset.collections["cooperatives"]
    located = np.isfinite(coll.lon) & ~guide.stand_in
    for r in np.flatnonzero(guide.stand_in & np.array([g is not None for g in guide.goto_name])):
        # a stand-in with known locations around it: the list mixes both
        x, y = float(coll.lon[r]) + 0.01, float(coll.lat[r]) - 0.01
        if (haversine_km(x, y, coll.lon[located], coll.lat[located]) < 5).any():
            break
    body = client.get("/nearest", params={"lon": x, "lat": y, "limit": 50, "radius_km": 30}).json()
    feats = body["features"]
    assert any(f["properties"]["stand_in"] for f in feats) and not all(f["properties"]["stand_in"] for f in feats)
    for f in feats:
        p = f["properties"]
        assert p["stand_in"] == (p["precision"] in STAND_IN_PRECISIONS)
        fx, fy = f["geometry"]["coordinates"]
        if not p["stand_in"]:
            assert p["directions"]["level"] == "cooperative" and p["geo_uri"].startswith(f"geo:{fy:.6f},{fx:.6f}")
            assert p["approximate"] == (p["uncertainty_m"] > 0)
            continue
        assert p["approximate"] is True
        assert p["stand_in_for"]["level"] == p["precision"] and p["stand_in_for"]["name"]
        target = p["directions"]
        if target is None:
            assert p["geo_uri"] is None
            continue
        # a named settlement of the gazetteer (which may lie where the area's median falls), not a bare point
        same = sure_places[(np.abs(sure_places["lon"] - target["lon"]) < 1e-6)
                           & (np.abs(sure_places["lat"] - target["lat"]) < 1e-6)]
        assert not same.empty and same["level"].iat[0] == target["level"]
        assert p["geo_uri"] == target["geo_uri"] and f"geo:{target['lat']:.6f},{target['lon']:.6f}" in p["geo_uri"]
        assert unquote(p["geo_uri"].split("(", 1)[1][:-1]) == target["name"]
        assert target["level"] in ("village", "city") and target["level_fa"] in ("روستای", "شهر")
        assert target["distance_km"] == pytest.approx(haversine_km(x, y, target["lon"], target["lat"]), abs=0.006)
    county = body["county"]
    poly = dataset.boundaries.counties.set_index("osm_relation_id").geometry.loc[county["osm_relation_id"]]
    assert poly.contains(shapely.Point(x, y))
    assert county["pack"].endswith(f"/packs/{county['osm_relation_id']}.zip")


def test_search_says_distance_and_direction_once_the_location_is_known(client, dataset):
    coll = dataset.collections["cooperatives"]
    r = int(np.flatnonzero(np.isfinite(coll.lon))[11])
    reg = str(coll.frame["registration_no"].iat[r])
    x, y = float(coll.lon[r]) - 0.05, float(coll.lat[r]) - 0.05
    plain = client.get("/search", params={"q": reg}).json()["features"][0]["properties"]
    assert "distance_km" not in plain and "stand_in" in plain
    here = client.get("/search", params={"q": reg, "lon": f"{x}", "lat": f"{y}"}).json()
    p = here["features"][0]["properties"]
    assert p["distance_km"] == pytest.approx(haversine_km(x, y, coll.lon[r], coll.lat[r]), abs=0.006)
    assert p["direction_en"] == "NE" and 0 < p["bearing_deg"] < 90
    assert here["query"]["lon"] == pytest.approx(x)
    one = client.get("/search", params={"q": reg, "lon": f"{x}"})
    assert one.status_code == 400 and "both lon and lat" in one.json()["detail"]
    swapped = client.get("/search", params={"q": reg, "lon": f"{y}", "lat": f"{x}"})
    assert swapped.status_code == 400 and swapped.json()["issue"] == "coord_swapped"


def test_a_verified_cooperative_is_no_longer_a_stand_in(guide):
    rows = np.flatnonzero(guide.stand_in)[:3]
    after = guide.verified(rows)
    assert not after.stand_in[rows].any() and all(after.goto_name[r] is None for r in rows)
    assert guide.stand_in[rows].all()                       # the served guide is not changed in place
    assert math.isnan(after.goto_lon[rows[0]])
