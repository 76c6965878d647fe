"""How coopgis grows with the registry (issue 16, item 5): 10,000 / 100,000 / 1,000,000 cooperatives.

``python -m benchmarks.scale [--sizes 10000,100000,1000000] [--no-ingest] [--no-pygeoapi]``

For each size, on the synthetic registry of that size (``benchmarks/.cache/data-N-1404``, built once as the
suite builds it: ``generate_sample`` -> CSV -> ``ingest``):

- ingest: ``coopgis ingest sample.csv --data <fresh folder>`` as a subprocess, wall time and peak resident
  memory (``wait4``'s ``ru_maxrss``), one run;
- start-up: ``coopgis serve`` (one worker): time to the first answer (``/health``) and to ``/ready`` (warm-up
  done), then the process's memory (VmRSS, and of it RssAnon: its own pages; RssFile: mapped files, shared);
- cold clustered tiles: 60 seeded occupied tiles at z5, z6, z8 (z <= the cluster zoom), each asked for once,
  sequentially on one keep-alive connection: median latency;
- warm tiles: the same tiles again, five times each: median;
- Tehran bbox (``items?bbox=51,35,52,36&limit=1000``): 21 sequential requests, median; the same on pygeoapi
  (gunicorn, one worker, the same rows in a GeoPackage with its R-tree) and the ratio.

Single requests on one connection (no concurrency): what one user waits, and how it grows with the size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import (
    CACHE,
    NO_RATE_LIMITS,
    Server,
    coopgis_serve_argv,
    ensure_dataset,
    free_port,
    machine,
    md_table,
    say,
)

TEHRAN = "/collections/cooperatives/items?bbox=51,35,52,36&limit=1000"


def _memory(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "RssAnon:", "RssFile:")):
            out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


def ingest_run(csv: Path) -> tuple[float, float]:
    """Wall seconds and peak MB of ``coopgis ingest`` of ``csv`` into a fresh folder."""
    folder = Path(tempfile.mkdtemp(prefix="scale-ingest-", dir=CACHE))
    try:
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "coopgis.cli", "ingest", str(csv), "--data",
                                 str(folder / "store")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"coopgis ingest {csv} failed ({proc.returncode})")
        return seconds, usage.ru_maxrss / 1024
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def tile_addresses(store: Path, per_zoom: int = 20, seed: int = 16) -> list[str]:
    """Seeded occupied tiles at z5, z6 and z8 (``per_zoom`` of each, fewer when fewer are occupied)."""
    import numpy as np
    import pandas as pd
    import shapely

    from coopgis.store import FileStore
    from coopgis.tiles import lonlat_to_world

    geo = pd.read_parquet(FileStore(store).version_folder() / "cooperatives.parquet", columns=["geometry"])
    pts = shapely.from_wkb(geo["geometry"].to_numpy())
    ok = ~shapely.is_missing(pts) & ~shapely.is_empty(pts)
    u, v = lonlat_to_world(shapely.get_x(pts[ok]), shapely.get_y(pts[ok]))
    rng = np.random.default_rng(seed)
    out = []
    for z in (5, 6, 8):
        n = 2 ** z
        xy = np.unique(np.column_stack([np.floor(u * n).astype(np.int64), np.floor(v * n).astype(np.int64)]), axis=0)
        pick = xy[np.sort(rng.choice(len(xy), min(per_zoom, len(xy)), replace=False))]
        out += [f"/tiles/cooperatives/{z}/{x}/{y}.mvt" for x, y in pick]
    return out


def timed(client: httpx.Client, path: str) -> float:
    t = time.perf_counter()
    r = client.get(path)
    ms = (time.perf_counter() - t) * 1000
    if r.status_code != 200:
        raise RuntimeError(f"{path}: {r.status_code}")
    return ms


def serve_run(store: Path, tiles: list[str]) -> dict:
    port = free_port()
    t0 = time.perf_counter()
    srv = Server("scale", coopgis_serve_argv(store, port), port, "/health", env=NO_RATE_LIMITS, timeout=600)
    out: dict = {}
    try:
        srv.start()
        out["first_answer_s"] = time.perf_counter() - t0
        with httpx.Client(base_url=srv.base, timeout=120) as c:
            while c.get("/ready").status_code != 200:
                time.sleep(0.05)
            out["ready_s"] = time.perf_counter() - t0
            time.sleep(2)
            assert srv.proc is not None
            out["memory"] = _memory(srv.proc.pid)
            out["cold"] = statistics.median([timed(c, p) for p in tiles])
            out["warm"] = statistics.median([timed(c, p) for _ in range(5) for p in tiles])
            timed(c, TEHRAN)
            out["tehran"] = statistics.median([timed(c, TEHRAN) for _ in range(21)])
            out["memory_after"] = _memory(srv.proc.pid)
    finally:
        srv.stop()
    return out


def pygeoapi_run(store: Path, size: int) -> float | None:
    """Median ms of the Tehran bbox page on pygeoapi (1 gunicorn worker) over the same rows (None: unavailable)."""
    from benchmarks import pygeoapi_bench as pg
    from benchmarks.common import Config, load_dataset

    cfg = Config(size=size)
    try:
        pg.ensure_venv(cfg)
        pg.check_spatialite(cfg)
        gpkg = pg.write_geopackage(store, size)
        port = free_port()
        cfg_path, openapi = pg.write_config(gpkg, port, load_dataset(store).collections["cooperatives"].extent)
    except pg.Unavailable as exc:
        say(f"pygeoapi not measured: {exc}")
        return None
    srv = Server("scale-pygeoapi", [str(pg.VENV / "bin" / "gunicorn"), "pygeoapi.flask_app:APP", "-b",
                                    f"127.0.0.1:{port}", "-w", "1", "--timeout", "300"], port, "/conformance?f=json",
                 env=pg._env(cfg_path, openapi), cwd=pg.SITE, timeout=600)
    try:
        srv.start()
        with httpx.Client(base_url=srv.base, timeout=300) as c:
            path = TEHRAN.replace("?", "?f=json&")
            timed(c, path)
            return statistics.median([timed(c, path) for _ in range(11)])
    finally:
        srv.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--no-ingest", action="store_true", help="leave out the ingest runs")
    ap.add_argument("--no-pygeoapi", action="store_true", help="leave out pygeoapi")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    say(f"# coopgis at {', '.join(f'{s:,}' for s in sizes)} cooperatives, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    say("machine: " + "; ".join(f"{k} {v}" for k, v in machine().items()))
    results = {}
    for size in sizes:
        store, csv = ensure_dataset(size)
        r: dict = {}
        if not args.no_ingest:
            r["ingest_s"], r["ingest_peak_mb"] = ingest_run(csv)
            say(f"{size:,}: ingest {r['ingest_s']:.1f} s, peak {r['ingest_peak_mb']:,.0f} MB")
        r.update(serve_run(store, tile_addresses(store)))
        say(f"{size:,}: {r}")
        if not args.no_pygeoapi:
            r["pygeoapi_tehran"] = pygeoapi_run(store, size)
            say(f"{size:,}: pygeoapi Tehran {r['pygeoapi_tehran']}")
        results[size] = r

    def row(label: str, get, fmt: str) -> list[str]:
        cells = [label]
        for s in sizes:
            try:
                v = get(results[s])
                cells.append("-" if v is None else format(v, fmt))
            except KeyError:
                cells.append("-")
        if len(sizes) >= 2:
            try:
                a, b = get(results[sizes[-2]]), get(results[sizes[-1]])
                cells.append(f"x{b / a:.2f}" if a and b else "")
            except (KeyError, TypeError):
                cells.append("")
        return cells

    header = ["figure", *[f"{s:,}" for s in sizes]] + ([f"{sizes[-1] // sizes[-2]}x rows: grows"]
                                                        if len(sizes) >= 2 else [])
    rows = [
        row("ingest, s (wall)", lambda r: r["ingest_s"], ".1f"),
        row("ingest, peak MB", lambda r: r["ingest_peak_mb"], ",.0f"),
        row("serve: first answer, s", lambda r: r["first_answer_s"], ".1f"),
        row("serve: /ready (warm-up done), s", lambda r: r["ready_s"], ".1f"),
        row("memory after warm-up: VmRSS MB", lambda r: r["memory"]["VmRSS"], ",.0f"),
        row("  of it own (RssAnon) MB", lambda r: r["memory"]["RssAnon"], ",.0f"),
        row("  of it mapped files (RssFile) MB", lambda r: r["memory"]["RssFile"], ",.0f"),
        row("memory after the requests: VmRSS MB", lambda r: r["memory_after"]["VmRSS"], ",.0f"),
        row("cold clustered tile p50, ms", lambda r: r["cold"], ".2f"),
        row("warm tile p50, ms", lambda r: r["warm"], ".2f"),
        row("Tehran bbox limit=1000 p50, ms", lambda r: r["tehran"], ".1f"),
        row("pygeoapi, the same request, ms", lambda r: r["pygeoapi_tehran"], ".1f"),
        row("pygeoapi / coopgis (Tehran bbox)", lambda r: (r["pygeoapi_tehran"] / r["tehran"])
            if r.get("pygeoapi_tehran") else None, ".1f"),
    ]
    say("\n" + md_table(header, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
