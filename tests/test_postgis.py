"""PostgreSQL/PostGIS as the system of record: the schema and its revisions, ingest in one transaction (a killed
one changes nothing), the public views as a read-only role sees them (a real login, and GDAL's PostGIS driver as
QGIS's stand-in), tokens in the database, /health /ready /metrics, and a backup restored with pg_restore."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import psycopg
import pytest
from conftest import has_sample_phone, metrics_without_values
from fastapi.testclient import TestClient

from coopgis.app import create_app
from coopgis.dataset import PUBLIC_COLUMNS
from coopgis.db import schema
from coopgis.db.connect import Database
from coopgis.db.store import PostgisStore
from coopgis.settings import ServiceSettings

pytestmark = pytest.mark.postgis


@pytest.fixture()
def database(pg_server, pg_template):
    """A private copy of the template database (schema + the sample dataset): its URL."""
    name = pg_server.create(template=pg_template)
    yield pg_server.url_of(name)
    pg_server.drop(name)


@pytest.fixture()
def pg_secured(database, tmp_path):
    """An app on a private database, with one token per role (the conftest's secured, PostGIS only)."""
    from conftest import StoreUnderTest

    store = StoreUnderTest("postgis", tmp_path, tmp_path / "no-data-folder", database)
    keys = store.add_tokens()
    c = TestClient(create_app(store.settings()))
    c.as_role = lambda role: {"Authorization": f"Bearer {keys[role]}"}
    c.store = store
    yield c
    c.app.state.backend.close()


@pytest.fixture()
def empty_database(pg_server):
    name = pg_server.create()
    yield pg_server.url_of(name)
    pg_server.drop(name)


def _cli(*args: str, url: str, timeout: float = 300, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COOPGIS_")}
    environ.update(COOPGIS_DATABASE_URL=url, **env)
    return subprocess.run([sys.executable, "-m", "coopgis.cli", *args], env=environ, capture_output=True, text=True,
                          timeout=timeout, cwd=os.path.dirname(os.path.dirname(__file__)))


def _one(url: str, query: str, params=()):
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchone()


# ---- schema ----------------------------------------------------------------------------------------------

def test_db_upgrade_creates_the_schema_and_a_newer_database_is_refused(empty_database):
    r = _cli("db", "upgrade", url=empty_database)
    assert r.returncode == 0, r.stderr
    assert f"created revision {schema.head()}" in r.stderr
    assert _cli("db", "upgrade", url=empty_database).returncode == 0            # again: nothing to do
    assert _cli("db", "current", url=empty_database).stdout.strip() == schema.head()
    assert _one(empty_database, "SELECT PostGIS_Lib_Version()")[0].startswith("3.")

    with psycopg.connect(empty_database) as conn:                            # a newer coopgis wrote it
        conn.execute("UPDATE public.alembic_version SET version_num = '0099_from_the_future'")
    for args in (("db", "upgrade"), ("serve", "--port", "1"), ("ingest", "x.csv"), ("token", "list")):
        r = _cli(*args, url=empty_database)
        assert r.returncode == 1, (args, r.stderr)
        assert "0099_from_the_future" in r.stderr and "newer coopgis" in r.stderr and "Traceback" not in r.stderr
    assert _one(empty_database, "SELECT version_num FROM public.alembic_version")[0] == "0099_from_the_future"


def test_a_database_without_the_schema_says_to_upgrade(empty_database):
    r = _cli("serve", "--port", "1", url=empty_database)
    assert r.returncode == 1 and "coopgis db upgrade" in r.stderr


def test_the_database_gives_back_exactly_what_the_file_store_holds(database, sample_store):
    frame, report = sample_store.read_with_ingest_report()
    db = Database(database)
    version, back, back_report = PostgisStore(db).read_version()
    db.close()
    pd.testing.assert_frame_equal(back, frame)          # every column, every dtype, every value, the CRS
    assert back.crs == frame.crs and back_report == report


def test_reports_and_decisions_are_append_only(pg_secured):
    secured = pg_secured
    from conftest import location_report, some_cooperative

    f = some_cooperative(secured)
    assert location_report(secured, f["id"], 51.4, 35.7).status_code == 201
    url = secured.store.database_url
    for statement in ("UPDATE coopgis.location_reports SET note = 'x'", "DELETE FROM coopgis.location_reports",
                      "TRUNCATE coopgis.location_reports CASCADE", "DELETE FROM coopgis.audit_events"):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"), psycopg.connect(url) as conn:
            conn.execute(statement)
    assert _one(url, "SELECT count(*) FROM coopgis.location_reports")[0] == 1


# ---- ingest ----------------------------------------------------------------------------------------------

def test_ingest_into_the_database_switches_atomically_and_refusals_keep_the_current(database, sample_store,
                                                                                   boundaries, tmp_path):
    from coopgis.sample import generate_sample, write_sample

    before = _one(database, "SELECT dataset_id FROM coopgis.current_dataset")[0]
    csv = tmp_path / "registry.csv"
    write_sample(generate_sample(1200, seed=5, boundaries=boundaries), csv)
    r = _cli("ingest", str(csv), "--no-progress", url=database)
    assert r.returncode == 0, r.stderr
    now, rows = _one(database, "SELECT d.id, d.rows FROM coopgis.current_dataset c JOIN coopgis.datasets d "
                               "ON d.id = c.dataset_id")
    assert now != before
    assert _one(database, "SELECT count(*) FROM coopgis.cooperatives WHERE dataset_id = %s", (now,))[0] == rows
    # a file of a few rows would shrink it by far more than 20 %: read, refused, recorded, nothing switched
    small = tmp_path / "small.csv"
    write_sample(generate_sample(30, seed=6, boundaries=boundaries, bad_rows=False), small)
    r = _cli("ingest", str(small), "--no-progress", url=database)
    assert r.returncode == 3 and "NOT replaced" in r.stderr and "audit" in r.stderr
    assert _one(database, "SELECT dataset_id FROM coopgis.current_dataset")[0] == now
    actions = _one(database, "SELECT array_agg(detail->>'replaced' ORDER BY seq) FROM coopgis.audit_events "
                             "WHERE action = 'ingest'")[0]
    assert actions[-2:] == ["true", "false"]
    # --data and a database URL at once is a mistake, said as such
    assert _cli("ingest", str(small), "--data", str(tmp_path), url=database).returncode == 2


_WRITER = """
import sys, pandas as pd, geopandas as gpd
from coopgis.db.connect import Database
from coopgis.db.store import PostgisStore
from coopgis.store import FileStore
frame, report = FileStore(sys.argv[2]).read_with_ingest_report()
big = pd.concat([frame] * 200, ignore_index=True)
big["registration_no"] = [f"k{i}" for i in range(len(big))]
print("writing", len(big), flush=True)
PostgisStore(Database(sys.argv[1])).write(gpd.GeoDataFrame(big, geometry="geometry", crs=frame.crs), report)
print("written", flush=True)
"""


def test_an_ingest_killed_mid_copy_leaves_the_previous_dataset_current_and_complete(database, sample_store):
    before = _one(database, "SELECT c.dataset_id, d.rows, (SELECT count(*) FROM coopgis.datasets) "
                            "FROM coopgis.current_dataset c JOIN coopgis.datasets d ON d.id = c.dataset_id")
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, database, str(sample_store.folder)],
                            stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    copied = 0
    deadline = time.time() + 120
    with psycopg.connect(database, autocommit=True) as watch:
        while time.time() < deadline and proc.poll() is None:
            row = watch.execute("SELECT tuples_processed FROM pg_stat_progress_copy WHERE datname = "
                                "current_database()").fetchone()
            if row and row[0] > 20_000:
                copied = row[0]
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait(30)
        assert copied > 0, "the COPY was never seen in progress"
        for _ in range(200):   # the server notices the lost client and rolls its transaction back
            if not watch.execute("SELECT 1 FROM pg_stat_progress_copy WHERE datname = current_database()").fetchone():
                break
            time.sleep(0.05)
    print(f"killed after {copied:,} rows copied")
    after = _one(database, "SELECT c.dataset_id, d.rows, (SELECT count(*) FROM coopgis.datasets) "
                           "FROM coopgis.current_dataset c JOIN coopgis.datasets d ON d.id = c.dataset_id")
    assert after == before
    assert _one(database, "SELECT count(*) FROM coopgis.cooperatives")[0] == before[1]   # nothing half-written
    db = Database(database)
    version, frame, _ = PostgisStore(db).read_version()
    db.close()
    assert version == str(before[0]) and len(frame) == before[1]


# ---- the read-only role (QGIS) -----------------------------------------------------------------------------

def test_grant_readonly_makes_a_login_that_reads_public_columns_only(database, pg_server, secured_database_name):
    r = _cli("db", "grant-readonly", "qgis_reader", url=database)
    assert r.returncode == 0, r.stderr
    password = r.stdout.strip()
    assert len(password) >= 24
    ro = pg_server.url_of(secured_database_name(database), user="qgis_reader", password=password, tcp=True)
    with psycopg.connect(ro) as conn:                            # a real password login over TCP
        cols = [d.name for d in conn.execute("SELECT * FROM coopgis_public.cooperatives LIMIT 1").description]
        assert set(cols) - {"geom"} <= set(PUBLIC_COLUMNS) and "phone" not in cols and "extra" not in cols
        n, srid, kind = conn.execute("SELECT count(*), min(ST_SRID(geom)), min(GeometryType(geom)) FROM "
                                     "coopgis_public.cooperatives").fetchone()
        assert n == _one(database, "SELECT rows FROM coopgis.datasets WHERE id = (SELECT dataset_id FROM "
                             "coopgis.current_dataset)")[0] and n > 1000 and srid == 4326 and kind == "POINT"
        names = conn.execute("SELECT string_agg(coalesce(name, '') || ' ' || coalesce(address, ''), ' ') FROM "
                             "coopgis_public.cooperatives").fetchone()[0]
        assert not has_sample_phone(names)                      # numbers typed into free text are masked too
    for forbidden in ("SELECT phone FROM coopgis.cooperatives LIMIT 1", "SELECT * FROM coopgis.tokens",
                      "SELECT * FROM coopgis.location_reports"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), psycopg.connect(ro) as conn:
            conn.execute(forbidden)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), psycopg.connect(ro) as conn:
        conn.execute("CREATE TEMP TABLE t (x int)")
    # granting again keeps the password and says so; a superuser is never made read-only
    again = _cli("db", "grant-readonly", "qgis_reader", url=database)
    assert again.returncode == 0 and again.stdout == "" and "unchanged" in again.stderr
    assert _cli("db", "grant-readonly", "postgres", url=database).returncode == 1

    if shutil.which("ogrinfo") is None:
        pytest.skip("GDAL's ogrinfo is not installed")
    port = re.search(r"port=(\d+)", ro).group(1)
    conninfo = (f"PG:host=127.0.0.1 port={port} dbname={secured_database_name(database)} user=qgis_reader "
                f"password={password} schemas=coopgis_public")
    out = subprocess.run(["ogrinfo", "-ro", "-so", conninfo, "cooperatives"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"Feature Count: {n}" in out.stdout and "Geometry: Point" in out.stdout and "4326" in out.stdout
    assert "phone" not in out.stdout


@pytest.fixture()
def secured_database_name():
    from urllib.parse import urlsplit

    return lambda url: urlsplit(url).path.lstrip("/")


# ---- tokens ----------------------------------------------------------------------------------------------

def test_tokens_live_in_the_database_hashed_and_revocation_is_immediate(database):
    r = _cli("token", "add", "مدیر", "--role", "admin", url=database)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    stored = _one(database, "SELECT sha256 FROM coopgis.tokens WHERE name = 'مدیر'")[0]
    assert token not in stored and len(stored) == 64
    assert "مدیر\tadmin" in _cli("token", "list", url=database).stdout
    app = create_app(ServiceSettings(database_url=database))
    c = TestClient(app)
    auth = {"Authorization": f"Bearer {token}"}
    assert c.get("/audit", headers=auth).status_code == 200
    assert _cli("token", "revoke", "مدیر", url=database).returncode == 0
    assert c.get("/audit", headers=auth).status_code == 401
    actions = _one(database, "SELECT array_agg(action ORDER BY seq) FROM coopgis.audit_events")[0]
    assert actions[-2:] == ["token add", "token revoke"]
    app.state.backend.close()


# ---- operations ------------------------------------------------------------------------------------------

def test_ready_follows_the_database_and_metrics_name_routes_not_paths(database, pg_server):
    app = create_app(ServiceSettings(database_url=database))
    with TestClient(app) as c:
        assert c.get("/health").json() == {"status": "ok"}
        deadline = time.time() + 60
        while c.get("/ready").status_code != 200:
            assert time.time() < deadline, c.get("/ready").json()
            time.sleep(0.1)
        body = c.get("/ready").json()
        assert body["checks"] == {"read_model_warmed": True, "store_reachable": True, "read_model_current": True,
                                  "listening": True}
        reg = c.get("/collections/cooperatives/items?limit=1").json()["features"][0]["id"]
        assert c.get(f"/cooperatives/{reg}").status_code == 200
        text = c.get("/metrics").text
        assert 'route="/cooperatives/{registration_no:path}"' in text and f"/cooperatives/{reg}" not in text
        assert "coopgis_db_pool_size" in text and 'store="postgis"' in text
        assert "coopgis_read_model_age_seconds" in text and not has_sample_phone(metrics_without_values(text))
        # the database goes away: not ready (the balancer takes the replica out), but still alive
        from urllib.parse import urlsplit

        pg_server.drop(urlsplit(database).path.lstrip("/"))
        r = c.get("/ready")
        assert r.status_code == 503 and r.json()["checks"]["store_reachable"] is False
        assert c.get("/health").status_code == 200
        assert c.get("/collections/cooperatives/items?limit=2").status_code == 200   # the read model still serves
    app.state.backend.close()


# ---- backups ---------------------------------------------------------------------------------------------

def test_a_pg_dump_backup_restores_into_a_database_that_serves_the_same(pg_secured, pg_server, tmp_path):
    secured = pg_secured
    from conftest import location_report, some_cooperative

    f = some_cooperative(secured)
    rid = location_report(secured, f["id"], 51.41, 35.71).json()["id"]
    etag = secured.get(f"/cooperatives/{f['id']}").headers["etag"]
    assert secured.post(f"/location-reports/{rid}/decision", json={"decision": "accepted"},
                        headers={**secured.as_role("admin"), "If-Match": etag}).status_code == 200
    bindir = os.path.dirname(shutil.which("pg_dump") or "/usr/bin/pg_dump")
    dump = tmp_path / "coopgis.dump"
    subprocess.run([os.path.join(bindir, "pg_dump"), "-Fc", "-f", str(dump), "-d", secured.store.database_url],
                   check=True, timeout=120)
    name = pg_server.create()
    restored = pg_server.url_of(name)
    subprocess.run([os.path.join(bindir, "pg_restore"), "--no-owner", "-d", restored, str(dump)], check=True,
                   timeout=120)
    c = TestClient(create_app(ServiceSettings(database_url=restored)))
    moved = c.get(f"/cooperatives/{f['id']}").json()
    assert moved["properties"]["precision"] == "verified"
    assert moved["geometry"]["coordinates"] == pytest.approx([51.41, 35.71])
    assert (c.get("/collections/cooperatives/items?limit=1").json()["numberMatched"]
            == secured.get("/collections/cooperatives/items?limit=1").json()["numberMatched"])
    assert c.get(f"/cooperatives/{f['id']}").headers["etag"] == secured.get(f"/cooperatives/{f['id']}").headers["etag"]
    c.app.state.backend.close()
    pg_server.drop(name)
