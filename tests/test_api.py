"""The service as GIS staff and their tools use it: OGC API - Features, downloads, geocoding, stats."""

import io
import json
import shutil
import subprocess

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from conftest import has_sample_phone
from pyproj import Transformer

PERSONAL = ("phone", "extra", "source_row")


def test_landing_conformance_and_links(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    rels = {l["rel"] for l in r.json()["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= rels
    conf = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conf
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in conf
    # every link the landing page gives resolves
    for l in r.json()["links"]:
        if l["rel"] != "alternate" or "maps" not in l["href"]:
            assert client.get(l["href"]).status_code == 200, l["href"]


def test_openapi_is_30(client):
    doc = client.get("/api").json()
    assert doc["openapi"].startswith("3.0")
    assert '"type": "null"' not in json.dumps(doc)
    assert "/collections/{collection_id}/items" in doc["paths"]


def test_collections_list_the_four(client):
    body = client.get("/collections").json()
    ids = [c["id"] for c in body["collections"]]
    assert ids == ["cooperatives", "provinces", "counties", "deprivation"]
    coll = client.get("/collections/cooperatives").json()
    assert "http://www.opengis.net/def/crs/EPSG/0/3857" in coll["crs"]
    assert coll["storageCrs"].endswith("CRS84")


def _page_through(client, url):
    seen, pages = [], 0
    while url:
        body = client.get(url).json()
        seen += [f["id"] for f in body["features"]]
        assert body["numberReturned"] == len(body["features"])
        url = next((l["href"] for l in body["links"] if l["rel"] == "next"), None)
        pages += 1
    return seen, body["numberMatched"], pages


def test_paging_through_all_items_equals_the_count(client, dataset):
    seen, matched, pages = _page_through(client, "/collections/cooperatives/items?limit=200")
    assert len(seen) == matched == len(dataset.cooperatives)
    assert len(set(seen)) == len(seen)
    assert pages == -(-matched // 200)


def test_limit_above_maximum_is_capped(client):
    body = client.get("/collections/cooperatives/items?limit=100000").json()
    assert body["numberReturned"] == 500


def test_bbox_matches_geopandas(client, dataset):
    gdf = dataset.cooperatives
    body = client.get("/collections/cooperatives/items?bbox=51,35,52,36&limit=500").json()
    expected = set(gdf.cx[51:52, 35:36]["registration_no"])
    assert {f["id"] for f in body["features"]} == expected and body["numberMatched"] == len(expected)


def test_bbox_crs_3857_and_crs_output(client, dataset):
    t = Transformer.from_crs("OGC:CRS84", "EPSG:3857", always_xy=True)
    (x0, x1), (y0, y1) = t.transform([51, 52], [35, 36])
    body = client.get(f"/collections/cooperatives/items?bbox={x0},{y0},{x1},{y1}"
                      "&bbox-crs=http://www.opengis.net/def/crs/EPSG/0/3857&crs=EPSG:3857&limit=500")
    assert body.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/3857>"
    feats = body.json()["features"]
    expected = dataset.cooperatives.cx[51:52, 35:36].set_index("registration_no").to_crs(3857)
    assert {f["id"] for f in feats} == set(expected.index)
    for f in feats[:20]:
        x, y = f["geometry"]["coordinates"]
        assert (x, y) == pytest.approx((expected.geometry[f["id"]].x, expected.geometry[f["id"]].y), abs=0.01)


def test_epsg4326_output_is_latitude_first_and_utm_works(client, dataset):
    one = dataset.cooperatives.dropna(subset=["geometry"]).iloc[0]
    fid = one["registration_no"]
    f = client.get(f"/collections/cooperatives/items/{fid}?crs=EPSG:4326").json()
    assert f["geometry"]["coordinates"] == pytest.approx([one.geometry.y, one.geometry.x])
    zone = 32600 + int((one.geometry.x + 180) // 6) + 1
    f = client.get(f"/collections/cooperatives/items/{fid}?crs=EPSG:{zone}").json()
    x, y = Transformer.from_crs("OGC:CRS84", f"EPSG:{zone}", always_xy=True).transform(one.geometry.x,
                                                                                          one.geometry.y)
    assert f["geometry"]["coordinates"] == pytest.approx([x, y], abs=0.01)


def test_property_filters_match_pandas(client, dataset):
    gdf = dataset.cooperatives
    cases = {
        "kind=production": gdf["kind"] == "production",
        "kind=تعاونی توليدی": gdf["kind"] == "production",
        "province=IR-07": gdf["province"] == "IR-07",
        "province=فارس": gdf["province"] == "IR-07",
        "province=Fars": gdf["province"] == "IR-07",
        "deprived=true": gdf["deprived"].fillna(False).astype(bool),
        "border=بله": gdf["border"].fillna(False).astype(bool),
        "status=troubled": gdf["status"] == "troubled",
        "registered_year=۱۳۹۵..۱۴۰۰": gdf["registered_year"].between(1395, 1400).fillna(False).astype(bool),
        "sector=beekeeping,poultry": gdf["sector"].isin(["beekeeping", "poultry"]),
    }
    for query, mask in cases.items():
        body = client.get(f"/collections/cooperatives/items?{query}&limit=1").json()
        assert body["numberMatched"] == int(mask.sum()), query


def test_single_feature_and_unknown_ids(client, dataset):
    fid = dataset.cooperatives["registration_no"].iloc[5]
    r = client.get(f"/collections/cooperatives/items/{fid}")
    assert r.status_code == 200 and r.json()["id"] == fid
    r = client.get("/collections/cooperatives/items/does-not-exist")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert "does-not-exist" in r.json()["detail"]


@pytest.mark.parametrize("url", [
    "/collections/nope/items",
    "/collections/cooperatives/items?bbox=1,2,3",
    "/collections/cooperatives/items?bbox=52,36,51,35",
    "/collections/cooperatives/items?bbox=0,0,500,10",
    "/collections/cooperatives/items?crs=EPSG:2000",
    "/collections/cooperatives/items?kind=zzz",
    "/collections/cooperatives/items?province=Atlantis",
    "/collections/cooperatives/items?limit=0",
    "/collections/cooperatives/items?limit=abc",
    "/collections/cooperatives/items?f=pdf",
    "/collections/cooperatives/items?deprived=maybe",
    "/collections/cooperatives/items?registered_year=99",
    "/geocode",
    "/geocode?q=" + "ا" * 400,
    "/reverse?lon=abc&lat=1",
    "/reverse?lon=500&lat=1",
    "/stats?by=galaxy",
])
def test_bad_input_gets_a_clear_problem(client, url):
    r = client.get(url)
    assert 400 <= r.status_code < 500, (url, r.status_code)
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == r.status_code and len(body["detail"]) > 10


def test_no_personal_fields_in_any_public_output(client):
    for url in ("/collections/cooperatives/items?limit=50", "/collections/cooperatives/items?f=csv",
                "/collections/cooperatives/items?f=html&limit=50"):
        text = client.get(url).text
        for name in PERSONAL:
            assert f'"{name}"' not in text and f",{name}," not in text and f">{name}<" not in text, (url, name)
        assert not has_sample_phone(text)


def test_geojson_download_streams_and_opens_in_geopandas(client, dataset, tmp_path):
    r = client.get("/collections/cooperatives/items?f=geojson&limit=500&province=IR-07")
    p = tmp_path / "a.geojson"
    p.write_bytes(r.content)
    gdf = gpd.read_file(p)
    assert len(gdf) == int((dataset.cooperatives["province"] == "IR-07").sum())


def test_csv_download_has_bom_persian_and_neutralised_formulas(client, dataset):
    r = client.get("/collections/cooperatives/items?f=csv")
    assert r.content.startswith("\ufeff".encode())
    assert "attachment" in r.headers["content-disposition"]
    df = pd.read_csv(io.BytesIO(r.content), encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert len(df) == len(dataset.cooperatives)
    assert df["name"].str.contains("نمونه ساختگی").all() or (df["name"] == "").any()
    assert {"lon", "lat"} <= set(df.columns)
    for col in ("name", "address"):
        assert not df[col].str.match(r"^[=+@]").any()


def test_csv_neutralises_a_hostile_name(dataset):
    from coopgis import formats
    from coopgis.dataset import Dataset
    from coopgis.filters import parse_crs

    evil = dataset.cooperatives.head(3).copy()
    evil["name"] = ['=HYPERLINK("http://x")', "+cmd|' /C calc'!A0", "@SUM(1)"]
    ds = Dataset(evil, dataset.boundaries, geocoder=dataset.geocoder)
    text = b"".join(formats.csv_stream(ds.collections["cooperatives"], np.arange(3), parse_crs(None))).decode()
    assert "'=HYPERLINK" in text and "'+cmd" in text and "'@SUM" in text


@pytest.mark.parametrize("fmt,driver", [("gpkg", "GPKG"), ("kml", "KML")])
def test_gpkg_and_kml_downloads_open(client, dataset, tmp_path, fmt, driver):
    r = client.get(f"/collections/cooperatives/items?f={fmt}&province=IR-07")
    assert r.status_code == 200
    p = tmp_path / f"x.{fmt}"
    p.write_bytes(r.content)
    info = pyogrio.read_info(p)
    assert info["driver"] in (driver, "LIB" + driver)
    gdf = gpd.read_file(p)
    assert len(gdf) == int((dataset.cooperatives["province"] == "IR-07").sum())
    assert "phone" not in gdf.columns


def test_accept_header_negotiation(client):
    assert client.get("/collections", headers={"Accept": "text/html"}).headers["content-type"].startswith("text/html")
    r = client.get("/collections/cooperatives/items?limit=3", headers={"Accept": "text/csv"})
    assert r.headers["content-type"].startswith("text/csv")
    r = client.get("/collections/cooperatives/items?limit=3", headers={"Accept": "application/geo+json"})
    assert r.headers["content-type"] == "application/geo+json"


def test_html_views_are_persian_rtl(client):
    for url in ("/?f=html", "/collections?f=html", "/collections/cooperatives?f=html",
                "/collections/cooperatives/items?f=html&limit=5"):
        html = client.get(url).text
        assert '<html lang="fa" dir="rtl">' in html, url
        assert "http://" not in html.split("<body>")[0].replace("http://testserver", ""), url


def test_geocode_and_reverse_endpoints(client):
    r = client.get("/geocode", params={"q": "فارس، شيراز"}).json()
    assert (r["province"], r["county"], r["precision"]) == ("IR-07", "شیراز", "county")
    r = client.get("/reverse", params={"lon": "۶۰٫۸۶", "lat": "29.5"}).json()
    assert (r["province"], r["border"]) == ("IR-11", True)


def test_stats_totals_and_csv(client, dataset):
    gdf = dataset.cooperatives
    body = client.get("/stats?by=province").json()
    total = body["rows"][-1]
    assert total["key"] == "total" and total["cooperatives"] == len(gdf)
    assert total["members"] == int(gdf["members"].fillna(0).sum())
    assert sum(r["cooperatives"] for r in body["rows"][:-1]) == len(gdf)
    fars = next(r for r in body["rows"] if r["key"] == "IR-07")
    assert fars["cooperatives"] == int((gdf["province"] == "IR-07").sum())
    r = client.get("/stats?by=kind&f=csv")
    df = pd.read_csv(io.BytesIO(r.content), encoding="utf-8-sig")
    assert int(df.loc[df["key"] == "total", "cooperatives"].iloc[0]) == len(gdf)


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo (Debian gdal-bin) not installed")
def test_gdal_ogrinfo_reads_every_collection(live_server, dataset):
    out = subprocess.run(["ogrinfo", "-ro", "-so", f"OAPIF:{live_server}"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    for name in ("cooperatives", "provinces", "counties", "deprivation"):
        assert name in out.stdout
    out = subprocess.run(["ogrinfo", "-ro", "-al", "-q", "-oo", "PAGE_SIZE=500", f"OAPIF:{live_server}",
                          "cooperatives"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("OGRFeature(cooperatives)") == len(dataset.cooperatives)
    assert "phone" not in out.stdout
    out = subprocess.run(["ogrinfo", "-ro", "-al", "-so", f"OAPIF:{live_server}", "provinces"],
                         capture_output=True, text=True, timeout=120)
    assert "Feature Count: 31" in out.stdout
