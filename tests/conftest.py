"""Shared fixtures: the shipped boundaries and one geocoder for the whole session."""

from __future__ import annotations

import re

import pytest

from coopgis.boundaries import load_boundaries
from coopgis.geocode import Geocoder
from coopgis.text import to_ascii_digits

# The synthetic sample's phone numbers: 0900 and seven digits, sometimes spaced or dashed.
_SAMPLE_PHONE = re.compile(r"0900[ -]?[0-9]{3}[ -]?[0-9]{4}")


def has_sample_phone(text: str) -> bool:
    """True when ``text`` holds a phone number of the synthetic sample (in any digit script)."""
    return bool(_SAMPLE_PHONE.search(to_ascii_digits(text)))


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


@pytest.fixture()
def secured(tmp_path, sample_store, boundaries, geocoder):
    """An app on a private copy of the sample store, with one token per role."""
    import shutil

    from fastapi.testclient import TestClient

    from coopgis.app import create_app
    from coopgis.auth import TokenStore
    from coopgis.settings import ServiceSettings

    data = tmp_path / "data"
    shutil.copytree(sample_store.folder, data)
    tokens = TokenStore(tmp_path / "tokens.json")
    keys = {role: tokens.add(f"{role}-user", role) for role in ("field_officer", "gis_staff", "admin")}
    settings = ServiceSettings(data=data, tokens_file=tmp_path / "tokens.json", cors_origins=["http://intranet.local"])
    app = create_app(settings)
    client = TestClient(app)
    client.keys = keys
    client.as_role = lambda role: {"Authorization": f"Bearer {keys[role]}"}
    return client


def some_cooperative(client, precision: str | None = None) -> dict:
    """A located cooperative that is not at a given coordinate (of ``precision`` when given)."""
    feats = client.get("/collections/cooperatives/items?limit=200").json()["features"]
    return next(f for f in feats if f["geometry"] and f["properties"]["precision"] != "exact"
                and precision in (None, f["properties"]["precision"]))


def location_report(client, reg, lon, lat, role="field_officer"):
    """POST a location report for ``reg`` as ``role``."""
    body = {"lon": lon, "lat": lat, "accuracy_m": 15, "reason": "دیدم", "note": None, "reporter": "x"}
    return client.post(f"/cooperatives/{reg}/location-reports", json=body, headers=client.as_role(role))
