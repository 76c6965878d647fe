"""Shared fixtures: the shipped boundaries and one geocoder for the whole session."""

from __future__ import annotations

import glob
import os
import re
import secrets

import pytest

from coopgis.boundaries import load_boundaries
from coopgis.geocode import Geocoder
from coopgis.text import to_ascii_digits

# The synthetic sample's phone numbers: 0900 and seven digits, sometimes spaced or dashed.
_SAMPLE_PHONE = re.compile(r"0900[ -]?[0-9]{3}[ -]?[0-9]{4}")


def has_sample_phone(text: str) -> bool:
    """True when ``text`` holds a phone number of the synthetic sample (in any digit script)."""
    return bool(_SAMPLE_PHONE.search(to_ascii_digits(text)))


def metrics_without_values(text: str) -> str:
    """Prometheus text with each line's last field (a sample's value) left out: a phone could only leak
    through a name, a label or the help, and a value such as a latency sum 0.000900... may look like one."""
    return "\n".join(line.rsplit(" ", 1)[0] for line in text.splitlines())


# Rates for fixtures that send many requests from one client: the limits are tested on apps of their own.
UNLIMITED = {"rate_geocode_per_minute": 1e6, "rate_download_per_minute": 1e6, "rate_read_per_minute": 1e6,
             "rate_tiles_per_minute": 1e6, "rate_burst": 10_000, "rate_tiles_burst": 10_000}


@pytest.fixture(scope="session")
def boundaries():
    return load_boundaries()


@pytest.fixture(scope="session")
def geocoder(boundaries):
    return Geocoder(boundaries)


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory, boundaries, geocoder):
    """A 1,500-row synthetic registry, ingested into a store folder."""
    from coopgis.ingest import ingest
    from coopgis.sample import generate_sample, write_sample
    from coopgis.store import FileStore

    folder = tmp_path_factory.mktemp("store")
    csv = folder / "sample.csv"
    write_sample(generate_sample(1500, seed=11, boundaries=boundaries), csv)
    store = FileStore(folder / "data")
    ingest(csv, store, boundaries, geocoder)
    return store


@pytest.fixture(scope="session")
def dataset(sample_store, boundaries, geocoder):
    from coopgis.dataset import Dataset

    return Dataset(sample_store.read(), boundaries, sample_store.read_report(), geocoder)


@pytest.fixture(scope="session")
def client(dataset, sample_store):
    from fastapi.testclient import TestClient

    from coopgis.app import create_app
    from coopgis.settings import ServiceSettings

    # The suite sends many requests from one client: rate limits are tested on their own app.
    app = create_app(ServiceSettings(data=sample_store.folder, max_limit=500, max_download=100_000,
                                     **UNLIMITED), dataset)
    return TestClient(app)


@pytest.fixture(scope="session")
def live_server(sample_store, tmp_path_factory):
    """The real service (uvicorn, uvloop, httptools) on a free loopback port, for GDAL and browsers."""
    import os
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, COOPGIS_MAX_LIMIT="500", COOPGIS_HEADER_TIMEOUT_SECONDS="3",
               **{f"COOPGIS_{k.upper()}": str(v) for k, v in UNLIMITED.items()})
    log = open(tmp_path_factory.mktemp("server") / "server.log", "wb")  # a pipe nobody reads would fill up
    proc = subprocess.Popen([sys.executable, "-m", "coopgis.cli", "serve", "--data", str(sample_store.folder),
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("server exited: " + open(log.name, "rb").read().decode(errors="replace")) from None
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("server did not start within 60 s")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


# ---- the stores: the embedded folder and PostgreSQL/PostGIS ------------------------------------------------

class PgServer:
    """A PostgreSQL server the tests may create databases on (as a superuser)."""

    def __init__(self, url: str):
        self.url = url
        self.made: list[str] = []

    def url_of(self, dbname: str, user: str | None = None, password: str | None = None, tcp: bool = False) -> str:
        """The URL of database ``dbname`` on this server (optionally as another user, over TCP)."""
        from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

        parts = urlsplit(self.url)
        query = dict(parse_qsl(parts.query))
        netloc = parts.netloc
        if user is not None:
            host = netloc.rsplit("@", 1)[-1]
            netloc = f"{quote(user)}:{quote(password or '', safe='')}@{host}" if password else f"{quote(user)}@{host}"
        if tcp:
            port = query.get("port") or parts.port or 5432
            query = {"host": "127.0.0.1", "port": str(port)}
            netloc = netloc.rsplit("@", 1)[0] + "@" if "@" in netloc else ""
        return urlunsplit((parts.scheme, netloc, "/" + dbname, urlencode(query), ""))

    def create(self, template: str | None = None) -> str:
        """A new empty database (or a copy of ``template``); returns its name."""
        import psycopg

        name = f"coopgis_test_{os.getpid()}_{len(self.made)}_{secrets.token_hex(3)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        self.made.append(name)
        return name

    def drop(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server():
    """COOPGIS_TEST_DATABASE_URL (CI starts a temporary cluster and gives it), else a temporary cluster of our
    own when PostgreSQL's server programs and PostGIS are installed; the database tests are skipped only when
    there is neither."""
    url = os.environ.get("COOPGIS_TEST_DATABASE_URL")
    if url:
        yield PgServer(url)
        return
    from pgcluster import Cluster, binaries

    if binaries() is None or not glob.glob("/usr/share/postgresql/*/extension/postgis.control"):
        pytest.skip("no database: set COOPGIS_TEST_DATABASE_URL, or install postgresql-15-postgis-3 "
                    "(bash .ci/run does)")
    with Cluster() as cluster:
        yield PgServer(cluster.url)


@pytest.fixture(scope="session")
def pg_template(pg_server, sample_store):
    """A database with the schema and the sample dataset, copied for each test that needs one."""
    from coopgis.db import schema
    from coopgis.db.connect import Database
    from coopgis.db.store import PostgisStore

    name = pg_server.create()
    url = pg_server.url_of(name)
    schema.upgrade(url)
    db = Database(url)
    frame, report = sample_store.read_with_ingest_report()
    PostgisStore(db).write(frame, report)
    db.close()
    yield name
    pg_server.drop(name)


class StoreUnderTest:
    """One test's private store: a copy of the sample store folder, or a database copied from the template."""

    def __init__(self, kind: str, tmp_path, data, database_url: str | None = None):
        self.kind = kind
        self.tmp_path = tmp_path
        self.data = data
        self.database_url = database_url
        self.tokens_file = tmp_path / "tokens.json"

    def settings(self, **changes):
        from coopgis.settings import ServiceSettings

        return ServiceSettings(data=self.data, tokens_file=self.tokens_file, database_url=self.database_url,
                               **changes)

    def backend(self):
        from coopgis.backend import open_backend

        return open_backend(self.settings())

    def add_tokens(self, roles=("field_officer", "gis_staff", "admin")) -> dict[str, str]:
        backend = self.backend()
        try:
            return {role: backend.tokens.add(f"{role}-user", role) for role in roles}
        finally:
            backend.close()

    def stored_events(self) -> list[dict]:
        """Every stored report and decision, oldest first, as the store gives them back."""
        backend = self.backend()
        try:
            return backend.reports.read().events or []
        finally:
            backend.close()


@pytest.fixture(params=["file", pytest.param("postgis", marks=pytest.mark.postgis)])
def store(request, tmp_path, sample_store):
    """The store an API test runs against: each such test runs once on the file store, once on PostGIS."""
    import shutil

    if request.param == "file":
        data = tmp_path / "data"
        shutil.copytree(sample_store.folder, data)
        yield StoreUnderTest("file", tmp_path, data)
        return
    server = request.getfixturevalue("pg_server")
    name = server.create(template=request.getfixturevalue("pg_template"))
    yield StoreUnderTest("postgis", tmp_path, tmp_path / "no-data-folder", server.url_of(name))
    server.drop(name)


@pytest.fixture()
def secured(store, boundaries, geocoder):
    """An app on a private copy of the sample store (each store in turn), with one token per role."""
    from fastapi.testclient import TestClient

    from coopgis.app import create_app

    keys = store.add_tokens()
    app = create_app(store.settings(cors_origins=["http://intranet.local"]))
    client = TestClient(app)
    client.keys = keys
    client.as_role = lambda role: {"Authorization": f"Bearer {keys[role]}"}
    client.store = store
    yield client
    app.state.backend.close()


def some_cooperative(client, precision: str | None = None) -> dict:
    """A located cooperative that is not at a given coordinate (of ``precision`` when given)."""
    feats = client.get("/collections/cooperatives/items?limit=200").json()["features"]
    return next(f for f in feats if f["geometry"] and f["properties"]["precision"] != "exact"
                and precision in (None, f["properties"]["precision"]))


def location_report(client, reg, lon, lat, role="field_officer"):
    """POST a location report for ``reg`` as ``role``."""
    body = {"lon": lon, "lat": lat, "accuracy_m": 15, "reason": "دیدم", "note": None, "reporter": "x"}
    return client.post(f"/cooperatives/{reg}/location-reports", json=body, headers=client.as_role(role))
