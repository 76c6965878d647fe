"""Roles, audited corrections, limits, headers and hostile input: what keeps the registry safe."""

from __future__ import annotations

import io
import re
import shutil

import pandas as pd
import pytest
from conftest import has_sample_phone, location_report, some_cooperative
from fastapi.testclient import TestClient

from coopgis.app import create_app
from coopgis.auth import TokenStore
from coopgis.settings import ServiceSettings

# ---- roles -------------------------------------------------------------------------------------

def test_public_reads_but_cannotlocation_report(secured):
    f = some_cooperative(secured)
    assert secured.get("/collections/cooperatives/items?limit=1").status_code == 200
    r = secured.post(f"/cooperatives/{f['id']}/location-reports",
                     json={"lon": 51.4, "lat": 35.7, "accuracy_m": 10, "reason": "x", "reporter": "x"})
    assert r.status_code == 401 and "Bearer" in r.headers["www-authenticate"]
    assert r.headers["content-type"] == "application/problem+json"


def test_wrong_or_malformed_token_is_401(secured):
    r = secured.get("/audit", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and "unknown" in r.json()["detail"]
    r = secured.get("/audit", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401


def test_token_in_query_string_is_refused(secured):
    r = secured.get(f"/collections/cooperatives/items?access_token={secured.keys['admin']}")
    assert r.status_code == 400 and "Authorization" in r.json()["detail"]


def test_role_too_low_is_403(secured):
    r = secured.get("/audit", headers=secured.as_role("gis_staff"))
    assert r.status_code == 403 and "admin" in r.json()["detail"]


def test_personal_data_only_for_admin_in_the_own_record(secured):
    f = some_cooperative(secured)
    url = f"/cooperatives/{f['id']}"
    public = secured.get(url).json()["properties"]
    staff = secured.get(url, headers=secured.as_role("gis_staff")).json()["properties"]
    admin = secured.get(url, headers=secured.as_role("admin")).json()["properties"]
    assert "phone" not in public and "phone" not in staff and "geocode_issues" not in public
    assert "geocode_issues" in staff and "given_lon" in staff
    assert admin["phone"] and admin["phone"].startswith("0900")
    # Bulk outputs never carry personal data, whoever asks.
    for path in ("/collections/cooperatives/items?limit=100", "/collections/cooperatives/items?f=csv",
                 "/search?q=تعاونی", f"/nearest?lon={f['geometry']['coordinates'][0]}&lat="
                 f"{f['geometry']['coordinates'][1]}"):
        text = secured.get(path, headers=secured.as_role("admin")).text
        assert not has_sample_phone(text) and '"phone"' not in text, path


def test_gis_staff_downloads_staff_fields(secured):
    public = pd.read_csv(io.BytesIO(secured.get("/collections/cooperatives/items?f=csv").content),
                         encoding="utf-8-sig")
    staff = pd.read_csv(io.BytesIO(secured.get("/collections/cooperatives/items?f=csv",
                                               headers=secured.as_role("gis_staff")).content), encoding="utf-8-sig")
    assert "geocode_issues" in staff.columns and "geocode_issues" not in public.columns
    assert "phone" not in staff.columns and len(staff) == len(public)


# ---- limits, headers, hostile input ------------------------------------------------------------------

def test_security_headers_and_csp_nonce(secured):
    r = secured.get("/collections?f=html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    scripts = re.findall(r"<script[^>]*>", r.text)
    assert all(f'nonce="{nonce}"' in s for s in scripts)
    for path in ("/", "/collections/cooperatives/items?limit=1", "/tiles/provinces/4/10/6.mvt"):
        h = secured.get(path).headers
        assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "no-referrer"
    other = secured.get("/collections?f=html").headers["content-security-policy"]
    assert other != csp  # a fresh nonce per page


def test_body_size_limit(secured):
    f = some_cooperative(secured)
    big = {"lon": 51.4, "lat": 35.7, "accuracy_m": 10, "reason": "x", "reporter": "x", "note": "ا" * 60_000}
    r = secured.post(f"/cooperatives/{f['id']}/location-reports", json=big, headers=secured.as_role("field_officer"))
    assert r.status_code == 413


def test_rate_limit_on_geocoding(sample_store, dataset, tmp_path):
    settings = ServiceSettings(data=sample_store.folder, rate_geocode_per_minute=1, rate_burst=3,
                               tokens_file=tmp_path / "none.json")
    client = TestClient(create_app(settings, dataset))
    codes = [client.get("/geocode", params={"q": "شیراز"}).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    r = client.get("/geocode", params={"q": "شیراز"})
    assert int(r.headers["retry-after"]) >= 1 and r.headers["content-type"] == "application/problem+json"
    assert client.get("/collections").status_code == 200  # cheap reads are not limited


def test_cors_is_an_explicit_list_for_reads(secured):
    ok = secured.get("/collections", headers={"Origin": "http://intranet.local"})
    assert ok.headers.get("access-control-allow-origin") == "http://intranet.local"
    other = secured.get("/collections", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    pre = secured.options("/collections", headers={"Origin": "http://intranet.local",
                                                   "Access-Control-Request-Method": "POST"})
    assert "POST" not in pre.headers.get("access-control-allow-methods", "")


HOSTILE = ['<script>alert("x")</script>', "`${alert(1)}`", "\u202eهمراه\u202c", "=cmd|'/C calc'!A0",
           "ن" * 5000, '"><img src=x onerror=alert(1)>']


def test_hostile_names_are_escaped_everywhere(dataset, sample_store, tmp_path):
    from coopgis.dataset import Dataset

    frame = dataset.cooperatives.head(len(HOSTILE)).copy()
    frame["name"] = HOSTILE
    frame["address"] = HOSTILE[::-1]
    evil = Dataset(frame.drop(columns=["kind_fa", "sector_fa", "status_fa"]), dataset.boundaries,
                   geocoder=dataset.geocoder)
    client = TestClient(create_app(ServiceSettings(data=sample_store.folder, tokens_file=tmp_path / "t.json"), evil))
    pages = [client.get("/collections/cooperatives/items?f=html").text]
    pages += [client.get(f"/collections/cooperatives/items/{fid}?f=html").text for fid in frame["registration_no"]]
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in pages[0]
    csv = client.get("/collections/cooperatives/items?f=csv").content.decode("utf-8-sig")
    assert "'=cmd" in csv
    gj = client.get("/collections/cooperatives/items?limit=10").json()
    assert {f["properties"]["name"] for f in gj["features"]} == set(HOSTILE)  # data kept, only escaped


def test_reports_need_a_field_officer_to_read(secured):
    assert secured.get("/location-reports").status_code == 401
    assert secured.get("/location-reports", headers=secured.as_role("field_officer")).status_code == 200


def test_corrupt_store_at_start_is_a_clear_error(tmp_path):
    import subprocess
    import sys

    (tmp_path / "cooperatives.parquet").write_bytes(b"PAR1 half written")
    out = subprocess.run([sys.executable, "-m", "coopgis.cli", "serve", "--data", str(tmp_path), "--port", "8999"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "cooperatives.parquet" in out.stderr and "Traceback" not in out.stderr


def test_kill_9_during_ingest_leaves_the_previous_dataset(sample_store, tmp_path, boundaries):
    import os
    import signal
    import subprocess
    import sys
    import time

    from coopgis.sample import generate_sample, write_sample
    from coopgis.store import FileStore

    data = tmp_path / "data"
    shutil.copytree(sample_store.folder, data)
    before = (data / "cooperatives.parquet").read_bytes()
    big = tmp_path / "big.csv"
    write_sample(generate_sample(40_000, seed=3, boundaries=boundaries), big)
    proc = subprocess.Popen([sys.executable, "-m", "coopgis.cli", "ingest", str(big), "--data", str(data),
                             "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(6)  # reading and geocoding: well before the write
    assert proc.poll() is None, "ingest finished too early to test a crash"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (data / "cooperatives.parquet").read_bytes() == before
    assert len(FileStore(data).read()) == len(FileStore(sample_store.folder).read())


def test_token_cli_add_list_revoke(tmp_path):
    import json
    import subprocess
    import sys

    from coopgis.auth import TokenStore

    file = tmp_path / "tokens.json"
    run = lambda *a: subprocess.run([sys.executable, "-m", "coopgis.cli", "token", *a, "--file", str(file)],  # noqa
                                    capture_output=True, text=True, timeout=60)
    out = run("add", "مریم", "--role", "gis_staff")
    assert out.returncode == 0
    token = out.stdout.strip()
    assert len(token) >= 40 and token not in file.read_text()            # only the hash is stored
    assert json.loads(file.read_text())[0]["sha256"] != token
    assert (file.stat().st_mode & 0o777) == 0o600
    assert TokenStore(file).verify(token).role == "gis_staff"
    assert "مریم\tgis_staff" in run("list").stdout
    assert run("revoke", "مریم").returncode == 0
    assert TokenStore(file).verify(token) is None
    assert run("add", "x").returncode == 2                               # a role is required


# ---- personal data through side doors ------------------------------------------------------------------

PERSONAL_HEADERS = ["آدرس (منزل مدیرعامل)", "نشانی (منزل)", "آدرس منزل", "نشانی منزل مدیرعامل", "آدرس محل سکونت",
                    "تلفن مدیرعامل", "موبایل (مدیرعامل)", "تلفن (منزل)", "کد ملی", "کد ملی مدیرعامل", "شماره ملی",
                    "نام مدیرعامل", "نام (مدیرعامل)", "نام و نام خانوادگی مدیرعامل", "نام پدر", "تاریخ تولد",
                    "Home address", "address (home)", "address [CEO]", "name (CEO)", "CEO name", "national id",
                    "آدرس-منزل", "نشانی_منزل", "شهر (محل تولد)", "استان (محل تولد)", "تاریخ ثبت (تولد)",
                    "شماره ثبت (شناسنامه)", "عرض (منزل)", "طول (منزل)", "وضعیت (تاهل)"]


def test_no_personal_header_lands_in_a_public_column():
    from coopgis.dataset import PUBLIC_COLUMNS
    from coopgis.registry import map_headers

    mapping, unknown = map_headers(PERSONAL_HEADERS)
    public = {c for c in mapping.values() if c in PUBLIC_COLUMNS or c in ("lon", "lat", "registered_on", "place")}
    assert public == set(), {h: c for h, c in mapping.items()}
    assert set(unknown) | set(mapping) == set(PERSONAL_HEADERS)
    assert set(mapping.values()) <= {"phone"}
    # the exact names still work, with their usual variants
    ok, _ = map_headers(["نشانی دفتر", "تعداد اعضا (نفر)", "Phone"])
    assert ok == {"نشانی دفتر": "address", "تعداد اعضا (نفر)": "members", "Phone": "phone"}


def test_a_home_address_column_is_never_published(tmp_path, boundaries, geocoder):
    from coopgis.ingest import ingest
    from coopgis.store import FileStore

    home = "تهران خیابان منزل مدیرعامل کوچه محرمانه"
    csv = tmp_path / "r.csv"
    csv.write_text("شماره ثبت,نام تعاونی,نوع تعاونی,استان,نشانی دفتر,آدرس (منزل مدیرعامل),کد ملی مدیرعامل\n"
                   f"1,تعاونی نمونه,مسکن,تهران,تهران خیابان آزادی,{home},0012345678\n", encoding="utf-8")
    result = ingest(csv, FileStore(tmp_path / "data"), boundaries, geocoder)
    row = result.dataset.iloc[0]
    assert row["address"] == "تهران خیابان آزادی" and home in row["extra"] and "0012345678" in row["extra"]
    client = TestClient(create_app(ServiceSettings(data=tmp_path / "data", tokens_file=tmp_path / "t.json")))
    for path in ("/collections/cooperatives/items", "/collections/cooperatives/items?f=csv", "/cooperatives/1",
                 "/collections/cooperatives/items?f=html", "/search?q=تعاونی نمونه"):
        text = client.get(path).text
        assert "منزل" not in text and "0012345678" not in text, path


PHONE = "۰۹۱۲۳۴۵۶۷۸۹"
NATIONAL_ID = "0012345678"


def test_phone_numbers_in_free_text_are_masked_in_every_public_output(dataset, sample_store, tmp_path):
    import pyogrio

    from coopgis.dataset import Dataset

    frame = dataset.cooperatives.head(40).copy()
    frame["name"] = [f"تعاونی {i} تلفن 0912-345-67{i:02d}" for i in range(40)]
    frame["address"] = [f"تهران، پلاک ۱۲، همراه {PHONE}، کد ملی {NATIONAL_ID}، تاریخ 1402-05-12"] * 40
    masked = Dataset(frame.drop(columns=["kind_fa", "sector_fa", "status_fa"]), dataset.boundaries,
                     geocoder=dataset.geocoder)
    client = TestClient(create_app(ServiceSettings(data=sample_store.folder, tokens_file=tmp_path / "t.json"),
                                   masked))
    reg = frame["registration_no"].iat[0]
    lon, lat = frame.geometry.iat[0].x, frame.geometry.iat[0].y
    outputs = {
        "geojson": client.get("/collections/cooperatives/items?limit=100").text,
        "csv": client.get("/collections/cooperatives/items?f=csv").content.decode("utf-8-sig"),
        "kml": client.get("/collections/cooperatives/items?f=kml").text,
        "html": client.get("/collections/cooperatives/items?f=html").text,
        "item": client.get(f"/collections/cooperatives/items/{reg}").text,
        "record": client.get(f"/cooperatives/{reg}").text,
        "search": client.get("/search", params={"q": "تعاونی 1"}).text,
        "nearest": client.get("/nearest", params={"lon": lon, "lat": lat}).text,
        "tile": "".join(client.get(f"/tiles/cooperatives/16/{x}/{y}.geojson").text
                        for x, y in [_tile_of(lon, lat, 16)]),
    }
    gpkg = tmp_path / "out.gpkg"
    gpkg.write_bytes(client.get("/collections/cooperatives/items?f=gpkg").content)
    outputs["gpkg"] = pyogrio.read_dataframe(gpkg).astype({"registered_on": str}).to_json()  # a DATE field
    for name, text in outputs.items():
        for secret in (PHONE, NATIONAL_ID, "09123456789", "345-67"):
            assert secret not in text, (name, secret)
    assert "پلاک ۱۲" in outputs["geojson"] and "1402-05-12" in outputs["geojson"]   # the rest is kept
    assert "[شماره پنهان]" in outputs["csv"]


def _tile_of(lon, lat, z):
    import math

    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def test_files_with_personal_data_are_private(secured, tmp_path):
    if secured.store.kind != "file":
        pytest.skip("files on disk are the file store's; the database's roles are tested in test_postgis.py")
    f = some_cooperative(secured)
    assert location_report(secured, f["id"], *f["geometry"]["coordinates"]).status_code == 201
    data = secured.app.state.settings.data
    assert (data / "location-reports.jsonl").stat().st_mode & 0o777 == 0o600
    assert secured.app.state.settings.tokens_file.stat().st_mode & 0o777 == 0o600


def test_batch_geocoding_output_is_private(tmp_path):
    import subprocess
    import sys

    src = tmp_path / "in.csv"
    src.write_text("address,phone\nتهران,09121234567\n", encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "coopgis.cli", "geocode", "--batch", str(src), "--out",
                          str(tmp_path / "out.csv")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out.csv").stat().st_mode & 0o777 == 0o600


# ---- small doors -------------------------------------------------------------------------------------------

def test_any_oversized_body_is_413_chunked_or_not(secured):
    url = "/location-reports/" + "0" * 32 + "/decision"
    headers = {**secured.as_role("admin"), "If-Match": '"x"', "content-type": "application/json"}
    chunked = (b'{"decision": "accepted", "comment": "' + b"x" * 8192 for _ in range(10))   # 80 KB, no length
    r = secured.post(url, content=chunked, headers=headers)
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
    r = secured.post(url, content=b"x" * 70_000, headers=headers)
    assert r.status_code == 413


def test_registration_numbers_with_a_slash_are_reachable(tmp_path, boundaries, geocoder):
    from coopgis.ingest import ingest
    from coopgis.store import FileStore

    csv = tmp_path / "r.csv"
    csv.write_text("شماره ثبت,نام تعاونی,نوع تعاونی,استان,شهرستان\n1234/56,تعاونی اسلش,مسکن,تهران,تهران\n"
                   "78,تعاونی دیگر,مسکن,فارس,شیراز\n", encoding="utf-8")
    ingest(csv, FileStore(tmp_path / "data"), boundaries, geocoder)
    tokens = TokenStore(tmp_path / "t.json")
    officer = tokens.add("o", "field_officer")
    c = TestClient(create_app(ServiceSettings(data=tmp_path / "data", tokens_file=tmp_path / "t.json")))
    record = c.get("/cooperatives/1234%2F56")
    assert record.status_code == 200 and record.json()["id"] == "1234/56"
    assert record.json()["links"][0]["href"].endswith("/cooperatives/1234%2F56")
    assert c.get("/collections/cooperatives/items/1234%2F56").json()["id"] == "1234/56"
    r = c.post("/cooperatives/1234%2F56/location-reports", headers={"Authorization": f"Bearer {officer}"},
               json={"lon": 51.39, "lat": 35.69, "accuracy_m": 10, "reason": "x"})
    assert r.status_code == 201 and r.json()["registration_no"] == "1234/56"
    listed = c.get("/cooperatives/1234%2F56/location-reports", headers={"Authorization": f"Bearer {officer}"})
    assert listed.json()["numberMatched"] == 1


def test_links_never_come_from_the_host_header(sample_store, dataset, tmp_path):
    evil = {"Host": "evil.example"}
    plain = TestClient(create_app(ServiceSettings(data=sample_store.folder, tokens_file=tmp_path / "t.json"), dataset))
    public = TestClient(create_app(ServiceSettings(data=sample_store.folder, tokens_file=tmp_path / "t.json",
                                                   public_url="https://gis.example.ir/coop"), dataset))
    for c, want in ((plain, "http://testserver"), (public, "https://gis.example.ir/coop")):
        bodies = [c.get(p, headers=evil).text for p in ("/", "/collections", "/collections/cooperatives/items?limit=2",
                                                        "/tiles/cooperatives/tilejson.json", "/maps?f=json",
                                                        "/collections?f=html", "/search?q=تعاونی")]
        for text in bodies:
            assert "evil.example" not in text
        assert want + "/collections" in bodies[0]


@pytest.mark.parametrize("method, path, allow", [
    ("DELETE", "/maps", "GET, HEAD"), ("POST", "/tiles/cooperatives/1/1/1.mvt", "GET, HEAD"), ("PUT", "/", "GET, HEAD"),
    ("GET", "/location-reports/abc/decision", "POST"), ("PATCH", "/cooperatives/1", "GET, HEAD"),
    ("POST", "/static/coopgis.css", "GET, HEAD"), ("PUT", "/cooperatives/1/location-reports", "GET, HEAD, POST"),
])
def test_every_405_names_the_allowed_methods(secured, method, path, allow):
    r = secured.request(method, path)
    assert r.status_code == 405 and r.headers["allow"] == allow
    assert r.headers["content-type"] == "application/problem+json" and allow in r.json()["detail"]
