"""Two `coopgis serve` replicas on one PostGIS database behind HAProxy with deploy/haproxy.cfg, on loopback:
a correction accepted through replica A is served by B within 2 s; concurrent decisions through A and B give
exactly one winner; A SIGKILLed during 30 s of mixed load through the balancer loses no acknowledged write, and
the balancer's failed-request counts are printed (GETs: retried on the other replica, target 0)."""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from conftest import UNLIMITED, StoreUnderTest

pytestmark = [pytest.mark.postgis,
              pytest.mark.skipif(shutil.which("haproxy") is None, reason="HAProxy is not installed (apt: haproxy)")]

ROOT = Path(__file__).resolve().parent.parent
LOAD_SECONDS = 30


def _port() -> int:
    from pgcluster import free_port

    return free_port()


def _get(port: int, path: str, headers: dict | None = None, timeout: float = 10) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _post(port: int, path: str, body: dict, headers: dict) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json", **headers})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


class Cluster:
    """Replicas A and B and the balancer, with their logs."""

    def __init__(self, database_url: str, tmp: Path):
        self.url = database_url
        self.tmp = tmp
        self.ports = {"a": _port(), "b": _port()}
        self.lb, self.stats = _port(), _port()
        self.procs: dict[str, subprocess.Popen] = {}

    def start_replica(self, name: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COOPGIS_")}
        env.update({f"COOPGIS_{k.upper()}": str(v) for k, v in UNLIMITED.items()})
        env.update(COOPGIS_DATABASE_URL=self.url, COOPGIS_TRUSTED_PROXIES='["127.0.0.1"]',
                   COOPGIS_REPORTS_PER_HOUR="100000", COOPGIS_PENDING_REPORTS_PER_COOPERATIVE="100000",
                   COOPGIS_PUBLIC_URL=f"http://127.0.0.1:{self.lb}")
        log = open(self.tmp / f"replica-{name}.log", "ab")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "coopgis.cli", "serve", "--port",
                                             str(self.ports[name])], env=env, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=ROOT)

    def start_balancer(self) -> None:
        env = dict(os.environ, COOPGIS_LB_BIND=f"127.0.0.1:{self.lb}", COOPGIS_LB_STATS=f"127.0.0.1:{self.stats}",
                   COOPGIS_REPLICA_1=f"127.0.0.1:{self.ports['a']}", COOPGIS_REPLICA_2=f"127.0.0.1:{self.ports['b']}")
        log = open(self.tmp / "haproxy.log", "ab")
        self.procs["lb"] = subprocess.Popen(["haproxy", "-db", "-f", str(ROOT / "deploy" / "haproxy.cfg")], env=env,
                                            stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, name: str, seconds: float = 90) -> float:
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"replica {name} exited: " + (self.tmp / f"replica-{name}.log").read_text()[-3000:])
            try:
                if _get(self.ports[name], "/ready", timeout=2)[0] == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"replica {name} not ready within {seconds} s")

    def servers_up(self) -> dict[str, str]:
        rows = csv.DictReader(io.StringIO(_get(self.stats, "/stats;csv")[2].decode().lstrip("# ")))
        return {r["svname"]: r["status"] for r in rows if r["pxname"] == "replicas"}

    def stats_rows(self) -> dict[str, dict]:
        rows = csv.DictReader(io.StringIO(_get(self.stats, "/stats;csv")[2].decode().lstrip("# ")))
        return {f"{r['pxname']}/{r['svname']}": r for r in rows}

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def cluster(pg_server, pg_template, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replicas")
    name = pg_server.create(template=pg_template)
    store = StoreUnderTest("postgis", tmp, tmp / "none", pg_server.url_of(name))
    keys = store.add_tokens(("field_officer", "admin"))
    c = Cluster(store.database_url, tmp)
    c.keys = keys
    try:
        c.start_replica("a")
        c.start_replica("b")
        c.start_balancer()
        c.startup_s = {n: round(c.wait_ready(n), 1) for n in ("a", "b")}
        deadline = time.time() + 20
        while set(c.servers_up().values()) != {"UP"}:
            assert time.time() < deadline, c.servers_up()
            time.sleep(0.2)
        print(f"replicas ready after {c.startup_s} s")
        yield c
    finally:
        c.stop()
        pg_server.drop(name)


def _auth(c: Cluster, role: str) -> dict:
    return {"Authorization": f"Bearer {c.keys[role]}"}


def _coops(c: Cluster, n: int) -> list[dict]:
    body = json.loads(_get(c.lb, "/collections/cooperatives/items?limit=200")[2])
    return [f for f in body["features"] if f["geometry"] and f["properties"]["precision"] != "exact"][:n]


def _report(c: Cluster, port: int, reg: str, lon: float, lat: float) -> str:
    status, _, body = _post(port, f"/cooperatives/{reg}/location-reports", {"lon": lon, "lat": lat,
                            "accuracy_m": 10, "reason": "بازدید"}, _auth(c, "field_officer"))
    assert status == 201, body
    return json.loads(body)["id"]


def _decide(c: Cluster, port: int, rid: str, etag: str) -> tuple[int, dict, bytes]:
    return _post(port, f"/location-reports/{rid}/decision", {"decision": "accepted"},
                 {**_auth(c, "admin"), "If-Match": etag})


def test_a_correction_accepted_through_a_is_served_by_b_within_2_s(cluster):
    c = cluster
    a, b = c.ports["a"], c.ports["b"]
    f = _coops(c, 1)[0]
    reg = f["id"]
    rid = _report(c, a, reg, 51.4321, 35.7123)
    etag = _get(a, f"/cooperatives/{reg}")[1]["etag"]
    assert _get(b, f"/cooperatives/{reg}")[1]["etag"] == etag            # one ETag on every replica
    status, _, body = _decide(c, a, rid, etag)
    assert status == 200, body
    started = time.perf_counter()
    while True:
        seen = json.loads(_get(b, f"/cooperatives/{reg}")[2])
        if seen["properties"]["precision"] == "verified":
            break
        assert time.perf_counter() - started < 2.0, "replica B still serves the old location after 2 s"
        time.sleep(0.02)
    lag = time.perf_counter() - started
    print(f"replica B served the correction {lag * 1000:.0f} ms after A acknowledged it")
    assert seen["geometry"]["coordinates"] == pytest.approx([51.4321, 35.7123])
    assert _get(b, f"/cooperatives/{reg}")[1]["etag"] == _get(a, f"/cooperatives/{reg}")[1]["etag"]
    # the tiles and items of B show it too
    page = json.loads(_get(b, "/collections/cooperatives/items?bbox=51.43,35.71,51.44,35.72")[2])
    assert reg in [x["id"] for x in page["features"]]


def test_concurrent_decisions_through_a_and_b_give_exactly_one_winner(cluster):
    c = cluster
    a, b = c.ports["a"], c.ports["b"]
    for f in _coops(c, 4)[1:4]:
        reg = f["id"]
        first, second = _report(c, a, reg, 51.41, 35.71), _report(c, b, reg, 51.42, 35.72)
        etag = _get(a, f"/cooperatives/{reg}")[1]["etag"]
        results: list[int] = []
        gate = threading.Barrier(2)

        def decide(port, rid):
            gate.wait()
            results.append(_decide(c, port, rid, etag)[0])

        threads = [threading.Thread(target=decide, args=(a, first)), threading.Thread(target=decide, args=(b, second))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [200, 412], results
    # the same report through both: one decision, the other 409 (already decided) or 412
    f = _coops(c, 5)[4]
    rid = _report(c, a, f["id"], 51.45, 35.75)
    etag = _get(b, f"/cooperatives/{f['id']}")[1]["etag"]
    results = []
    gate = threading.Barrier(2)

    def same(port):
        gate.wait()
        results.append(_decide(c, port, rid, etag)[0])

    threads = [threading.Thread(target=same, args=(p,)) for p in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results)[0] == 200 and sorted(results)[1] in (409, 412), results
    with psycopg.connect(c.url) as conn:
        assert conn.execute("SELECT count(*) FROM coopgis.location_decisions WHERE report_id = %s",
                            (rid,)).fetchone()[0] == 1


def test_replica_a_killed_under_load_loses_no_acknowledged_write(cluster):
    c = cluster
    regs = [f["id"] for f in _coops(c, 60)]
    stop = threading.Event()
    lock = threading.Lock()
    outcomes: Counter = Counter()
    acknowledged: list[str] = []
    failures: list[str] = []
    paths = ["/collections/cooperatives/items?limit=50", "/tiles/cooperatives/6/41/25.mvt",
             "/tiles/cooperatives/8/167/102.geojson", "/collections/cooperatives/items?limit=10&offset=100",
             "/stats?by=province", "/"]

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                if i % 5 == 0:
                    reg = regs[(n * 7 + i) % len(regs)]
                    status, _, body = _post(c.lb, f"/cooperatives/{reg}/location-reports",
                                            {"lon": 51.3 + (i % 50) / 1000, "lat": 35.6, "accuracy_m": 5,
                                             "reason": f"بار {n}-{i}"}, _auth(c, "field_officer"))
                    kind = "POST"
                    if status == 201:
                        with lock:
                            acknowledged.append(json.loads(body)["id"])
                else:
                    path = paths[(n + i) % len(paths)] if i % 7 else f"/cooperatives/{regs[i % len(regs)]}"
                    status, _, _ = _get(c.lb, path, timeout=15)
                    kind = "GET"
            except OSError as exc:
                status, kind = type(exc).__name__, "GET" if i % 5 else "POST"
            with lock:
                outcomes[(kind, status)] += 1
                if kind == "GET" and status != 200:
                    failures.append(f"{status}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(LOAD_SECONDS / 3)
    c.procs["a"].send_signal(signal.SIGKILL)
    killed_at = time.perf_counter() - started
    time.sleep(LOAD_SECONDS - killed_at)
    stop.set()
    for t in threads:
        t.join(30)

    stats = c.stats_rows()
    backend, front = stats["replicas/BACKEND"], stats["coopgis/FRONTEND"]
    a_row = stats["replicas/replica1"]
    print(f"\nmixed load {LOAD_SECONDS} s through HAProxy, replica A SIGKILLed at {killed_at:.1f} s; client outcomes:",
          dict(sorted(outcomes.items(), key=str)))
    print("balancer: frontend 5xx answers", front["hrsp_5xx"], "| backend connection errors", backend["econ"],
          "response errors", backend["eresp"], "retries", backend["wretr"], "redispatches", backend["wredis"],
          "| replica A status", a_row["status"], "(retry-on conn-failure empty-response response-timeout 502 503 504, "
          "retries 3, option redispatch 1)")
    assert a_row["status"].startswith("DOWN")
    assert sum(n for (kind, _), n in outcomes.items() if kind == "GET") > 200
    assert failures == [], f"GETs that failed through the balancer: {Counter(failures)}"
    with psycopg.connect(c.url) as conn:
        stored = {r[0] for r in conn.execute("SELECT id FROM coopgis.location_reports WHERE id = ANY(%s)",
                                             (acknowledged,)).fetchall()}
    assert len(acknowledged) > 20 and set(acknowledged) <= stored, "an acknowledged report is not in the database"
    # the survivor still serves, alone
    assert _get(c.lb, "/ready")[0] == 200 and c.servers_up()["replica2"] == "UP"
