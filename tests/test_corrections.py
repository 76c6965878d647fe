"""Location corrections (coopgis.corrections): an accepted report moves a cooperative, survives restarts and
re-ingests, and teaches the geocoder its village."""

from __future__ import annotations

import pytest
from conftest import location_report, some_cooperative
from fastapi.testclient import TestClient

from coopgis.app import create_app

# ---- corrections ----------------------------------------------------------------------------------

def _inside(boundaries, county_osm):
    c = boundaries.counties.set_index("osm_relation_id").geometry[county_osm]
    p = c.representative_point()
    return p.x, p.y


def test_correction_end_to_end_with_etag(secured, boundaries):
    f = some_cooperative(secured)
    reg = f["id"]
    # Move it into another county: the joins must follow.
    target = boundaries.counties[boundaries.counties["province_iso"] == "IR-21"].iloc[0]
    lon, lat = _inside(boundaries, target["osm_relation_id"])
    r = location_report(secured, reg, lon, lat)
    assert r.status_code == 201, r.text
    report = r.json()
    etag = secured.get(f"/cooperatives/{reg}").headers["etag"]

    url = f"/location-reports/{report['id']}/decision"
    assert secured.post(url, json={"decision": "accepted"}, headers=secured.as_role("field_officer")).status_code == 403
    r = secured.post(url, json={"decision": "accepted"}, headers=secured.as_role("admin"))
    assert r.status_code == 428
    r = secured.post(url, json={"decision": "accepted"}, headers={**secured.as_role("admin"), "If-Match": '"stale"'})
    assert r.status_code == 412 and r.headers["etag"] == etag
    r = secured.post(url, json={"decision": "accepted", "comment": "بازدید شد"},
                     headers={**secured.as_role("admin"), "If-Match": etag})
    assert r.status_code == 200, r.text
    assert r.headers["etag"] != etag

    moved = secured.get(f"/cooperatives/{reg}")
    props = moved.json()["properties"]
    assert props["precision"] == "verified"
    assert moved.json()["geometry"]["coordinates"] == pytest.approx([lon, lat])
    assert props["province"] == "IR-21" and props["county"] == target["display_name_fa"]
    # A second decision on the same report, or one with the old ETag, is refused.
    again = secured.post(url, json={"decision": "rejected"}, headers={**secured.as_role("admin"), "If-Match": etag})
    assert again.status_code in (409, 412)
    audit = secured.get(f"/audit?registration_no={reg}", headers=secured.as_role("admin")).json()["events"]
    kinds = [e.get("event", "report") for e in audit]
    assert kinds == ["report", "decision"]
    assert audit[1]["by"] == "admin-user" and audit[1]["from"]["lon"] == pytest.approx(
        f["geometry"]["coordinates"][0]) and audit[1]["to"]["lon"] == pytest.approx(lon)


def test_verified_location_survives_restart_and_reingest(secured, boundaries, geocoder, tmp_path):
    from coopgis.ingest import ingest

    f = some_cooperative(secured, "city")  # a city keeps its own point: the re-ingest puts it back there
    lon, lat = f["geometry"]["coordinates"]
    lon, lat = lon + 0.01, lat + 0.01
    report = location_report(secured, f["id"], lon, lat).json()
    etag = secured.get(f"/cooperatives/{f['id']}").headers["etag"]
    r = secured.post(f"/location-reports/{report['id']}/decision", json={"decision": "accepted"},
                     headers={**secured.as_role("admin"), "If-Match": etag})
    assert r.status_code == 200, r.text
    settings = secured.app.state.settings

    # Re-ingest the same registry into the same store: the conflict is reported, not applied.
    csv = next(settings.data.parent.glob("*.csv"), None) or _write_sample(tmp_path, boundaries)
    backend = secured.store.backend()   # the same store: the folder, or the database
    result = ingest(csv, backend.store, boundaries, geocoder)
    backend.close()
    conflicts = {c["registration_no"]: c for c in result.report["verified_conflicts"]}
    assert f["id"] in conflicts and conflicts[f["id"]]["distance_m"] > 100

    # A new app on the same folder (a restart) serves the verified location and the same audit log.
    restarted = TestClient(create_app(settings))
    props = restarted.get(f"/cooperatives/{f['id']}").json()
    assert props["properties"]["precision"] == "verified"
    assert props["geometry"]["coordinates"] == pytest.approx([lon, lat])
    events = restarted.get("/audit", headers=secured.as_role("admin")).json()["events"]
    assert [e.get("event", "report") for e in events] == ["report", "decision"]


def _write_sample(tmp_path, boundaries):
    from coopgis.sample import generate_sample, write_sample

    path = tmp_path / "sample.csv"
    write_sample(generate_sample(1500, seed=11, boundaries=boundaries), path)
    return path


def test_accepted_correction_in_a_village_improves_geocoding(secured):
    ds = secured.app.state.dataset
    frame = ds.cooperatives
    g = ds.geocoder
    pool = frame[(frame["place_level"] == "village") & frame["precision"].isin(["rural_district", "district",
                                                                                "county"])]
    # A village whose name alone (with its county) finds it: the sample's draw decides which one that is.
    cand = next(c for _, c in pool.iterrows()
                if g.geocode(f"{c['county']}، روستای {c['place']}").place_code == c["place_code"])
    address = f"{cand['county']}، روستای {cand['place']}"
    before = g.geocode(address)
    assert before.place_code == cand["place_code"] and before.precision != "village"
    lon, lat = cand.geometry.x + 0.002, cand.geometry.y + 0.002
    report = location_report(secured, cand["registration_no"], lon, lat).json()
    etag = secured.get(f"/cooperatives/{cand['registration_no']}").headers["etag"]
    r = secured.post(f"/location-reports/{report['id']}/decision", json={"decision": "accepted"},
                     headers={**secured.as_role("admin"), "If-Match": etag})
    assert r.status_code == 200
    after = secured.app.state.dataset.geocoder.geocode(address)
    assert after.precision == "village" and (after.lon, after.lat) == pytest.approx((lon, lat))


