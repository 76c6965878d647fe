"""A replica on PostgreSQL/PostGIS against the file store, in the same run on the same data.

- ingest of N rows (default 100,000) with `coopgis ingest` into PostGIS, and into a file store as the baseline
  (target: under 90 s into PostGIS);
- start-up of `coopgis serve` until /ready answers 200, from the database and from the folder (target: under
  15 s from the database at 100,000 cooperatives), and the replica's memory then;
- items, tiles and nearest on the two replicas: the median latency of each kind of request (sequential,
  keep-alive, interleaved so noise hits both alike) and the ratio PostGIS / file (target: within 20 %; the read
  path is in memory either way).

A temporary PostgreSQL cluster is started (tests/pgcluster.py) unless COOPGIS_TEST_DATABASE_URL names a server.
Run: python -m benchmarks.postgis [--size N] [--rounds R]. Only loopback is used.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, ensure_dataset, free_port, rss_mb, say

sys.path.insert(0, str(ROOT / "tests"))


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COOPGIS_")}
    env.update(COOPGIS_RATE_GEOCODE_PER_MINUTE="1000000", COOPGIS_RATE_READ_PER_MINUTE="1000000",
               COOPGIS_RATE_TILES_PER_MINUTE="1000000", COOPGIS_RATE_DOWNLOAD_PER_MINUTE="1000000",
               COOPGIS_RATE_BURST="100000", COOPGIS_RATE_TILES_BURST="100000", **extra)
    return env


def _cli(args: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "coopgis.cli", *args], env=env, capture_output=True, text=True,
                       cwd=ROOT, timeout=1800)
    return time.perf_counter() - t, r


def _get(conn: http.client.HTTPConnection, path: str) -> float:
    t = time.perf_counter()
    conn.request("GET", path)
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        raise RuntimeError(f"{path}: {r.status}")
    return time.perf_counter() - t


def _serve(env: dict, log: Path) -> tuple[subprocess.Popen, int, float]:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "coopgis.cli", "serve", "--port", str(port)], env=env, cwd=ROOT,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    while time.perf_counter() - started < 300:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text()[-2000:])
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/ready")
            if conn.getresponse().status == 200:
                return proc, port, time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("not ready in 300 s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=300, help="requests of each kind on each replica")
    args = ap.parse_args()
    store, csv = ensure_dataset(args.size)
    url = os.environ.get("COOPGIS_TEST_DATABASE_URL")
    cluster = None
    if not url:
        from pgcluster import Cluster

        cluster = Cluster().start()
        url = cluster.url
    tmp = Path(tempfile.mkdtemp(prefix="coopgis-bench-pg-"))
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS coopgis_bench")
        conn.execute("CREATE DATABASE coopgis_bench")
    db_url = url.replace("/postgres?", "/coopgis_bench?") if "/postgres?" in url else url.rsplit("/", 1)[0] + \
        "/coopgis_bench"
    procs = []
    try:
        pg_env = _env(COOPGIS_DATABASE_URL=db_url)
        _cli(["db", "upgrade"], pg_env)
        say(f"ingest of {args.size:,} rows ({csv.name}) into PostGIS, then into a file store (baseline) ...")
        t_pg, r = _cli(["ingest", str(csv), "--no-progress", "--allow-shrink"], pg_env)
        assert r.returncode == 0, r.stderr[-2000:]
        t_file, r2 = _cli(["ingest", str(csv), "--no-progress", "--data", str(tmp / "data")], _env())
        assert r2.returncode == 0, r2.stderr[-2000:]
        with psycopg.connect(db_url) as conn:
            report = conn.execute("SELECT d.report FROM coopgis.datasets d JOIN coopgis.current_dataset c ON "
                                  "c.dataset_id = d.id").fetchone()[0]
        write_s = report["timing_s"].get("write")
        say(f"  PostGIS: {t_pg:.1f} s in all (of which the database write: {write_s} s); file store: {t_file:.1f} s")

        say("start-up until /ready, from the database and from the folder ...")
        pg, pg_port, up_pg = _serve(pg_env, tmp / "pg.log")
        procs.append(pg)
        fs, fs_port, up_fs = _serve(_env(COOPGIS_DATA=str(store)), tmp / "file.log")
        procs.append(fs)
        rss = {"postgis": rss_mb(pg.pid), "file": rss_mb(fs.pid)}
        say(f"  ready after {up_pg:.1f} s from PostGIS, {up_fs:.1f} s from the folder; RSS {rss}")

        rnd = random.Random(1404)
        feats = json.loads(_get_body(fs_port, "/collections/cooperatives/items?limit=1000"))["features"]
        points = [f["geometry"]["coordinates"] for f in feats if f["geometry"]]
        kinds = {
            "items (limit=100)": lambda: f"/collections/cooperatives/items?limit=100&offset={rnd.randrange(50000)}",
            "items bbox (Tehran)": lambda: "/collections/cooperatives/items?bbox=51.2,35.5,51.6,35.9&limit=100",
            "tile z8 (mvt)": lambda: f"/tiles/cooperatives/8/{rnd.randrange(160, 175)}/{rnd.randrange(95, 108)}.mvt",
            "nearest (10)": lambda: "/nearest?lon={:.4f}&lat={:.4f}".format(*rnd.choice(points)),
        }
        conns = {p: http.client.HTTPConnection("127.0.0.1", p, timeout=30) for p in (pg_port, fs_port)}
        rows = []
        for name, make in kinds.items():
            times: dict[int, list[float]] = {pg_port: [], fs_port: []}
            for _ in range(args.rounds):
                path = make()
                order = [pg_port, fs_port] if rnd.random() < 0.5 else [fs_port, pg_port]
                for port in order:
                    times[port].append(_get(conns[port], path))
            m_pg, m_fs = statistics.median(times[pg_port]) * 1000, statistics.median(times[fs_port]) * 1000
            rows.append((name, m_fs, m_pg, m_pg / m_fs))
        say("\n| request | file store median ms | PostGIS replica median ms | ratio |\n|---|---|---|---|")
        for name, m_fs, m_pg, ratio in rows:
            say(f"| {name} | {m_fs:.2f} | {m_pg:.2f} | {ratio:.2f} |")
        say(f"\ningest {args.size:,} rows: PostGIS {t_pg:.1f} s (database write {write_s} s), "
            f"file store {t_file:.1f} s;"
            f" start-up to /ready: PostGIS {up_pg:.1f} s, file store {up_fs:.1f} s; RSS at ready: "
            f"PostGIS {rss['postgis']:.0f} MB, file {rss['file']:.0f} MB; machine: {os.cpu_count()} cores, load "
            f"{os.getloadavg()[0]:.2f}")
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        if cluster is not None:
            cluster.stop()


def _get_body(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    return conn.getresponse().read()


if __name__ == "__main__":
    main()
