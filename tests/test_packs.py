"""County field packs (coopgis.packs, `coopgis pack`, GET /packs/{county}.zip): every file opened by its own
reader (GDAL's ogr2ogr for GPX, KML and GeoJSON, pandas for the CSV, coreutils' sha256sum for the manifest),
the same bytes from the same data (also across processes), public fields only unless a staff token asks."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from coopgis.packs import AmbiguousCounty, UnknownCounty, resolve_county
from coopgis.settings import ROOT

OGR2OGR = shutil.which("ogr2ogr")
FILES = ["MANIFEST.sha256", "README.txt", "cooperatives.csv", "cooperatives.geojson", "cooperatives.gpx",
         "cooperatives.kml", "county.geojson", "map.html", "villages.geojson", "villages.gpx"]
needs_gdal = pytest.mark.skipif(OGR2OGR is None, reason="needs GDAL's ogr2ogr (apt-get install gdal-bin)")


@pytest.fixture(scope="module")
def county(dataset):
    """The county with the most cooperatives in the sample."""
    return int(dataset.cooperatives["county_osm"].value_counts().index[0])


@pytest.fixture(scope="module")
def pack_file(sample_store, county, tmp_path_factory):
    """The county's pack, written by the command line."""
    from coopgis.assets import missing_assets
    from coopgis.maps import WEB

    if missing_assets(WEB):
        pytest.skip("the pack's map needs the map libraries: npm ci --prefix coopgis/web")
    from coopgis.cli import main

    out = tmp_path_factory.mktemp("pack") / "pack.zip"
    assert main(["pack", "--county", str(county), "--out", str(out), "--data", str(sample_store.folder)]) == 0
    return out


@pytest.fixture(scope="module")
def unpacked(pack_file, tmp_path_factory):
    folder = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(pack_file) as zf:
        zf.extractall(folder)
    return folder


@pytest.fixture(scope="module")
def roles(dataset, sample_store, tmp_path_factory):
    """An app on the session's dataset with one token per role (``roles.as_role(role)`` gives the header)."""
    from fastapi.testclient import TestClient

    from coopgis.app import create_app
    from coopgis.auth import TokenStore
    from coopgis.settings import ServiceSettings

    folder = tmp_path_factory.mktemp("roles")
    tokens = TokenStore(folder / "tokens.json")
    keys = {role: tokens.add(f"{role}-user", role) for role in ("field_officer", "gis_staff", "admin")}
    client = TestClient(create_app(ServiceSettings(data=sample_store.folder, tokens_file=folder / "tokens.json"),
                                   dataset))
    client.as_role = lambda role: {"Authorization": f"Bearer {keys[role]}"}
    return client


def _ogr(path: Path, layer: str | None = None) -> dict:
    """A file as GDAL reads it (every layer, or ``layer``), converted by ogr2ogr to GeoJSON features."""
    layers = [layer] if layer else _layers(path)
    features = []
    for name in layers:
        out = subprocess.run([OGR2OGR, "-f", "GeoJSON", "/vsistdout/", str(path), name], capture_output=True,
                             check=True, timeout=60)
        features += json.loads(out.stdout)["features"]
    return {"layers": layers, "features": features}


def _layers(path: Path) -> list[str]:
    out = subprocess.run([shutil.which("ogrinfo"), "-ro", "-q", str(path)], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    names = [line.split(": ", 1)[1] for line in out.splitlines() if ": " in line]
    return [re.sub(r" \([A-Za-z ]+\)$", "", n) for n in names]      # "waypoints (Point)": the geometry type


def test_the_zip_holds_every_file_sorted_with_fixed_times(pack_file):
    with zipfile.ZipFile(pack_file) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == FILES
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert zf.testzip() is None


def test_the_manifest_verifies_with_sha256sum(unpacked):
    listed = [line.split("  ", 1)[1] for line in (unpacked / "MANIFEST.sha256").read_text().splitlines()]
    assert listed == [f for f in FILES if f != "MANIFEST.sha256"]
    done = subprocess.run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=unpacked, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    (unpacked / "villages.gpx").write_bytes((unpacked / "villages.gpx").read_bytes() + b" ")
    broken = subprocess.run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=unpacked, capture_output=True, text=True)
    assert broken.returncode != 0 and "villages.gpx: FAILED" in broken.stdout


@needs_gdal
def test_gdal_reads_the_cooperatives_in_every_format(unpacked, dataset, county):
    coops = dataset.cooperatives
    mine = coops[coops["county_osm"] == county]
    located = mine[mine.geometry.notna()]
    geo = _ogr(unpacked / "cooperatives.geojson")["features"]
    assert sorted(f["properties"]["registration_no"] for f in geo) == sorted(mine["registration_no"].astype(str))
    stand_ins = {f["properties"]["registration_no"] for f in geo if f["properties"]["stand_in"]}
    want = set(located.loc[located["precision"].isin(["rural_district", "district", "county", "province"]),
                           "registration_no"].astype(str))
    assert stand_ins == want and want
    gpx = _ogr(unpacked / "cooperatives.gpx", "waypoints")["features"]
    kml_file = _ogr(unpacked / "cooperatives.kml")
    assert kml_file["layers"] == ["مکان معلوم (دقیق، تأییدشده، روستا یا شهر)",
                                  "مکان تقریبی: نقطه نماینده دهستان، بخش، شهرستان یا استان"]
    kml = kml_file["features"]
    assert len(gpx) == len(kml) == len(located)
    names = {str(r): n for r, n in zip(located["registration_no"], located["name"], strict=True)}
    by_name = {f["properties"]["name"] for f in gpx}
    approximate = {n for n in by_name if n.endswith("(مکان تقریبی)")}
    marked = [f for f in gpx if f["properties"]["name"].endswith("(مکان تقریبی)")]   # names may repeat
    assert len(marked) == len(want)           # a stand-in never passes for a location in a GPS app
    assert all(names[r] in by_name or f"{names[r]} (مکان تقریبی)" in by_name for r in names)
    assert {f["properties"]["Name"] for f in kml} == by_name
    p = next(f for f in gpx if f["properties"]["name"] in approximate)["properties"]
    assert "مکان دقیق این تعاونی معلوم نیست" in p["desc"]
    x, y = next(f for f in gpx if f["properties"]["name"] == names[str(located["registration_no"].iat[0])]
                or f["properties"]["name"] == names[str(located["registration_no"].iat[0])] + " (مکان تقریبی)")[
        "geometry"]["coordinates"]
    g = located.geometry.iat[0]
    assert (x, y) == pytest.approx((g.x, g.y), abs=1e-6)


@needs_gdal
def test_gdal_reads_the_villages_and_the_boundary(unpacked, boundaries, county):
    p = boundaries.places
    placed = p[(p["level"] == "village") & (p["county_osm"] == county) & p["lon"].notna() & p["settlement"]]
    villages = _ogr(unpacked / "villages.geojson")["features"]
    assert sorted(f["properties"]["code"] for f in villages) == sorted(placed["code"])
    assert len(_ogr(unpacked / "villages.gpx", "waypoints")["features"]) == len(placed)
    boundary = _ogr(unpacked / "county.geojson")["features"]
    assert [f["properties"]["osm_relation_id"] for f in boundary] == [county]
    import shapely.geometry

    shape = shapely.geometry.shape(boundary[0]["geometry"])
    expected = boundaries.counties.set_index("osm_relation_id").geometry.loc[county]
    assert shape.symmetric_difference(expected).area < 1e-6 * expected.area


def test_pandas_reads_the_csv_with_public_fields_only(unpacked, dataset, county):
    from coopgis.dataset import PUBLIC_COLUMNS

    raw = (unpacked / "cooperatives.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    table = pd.read_csv(io.BytesIO(raw), encoding="utf-8-sig", dtype=str)
    assert list(table.columns) == [*PUBLIC_COLUMNS, "lon", "lat"]
    mine = dataset.cooperatives[dataset.cooperatives["county_osm"] == county]
    assert sorted(table["registration_no"]) == sorted(mine["registration_no"].astype(str))
    assert set(table["name"]) == set(mine["name"])
    text = raw.decode("utf-8-sig")
    assert "0900" not in text and "given_" not in text            # no phone, no staff fields


def test_readme_says_county_date_counts_and_sources(unpacked, dataset, county):
    text = (unpacked / "README.txt").read_text(encoding="utf-8")
    name = dataset.collections["counties"].frame.set_index("osm_relation_id").loc[county, "name_fa"]
    assert f"بسته میدانی شهرستان {name}" in text
    created = str(dataset.ingest_report["created"])[:10]
    assert f"({created})" in text
    n = int((dataset.cooperatives["county_osm"] == county).sum())
    assert f"تعاونی‌ها: {to_fa(n)}" in text
    assert "OpenStreetMap" in text and "GeoNames" in text and "نمونه ساختگی" in text


def to_fa(n: int) -> str:
    from coopgis.text import to_persian_digits

    return to_persian_digits(f"{n:,}").replace(",", "٬")


def test_same_data_gives_the_same_bytes_in_another_process(pack_file, sample_store, county, tmp_path):
    out = tmp_path / "again.zip"
    env = dict(os.environ, PYTHONHASHSEED="12345")
    done = subprocess.run([sys.executable, "-m", "coopgis.cli", "pack", "--county", str(county), "--out", str(out),
                           "--data", str(sample_store.folder)], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == pack_file.read_bytes()


def test_the_api_serves_the_same_pack_to_field_officers(roles, pack_file, county):
    r = roles.get(f"/packs/{county}.zip")
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
    r = roles.get(f"/packs/{county}.zip", headers=roles.as_role("field_officer"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert r.content == pack_file.read_bytes()          # the same data, whoever makes it
    assert r.headers["etag"].strip('"') == __import__("hashlib").sha256(r.content).hexdigest()
    again = roles.get(f"/packs/{county}.zip", headers={**roles.as_role("field_officer"),
                                                         "If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    assert roles.get("/packs/no-such-county.zip", headers=roles.as_role("field_officer")).status_code == 404


def test_staff_tokens_get_staff_fields(roles, county):
    public = zipfile.ZipFile(io.BytesIO(roles.get(f"/packs/{county}.zip",
                                                    headers=roles.as_role("field_officer")).content))
    staff = zipfile.ZipFile(io.BytesIO(roles.get(f"/packs/{county}.zip",
                                                   headers=roles.as_role("gis_staff")).content))
    pub_cols = pd.read_csv(public.open("cooperatives.csv"), encoding="utf-8-sig", nrows=1).columns
    staff_cols = pd.read_csv(staff.open("cooperatives.csv"), encoding="utf-8-sig", nrows=1).columns
    assert "given_place" not in pub_cols and "given_place" in staff_cols and "phone" not in staff_cols
    feature = json.loads(staff.read("cooperatives.geojson"))["features"][0]["properties"]
    assert "geocode_issues" in feature and "phone" not in feature and "extra" not in feature


def test_a_county_name_resolves_once_or_says_which():
    counties = pd.DataFrame({"osm_relation_id": [1, 2], "name_fa": ["الف", "ب"], "province_iso": ["IR-01", "IR-02"]})
    fake = SimpleNamespace(names=SimpleNamespace(county=lambda v: {"یک": ["1"], "دو": ["1", "2"]}.get(v)),
                           collections={"counties": SimpleNamespace(frame=counties)})
    assert resolve_county(fake, "یک") == 1
    with pytest.raises(AmbiguousCounty, match="IR-02"):
        resolve_county(fake, "دو")
    with pytest.raises(UnknownCounty):
        resolve_county(fake, "سه")
