"""Writes under pressure: reviews that cannot lose updates, report limits, the log index, workers agreeing,
a full disk, a damaged log."""

from __future__ import annotations

import errno
import shutil
import threading
import time

import pytest
from fastapi.testclient import TestClient

from coopgis.app import create_app
from coopgis.auth import TokenStore
from coopgis.location_reports import REPORTS_FILE
from coopgis.settings import ServiceSettings


@pytest.fixture()
def folder(store):
    """The store under test (the data folder, then PostGIS) with a field officer's and an admin's token."""
    return store, store.add_tokens(("field_officer", "admin"))


@pytest.fixture()
def file_folder(tmp_path, sample_store):
    """A private copy of the sample store folder: for what only the file store has (its log file, its disk)."""
    data = tmp_path / "data"
    shutil.copytree(sample_store.folder, data)
    tokens = TokenStore(tmp_path / "tokens.json")
    keys = {role: tokens.add(f"{role}-user", role) for role in ("field_officer", "admin")}
    return data, tmp_path / "tokens.json", keys


def _client(folder, **settings) -> TestClient:
    if len(folder) == 2:
        store, keys = folder
        c = TestClient(create_app(store.settings(**settings)))
    else:
        data, tokens, keys = folder
        c = TestClient(create_app(ServiceSettings(data=data, tokens_file=tokens, **settings)))
    c.as_role = lambda role: {"Authorization": f"Bearer {keys[role]}"}
    return c


def _coop(c, n: int = 0) -> dict:
    feats = c.get("/collections/cooperatives/items?limit=100").json()["features"]
    return [f for f in feats if f["geometry"]][n]


def _report(c, reg, lon=51.42, lat=35.71):
    return c.post(f"/cooperatives/{reg}/location-reports", headers=c.as_role("field_officer"),
                  json={"lon": lon, "lat": lat, "accuracy_m": 10, "reason": "بازدید"})


def _decide(c, rid, etag, decision="accepted"):
    return c.post(f"/location-reports/{rid}/decision", json={"decision": decision},
                  headers={**c.as_role("admin"), "If-Match": etag})


# ---- decisions ------------------------------------------------------------------------------------------

def test_if_match_star_is_refused_for_decisions(folder):
    c = _client(folder)
    reg = _coop(c)["id"]
    rid = _report(c, reg).json()["id"]
    r = _decide(c, rid, "*")
    assert r.status_code == 428 and "'*' is not accepted" in r.json()["detail"]
    assert c.get(f"/cooperatives/{reg}").json()["properties"]["precision"] != "verified"


def test_concurrent_acceptances_of_one_cooperative_let_one_through(folder):
    c = _client(folder, pending_reports_per_cooperative=10)
    f = _coop(c)
    reg = f["id"]
    rids = [_report(c, reg, 51.4 + i / 100, 35.7).json()["id"] for i in range(8)]
    etag = c.get(f"/cooperatives/{reg}").headers["etag"]
    codes, events = [], []
    lock = threading.Lock()

    def decide(rid):
        r = _decide(c, rid, etag)
        with lock:
            codes.append(r.status_code)
            if r.status_code == 200:
                events.append(r.json())

    threads = [threading.Thread(target=decide, args=(rid,)) for rid in rids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] + [412] * 7
    assert events[0]["from"]["lon"] == pytest.approx(f["geometry"]["coordinates"][0])


def test_a_decision_records_the_location_current_when_it_commits_in_any_worker(folder):
    a, b = _client(folder), _client(folder)        # two workers on one folder; b has not caught up
    reg = _coop(a)["id"]
    first, second = _report(a, reg, 51.41, 35.71).json()["id"], _report(a, reg, 51.43, 35.73).json()["id"]
    assert _decide(a, first, a.get(f"/cooperatives/{reg}").headers["etag"]).status_code == 200
    seen = a.get(f"/cooperatives/{reg}")                   # the reviewer reads the moved cooperative ...
    r = _decide(b, second, seen.headers["etag"])           # ... and decides in the worker that lags behind
    assert r.status_code == 200, r.text
    assert (r.json()["from"]["lon"], r.json()["from"]["lat"]) == pytest.approx((51.41, 35.71))
    assert r.json()["from"]["precision"] == "verified"


# ---- the read model ----------------------------------------------------------------------------------------

def test_a_pending_report_does_not_reload_the_dataset(folder):
    with _client(folder) as c:                             # the store watcher runs
        served = c.app.state.dataset
        assert _report(c, _coop(c)["id"]).status_code == 201
        time.sleep(3)                                      # the watcher has looked several times
        assert c.app.state.dataset is served
        assert c.get("/location-reports", headers=c.as_role("field_officer")).json()["numberMatched"] == 1


def test_an_acceptance_updates_what_is_served_without_reading_the_store(folder, monkeypatch):
    from coopgis.db.store import PostgisStore
    from coopgis.store import FileStore

    c = _client(folder)
    f = _coop(c)
    rid = _report(c, f["id"], 51.4011, 35.7011).json()["id"]
    etag = c.get(f"/cooperatives/{f['id']}").headers["etag"]

    def no_reading(self, *a, **k):
        raise AssertionError("the store was read again")

    for kind in (FileStore, PostgisStore):
        monkeypatch.setattr(kind, "read_with_ingest_report", no_reading)
        monkeypatch.setattr(kind, "read", no_reading)
    monkeypatch.setattr(PostgisStore, "read_version", no_reading)
    assert _decide(c, rid, etag).status_code == 200
    props = c.get(f"/cooperatives/{f['id']}").json()
    assert props["properties"]["precision"] == "verified"
    assert props["geometry"]["coordinates"] == pytest.approx([51.4011, 35.7011])
    page = c.get("/collections/cooperatives/items", params={"bbox": "51.40,35.70,51.41,35.71"}).json()
    assert f["id"] in [x["id"] for x in page["features"]]


def test_workers_agree_within_two_seconds(folder):
    with _client(folder) as a, _client(folder) as b:      # two workers, each with its own watcher
        for worker in (a, b):   # the promise is between ready replicas (a balancer routes only to /ready ones)
            assert worker.app.state.read_model.warmed.wait(60)
        reg = _coop(a)["id"]
        rid = _report(a, reg, 51.45, 35.75).json()["id"]
        assert _decide(a, rid, a.get(f"/cooperatives/{reg}").headers["etag"]).status_code == 200
        started = time.perf_counter()
        while b.get(f"/cooperatives/{reg}").json()["properties"]["precision"] != "verified":
            # 2 s is the promise (a look every 0.5 s and an update in place keep it well under that when the
            # machine is quiet; under a loaded test run it took 1.24 s once)
            assert time.perf_counter() - started < 2.0, "the other worker still serves the old location"
            time.sleep(0.05)
        assert b.get(f"/cooperatives/{reg}").headers["etag"] == a.get(f"/cooperatives/{reg}").headers["etag"]


# ---- limits on reports ------------------------------------------------------------------------------------

def test_reports_are_limited_per_token_and_per_cooperative(folder):
    c = _client(folder, reports_per_hour=4, pending_reports_per_cooperative=2)
    one, two, three = (_coop(c, n)["id"] for n in range(3))
    assert [_report(c, one).status_code for _ in range(3)] == [201, 201, 429]
    r = _report(c, one)
    assert r.status_code == 429 and "waiting for review" in r.json()["detail"]
    assert [_report(c, reg).status_code for reg in (two, two)] == [201, 201]
    r = _report(c, three)
    assert r.status_code == 429 and "per hour" in r.json()["detail"] and int(r.headers["retry-after"]) > 3000
    assert len(folder[0].stored_events()) == 4


def test_lookups_in_the_log_read_only_what_was_appended(file_folder, monkeypatch):
    import builtins

    import coopgis.location_reports as reports_mod

    c = _client(file_folder, reports_per_hour=10_000, pending_reports_per_cooperative=10_000)
    reg = _coop(c)["id"]
    for _ in range(30):
        assert _report(c, reg).status_code == 201
    read = []
    real_open = builtins.open

    class Counting:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def read(self, n=-1):
            data = self.f.read(n)
            read.append(len(data))
            return data

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(reports_mod, "open", lambda *a, **k: Counting(real_open(*a, **k)), raising=False)
    size = (file_folder[0] / REPORTS_FILE).stat().st_size
    assert c.get(f"/cooperatives/{reg}").status_code == 200   # reads the last report's line
    assert 0 < sum(read) < size / 10
    read.clear()
    assert c.get(f"/cooperatives/{reg}").status_code == 200
    assert c.get(f"/cooperatives/{reg}/location-reports", headers=c.as_role("field_officer")).status_code == 200
    assert c.get("/audit", headers=c.as_role("admin")).json()["numberMatched"] == 30
    assert sum(read) == 0   # the index is up to date: nothing to read
    _report(c, reg)
    c.get(f"/cooperatives/{reg}")
    assert 0 < sum(read) < size / 10   # only the new line


# ---- faults --------------------------------------------------------------------------------------------

def test_a_malformed_decision_line_is_skipped_and_counted(file_folder):
    data = file_folder[0]
    with open(data / REPORTS_FILE, "ab") as f:
        f.write(b'{"event": "decision", "id": "d1", "registration_no": "1", "report_id": "r1", '
                b'"decision": "accepted"}\n')                         # no "to": no place to move to
        f.write(b'{"event": "decision", "id": "d2", "registration_no": "1", "report_id": "r2", '
                b'"decision": "accepted", "to": {"lon": "x", "lat": null}}\n')
    c = _client(file_folder)                                                # loads: never fatal
    body = c.get("/audit", headers=c.as_role("admin")).json()
    assert body["skipped_lines"] == 2 and body["events"] == []
    assert c.get("/collections/cooperatives/items?limit=1").status_code == 200


def _disk_full(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_a_507_naming_the_cause_and_nothing_else_breaks(file_folder, monkeypatch):
    import coopgis.location_reports as reports_mod

    c = _client(file_folder)
    f = _coop(c)
    good = _report(c, f["id"]).json()["id"]
    etag = c.get(f"/cooperatives/{f['id']}").headers["etag"]
    monkeypatch.setattr(reports_mod, "_write_all", _disk_full)
    r = _report(c, _coop(c, 1)["id"])
    assert r.status_code == 507 and r.headers["content-type"] == "application/problem+json"
    assert "disk is full" in r.json()["detail"] and "not saved" in r.json()["detail"]
    r = _decide(c, good, etag)
    assert r.status_code == 507 and "decision was not saved" in r.json()["detail"]
    assert c.get("/collections/cooperatives/items?limit=5").status_code == 200      # reads go on
    monkeypatch.undo()
    assert _decide(c, good, etag).status_code == 200                                 # and writes, once there is room


def test_token_add_on_a_full_disk_is_one_line_and_leaves_no_temp_file(tmp_path, monkeypatch, capsys):
    import coopgis.files as files_mod
    from coopgis.cli import main

    monkeypatch.setattr(files_mod.os, "fsync", _disk_full)
    code = main(["token", "add", "x", "--role", "admin", "--file", str(tmp_path / "tokens.json")])
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_ingest_on_a_full_disk_is_one_line_and_leaves_no_temp_files(file_folder, sample_store, monkeypatch, capsys):
    import geopandas as gpd

    from coopgis.cli import main
    from coopgis.store import FileStore

    data = file_folder[0]
    served = FileStore(data).version()
    monkeypatch.setattr(gpd.GeoDataFrame, "to_parquet", _disk_full)
    csv = next(sample_store.folder.parent.glob("*.csv"))
    code = main(["ingest", str(csv), "--data", str(data), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "disk is full" in err and "current dataset is kept" in err and "Traceback" not in err
    assert [p for p in data.rglob("*") if ".tmp" in p.name] == []
    assert FileStore(data).version() == served
