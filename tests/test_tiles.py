"""Vector tiles: grid math against morecantile, clustering that conserves counts, clipped and
simplified polygons, TileJSON, ETag/304 and problem+json for bad addresses."""

from __future__ import annotations

from collections import Counter

import geopandas as gpd
import mapbox_vector_tile
import morecantile
import numpy as np
import orjson
import pandas as pd
import pytest
import shapely
from conftest import UNLIMITED
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coopgis import tiles
from coopgis.api.errors import register_error_handlers
from coopgis.api.limits import Limits
from coopgis.api.tiles import build_router
from coopgis.app import set_dataset
from coopgis.dataset import ATTRIBUTION, Dataset
from coopgis.ingest import DATASET_COLUMNS
from coopgis.joins import join_boundaries
from coopgis.settings import ServiceSettings
from coopgis.vocab import KINDS, SECTORS

TMS = morecantile.tms.get("WebMercatorQuad")
N_POINTS = 24_000
MVT = "application/vnd.mapbox-vector-tile"
GEOJSON = "application/geo+json"
PROBLEM = "application/problem+json"


def make_cooperatives(boundaries, n: int, seed: int = 7) -> gpd.GeoDataFrame:
    """Synthetic geocoded cooperatives: clustered around county points, some stacked, some unlocated."""
    rng = np.random.default_rng(seed)
    c = boundaries.counties
    pick = rng.integers(0, len(c), n)
    spread = np.where(rng.random(n) < 0.2, 0.0, rng.choice([0.02, 0.3], n))   # 20 % on the county point
    lon = c["point_lon"].to_numpy()[pick] + rng.normal(0, 1, n) * spread
    lat = c["point_lat"].to_numpy()[pick] + rng.normal(0, 1, n) * spread
    unlocated = rng.random(n) < 0.01
    lon[unlocated] = np.nan
    lat[unlocated] = np.nan
    joined = join_boundaries(lon, lat, boundaries)
    kinds = np.array([t.code for t in KINDS])
    sectors = np.array([t.code for t in SECTORS])
    df = pd.DataFrame({col: pd.Series([None] * n, dtype=object) for col in DATASET_COLUMNS})
    df["registration_no"] = [str(100000 + i) for i in range(n)]
    df["name"] = [f"تعاونی آزمایشی {i}" for i in range(n)]
    df["kind"] = kinds[rng.choice(len(kinds), n, p=np.r_[0.4, np.full(len(kinds) - 1, 0.6 / (len(kinds) - 1))])]
    df["sector"] = sectors[rng.integers(0, len(sectors), n)]
    df["status"] = np.array(["active", "troubled", "dissolved"])[rng.integers(0, 3, n)]
    df["members"] = pd.array(rng.integers(7, 300, n), dtype="Int64")
    df["jobs"] = pd.array(rng.integers(0, 50, n), dtype="Int64")
    df["women_led"] = pd.array(rng.random(n) < 0.2, dtype="boolean")
    df["registered_year"] = pd.array(rng.integers(1370, 1404, n), dtype="Int64")
    for col in ("province", "province_name", "county", "county_code", "county_osm",
                "deprivation_class", "deprived", "province_shdi", "border"):
        df[col] = joined[col]
    df["precision"] = np.where(unlocated, "none", "village")
    df["confidence"] = 0.9
    df["phone"] = [f"0912{i:07d}" for i in range(n)]
    df["source_row"] = np.arange(n)
    geometry = shapely.points(lon, lat)
    geometry[unlocated] = None
    return gpd.GeoDataFrame(df, geometry=geometry, crs="EPSG:4326")


@pytest.fixture(scope="module")
def grid_dataset(boundaries):
    return Dataset(make_cooperatives(boundaries, N_POINTS), boundaries)


@pytest.fixture(scope="module")
def tile_settings():
    return ServiceSettings(min_zoom=0, max_zoom=16, cluster_max_zoom=11, tile_cache_size=512, **UNLIMITED)


@pytest.fixture(scope="module")
def tiles_client(grid_dataset, tile_settings):
    app = FastAPI()
    register_error_handlers(app)
    app.state.settings = tile_settings
    app.state.limits = Limits(tile_settings)
    set_dataset(app, grid_dataset)
    app.include_router(build_router(tile_settings))
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def grid_located(grid_dataset):
    coll = grid_dataset.collections["cooperatives"]
    ok = np.isfinite(coll.lon)
    return coll.frame[ok], coll.lon[ok], coll.lat[ok]


def covering(lon, lat, z):
    """Every tile of zoom z holding at least one of the points (morecantile's own answer)."""
    return sorted({(t.x, t.y) for t in (TMS.tile(a, b, z) for a, b in zip(lon, lat, strict=False))})


def in_tile(lon, lat, z, x, y):
    """Points inside a tile by morecantile's bounds (west/north edges in, east/south out)."""
    b = TMS.bounds(morecantile.Tile(x, y, z))
    return (lon >= b.left) & (lon < b.right) & (lat <= b.top) & (lat > b.bottom)


def features(tiles_client, path, **params):
    r = tiles_client.get(path, params=params)
    assert r.status_code == 200, r.text
    if path.endswith(".mvt"):
        assert r.headers["content-type"] == MVT
        layers = mapbox_vector_tile.decode(r.content, default_options={"y_coord_down": True})
        return [f for layer in layers.values() for f in layer["features"]]
    assert r.headers["content-type"] == GEOJSON
    doc = orjson.loads(r.content)
    assert doc["type"] == "FeatureCollection"
    return doc["features"]


def busiest_tile(lon, lat, z):
    n = 2 ** z
    u, v = tiles.lonlat_to_world(lon, lat)
    keys = Counter(zip(np.floor(u * n).astype(int).tolist(), np.floor(v * n).astype(int).tolist(), strict=False))
    return keys.most_common(1)[0][0]


# ---- grid math ----------------------------------------------------------------------------------

def test_tile_math_matches_morecantile(grid_located):
    _, lon, lat = grid_located
    for z, x, y in ((0, 0, 0), (5, 20, 12), (8, 165, 101), (12, 2635, 1612), (16, 42000, 26000)):
        t = morecantile.Tile(x, y, z)
        assert np.allclose(tiles.tile_bounds(z, x, y), tuple(TMS.bounds(t)), atol=1e-9)
        assert np.allclose(tiles.mercator_bounds(z, x, y), tuple(TMS.xy_bounds(t)), atol=1e-6)
    u, v = tiles.lonlat_to_world(lon[:500], lat[:500])
    for z in (3, 9, 14):
        ours = list(zip(np.floor(u * 2 ** z).astype(int).tolist(), np.floor(v * 2 ** z).astype(int).tolist(),
                        strict=False))
        theirs = [(t.x, t.y) for t in (TMS.tile(a, b, z) for a, b in zip(lon[:500], lat[:500], strict=False))]
        assert ours == theirs


def test_morton_span_is_the_tile(grid_dataset):
    index = tiles.TileEngine(grid_dataset, 11).points()
    for z, x, y in ((5, 20, 12), (9, 330, 202)):
        lo, hi = index.span(z, x, y)
        n = 2 ** z
        inside = (np.floor(index.u * n) == x) & (np.floor(index.v * n) == y)
        assert np.array_equal(np.flatnonzero(inside), np.arange(lo, hi))


# ---- cooperatives -------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", ["geojson", "mvt"])
def test_individual_points_match_the_tile_selection(tiles_client, grid_located, ext):
    frame, lon, lat = grid_located
    z = 13
    x, y = busiest_tile(lon, lat, z)
    expected = set(frame["registration_no"][in_tile(lon, lat, z, x, y)])
    assert len(expected) > 20
    feats = features(tiles_client, f"/tiles/cooperatives/{z}/{x}/{y}.{ext}")
    got = [f["properties"]["registration_no"] for f in feats]
    assert len(got) == len(expected) and set(got) == expected
    for f in feats:
        p = f["properties"]
        assert p["count"] == 1 and p["cluster"] is False
        assert "phone" not in p and "address" not in p
        assert {"registration_no", "name", "kind", "kind_fa", "members", "precision"} <= set(p)
    if ext == "geojson":
        assert all(f["id"] == f["properties"]["registration_no"] for f in feats)
        row = frame.set_index("registration_no").loc[feats[0]["id"]]
        assert feats[0]["geometry"]["coordinates"] == pytest.approx([row.geometry.x, row.geometry.y])
    else:
        # pixel positions agree with morecantile's Web Mercator bounds of the tile
        b = TMS.xy_bounds(morecantile.Tile(x, y, z))
        by_no = frame.set_index("registration_no").geometry
        for f in feats[:50]:
            px, py = f["geometry"]["coordinates"]
            assert 0 <= px < 4096 and 0 <= py < 4096
            mx, my = TMS.xy(*_xy(by_no.loc[f["properties"]["registration_no"]]))
            assert abs((mx - b.left) / (b.right - b.left) * 4096 - px) <= 1
            assert abs((b.top - my) / (b.top - b.bottom) * 4096 - py) <= 1
            assert f["id"] == int(f["properties"]["registration_no"])


def _xy(point):
    return point.x, point.y


@pytest.mark.parametrize("ext", ["geojson", "mvt"])
def test_clusters_conserve_counts_at_z5(tiles_client, grid_located, ext):
    frame, lon, lat = grid_located
    total = 0
    for x, y in covering(lon, lat, 5):
        feats = features(tiles_client, f"/tiles/cooperatives/5/{x}/{y}.{ext}")
        assert len(feats) <= 1000
        total += sum(f["properties"]["count"] for f in feats)
    assert total == len(frame) and len(frame) > 20_000


def test_clusters_conserve_filtered_counts(tiles_client, grid_located):
    frame, lon, lat = grid_located
    keep = frame["kind"].isin(["women", "housing"]).to_numpy()
    assert 0 < keep.sum() < len(frame)
    for ext in ("geojson", "mvt"):
        total = 0
        for x, y in covering(lon[keep], lat[keep], 5):
            feats = features(tiles_client, f"/tiles/cooperatives/5/{x}/{y}.{ext}", kind="women,مسکن")
            total += sum(f["properties"]["count"] for f in feats)
        assert total == keep.sum()
    # and the filter really shapes what is inside
    x, y = busiest_tile(lon, lat, 5)
    clusters = [f for f in features(tiles_client, f"/tiles/cooperatives/5/{x}/{y}.geojson", kind="women")
                if f["properties"]["cluster"]]
    assert clusters and all(set(f["properties"]["kinds"]) == {"women"} for f in clusters)


def test_clusters_are_grid_cells_with_sums_and_kinds(tiles_client, grid_located):
    frame, lon, lat = grid_located
    z = 8
    x, y = busiest_tile(lon, lat, z)
    inside = in_tile(lon, lat, z, x, y)
    sub = frame[inside]
    # cells of 32 px of a 256-px tile are the tiles of zoom z + 3
    cells = [(t.x, t.y) for t in (TMS.tile(a, b, z + 3) for a, b in zip(lon[inside], lat[inside], strict=False))]
    expected = Counter(cells)
    feats = features(tiles_client, f"/tiles/cooperatives/{z}/{x}/{y}.geojson")
    assert sorted(f["properties"]["count"] for f in feats) == sorted(expected.values())
    assert len(feats) <= 64
    # each cluster sits in its cell, and its sums and kinds match its members
    cell_of = pd.Series(cells, index=sub.index)
    for f in feats:
        p = f["properties"]
        cx, cy = f["geometry"]["coordinates"]
        cell = TMS.tile(cx, cy, z + 3)
        members = sub[cell_of.map(lambda c: c == (cell.x, cell.y)).to_numpy()]  # noqa: B023  (used at once)
        assert len(members) == p["count"]
        if p["count"] == 1:
            assert p["cluster"] is False and p["registration_no"] == members["registration_no"].iloc[0]
            continue
        assert p["cluster"] is True
        assert p["members"] == int(members["members"].sum()) and p["jobs"] == int(members["jobs"].sum())
        assert p["kinds"] == {k: n for k, n in members["kind"].value_counts().items() if n}
        assert sum(p["kinds"].values()) == p["count"]


def test_mvt_clusters_have_flat_kind_counts(tiles_client, grid_located):
    _, lon, lat = grid_located
    x, y = busiest_tile(lon, lat, 6)
    geo = features(tiles_client, f"/tiles/cooperatives/6/{x}/{y}.geojson")
    mvt = features(tiles_client, f"/tiles/cooperatives/6/{x}/{y}.mvt")
    assert len(geo) == len(mvt)
    by_count = sorted((f["properties"]["count"], f["properties"].get("members")) for f in geo)
    assert by_count == sorted((f["properties"]["count"], f["properties"].get("members")) for f in mvt)
    for f in mvt:
        p = f["properties"]
        if p["cluster"]:
            kinds = {k[5:]: v for k, v in p.items() if k.startswith("kind_")}
            assert sum(kinds.values()) == p["count"] and all(v > 0 for v in kinds.values())
            assert "kinds" not in p


def test_no_z5_tile_is_crowded_even_with_many_points(tiles_client, grid_located):
    _, lon, lat = grid_located
    for x, y in covering(lon, lat, 5):
        assert len(features(tiles_client, f"/tiles/cooperatives/5/{x}/{y}.mvt")) <= 64   # 8 x 8 cells


def test_empty_tiles(tiles_client):
    r = tiles_client.get("/tiles/cooperatives/6/5/40.geojson")       # the Pacific
    assert r.status_code == 200 and r.headers["content-type"] == GEOJSON
    assert orjson.loads(r.content) == {"type": "FeatureCollection", "features": []}
    r = tiles_client.get("/tiles/cooperatives/6/5/40.mvt")
    assert r.status_code == 200 and r.headers["content-type"] == MVT and r.content == b""
    assert mapbox_vector_tile.decode(r.content) == {}
    assert tiles_client.get("/tiles/counties/6/5/40.mvt").content == b""


# ---- polygons -----------------------------------------------------------------------------------

@pytest.mark.parametrize("layer", ["provinces", "counties", "deprivation"])
def test_polygons_are_clipped_to_the_tile_and_buffer(tiles_client, grid_dataset, layer):
    z, x, y = 7, 82, 50                                       # around Tehran
    b = TMS.bounds(morecantile.Tile(x, y, z))
    mb = TMS.xy_bounds(morecantile.Tile(x, y, z))
    feats = features(tiles_client, f"/tiles/{layer}/{z}/{x}/{y}.geojson")
    assert feats
    pad_m = (mb.right - mb.left) * 64 / 4096
    for f in feats:
        g = shapely.geometry.shape(f["geometry"])
        assert g.geom_type in ("Polygon", "MultiPolygon")
        minx, miny, maxx, maxy = g.bounds
        x0, y0 = TMS.xy(minx, miny)
        x1, y1 = TMS.xy(maxx, maxy)
        assert x0 >= mb.left - pad_m - 1 and x1 <= mb.right + pad_m + 1
        assert y0 >= mb.bottom - pad_m - 1 and y1 <= mb.top + pad_m + 1
    coll = grid_dataset.collections[layer]
    hits = coll.frame[coll.frame.intersects(shapely.box(b.left, b.bottom, b.right, b.top))]
    assert {f["id"] for f in feats} >= set(hits[coll.id_column])
    assert set(coll.properties) <= set(feats[0]["properties"])

    mvt = features(tiles_client, f"/tiles/{layer}/{z}/{x}/{y}.mvt")
    assert len(mvt) == len(feats)
    for f in mvt:
        assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        coords = np.array([c for ring in _rings(f["geometry"]) for c in ring])
        assert coords.min() >= -64 and coords.max() <= 4096 + 64
    if layer != "provinces":
        assert {f["id"] for f in mvt} == {f["id"] for f in feats}


def _rings(geom):
    polys = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
    return [ring for poly in polys for ring in poly]


def test_polygons_are_simplified_per_zoom(tiles_client, grid_dataset):
    coll = grid_dataset.collections["counties"]
    # a county of some detail that fits in a few z10 tiles
    frame = coll.frame.assign(nv=shapely.get_num_coordinates(coll.frame.geometry.values))
    frame = frame[(frame.geometry.bounds.maxx - frame.geometry.bounds.minx) < 0.6]
    county = frame.sort_values("nv").iloc[-1]
    cid = int(county["osm_relation_id"])

    def vertices(z):
        minx, miny, maxx, maxy = county.geometry.bounds
        total = 0
        for t in TMS.tiles(minx, miny, maxx, maxy, [z]):
            for f in features(tiles_client, f"/tiles/counties/{z}/{t.x}/{t.y}.geojson"):
                if f["id"] == cid:
                    total += sum(len(r) for r in _rings(f["geometry"]))
        return total

    v4, v10 = vertices(4), vertices(10)
    assert 0 < v4 < v10 / 2
    assert v10 < county["nv"] * 1.5


def test_polygon_mvt_rings_are_oriented_for_y_down(tiles_client):
    feats = features(tiles_client, "/tiles/provinces/5/20/12.mvt")
    assert feats
    for f in feats:
        polys = f["geometry"]["coordinates"]
        polys = polys if f["geometry"]["type"] == "MultiPolygon" else [polys]
        for poly in polys:
            ext = np.array(poly[0], dtype=float)
            area = np.sum(ext[:-1, 0] * ext[1:, 1] - ext[1:, 0] * ext[:-1, 1]) / 2
            assert area > 0          # MVT: exterior rings have positive area in tile coordinates


# ---- TileJSON -----------------------------------------------------------------------------------

def test_tilejson(tiles_client, tile_settings):
    r = tiles_client.get("/tiles/cooperatives/tilejson.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["tilejson"] == "3.0.0"
    assert doc["tiles"] == ["http://testserver/tiles/cooperatives/{z}/{x}/{y}.mvt"]
    assert doc["minzoom"] == tile_settings.min_zoom and doc["maxzoom"] == tile_settings.max_zoom
    assert len(doc["bounds"]) == 4 and doc["bounds"][0] < doc["bounds"][2]
    assert len(doc["center"]) == 3 and doc["bounds"][0] <= doc["center"][0] <= doc["bounds"][2]
    assert doc["attribution"] == ATTRIBUTION and doc["name"]
    (vl,) = doc["vector_layers"]
    assert vl["id"] == "cooperatives" and {"count", "cluster", "registration_no", "kind_women"} <= set(vl["fields"])
    assert vl["minzoom"] == tile_settings.min_zoom and vl["maxzoom"] == tile_settings.max_zoom

    doc = tiles_client.get("/tiles/counties/tilejson.json", params={"format": "geojson"}).json()
    assert doc["tiles"][0].endswith("/tiles/counties/{z}/{x}/{y}.geojson")
    assert doc["vector_layers"][0]["id"] == "counties" and "name_fa" in doc["vector_layers"][0]["fields"]


def test_tilejson_carries_filters(tiles_client):
    doc = tiles_client.get("/tiles/cooperatives/tilejson.json", params={"kind": "women", "border": "true",
                                                                  "format": "mvt"}).json()
    url = doc["tiles"][0]
    assert url.startswith("http://testserver/tiles/cooperatives/{z}/{x}/{y}.mvt?")
    assert "kind=women" in url and "border=true" in url and "format" not in url
    r = tiles_client.get("/tiles/cooperatives/tilejson.json", params={"kind": "no-such-kind"})
    assert r.status_code == 400 and r.headers["content-type"] == PROBLEM
    r = tiles_client.get("/tiles/cooperatives/tilejson.json", params={"format": "png"})
    assert r.status_code == 400 and "mvt" in r.json()["detail"]


# ---- HTTP caching -------------------------------------------------------------------------------

def test_etag_304_and_cache(tiles_client, grid_dataset, tile_settings, grid_located):
    _, lon, lat = grid_located
    x, y = busiest_tile(lon, lat, 7)
    path = f"/tiles/cooperatives/7/{x}/{y}.mvt"
    engine = tiles_client.app.state.tile_engine
    r = tiles_client.get(path)
    assert r.status_code == 200 and r.content
    etag = r.headers["etag"]
    assert etag.startswith('"') and r.headers["cache-control"] == "public, max-age=300"
    hits = engine.cache.hits
    again = tiles_client.get(path)
    assert again.content == r.content and again.headers["etag"] == etag
    assert engine.cache.hits == hits + 1
    r304 = tiles_client.get(path, headers={"If-None-Match": etag})
    assert r304.status_code == 304 and r304.content == b"" and r304.headers["etag"] == etag
    assert tiles_client.get(path, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert tiles_client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    filtered = tiles_client.get(path, params={"kind": "women"})
    assert filtered.headers["etag"] != etag
    assert tiles_client.get(path.replace(".mvt", ".geojson")).headers["etag"] != etag


def test_cache_is_bounded(grid_dataset):
    engine = tiles.TileEngine(grid_dataset, cluster_max_zoom=11, cache_size=3)
    for x in range(6):
        engine.tile("cooperatives", 3, x, 3, "geojson")
    assert len(engine.cache) == 3
    engine.tile("cooperatives", 3, 5, 3, "geojson")
    assert engine.cache.hits == 1


# ---- bad addresses ------------------------------------------------------------------------------

@pytest.mark.parametrize("path, status", [
    ("/tiles/cooperatives/-1/0/0.mvt", 404),
    ("/tiles/cooperatives/5/32/3.mvt", 404),
    ("/tiles/cooperatives/5/3/32.geojson", 404),
    ("/tiles/cooperatives/5/a/3.mvt", 400),
    ("/tiles/cooperatives/5/3/b.mvt", 400),
    ("/tiles/cooperatives/1.5/0/0.mvt", 400),
    ("/tiles/cooperatives/17/0/0.mvt", 404),
    ("/tiles/cooperatives/99999999999999999999/0/0.mvt", 404),
    ("/tiles/cooperatives/5/20/12.png", 404),
    ("/tiles/cooperatives/5/20/12", 404),
    ("/tiles/villages/5/20/12.mvt", 404),
    ("/tiles/villages/tilejson.json", 404),
])
def test_bad_tile_addresses_are_problems(tiles_client, path, status):
    r = tiles_client.get(path)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == status and body["detail"] and "Internal" not in body["title"]


def test_bad_filter_on_a_tile_is_a_problem(tiles_client):
    r = tiles_client.get("/tiles/cooperatives/5/20/12.mvt", params={"deprived": "maybe"})
    assert r.status_code == 400 and r.headers["content-type"] == PROBLEM


def test_persian_digits_in_the_address(tiles_client):
    a = tiles_client.get("/tiles/cooperatives/5/20/12.geojson")
    b = tiles_client.get("/tiles/cooperatives/۵/۲۰/۱۲.geojson")
    assert b.status_code == 200 and a.content == b.content


def test_clusters_from_running_sums_equal_grouping(grid_dataset):
    """The unfiltered fast path gives exactly the clusters of grouping the points."""
    index = tiles.TileEngine(grid_dataset, 11).points()
    checked = 0
    for z in (3, 5, 8, 11):
        n = 2 ** z
        x0, x1 = int(n * (44 + 180) / 360), int(n * (63.5 + 180) / 360)   # Iran's longitudes
        for x in range(x0, x1 + 1):
            for y in range(n):
                lo, hi = index.span(z, x, y)
                if hi <= lo:
                    continue
                a = tiles.cluster(index, np.arange(lo, hi), z)
                b = tiles.cluster_span(index, lo, hi, z)
                assert np.array_equal(a.count, b.count) and np.array_equal(a.first, b.first)
                assert np.allclose(a.u, b.u) and np.allclose(a.v, b.v)
                assert np.array_equal(a.members, b.members) and np.array_equal(a.kinds, b.kinds)
                checked += 1
    assert checked > 20
