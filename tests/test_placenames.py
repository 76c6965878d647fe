"""Place-name labels (coopgis.placenames) and their tile layer: no overlaps at any zoom, across tile borders too,
the more important place first, unsure village points labelled as such; checked with shapely boxes and a
brute-force greedy oracle, the tiles with mapbox_vector_tile and morecantile."""

from __future__ import annotations

import mapbox_vector_tile
import morecantile
import numpy as np
import pytest
import shapely

from coopgis.placenames import KIND_ZOOMS, KINDS, LABEL_GAP_PX, LABEL_MAX_ZOOM, LABEL_MIN_ZOOM, build_labels

GRID = morecantile.tms.get("WebMercatorQuad")


@pytest.fixture(scope="module")
def labels(dataset):
    return dataset.place_labels()


def _overlapping_pairs(table, rows, z):
    boxes = table.box(rows, z)
    half = LABEL_GAP_PX / 2 - 1e-6
    rects = shapely.box(boxes[:, 0] - half, boxes[:, 1] - half, boxes[:, 2] + half, boxes[:, 3] + half)
    a, b = shapely.STRtree(rects).query(rects, predicate="intersects")
    keep = a < b
    return rows[a[keep]], rows[b[keep]]


@pytest.mark.parametrize("z", range(LABEL_MIN_ZOOM, LABEL_MAX_ZOOM + 1))
def test_no_two_labels_shown_at_a_zoom_overlap(labels, z):
    rows = labels.shown_at(z)
    assert len(rows)
    a, _ = _overlapping_pairs(labels, rows, z)
    assert len(a) == 0, f"{len(a)} overlapping labels at z{z}"


def test_a_hidden_label_gave_way_to_a_more_important_or_earlier_one(labels, boundaries):
    """The greedy rule, checked from outside: every place not labelled at z (though it may show there) comes
    within the gap of a label shown at z that is more important, or was shown from a lower zoom already (a
    label never disappears for a more important one, so maps do not flicker while zooming in)."""
    again = build_labels(boundaries)
    assert len(again) == len(labels) and (again.min_zoom == labels.min_zoom).all()     # deterministic
    for z in (6, 9, 12):
        shown = labels.shown_at(z)
        kind_max = np.array([KIND_ZOOMS[k][1] for k in labels.kind])
        waiting = np.flatnonzero((labels.min_zoom > z) & (labels.may_from <= z) & (kind_max >= z))
        if not len(waiting):
            continue
        boxes = labels.box(shown, z)
        tree = shapely.STRtree(shapely.box(*boxes.T))
        mine = labels.box(waiting, z)
        gap = LABEL_GAP_PX
        hits = tree.query(shapely.box(mine[:, 0] - gap, mine[:, 1] - gap, mine[:, 2] + gap, mine[:, 3] + gap),
                          predicate="intersects")
        blocked = np.zeros(len(waiting), bool)
        for i, j in zip(*hits, strict=True):
            if labels.rank[shown[j]] < labels.rank[waiting[i]] or labels.min_zoom[shown[j]] < z:
                blocked[i] = True
        assert blocked.all(), f"z{z}: {int((~blocked).sum())} labels hidden with room to show"


def test_importance_and_kinds(labels, boundaries):
    kinds = labels.kind.tolist()
    order = [KINDS.index(k) for k in kinds]
    assert order == sorted(order)                              # province > county > city > village > unsure
    at5 = set(labels.kind[labels.shown_at(5)])
    assert at5 == {"province"}
    assert "county" in set(labels.kind[labels.shown_at(8)]) and "village" not in set(labels.kind[labels.shown_at(9)])
    at12 = labels.kind[labels.shown_at(12)]
    assert (at12 == "village").sum() > 10_000 and "province" not in set(at12) and "county" not in set(at12)
    # every province and every county has its name somewhere
    assert (labels.kind == "province").sum() == len(boundaries.provinces)
    assert (labels.kind == "county").sum() >= 0.95 * len(boundaries.counties)
    # villages whose point is weak or an outlier are labelled as unsure, never as sure villages
    p = boundaries.places
    unsure = p[(p["level"] == "village") & ((p["point_strength"] == "weak") | p["point_outlier"])]
    codes = {(c, k) for c, k in zip(labels.code, labels.kind, strict=True)}
    assert not any((c, "village") in codes for c in unsure["code"])
    assert sum((c, "village_unsure") in codes for c in unsure["code"]) > 0.5 * len(unsure)
    # an area's name sits inside its area
    counties = boundaries.counties.set_index("osm_relation_id")
    for r in np.flatnonzero(labels.kind == "county")[:60]:
        poly = counties.geometry.loc[int(labels.county_osm[r])]
        assert poly.contains(shapely.Point(labels.lon[r], labels.lat[r]))


@pytest.mark.parametrize("z", [6, 9, 12])
def test_tiles_hold_each_shown_label_once(client, labels, z):
    rows = labels.shown_at(z)
    # the tiles of a province-sized box, against the table: each label in the tile of its point, once
    box = (50.0, 35.0, 51.5, 36.2) if z >= 9 else (44.0, 25.0, 63.5, 40.0)
    tiles = list(GRID.tiles(*box, zooms=[z]))
    seen = []
    for t in tiles:
        fc = client.get(f"/tiles/places/{t.z}/{t.x}/{t.y}.geojson").json()
        for f in fc["features"]:
            lon, lat = f["geometry"]["coordinates"]
            assert GRID.tile(lon, lat, z) == t                     # in its own tile only
            assert f["properties"]["min_zoom"] <= z <= f["properties"]["max_zoom"]
            seen.append(f["id"])
    assert len(seen) == len(set(seen))
    inside = rows[(labels.lon[rows] >= box[0]) & (labels.lon[rows] < box[2]) & (labels.lat[rows] > box[1])
                  & (labels.lat[rows] <= box[3])]
    assert set(labels.rank[inside].tolist()) <= set(seen)


def test_places_mvt_and_tilejson(client):
    t = GRID.tile(51.39, 35.69, 9)
    body = client.get(f"/tiles/places/{t.z}/{t.x}/{t.y}.mvt")
    assert body.status_code == 200 and body.headers["content-type"].startswith("application/vnd.mapbox-vector-tile")
    layer = mapbox_vector_tile.decode(body.content)["places"]
    fc = client.get(f"/tiles/places/{t.z}/{t.x}/{t.y}.geojson").json()
    assert sorted(f["properties"]["name"] for f in layer["features"]) == \
        sorted(f["properties"]["name"] for f in fc["features"])
    assert "تهران" in {f["properties"]["name"] for f in fc["features"]}
    doc = client.get("/tiles/places/tilejson.json").json()
    assert doc["tiles"][0].endswith("/tiles/places/{z}/{x}/{y}.mvt")
    assert set(doc["vector_layers"][0]["fields"]) == {"name", "kind", "min_zoom", "max_zoom", "rank"}
    assert "places" in {x["id"] for x in client.get("/tiles").json()["layers"]}
    etag = client.get(f"/tiles/places/{t.z}/{t.x}/{t.y}.geojson").headers["etag"]
    assert client.get(f"/tiles/places/{t.z}/{t.x}/{t.y}.geojson", headers={"If-None-Match": etag}).status_code == 304
    assert client.get("/tiles/places/3/5/3.geojson").json()["features"] == []     # below the labels' zooms


def test_labels_are_embedded_in_standalone_files(dataset):
    from coopgis.standalone import _labels, parse_filters

    table = dataset.place_labels()
    national = _labels(dataset, parse_filters(dataset, {}))
    assert {r[3] for r in national} <= {"province", "county", "city"}      # no villages in a national file
    assert len(national) == int((table.min_zoom <= 9).sum())
    province = dataset.cooperatives["province"].value_counts().index[0]
    local = _labels(dataset, parse_filters(dataset, {"province": province}))
    assert "village" in {r[3] for r in local}
    lon0, lat0, lon1, lat1 = dataset.collections["provinces"].frame.set_index("iso_3166_2").geometry.loc[
        province].bounds
    assert all(lon0 - 0.11 <= r[0] <= lon1 + 0.11 and lat0 - 0.11 <= r[1] <= lat1 + 0.11 for r in local)


def test_labels_are_kept_in_the_boundaries_cache(tmp_path, monkeypatch, labels):
    """A later start reads the labels with the boundaries from the cache (12 ms, 11 MB) rather than making
    them again (a second, and ~100 MB of the process's heap left in pieces): the same labels."""
    from coopgis import placenames
    from coopgis.boundaries import load_boundaries

    load_boundaries(cache_dir=tmp_path)
    monkeypatch.setattr(placenames, "build_labels", lambda b: pytest.fail("the labels were made again"))
    kept = load_boundaries(cache_dir=tmp_path).labels()
    assert list(kept.name) == list(labels.name) and list(kept.code) == list(labels.code)
    assert (kept.min_zoom == labels.min_zoom).all() and (kept.max_zoom == labels.max_zoom).all()
