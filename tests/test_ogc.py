"""OGC API - Features Parts 1 and 3 as GIS staff use them: unknown parameters, datetime, queryables, CQL2,
sortby, properties, HEAD, byte ranges, CORS, GeoPackage 1.2, KML and OGC API - Tiles.

CQL2 results are checked against pandas masks and geopandas on the same data; the tile matrix set
against morecantile; GeoPackages with GDAL 3.6's own validator."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import geopandas as gpd
import morecantile
import numpy as np
import orjson
import pandas as pd
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient

ITEMS = "/collections/cooperatives/items"
VALIDATOR = Path("/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_gpkg.py")


def _matched(client, query: str, collection: str = "cooperatives") -> int:
    r = client.get(f"/collections/{collection}/items?{query}&limit=1")
    assert r.status_code == 200, (query, r.text)
    return r.json()["numberMatched"]


def _get_operations(client):
    """(path with sample values, declared query names) of every GET operation in /api."""
    doc = client.get("/api").json()
    samples = {"collection_id": "cooperatives", "layer": "cooperatives", "z": "3", "x": "5", "y": "3.mvt",
               "tile_matrix_set_id": "WebMercatorQuad", "tile_matrix": "3", "tile_row": "3", "tile_col": "5",
               "name": "national", "feature_id": None, "cooperative_id": None, "report_id": "x", "path": "leaflet"}
    for path, ops in doc["paths"].items():
        if "get" not in ops:
            continue
        names = re.findall(r"\{([^}]+)\}", path)
        if any(samples.get(n, "") is None for n in names) or "vendor" in path:
            continue
        yield re.sub(r"\{([^}]+)\}", lambda m: samples.get(m.group(1), "x"), path)


def test_an_unknown_parameter_is_a_400_naming_it_on_every_operation(client):
    for path in _get_operations(client):
        r = client.get(path, params={"kindd": "production"})
        assert r.status_code == 400, (path, r.status_code)
        assert r.headers["content-type"] == "application/problem+json"
        assert "kindd" in r.json()["detail"], path
    # a map page takes the cooperative filters (read in the browser), and nothing else
    assert client.get("/maps/national?province=IR-07").status_code == 200
    assert client.get("/maps/national?provinse=IR-07").status_code == 400
    # as HTML too, and the known ones still work
    assert client.get(ITEMS + "?f=html&fliter=x").status_code == 400
    assert client.get(ITEMS + "?f=html&limit=5&sortby=-members&properties=name,members").status_code == 200


@pytest.mark.parametrize("query", ["", "limit=7", "limit=7&offset=30", "offset=5&f=json", "f=geojson&limit=3"])
def test_plain_paging_answers_as_the_whole_items_operation(client, query):
    """limit/offset/f alone take a shorter way (api/params.CheckedRoute.simple): the same page, links and counts."""
    plain = client.get("/collections/cooperatives/items?" + query)
    full = client.get("/collections/cooperatives/items?" + query + "&kind=")   # the same request, the long way
    assert plain.status_code == full.status_code == 200
    a, b = plain.json(), full.json()
    for doc in (a, b):
        doc.pop("timeStamp")
        for lk in doc["links"]:
            lk["href"] = lk["href"].replace("kind=&", "").replace("&kind=", "").replace("?kind=", "?")
    assert a == b and plain.headers["content-type"] == full.headers["content-type"]
    assert plain.headers.get("content-crs") == full.headers.get("content-crs")


@pytest.mark.parametrize("cql,mask", [
    ("kind = 'production' AND members > 10", lambda g: (g.kind == "production") & (g.members > 10)),
    ("kind IN ('production', 'services') OR status = 'troubled'",
     lambda g: g.kind.isin(["production", "services"]) | (g.status == "troubled")),
    ("members BETWEEN 10 AND 20", lambda g: g.members.between(10, 20)),
    ("name LIKE 'تعاونی تولیدی%'", lambda g: g.name.str.startswith("تعاونی تولیدی")),
    ("deprived IS NULL", lambda g: g.deprived.isna()),
    ("NOT (members > 10)", lambda g: g.members <= 10),   # unknown member counts are neither
    ("deprived = true AND border = false", lambda g: (g.deprived == True) & (g.border == False)),  # noqa: E712
    ("registered_on >= DATE('2015-01-01') AND registered_on < '2018-01-01'",
     lambda g: (g.registered_on >= "2015-01-01") & (g.registered_on < "2018-01-01")),
    ("members > jobs", lambda g: g.members > g.jobs),
    ("province <> 'IR-07' AND uncertainty_m < 5000", lambda g: (g.province != "IR-07") & (g.uncertainty_m < 5000)),
    # text that the served frame holds as categories (few distinct values) still orders as text
    ("province < 'IR-10' AND kind >= 'rural'", lambda g: (g.province.astype("str") < "IR-10")
     & (g.kind.astype("str") >= "rural")),
])
def test_cql2_text_matches_pandas(client, dataset, cql, mask):
    g = dataset.cooperatives
    expected = int(mask(g).fillna(False).astype(bool).sum())
    assert _matched(client, "filter=" + quote(cql)) == expected


def test_cql2_json_and_text_agree(client):
    doc = {"op": "and", "args": [{"op": "=", "args": [{"property": "kind"}, "production"]},
                                 {"op": ">", "args": [{"property": "members"}, 10]}]}
    text = _matched(client, "filter=" + quote("kind = 'production' AND members > 10"))
    assert _matched(client, "filter-lang=cql2-json&filter=" + quote(json.dumps(doc))) == text


def test_cql2_spatial_matches_geopandas(client, dataset):
    g = dataset.cooperatives
    box = shapely.box(51, 35, 53, 37)
    assert _matched(client, "filter=" + quote("S_INTERSECTS(geometry, BBOX(51,35,53,37))")) == int(
        g.intersects(box).sum())
    poly = shapely.Polygon([(50, 30), (56, 30), (56, 38), (50, 30)])
    assert _matched(client, "filter=" + quote(f"S_INTERSECTS(geometry, {poly.wkt})")) == int(g.intersects(poly).sum())
    located = g.geometry.notna() & ~g.geometry.is_empty
    assert _matched(client, "filter=" + quote("S_DISJOINT(geometry, BBOX(51,35,53,37))")) == int(
        (located & ~g.intersects(box)).sum())
    for shape in (box, poly):
        assert _matched(client, "filter=" + quote(f"S_WITHIN(geometry, {shape.wkt})")) == int(g.within(shape).sum())
    doc = {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [51, 35, 53, 37]}]}
    assert _matched(client, "filter-lang=cql2-json&filter=" + quote(json.dumps(doc))) == int(g.intersects(box).sum())
    # filter-crs: the same box in Web Mercator
    x0, y0, x1, y1 = gpd.GeoSeries([box], crs=4326).to_crs(3857).total_bounds
    cql = quote(f"S_INTERSECTS(geometry, BBOX({x0},{y0},{x1},{y1}))")
    assert _matched(client, f"filter={cql}&filter-crs=EPSG:3857") == int(g.intersects(box).sum())
    # boundaries too: the province holding Tehran
    provinces = dataset.collections["provinces"].frame
    body = client.get("/collections/provinces/items?filter=" + quote("S_INTERSECTS(geometry, POINT(51.39 35.69))"))
    assert [f["id"] for f in body.json()["features"]] == list(
        provinces[provinces.intersects(shapely.Point(51.39, 35.69))]["iso_3166_2"])


@pytest.mark.parametrize("cql,where", [
    ("kind = ", "column"), ("kind = 'production' AND", "column"), ("kindd = 'production'", "kindd"),
    ("members = 'many'", "members"), ("S_INTERSECTS(kind, BBOX(1,2,3,4))", "geometry"),
    ("T_AFTER(registered_on, DATE('2015-01-01'))", "column"),
])
def test_a_bad_filter_is_a_400_that_says_where(client, cql, where):
    r = client.get(ITEMS + "?filter=" + quote(cql))
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    assert where in r.json()["detail"], r.json()


def test_filter_limits_are_settings(client):
    s = client.app.state.settings
    many = " OR ".join(f"jobs={i}" for i in range(s.max_cql2_nodes // 2))
    r = client.get(ITEMS, params={"filter": many})
    assert r.status_code == 400 and "COOPGIS_MAX_CQL2_NODES" in r.json()["detail"]
    r = client.get(ITEMS, params={"filter": "name = '" + "x" * s.max_cql2_length + "'"})
    assert r.status_code == 400


def test_datetime_instant_and_intervals_match_pandas(client, dataset):
    d = pd.to_datetime(dataset.cooperatives["registered_on"])
    one = d.dropna().iloc[0]
    cases = {
        one.strftime("%Y-%m-%d"): d == one,
        one.strftime("%Y-%m-%dT10:00:00Z"): d == one,
        "2015-01-01/2019-12-31": d.between("2015-01-01", "2019-12-31"),
        "../2010-01-01": d <= "2010-01-01",
        "2015-01-01/..": d >= "2015-01-01",
        "۲۰۱۵-۰۱-۰۱/..": d >= "2015-01-01",
    }
    for value, mask in cases.items():
        assert _matched(client, "datetime=" + quote(value)) == int(mask.sum()), value
    coll = client.get("/collections/cooperatives").json()
    start, end = coll["extent"]["temporal"]["interval"][0]
    assert start.startswith(d.min().strftime("%Y-%m-%d")) and end.startswith(d.max().strftime("%Y-%m-%d"))
    for bad in ("2015-13-01", "2020-01-01/2015-01-01", "yesterday"):
        assert client.get(ITEMS, params={"datetime": bad}).status_code == 400, bad
    r = client.get("/collections/provinces/items?datetime=2015-01-01")
    assert r.status_code == 400 and "time" in r.json()["detail"]


def test_sortby_several_keys_matches_pandas(client, dataset):
    g = dataset.cooperatives
    body = client.get(ITEMS + "?sortby=-members,%2Bname&limit=200&properties=members,name").json()
    expected = g.sort_values(["members", "name"], ascending=[False, True], kind="stable", na_position="last")
    assert [f["id"] for f in body["features"]] == list(expected["registration_no"][:200])
    assert all(set(f["properties"]) == {"members", "name"} for f in body["features"])
    assert client.get(ITEMS + "?sortby=geometry").status_code == 400
    assert client.get(ITEMS + "?properties=phone").status_code == 400


def test_skip_geometry_and_properties_in_downloads(client):
    body = client.get(ITEMS + "?skipGeometry=true&limit=3").json()
    assert all(f["geometry"] is None for f in body["features"])
    csv = client.get(ITEMS + "?f=csv&limit=3&properties=name&skipGeometry=true").content.decode("utf-8-sig")
    assert csv.splitlines()[0] == "registration_no,name"


def test_queryables_are_typed_with_titles_and_enums(client):
    r = client.get("/collections/cooperatives/queryables")
    assert r.status_code == 200 and r.headers["content-type"] == "application/schema+json"
    q = r.json()
    assert q["$id"].endswith("/collections/cooperatives/queryables") and q["type"] == "object"
    props = q["properties"]
    assert props["deprived"]["type"] == "boolean" and props["members"]["type"] == "integer"
    assert props["registered_on"] == {**props["registered_on"], "type": "string", "format": "date"}
    assert "production" in props["kind"]["enum"] and "troubled" in props["status"]["enum"]
    assert props["kind"]["x-title-fa"] and props["kind"]["title"]
    assert props["geometry"]["format"] == "geometry-point"
    assert "phone" not in props and "extra" not in props
    assert client.get("/collections/counties/queryables").json()["properties"]["border"]["type"] == "boolean"
    links = client.get("/collections/cooperatives").json()["links"]
    assert any(l["rel"].endswith("/queryables") for l in links)


def test_head_answers_every_get_like_the_get(client):
    for path in _get_operations(client):
        for _ in range(3):   # an items page's timeStamp is to the second: a pair may straddle one, never three
            get, head = client.get(path), client.head(path)
            if head.headers.get("etag") == get.headers.get("etag"):
                break
        assert head.status_code == get.status_code, path
        assert head.content == b"", path
        for name in ("content-type", "etag"):
            assert head.headers.get(name) == get.headers.get(name), (path, name)


def test_downloads_answer_byte_ranges_with_a_stable_etag(client):
    url = ITEMS + "?f=gpkg&province=IR-07"
    whole = client.get(url)
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["etag"].startswith('"')
    size = len(whole.content)
    r = client.get(url, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == whole.content[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{size}"
    r = client.get(url, headers={"Range": "bytes=-50"})
    assert r.status_code == 206 and r.content == whole.content[-50:]
    assert client.get(url, headers={"Range": f"bytes={size}-"}).status_code == 416
    assert client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"stale"'}).status_code == 200
    assert client.get(url, headers={"Range": "bytes=0-9", "If-Range": whole.headers["etag"]}).status_code == 206
    assert client.get(url).headers["etag"] == whole.headers["etag"]
    assert client.get(url, headers={"If-None-Match": whole.headers["etag"]}).status_code == 304
    name = client.get("/collections/cooperatives/items.csv?limit=3").headers["content-disposition"]
    assert 'filename="cooperatives.csv"' in name


def test_cors_for_public_reads_is_off_by_default_and_never_on_private_routes(sample_store, dataset, tmp_path):
    from coopgis.app import create_app
    from coopgis.settings import ServiceSettings

    closed = TestClient(create_app(ServiceSettings(data=sample_store.folder, tokens_file=tmp_path / "t.json"),
                                   dataset))
    assert "access-control-allow-origin" not in closed.get(ITEMS, headers={"Origin": "http://a.example"}).headers
    open_ = TestClient(create_app(ServiceSettings(data=sample_store.folder, tokens_file=tmp_path / "t.json",
                                                  cors_public=True), dataset))
    for path in (ITEMS + "?limit=1", "/tiles/cooperatives/tilejson.json", "/tiles/provinces/4/10/6.mvt",
                 "/collections/provinces/tiles/WebMercatorQuad"):
        r = open_.get(path, headers={"Origin": "http://a.example"})
        assert r.headers["access-control-allow-origin"] == "*", path
        assert "access-control-allow-credentials" not in r.headers
    pre = open_.options(ITEMS, headers={"Origin": "http://a.example", "Access-Control-Request-Method": "GET"})
    assert pre.status_code == 204 and "GET" in pre.headers["access-control-allow-methods"]
    assert "authorization" not in pre.headers["access-control-allow-headers"].lower()
    reg = dataset.cooperatives["registration_no"].iat[0]
    for path in (f"/cooperatives/{reg}", "/audit", "/location-reports"):
        assert "access-control-allow-origin" not in open_.get(path, headers={"Origin": "http://a.example"}).headers


def test_geopackage_is_version_1_2_with_valid_rtree_triggers_dates_and_ids(client, dataset, tmp_path):
    p = tmp_path / "c.gpkg"
    p.write_bytes(client.get(ITEMS + "?f=gpkg&province=IR-07").content)
    with sqlite3.connect(p) as db:
        assert db.execute("pragma user_version").fetchone()[0] == 10200
        triggers = {r[0] for r in db.execute("select name from sqlite_master where type='trigger'")}
        assert "rtree_cooperatives_geom_update1" in triggers
        declared = {r[1]: r[2] for r in db.execute("pragma table_info(cooperatives)")}
    assert declared["registered_on"] == "DATE" and declared["members"] in ("INTEGER", "MEDIUMINT", "BIGINT")
    g = pyogrio.read_dataframe(p)
    expected = dataset.cooperatives[dataset.cooperatives["province"] == "IR-07"]
    assert set(g["registration_no"]) == set(expected["registration_no"])
    if VALIDATOR.exists() and shutil.which("/usr/bin/python3"):
        out = subprocess.run(["/usr/bin/python3", str(VALIDATOR), str(p)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
    if shutil.which("ogrinfo"):
        out = subprocess.run(["ogrinfo", "-ro", "-so", "-al", str(p)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "Warning" not in out.stderr, out.stderr
        assert "registered_on: Date" in out.stdout


def test_kml_names_placemarks_in_persian_styles_by_kind_and_types_numbers(client, dataset, tmp_path):
    p = tmp_path / "p.kml"
    p.write_bytes(client.get("/collections/provinces/items?f=kml").content)
    names = set(pyogrio.read_dataframe(p)["Name"])
    assert names == set(dataset.collections["provinces"].frame["name_fa"]) and "IR-00" not in names
    text = client.get(ITEMS + "?f=kml&kind=production&limit=20").text
    assert text.count("<styleUrl>#production</styleUrl>") == 20 and '<Style id="production">' in text
    p.write_bytes(text.encode())
    if shutil.which("ogrinfo"):
        out = subprocess.run(["ogrinfo", "-ro", "-so", "-al", str(p)], capture_output=True, text=True, timeout=60)
        assert "members: Integer" in out.stdout and "deprived: Integer" in out.stdout, out.stdout


def test_ogc_tiles_use_morecantile_webmercatorquad_and_serve_the_same_tiles(client):
    tms = client.get("/tileMatrixSets/WebMercatorQuad").json()
    assert morecantile.TileMatrixSet.model_validate(tms) == morecantile.tms.get("WebMercatorQuad")
    listed = client.get("/tileMatrixSets").json()["tileMatrixSets"]
    assert [t["id"] for t in listed] == ["WebMercatorQuad"]
    for name in ("cooperatives", "provinces", "counties", "deprivation"):
        coll = client.get(f"/collections/{name}").json()
        href = next(l["href"] for l in coll["links"] if l["rel"].endswith("/tilesets-vector"))
        tileset_href = next(l["href"] for l in client.get(href).json()["tilesets"][0]["links"] if l["rel"] == "self")
        meta = client.get(tileset_href).json()
        assert meta["dataType"] == "vector" and meta["tileMatrixSetURI"].endswith("WebMercatorQuad")
        template = next(l["href"] for l in meta["links"] if l["rel"] == "item" and "mapbox" in l["type"])
        url = template.replace("{tileMatrix}", "5").replace("{tileRow}", "12").replace("{tileCol}", "20")
        ogc, xyz = client.get(url), client.get(f"/tiles/{name}/5/20/12.mvt")
        assert ogc.status_code == 200 and ogc.content == xyz.content, name
        limits = {lim["tileMatrix"]: lim for lim in meta["tileMatrixSetLimits"]}
        west, south, east, north = coll["extent"]["spatial"]["bbox"][0]
        ul = morecantile.tms.get("WebMercatorQuad").tile(west, north, 5)
        assert (limits["5"]["minTileCol"], limits["5"]["minTileRow"]) == (ul.x, ul.y)
    assert client.get("/collections/provinces/tiles/WorldCRS84Quad").status_code == 404
    conformance = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt" in conformance


def test_qgis_reads_the_page_size_from_the_api_description(client):
    doc = client.get("/api").json()
    limit = doc["components"]["parameters"]["limit"]["schema"]
    s = client.app.state.settings
    assert limit["maximum"] == s.max_limit and limit["type"] == "integer"
    items = doc["paths"]["/collections/{collection_id}/items"]["get"]["parameters"]
    assert {"$ref": "#/components/parameters/limit"} in items
    bbox = next(p for p in items if p.get("name") == "bbox")
    assert bbox["schema"]["type"] == "array" and bbox["style"] == "form" and bbox["explode"] is False


def test_cql2_evaluation_is_vectorised_and_agrees_with_the_query_parameters(dataset):
    from coopgis.cql2 import parse_cql2
    from coopgis.filters import parse_filter

    coll = dataset.collections["cooperatives"]
    flt = parse_filter(dataset, {"kind": "production,services", "province": "IR-07", "deprived": "true"})
    cql = parse_cql2("kind IN ('production','services') AND province = 'IR-07' AND deprived = true", None, coll)
    assert np.array_equal(flt.mask(coll), cql.mask(coll))


def test_a_page_read_in_ranges_after_its_head_is_one_answer(client):
    """GDAL's /vsicurl/ asks a page's size with HEAD, then reads it in ranges: one answer, not a new page (a
    new timeStamp) per read, although a page read whole is not kept."""
    url = ITEMS + "?limit=50&kind=rural"
    head = client.head(url)
    etag, size = head.headers["etag"], int(head.headers["content-length"])
    time.sleep(1.1)    # a page made again now would carry another timeStamp
    first = client.get(url, headers={"Range": "bytes=0-99", "If-Range": etag})
    rest = client.get(url, headers={"Range": f"bytes=100-{size - 1}", "If-Range": etag})
    assert first.status_code == rest.status_code == 206
    whole = orjson.loads(first.content + rest.content)
    assert whole["numberReturned"] == 50 and {f["properties"]["kind"] for f in whole["features"]} == {"rural"}
