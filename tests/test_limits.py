"""What a request may cost: filter limits, rate limits per real client, the heavy gate, the time budget."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

import pytest
from conftest import UNLIMITED
from fastapi.testclient import TestClient

from coopgis.api.limits import HeavyGate
from coopgis.app import create_app
from coopgis.filters import parse_filter
from coopgis.settings import ServiceSettings

KERMAN = "Kerman"


def _app(sample_store, dataset, tmp_path, client=("testclient", 50000), **settings) -> TestClient:
    s = ServiceSettings(data=sample_store.folder, tokens_file=tmp_path / "tokens.json", **settings)
    return TestClient(create_app(s, dataset), client=client)


@pytest.fixture(scope="module")
def open_client(sample_store, dataset, tmp_path_factory):
    return _app(sample_store, dataset, tmp_path_factory.mktemp("t"), **UNLIMITED)


# ---- filters: bounded before work starts -----------------------------------------------------------

@pytest.mark.parametrize("path", ["/stats", "/collections/cooperatives/items", "/tiles/cooperatives/5/20/12.mvt",
                                  "/search?q=تعاونی", "/nearest?lon=51.4&lat=35.7"])
def test_a_filter_naming_too_many_values_is_refused_naming_the_limit(open_client, path):
    names = ",".join(f"{KERMAN}{'،' * 0}" for _ in range(30)) + "," + ",".join(f"X{i}" for i in range(120))
    t = time.perf_counter()
    r = open_client.get(path, params={"county": names})
    assert time.perf_counter() - t < 5
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    assert "at most 100" in r.json()["detail"]


def test_a_filter_longer_than_the_limit_is_refused_unread(open_client):
    r = open_client.get("/stats", params={"county": ",".join([KERMAN] * 400)})
    assert r.status_code == 400 and "2000" in r.json()["detail"]


def test_repeated_values_are_looked_up_once(dataset, monkeypatch):
    once = parse_filter(dataset, {"county": KERMAN})
    calls = []
    index = dataset.names
    original = type(index).county
    monkeypatch.setattr(type(index), "county", lambda self, v: calls.append(v) or original(self, v))
    many = parse_filter(dataset, {"county": ",".join([KERMAN, "kerman ", "كرمان", KERMAN] * 20)})
    assert many.county == once.county and len(set(many.county)) == len(many.county)
    assert len(calls) <= 3  # distinct spellings only, not 80 look-ups
    coll = dataset.collections["cooperatives"]
    assert (many.mask(coll) == once.mask(coll)).all()


def test_filter_limits_are_in_the_openapi_document(open_client):
    doc = open_client.get("/api").json()
    params = {p["name"]: p for p in doc["paths"]["/stats"]["get"]["parameters"]}
    assert params["county"]["schema"]["maxLength"] == 2000
    assert "at most 100 values" in params["county"]["description"]


# ---- rate limits: the real client, every spelling of a request ------------------------------------------

def test_rotating_forwarded_for_does_not_escape_the_limit(sample_store, dataset, tmp_path):
    c = _app(sample_store, dataset, tmp_path, client=("10.1.2.3", 5000), rate_download_per_minute=1, rate_burst=2)
    codes = [c.get("/collections/cooperatives/items?f=csv", headers={"X-Forwarded-For": f"192.0.2.{i}"}).status_code
             for i in range(4)]
    assert codes[:2] == [200, 200] and codes[2:] == [429, 429]


def test_forwarded_for_counts_from_a_trusted_proxy(sample_store, dataset, tmp_path):
    c = _app(sample_store, dataset, tmp_path, client=("10.1.2.3", 5000), rate_download_per_minute=1, rate_burst=2,
             trusted_proxies=["10.0.0.0/8"])
    codes = [c.get("/collections/cooperatives/items?f=csv", headers={"X-Forwarded-For": f"192.0.2.{i}"}).status_code
             for i in range(4)]
    assert codes == [200] * 4
    same = [c.get("/collections/cooperatives/items?f=csv", headers={"X-Forwarded-For": "198.51.100.7, 10.9.9.9"})
            .status_code for _ in range(3)]
    assert same == [200, 200, 429]  # the proxy chain is peeled back to the first untrusted address


SPELLINGS = [("/collections/cooperatives/items", {}, {"Accept": "text/csv"}),
             ("/collections/cooperatives/items?f=%63sv", {}, {}),
             ("/collections/cooperatives/items", {"f": "CSV "}, {}),
             ("/collections/cooperatives/items?limit=%31%30%30%30%30", {}, {}),
             ("/collections/cooperatives/items?limit=+10000", {}, {}),
             ("/collections/cooperatives/items", {}, {"Accept": "application/geopackage+sqlite3"}),
             ("/collections/cooperatives/items", {"f": "html", "limit": "500"}, {})]


@pytest.mark.parametrize("path, params, headers", SPELLINGS)
def test_every_spelling_of_a_download_is_charged_as_one(sample_store, dataset, tmp_path, path, params, headers):
    c = _app(sample_store, dataset, tmp_path, rate_download_per_minute=1, rate_burst=1)
    first = c.get(path, params=params or None, headers=headers)
    assert first.status_code == 200, first.text
    again = c.get("/collections/cooperatives/items", params={"f": "csv"})
    assert again.status_code == 429 and int(again.headers["retry-after"]) >= 1


def test_gpkg_by_accept_header_keeps_the_download_size_limit(sample_store, dataset, tmp_path):
    c = _app(sample_store, dataset, tmp_path, public_max_download=10, **UNLIMITED)
    r = c.get("/collections/cooperatives/items", headers={"Accept": "application/geopackage+sqlite3"})
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"


def test_stats_html_and_cold_tiles_are_rate_limited(sample_store, dataset, tmp_path):
    c = _app(sample_store, dataset, tmp_path, rate_read_per_minute=1, rate_tiles_per_minute=1, rate_burst=2,
             rate_tiles_burst=2)
    assert [c.get("/stats").status_code for _ in range(3)] == [200, 200, 429]
    assert c.get("/collections/cooperatives/items?f=html&limit=5").status_code == 429  # the same (read) bucket
    tiles = [c.get(f"/tiles/counties/6/{x}/25.mvt").status_code for x in (40, 41, 42)]
    assert tiles == [200, 200, 429]
    assert c.get("/tiles/counties/6/40/25.mvt").status_code == 200  # from the cache: no work, no charge
    assert c.get("/collections").status_code == 200                # cheap reads are not limited


# ---- credentials: only in the Authorization header, never in a log -------------------------------------

@pytest.mark.parametrize("path", ["/tiles/cooperatives/5/20/12.mvt?access_token=abc", "/geocode?q=شیراز&token=abc",
                                  "/stats?api_key=abc", "/maps/national?key=abc", "/?%61ccess_token=abc",
                                  "/vendor/leaflet.js?Token=abc", "/collections?password=x"])
def test_a_credential_in_the_url_is_refused_on_every_route(open_client, path):
    r = open_client.get(path)
    assert r.status_code == 400 and "Authorization" in r.json()["detail"]
    assert "abc" not in r.text


def test_credentials_never_reach_the_access_log(sample_store, dataset, tmp_path, caplog):
    _app(sample_store, dataset, tmp_path)  # the app installs the redaction on uvicorn's loggers
    token = "Zq3" * 15
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "10.0.0.1", "GET",
                                                 f"/tiles/x?%61ccess_token={token[:20]}&q=1&api_key={token}", "1.1",
                                                 400)
        logging.getLogger("uvicorn.error").info("bad request %s", f"/x/{token}")
    assert token not in caplog.text and token[:20] not in caplog.text
    assert "[redacted]" in caplog.text and "q=1" in caplog.text


def test_the_access_log_has_every_request_in_uvicorns_format_and_no_credentials(sample_store, dataset, tmp_path,
                                                                                  caplog):
    from coopgis.api.access import AccessLog

    c = _app(sample_store, dataset, tmp_path, client=("10.0.0.7", 41000))
    token = "Zq3" * 15
    with caplog.at_level(logging.INFO, logger="coopgis.access"):
        assert c.get(f"/collections?access_token={token}&q=1").status_code == 400
        assert c.get("/conformance").status_code == 200
        assert c.head("/conformance").status_code == 200
        layer = c.app.middleware_stack
        while not isinstance(layer, AccessLog):   # the app's own layer, outermost of its middleware
            layer = layer.app
        layer.flush()
    # this app's client only: another test's app may flush its own batch (written every 0.25 s) meanwhile
    lines = [ln for r in caplog.records if r.name == "coopgis.access" for ln in r.getMessage().splitlines()
             if "10.0.0.7:41000" in ln]
    assert token not in caplog.text
    assert lines == ['INFO:     10.0.0.7:41000 - "GET /collections?access_token=[redacted]&q=1 HTTP/1.1" '
                     '400 Bad Request',
                     'INFO:     10.0.0.7:41000 - "GET /conformance HTTP/1.1" 200 OK',
                     'INFO:     10.0.0.7:41000 - "HEAD /conformance HTTP/1.1" 200 OK']


# ---- the heavy gate and the time budget ----------------------------------------------------------------

def test_the_gate_lets_n_in_and_the_rest_wait_in_line():
    async def run():
        gate = HeavyGate(2)
        assert await gate.acquire(0.1) and await gate.acquire(0.1)
        assert not await gate.acquire(0.05)          # full: the wait runs out
        order = []

        async def wait(name):
            assert await gate.acquire(2)
            order.append(name)

        tasks = [asyncio.create_task(wait(n)) for n in "abc"]
        await asyncio.sleep(0.01)
        gate.release()
        gate.release()
        await asyncio.sleep(0.01)
        assert order == ["a", "b"] and gate.busy == 2
        gate.release()
        await asyncio.gather(*tasks)
        assert order == ["a", "b", "c"]
        for _ in range(2):  # b and c are done
            gate.release()
        assert gate.busy == 0
    asyncio.run(run())


def test_a_cancelled_waiter_does_not_keep_a_turn():
    async def run():
        gate = HeavyGate(1)
        assert await gate.acquire(1)
        task = asyncio.create_task(gate.acquire(5))
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        gate.release()
        assert gate.busy == 0 and await gate.acquire(0.1)
    asyncio.run(run())


def test_heavy_requests_past_the_wait_get_503_while_cheap_ones_pass(sample_store, dataset, tmp_path):
    c = _app(sample_store, dataset, tmp_path, heavy_concurrency=1, heavy_wait_seconds=0.3, **UNLIMITED)
    gate = c.app.state.limits.gate
    held = threading.Event()
    done = threading.Event()

    def hold():
        async def take():
            await gate.acquire(1)
            held.set()
            while not done.is_set():
                await asyncio.sleep(0.01)
            gate.release()
        asyncio.run(take())

    t = threading.Thread(target=hold)
    t.start()
    try:
        held.wait(2)
        r = c.get("/stats")
        assert r.status_code == 503 and r.headers["retry-after"] and "busy" in r.json()["detail"]
        assert c.get("/collections/cooperatives/items?f=csv").status_code == 503
        started = time.perf_counter()
        assert c.get("/collections/cooperatives/items?limit=10").status_code == 200
        assert time.perf_counter() - started < 0.3    # cheap pages do not wait for the gate
    finally:
        done.set()
        t.join()
    assert c.get("/stats").status_code == 200 and gate.busy == 0


def test_a_streamed_download_holds_its_turn_until_sent(sample_store, dataset, tmp_path):
    c = _app(sample_store, dataset, tmp_path, heavy_concurrency=1, heavy_wait_seconds=0.2, **UNLIMITED)
    gate = c.app.state.limits.gate
    with c.stream("GET", "/collections/cooperatives/items?f=csv") as r:
        assert r.status_code == 200 and gate.busy == 1
        r.read()
    assert gate.busy == 0


def test_work_past_its_time_budget_stops_with_503(sample_store, dataset, tmp_path):
    c = _app(sample_store, dataset, tmp_path, request_budget_seconds=1e-9, **UNLIMITED)
    r = c.get("/collections/cooperatives/items?f=html&limit=50")
    # f=html: a person's page, so the error is a Persian page (the English detail inside it)
    assert r.status_code == 503 and r.headers["content-type"].startswith("text/html") and "budget" in r.text
    assert "بیش از زمان مجازش" in r.text
    r = c.get("/collections/cooperatives/items?f=csv")
    assert r.status_code == 503 and "budget" in r.json()["detail"]
    assert c.get("/collections/cooperatives/items?limit=10").status_code == 200  # not heavy: no budget


# ---- request heads: size, count and time, at the server layer (raw sockets, the real server) ---------------

def _addr(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _answer(sock, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (ConnectionResetError, TimeoutError, OSError):
        pass
    return out


def _probe(url: str) -> float:
    import httpx

    t = time.perf_counter()
    assert httpx.get(url + "/conformance", timeout=10).status_code == 200
    return time.perf_counter() - t


def test_headers_within_the_limits_are_served(live_server):
    import socket

    with socket.create_connection(_addr(live_server)) as s:
        s.sendall(b"GET /conformance HTTP/1.1\r\nHost: x\r\nX-Fill: " + b"a" * 8000 + b"\r\n"
                  + b"".join(b"X-H%d: v\r\n" % i for i in range(50)) + b"Connection: close\r\n\r\n")
        assert _answer(s).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("head", [
    b"GET /conformance HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    b"GET /conformance?" + b"q" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /conformance HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n",
])
def test_oversized_request_heads_get_431(live_server, head):
    import socket

    with socket.create_connection(_addr(live_server)) as s:
        s.sendall(head)
        answer = _answer(s)
    assert answer.startswith(b"HTTP/1.1 431") and b"application/problem+json" in answer


def test_a_huge_header_is_cut_off_early_while_others_are_served(live_server):
    import socket

    sent = 0
    with socket.create_connection(_addr(live_server)) as s:
        s.sendall(b"GET /conformance HTTP/1.1\r\nHost: x\r\nX-Huge: ")
        chunk = b"a" * 65536
        try:
            while sent < 64 * 1024 * 1024:
                s.sendall(chunk)
                sent += len(chunk)
                if sent == 4 * len(chunk):
                    assert _probe(live_server) < 2
        except OSError:
            pass
        answer = _answer(s, 5)
    assert sent < 8 * 1024 * 1024, "the server kept reading a header past its limit"
    assert answer.startswith(b"HTTP/1.1 431") or answer == b""
    assert _probe(live_server) < 2


def test_slow_headers_are_timed_out_with_408(live_server):
    import socket

    started = time.perf_counter()
    with socket.create_connection(_addr(live_server)) as s:
        s.sendall(b"GET /conformance HTTP/1.1\r\nHost: x\r\n")
        s.settimeout(0.4)
        answer = b""
        try:
            for _ in range(40):  # one header byte every 0.4 s: the head never completes
                s.sendall(b"X")
                try:
                    answer += s.recv(4096)
                    if answer:
                        break
                except TimeoutError:
                    pass
        except OSError:
            pass
        answer += _answer(s, 2)
    assert answer.startswith(b"HTTP/1.1 408")
    assert time.perf_counter() - started < 3 + 3  # COOPGIS_HEADER_TIMEOUT_SECONDS=3 for the live server


def test_a_silent_connection_is_closed(live_server):
    import socket

    started = time.perf_counter()
    with socket.create_connection(_addr(live_server)) as s:
        assert _answer(s, 10) == b""
    assert time.perf_counter() - started < 3 + 3


# ---- a flood of the worst requests (a short version of benchmarks/flood.py) --------------------------------

@contextlib.contextmanager
def _serve(sample_store, tmp_path_factory, **env):
    """``coopgis serve`` on the sample with extra environment, on a free loopback port."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path_factory.mktemp("serve") / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "coopgis.cli", "serve", "--data", str(sample_store.folder),
                             "--port", str(port)], env=dict(os.environ, **env), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, "server did not start"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


@pytest.fixture(scope="module")
def proxied_server(sample_store, tmp_path_factory):
    """The real service, trusting 127.0.0.1 as a proxy, so that one test can be many clients."""
    with _serve(sample_store, tmp_path_factory, COOPGIS_TRUSTED_PROXIES='["127.0.0.1"]') as url:
        yield url


@pytest.fixture(scope="module")
def strict_server(sample_store, tmp_path_factory):
    """The real service with a tight download rate and no trusted proxy (the default)."""
    with _serve(sample_store, tmp_path_factory, COOPGIS_RATE_DOWNLOAD_PER_MINUTE="1", COOPGIS_RATE_BURST="2") as url:
        yield url


def test_rotating_forwarded_for_does_not_escape_the_limit_on_the_real_server(strict_server):
    import httpx

    codes = [httpx.get(strict_server + "/collections/cooperatives/items?f=csv", timeout=30,
                       headers={"X-Forwarded-For": f"192.0.2.{i}"}).status_code for i in range(4)]
    assert codes == [200, 200, 429, 429]


def test_a_flood_of_heavy_requests_from_many_clients_leaves_cheap_requests_fast(proxied_server):
    from benchmarks.flood import COUNTIES, flood_run, probe, summary

    sixty = ",".join(COUNTIES * 6)
    worst = [f"/stats?county={sixty}", f"/tiles/cooperatives/5/21/12.mvt?county={sixty}",
             "/collections/cooperatives/items?f=html&limit=1000", "/collections/cooperatives/items?f=csv",
             "/search?q=" + "تعاونی تولیدی روستای " * 4]
    probe(proxied_server, 1)
    latencies, statuses = flood_run(proxied_server, worst, connections=64, seconds=8, spoof=True)
    p50, p99 = summary(latencies)
    print(f"probe during the flood: p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(latencies)} probes; "
          f"flood answers {statuses}")
    assert len(latencies) >= 50 and sum(statuses.values()) > 64
    assert p99 < 1000, f"cheap requests waited {p99:.0f} ms (p99) behind the flood"
    assert not any(code >= 500 and code != 503 for code in statuses)
