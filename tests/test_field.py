"""Field work: /nearest, /search and location reports."""

from __future__ import annotations

import math
import shutil
import threading
from collections import Counter
from urllib.parse import unquote

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from coopgis.distance import EARTH_RADIUS_KM
from coopgis.location_reports import REPORTS_FILE, LocationReportLog
from coopgis.nearest import DIRECTIONS
from coopgis.text import key, to_persian_digits, tokens

PROBLEM = "application/problem+json"


def haversine_km(lon1, lat1, lon2, lat2) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


@pytest.fixture(scope="module")
def coops(dataset):
    return dataset.collections["cooperatives"]


@pytest.fixture(scope="module")
def located_rows(coops):
    """(registration_no, lon, lat, stand-in) of every cooperative with a point, from the GeoDataFrame itself."""
    f = coops.frame
    pts = f.geometry
    ok = pts.notna() & ~pts.is_empty
    stand_in = f.loc[ok, "precision"].isin(["rural_district", "district", "county", "province"])
    return [(r, g.x, g.y, s) for r, g, s in zip(f.loc[ok, "registration_no"], pts[ok], stand_in, strict=False)]


def brute_force(located_rows, lon, lat, radius_km):
    d = [(haversine_km(lon, lat, x, y), reg) for reg, x, y, _ in located_rows]
    return sorted(t for t in d if t[0] <= radius_km)


def brute_force_ranked(located_rows, lon, lat, radius_km):
    """(ranking distance, distance, registration_no) inside the radius, in the order a field list shows them:
    a stand-in point counts 25 % + 1 km farther (README, Field work), ties by the row's order."""
    out = []
    for i, (reg, x, y, stand_in) in enumerate(located_rows):
        d = haversine_km(lon, lat, x, y)
        if d <= radius_km:
            out.append((d * 1.25 + 1.0 if stand_in else d, i, d, reg))
    return [(rank, d, reg) for rank, _, d, reg in sorted(out)]


def isolated_point(located_rows, min_km=5.0):
    """A cooperative's location with no other cooperative location within ``min_km``."""
    points = sorted({(round(x, 6), round(y, 6)) for _, x, y, _ in located_rows})
    arr = np.array(points)
    for x, y in points:
        near = np.abs(arr[:, 0] - x) + np.abs(arr[:, 1] - y) < 0.2
        others = [(a, b) for a, b in arr[near] if (a, b) != (x, y)]
        if all(haversine_km(x, y, a, b) > min_km for a, b in others):
            return x, y
    pytest.skip("no isolated cooperative in the sample")


def assert_problem(r, status):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status and body["detail"]
    return body


# ---- nearest -----------------------------------------------------------------------------------

def test_nearest_matches_brute_force(client, located_rows):
    _, lon, lat, _ = located_rows[len(located_rows) // 2]
    lon, lat = lon + 0.03, lat - 0.02
    r = client.get("/nearest", params={"lon": lon, "lat": lat, "radius_km": 300, "limit": 40})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    body = r.json()
    expected = brute_force_ranked(located_rows, lon, lat, 300)
    assert body["type"] == "FeatureCollection"
    assert body["numberMatched"] == len(expected)
    assert body["numberReturned"] == len(body["features"]) == min(40, len(expected)) > 0
    got = [f["properties"]["distance_km"] for f in body["features"]]
    assert got == pytest.approx([round(d, 2) for _, d, _ in expected[:40]], abs=0.011)
    ranked = [d * 1.25 + 1 if f["properties"]["stand_in"] else d for d, f in zip(got, body["features"], strict=True)]
    assert ranked == sorted(ranked) or ranked == pytest.approx(sorted(ranked), abs=0.02)
    by_reg = {reg: d for _, d, reg in expected}
    for f in body["features"]:
        p = f["properties"]
        assert p["distance_km"] == pytest.approx(by_reg[p["registration_no"]], abs=0.006)
        assert 0 <= p["bearing_deg"] < 360
        assert (p["direction_en"], p["direction_fa"]) in DIRECTIONS
        assert "phone" not in p and "extra" not in p
        assert f["geometry"]["type"] == "Point"


def test_nearest_directions(client, located_rows):
    lon, lat = isolated_point(located_rows)
    # standing 1 km south of the cooperative, it is due north
    r = client.get("/nearest", params={"lon": lon, "lat": lat - 0.009, "limit": 1})
    p = r.json()["features"][0]["properties"]
    assert r.json()["features"][0]["geometry"]["coordinates"] == pytest.approx([lon, lat], abs=1e-6)
    assert p["direction_en"] == "N" and p["direction_fa"] == "شمال"
    assert p["bearing_deg"] == pytest.approx(0, abs=0.5) or p["bearing_deg"] == pytest.approx(360, abs=0.5)
    assert p["distance_km"] == pytest.approx(1.0, abs=0.01)
    # standing 1 km west of it, it is due east
    r = client.get("/nearest", params={"lon": lon - 0.009 / math.cos(math.radians(lat)), "lat": lat, "limit": 1})
    p = r.json()["features"][0]["properties"]
    assert p["direction_en"] == "E" and p["direction_fa"] == "شرق"
    assert p["bearing_deg"] == pytest.approx(90, abs=0.5)
    # standing north-east of it, it is to the south-west
    r = client.get("/nearest", params={"lon": lon + 0.01, "lat": lat + 0.008, "limit": 1})
    p = r.json()["features"][0]["properties"]
    assert (p["direction_en"], p["direction_fa"]) == ("SW", "جنوب غربی")


def test_nearest_radius_respected(client, located_rows):
    _, lon, lat, _ = located_rows[0]
    for radius in (2, 25, 120):
        r = client.get("/nearest", params={"lon": lon, "lat": lat, "radius_km": radius, "limit": 100})
        body = r.json()
        assert all(f["properties"]["distance_km"] <= radius for f in body["features"])
        assert body["numberMatched"] == len(brute_force(located_rows, lon, lat, radius))


def test_nearest_persian_digits_and_geo_uri(client, located_rows):
    reg, lon, lat, _ = located_rows[3]
    ascii_ = client.get("/nearest", params={"lon": f"{lon:.4f}", "lat": f"{lat:.4f}", "limit": 5}).json()
    fa_lon = to_persian_digits(f"{lon:.4f}").replace(".", "٫")
    fa_lat = "".join("٠١٢٣٤٥٦٧٨٩"[int(c)] if c.isdigit() else c for c in f"{lat:.4f}")  # Arabic-Indic
    r = client.get("/nearest", params={"lon": fa_lon, "lat": fa_lat, "limit": "۵"})
    assert r.status_code == 200, r.text
    assert r.json()["features"] == ascii_["features"]
    first = next(f for f in r.json()["features"] if not f["properties"]["stand_in"])   # stand-ins: test_standins
    uri = first["properties"]["geo_uri"]
    x, y = first["geometry"]["coordinates"]
    assert uri.startswith(f"geo:{y:.6f},{x:.6f}?q={y:.6f},{x:.6f}(")
    assert " " not in uri
    assert unquote(uri[uri.index("(") + 1:-1]) == first["properties"]["name"]


def test_nearest_filters_and_limits(client, located_rows):
    _, lon, lat, _ = located_rows[10]
    r = client.get("/nearest", params={"lon": lon, "lat": lat, "radius_km": 500, "limit": 1000})
    assert r.status_code == 200 and r.json()["numberReturned"] <= 100
    r = client.get("/nearest", params={"lon": lon, "lat": lat, "radius_km": 500, "kind": "تولیدی"})
    assert r.status_code == 200
    feats = r.json()["features"]
    assert feats and all(f["properties"]["kind"] == "production" for f in feats)


@pytest.mark.parametrize("params, words", [
    ({"lon": "2.35", "lat": "48.85"}, "outside Iran"),
    ({"lon": "35.7", "lat": "51.4"}, "swapped"),
    ({"lon": "0", "lat": "0"}, "zero"),
    ({"lon": "200", "lat": "35"}, "-180..180"),
    ({"lon": "abc", "lat": "35"}, "not a number"),
    ({"lon": "nan", "lat": "35"}, "finite"),
    ({"lon": "51.4", "lat": "35.7", "radius_km": "600"}, "at most 500"),
    ({"lon": "51.4", "lat": "35.7", "radius_km": "-1"}, "more than 0"),
    ({"lon": "51.4", "lat": "35.7", "limit": "0"}, "at least 1"),
    ({"lat": "35.7"}, "lon"),
])
def test_nearest_bad_points(client, params, words):
    body = assert_problem(client.get("/nearest", params=params), 400)
    assert words in body["detail"]


def test_nearest_outside_iran_issue_code(client):
    body = assert_problem(client.get("/nearest", params={"lon": "2.35", "lat": "48.85"}), 400)
    assert body["issue"] == "coord_outside_iran"


# ---- search ------------------------------------------------------------------------------------

def search(client, q, **params):
    r = client.get("/search", params={"q": q, **params})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    return r.json()["features"]


def test_search_registration_number(client, coops):
    reg = str(coops.frame["registration_no"].iat[7])
    for q in (reg, to_persian_digits(reg), f" {to_persian_digits(reg)} "):
        feats = search(client, q)
        assert feats[0]["id"] == reg
        assert feats[0]["properties"]["match"] == "registration_no" and feats[0]["properties"]["score"] == 100


def _rare_word(names: list[str], letters: str) -> tuple[str, str]:
    """A word (with one of ``letters``) found in few names, and a name holding it."""
    counts = Counter(w for n in names for w in {key(t, prefixes=False) for t in tokens(n)})
    for n in names:
        for t in tokens(n):
            k = key(t, prefixes=False)
            if len(t) >= 4 and any(c in t for c in letters) and counts[k] <= 3 and t == k:
                return t, n
    pytest.skip("no rare word")


def test_search_name_fragment_arabic_letters(client, coops):
    names = coops.frame["name"].tolist()
    word, name = _rare_word(names, "یک")
    arabic = word.replace("ی", "ي").replace("ک", "ك")
    assert arabic != word
    feats = search(client, arabic, limit=100)
    assert feats and name in {f["properties"]["name"] for f in feats}
    hit = next(f for f in feats if f["properties"]["name"] == name)
    assert hit["properties"]["match"] == "name" and 90 <= hit["properties"]["score"] < 100
    # a fragment (the word without its last letter) finds it too
    assert name in {f["properties"]["name"] for f in search(client, arabic[:-1], limit=100)}


def test_search_name_all_words(client, coops):
    f = coops.frame
    name = f["name"].iat[21]
    words = tokens(name)[:3]
    feats = search(client, " ".join(words), limit=100)
    assert feats and all(f["properties"]["match"] in ("registration_no", "name") for f in feats[:1])
    for feat in feats:
        if feat["properties"]["match"] == "name":
            k = key(feat["properties"]["name"], prefixes=False)
            assert all(key(w, prefixes=False) in k for w in words)


def test_search_village(client, coops):
    f = coops.frame
    villages = f[(f["place_level"] == "village")]
    villages = villages[[key(p) not in key(n, prefixes=False)
                         for p, n in zip(villages["place"], villages["name"], strict=False)]]
    if villages.empty:
        pytest.skip("no village cooperative named otherwise")
    row = villages.iloc[0]
    feats = search(client, "روستای " + row["place"], limit=100)
    hit = [x for x in feats if x["id"] == row["registration_no"]]
    assert hit and hit[0]["properties"]["match"] == "place"
    assert all(x["properties"]["place"] == row["place"] for x in feats if x["properties"]["match"] == "place")


def test_search_county_latin(client, coops, dataset):
    f = coops.frame
    osm = int(f["county_osm"].value_counts().index[0])
    counties = dataset.boundaries.counties
    en = counties.loc[counties["osm_relation_id"] == osm, "name_en"].iloc[0]
    feats = search(client, en.upper(), limit=100)
    assert feats and all(x["properties"]["match"] in ("place", "fuzzy") for x in feats)
    assert any(x["properties"]["match"] == "place" for x in feats)


def test_search_fuzzy(client, coops):
    word, name = _rare_word(coops.frame["name"].tolist(), "ابپتسشمنهو")
    typo = word[:2] + word[3:] if len(word) >= 5 else word + word[-1]
    feats = search(client, typo, limit=100)
    assert name in {x["properties"]["name"] for x in feats}
    scores = [x["properties"]["score"] for x in feats]
    assert scores == sorted(scores, reverse=True)


def test_search_filters(client):
    feats = search(client, "تعاونی", status="active", limit=50)
    assert len(feats) == 50 and all(x["properties"]["status"] == "active" for x in feats)


def test_search_ranking_order(client, coops):
    reg = str(coops.frame["registration_no"].iat[0])
    feats = search(client, "تعاونی", limit=30)
    scores = [x["properties"]["score"] for x in feats]
    assert scores == sorted(scores, reverse=True)
    assert search(client, reg)[0]["properties"]["score"] > max(scores)


@pytest.mark.parametrize("q", [None, "", "   ", "\u200c", "ا" * 101, "x" * 5000])
def test_search_bad_query(client, q):
    r = client.get("/search", params={} if q is None else {"q": q})
    assert_problem(r, 400)


# ---- location reports --------------------------------------------------------------------------

@pytest.fixture
def reports_app(store, dataset):
    """An app on a private copy of the store (the folder, then PostGIS), so reports do not land in the
    shared one; with the store, to read back what was stored."""
    from coopgis.app import create_app

    backend = store.backend()
    token = backend.tokens.add("علی", "field_officer")
    backend.close()
    app = create_app(store.settings(), dataset)
    yield TestClient(app, headers={"Authorization": f"Bearer {token}"}), store
    app.state.backend.close()


@pytest.fixture
def file_reports_app(tmp_path, sample_store, dataset):
    """An app on a copy of the store folder: for what only the file log has (its lines on disk)."""
    from coopgis.app import create_app
    from coopgis.auth import TokenStore
    from coopgis.settings import ServiceSettings

    folder = tmp_path / "data"
    shutil.copytree(sample_store.folder, folder)
    token = TokenStore(tmp_path / "tokens.json").add("علی", "field_officer")
    app = create_app(ServiceSettings(data=folder, tokens_file=tmp_path / "tokens.json"), dataset)
    return TestClient(app, headers={"Authorization": f"Bearer {token}"}), folder


def good_body(**changes):
    body = {"lon": 51.3890, "lat": 35.6892, "accuracy_m": 12.5, "reason": "تابلوی تعاونی در این محل است",
            "note": "کنار مسجد\nدر آبی", "reporter": "کارشناس میدانی ۱"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def lines_of(folder):
    path = folder / REPORTS_FILE
    return path.read_bytes().splitlines() if path.exists() else []


def stored(store) -> list[dict]:
    """The records the store holds, as it gives them back (the file's lines, or the database's rows)."""
    if store.kind == "file":
        return [orjson.loads(x) for x in lines_of(store.data)]
    return store.stored_events()


def test_report_round_trip(reports_app, coops):
    c, folder = reports_app
    row = next(i for i in range(len(coops)) if np.isfinite(coops.lon[i]))
    reg = str(coops.frame["registration_no"].iat[row])
    r = c.post(f"/cooperatives/{to_persian_digits(reg)}/location-reports",
               json=good_body(lon="۵۱٫۳۸۹", reporter="  علي  "))
    assert r.status_code == 201, r.text
    rec = r.json()
    assert len(rec["id"]) == 32 and rec["status"] == "pending"
    assert rec["registration_no"] == reg and rec["reporter"] == "علی"
    assert rec["to"] == {"lon": 51.389, "lat": 35.6892, "accuracy_m": 12.5}
    assert rec["from"] == {"lon": pytest.approx(coops.lon[row]), "lat": pytest.approx(coops.lat[row]),
                           "precision": coops.frame["precision"].iat[row]}
    assert rec["submitted_at"].endswith("Z") and rec["note"] == "کنار مسجد\nدر آبی"
    assert r.headers["location"].endswith(f"/location-reports/{rec['id']}")
    assert c.get(r.headers["location"]).json() == rec
    records = stored(folder)
    assert len(records) == 1
    assert records[0] == rec
    assert {"from", "to", "reporter", "submitted_at"} <= records[0].keys()
    listed = c.get("/location-reports", params={"status": "pending"}).json()
    assert listed["reports"] == [rec] and listed["skipped_lines"] == 0 and listed["numberMatched"] == 1
    assert c.get(f"/cooperatives/{reg}/location-reports").json()["reports"] == [rec]
    assert c.get("/location-reports", params={"registration_no": to_persian_digits(reg)}).json()["reports"] == [rec]
    other = str(coops.frame["registration_no"].iat[row + 1])
    assert c.get(f"/cooperatives/{other}/location-reports").json()["reports"] == []


def test_reports_newest_first_and_limit(reports_app, coops):
    c, _ = reports_app
    reg = str(coops.frame["registration_no"].iat[5])
    ids = [c.post(f"/cooperatives/{reg}/location-reports", json=good_body(reason=f"دلیل {i}")).json()["id"]
           for i in range(3)]
    body = c.get("/location-reports").json()
    assert [x["id"] for x in body["reports"]] == ids[::-1]
    body = c.get("/location-reports", params={"limit": "۲"}).json()
    assert body["numberReturned"] == 2 and body["numberMatched"] == 3
    assert_problem(c.get("/location-reports", params={"status": "done"}), 400)
    assert c.get("/location-reports", params={"status": "rejected"}).json()["reports"] == []


def test_report_unknown_cooperative(reports_app):
    c, folder = reports_app
    assert_problem(c.post("/cooperatives/no-such-coop/location-reports", json=good_body()), 404)
    assert_problem(c.get("/cooperatives/no-such-coop/location-reports"), 404)
    assert_problem(c.get("/location-reports/" + "0" * 32), 404)
    assert stored(folder) == []


@pytest.mark.parametrize("changes, words", [
    ({"lon": 2.35, "lat": 48.85}, "outside Iran"),
    ({"lon": 35.6892, "lat": 51.389}, "swapped"),
    ({"lon": 0.0, "lat": 0.0}, "zero"),
])
def test_report_bad_point(reports_app, coops, changes, words):
    c, folder = reports_app
    reg = str(coops.frame["registration_no"].iat[0])
    body = assert_problem(c.post(f"/cooperatives/{reg}/location-reports", json=good_body(**changes)), 400)
    assert words in body["detail"]
    assert stored(folder) == []


@pytest.mark.parametrize("body, status", [
    (good_body(reason=...), 400),
    (good_body(reason="   "), 400),
    (good_body(reporter="x" * 101), 400),
    (good_body(accuracy_m=0), 400),
    (good_body(accuracy_m=-3), 400),
    (good_body(accuracy_m=10_001), 400),
    (good_body(lon=...), 400),
    (good_body(lon=181), 400),
    (good_body(lat="north"), 400),
    (good_body(role="admin"), 400),
    (good_body(note="ن" * 2001), 400),
    (good_body(note="n" * 20_000), 413),
    (good_body(reason="ر" * 501), 400),
])
def test_report_bad_body(reports_app, coops, body, status):
    c, folder = reports_app
    reg = str(coops.frame["registration_no"].iat[0])
    problem = assert_problem(c.post(f"/cooperatives/{reg}/location-reports", json=body), status)
    if status == 400:
        assert problem["title"] == "Invalid parameter"
    assert stored(folder) == []


def test_report_not_json(reports_app, coops):
    c, folder = reports_app
    url = f"/cooperatives/{coops.frame['registration_no'].iat[0]}/location-reports"
    assert_problem(c.post(url, content=b"{lon: 1", headers={"content-type": "application/json"}), 400)
    assert_problem(c.post(url, content=b"[1, 2]", headers={"content-type": "application/json"}), 400)
    assert_problem(c.post(url, content=b"", headers={"content-type": "application/json"}), 400)
    assert_problem(c.post(url, content=b"lon=1", headers={"content-type": "text/plain"}), 415)
    # a large body without Content-Length (chunked) is cut off too
    chunks = (b"x" * 4096 for _ in range(8))
    assert_problem(c.post(url, content=chunks, headers={"content-type": "application/json"}), 413)
    assert stored(folder) == []


def test_reports_concurrent_posts(reports_app, coops):
    c, folder = reports_app
    regs = [str(v) for v in coops.frame["registration_no"].iloc[:8]]
    statuses: list[int] = []
    guard = threading.Lock()

    def post(reg):
        for i in range(5):
            r = c.post(f"/cooperatives/{reg}/location-reports", json=good_body(note=f"{reg} {i} " + "ق" * 300))
            with guard:
                statuses.append(r.status_code)

    threads = [threading.Thread(target=post, args=(reg,)) for reg in regs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [201] * 40
    records = stored(folder)
    assert len(records) == 40
    assert len({x["id"] for x in records}) == 40
    assert Counter(x["registration_no"] for x in records) == {reg: 5 for reg in regs}
    body = c.get("/location-reports", params={"limit": 1000}).json()
    assert body["numberReturned"] == 40 and body["skipped_lines"] == 0


def test_report_log_threads_share_a_lock(tmp_path):
    logs = [LocationReportLog(tmp_path), LocationReportLog(str(tmp_path) + "/")]   # two objects, one file

    def write(n):
        for i in range(50):
            logs[n % 2].append({"id": f"{n}-{i}", "registration_no": str(n), "to": {"lon": 51.4, "lat": 35.7},
                                "payload": "x" * 5000})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res = logs[0].read()
    assert len(res.reports) == 400 and res.skipped_lines == 0


def test_reports_half_written_last_line(file_reports_app, coops):
    c, folder = file_reports_app
    reg = str(coops.frame["registration_no"].iat[2])
    first = c.post(f"/cooperatives/{reg}/location-reports", json=good_body()).json()
    with open(folder / REPORTS_FILE, "ab") as f:
        f.write(b'{"id": "0123", "registration_no": "12", "rep')   # a crash mid-write
    body = c.get("/location-reports").json()
    assert body["skipped_lines"] == 1 and body["reports"] == [first]
    assert c.get(f"/cooperatives/{reg}/location-reports").json()["skipped_lines"] == 1
    # the next report starts on a line of its own and is read back
    second = c.post(f"/cooperatives/{reg}/location-reports", json=good_body(reason="دوباره")).json()
    body = c.get("/location-reports").json()
    assert body["skipped_lines"] == 1 and [x["id"] for x in body["reports"]] == [second["id"], first["id"]]


def test_openapi_documents_field_endpoints(client):
    doc = client.get("/api").json()
    for path in ("/nearest", "/search", "/location-reports", "/cooperatives/{registration_no}/location-reports"):
        assert path in doc["paths"]
    post = doc["paths"]["/cooperatives/{registration_no}/location-reports"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema["additionalProperties"] is False and "reason" in schema["required"]
    assert "reporter" not in schema["required"]  # the reporter is the token's owner


# ---- idempotency keys (reports queued offline are sent again until the server has them) --------------------

def test_a_retried_report_is_recorded_once(reports_app, coops):
    c, store = reports_app
    reg = str(coops.frame["registration_no"].iat[2])
    key = {"Idempotency-Key": "5b0c6a2e-7d1f-4f0e-9a55-1f3f0e2b9c11"}
    first = c.post(f"/cooperatives/{reg}/location-reports", json=good_body(), headers=key)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    again = c.post(f"/cooperatives/{reg}/location-reports", json=good_body(), headers=key)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json() and again.headers["location"] == first.headers["location"]
    assert len(stored(store)) == 1
    other = c.post(f"/cooperatives/{reg}/location-reports", json=good_body(), headers={"Idempotency-Key": "k-2"})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"] and len(stored(store)) == 2
    reused = c.post(f"/cooperatives/{reg}/location-reports", json=good_body(reason="دیگری"), headers=key)
    assert assert_problem(reused, 409)["title"] == "Idempotency key reused" and len(stored(store)) == 2
    for bad in ("", "a b", "x" * 101, "کلید".encode()):
        assert_problem(c.post(f"/cooperatives/{reg}/location-reports", json=good_body(),
                              headers={"Idempotency-Key": bad}), 400)
    assert len(stored(store)) == 2


def test_a_retry_is_not_charged_to_the_hourly_limit(tmp_path, sample_store, dataset, coops):
    from coopgis.app import create_app
    from coopgis.auth import TokenStore
    from coopgis.settings import ServiceSettings

    folder = tmp_path / "data"
    shutil.copytree(sample_store.folder, folder)
    token = TokenStore(tmp_path / "tokens.json").add("علی", "field_officer")
    app = create_app(ServiceSettings(data=folder, tokens_file=tmp_path / "tokens.json", reports_per_hour=2), dataset)
    c = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    regs = [str(coops.frame["registration_no"].iat[i]) for i in (3, 4, 5)]
    for _ in range(3):      # the same report three times: one record, one of the two an hour
        assert c.post(f"/cooperatives/{regs[0]}/location-reports", json=good_body(),
                      headers={"Idempotency-Key": "same"}).status_code == 201
    assert c.post(f"/cooperatives/{regs[1]}/location-reports", json=good_body(),
                  headers={"Idempotency-Key": "second"}).status_code == 201
    assert_problem(c.post(f"/cooperatives/{regs[2]}/location-reports", json=good_body(),
                          headers={"Idempotency-Key": "third"}), 429)
    # a retry of one already recorded still gets its answer at the limit
    assert c.post(f"/cooperatives/{regs[0]}/location-reports", json=good_body(),
                  headers={"Idempotency-Key": "same"}).status_code == 201
    assert len(lines_of(folder)) == 2


def test_keys_are_the_reporters_own(tmp_path, sample_store, dataset, coops):
    from coopgis.app import create_app
    from coopgis.auth import TokenStore
    from coopgis.settings import ServiceSettings

    folder = tmp_path / "data"
    shutil.copytree(sample_store.folder, folder)
    store = TokenStore(tmp_path / "tokens.json")
    a, b = store.add("الف", "field_officer"), store.add("ب", "field_officer")
    app = create_app(ServiceSettings(data=folder, tokens_file=tmp_path / "tokens.json"), dataset)
    c = TestClient(app)
    reg = str(coops.frame["registration_no"].iat[6])
    ra = c.post(f"/cooperatives/{reg}/location-reports", json=good_body(),
                headers={"Authorization": f"Bearer {a}", "Idempotency-Key": "k"})
    rb = c.post(f"/cooperatives/{reg}/location-reports", json=good_body(),
                headers={"Authorization": f"Bearer {b}", "Idempotency-Key": "k"})
    assert ra.status_code == rb.status_code == 201
    assert ra.json()["id"] != rb.json()["id"] and rb.json()["reporter"] == "ب"


def test_the_same_key_from_two_workers_at_once_is_one_report(tmp_path, sample_store, coops):
    """Two worker processes (a live server with --workers 2) and 16 simultaneous sends of one queued report."""
    import httpx
    from test_maps import _serving

    from coopgis.auth import TokenStore

    folder = tmp_path / "data"
    shutil.copytree(sample_store.folder, folder)
    token = TokenStore(tmp_path / "tokens.json").add("علی", "field_officer")
    reg = str(coops.frame["registration_no"].iat[7])
    with _serving(folder, tmp_path / "server.log", COOPGIS_TOKENS_FILE=str(tmp_path / "tokens.json"),
                  COOPGIS_WORKERS="2") as url:
        def send(_):
            with httpx.Client(timeout=30) as h:
                return h.post(f"{url}/cooperatives/{reg}/location-reports", json=good_body(),
                              headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "one-report"})
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(send, range(16)))
    assert [a.status_code for a in answers] == [201] * 16
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 15
    assert len(lines_of(folder)) == 1
