"""What holds the memory of a serving process (issue 16, item 1): resident size step by step, and per structure.

``python -m benchmarks.memory [--size 100000]``

In one fresh process, the steps ``coopgis serve`` takes, with VmRSS (``/proc/self/status``) after each:
imports, boundaries, the store read, the served ``Dataset``, the app, the tile index and polygon layers,
the serialised features, the geocoder, the nearest and search indexes, the indexes the first filtered
requests and the dashboard make (names, figures, stats), then ``gc.freeze`` and the Arrow pool's release
as the warm-up ends. Beside it, the size of each structure, measured by walking it (numpy ``nbytes``,
pandas ``memory_usage(deep=True)``, ``sys.getsizeof`` of Python objects, each object counted once): what
the resident growth of each step is made of. Nothing is served; no port is opened.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

from benchmarks.common import ensure_dataset, machine, md_table, say


def rss() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def deep_size(obj, seen: set | None = None, depth: int = 0) -> int:
    """Bytes held by ``obj`` and what it references (numpy buffers, frames, containers), each counted once."""
    import numpy as np
    import pandas as pd

    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 12:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        base = obj.base if obj.base is not None else None
        size = sys.getsizeof(obj) if base is not None else obj.nbytes + 112
        if obj.dtype == object:
            size += sum(deep_size(v, seen, depth + 1) for v in obj.ravel()[:2_000_000])
        return size
    if isinstance(obj, (pd.DataFrame, pd.Series, pd.Index)):
        try:
            usage = obj.memory_usage(deep=True)
            return int(usage.sum() if hasattr(usage, "sum") else usage)
        except Exception:
            return sys.getsizeof(obj)
    if isinstance(obj, (bytes, bytearray, str, int, float, bool)) or obj is None:
        return sys.getsizeof(obj)
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen, depth + 1) + deep_size(v, seen, depth + 1) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        size += sum(deep_size(v, seen, depth + 1) for v in obj)
    elif hasattr(obj, "__dict__"):
        size += deep_size(vars(obj), seen, depth + 1)
    elif hasattr(obj, "__slots__"):
        size += sum(deep_size(getattr(obj, s, None), seen, depth + 1) for s in obj.__slots__)
    return size


def proc_memory(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon (the process's own memory), RssFile (file pages it maps: shared between workers) and
    Pss (resident memory with each shared page divided among the processes sharing it), MB."""
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "RssAnon:", "RssFile:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["Pss"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


def mixed_paths(n: int = 3000, seed: int = 16) -> list[str]:
    """Requests as planners, field officers and GIS staff make them: tiles over Iran at zooms 4-14 (cluster
    and point tiles, some filtered), items pages at random offsets and bboxes, searches, nearest, geocoding,
    statistics and pages. Seeded: every run asks the same things in the same order."""
    import math
    import random

    rng = random.Random(seed)
    kinds = ["production", "rural", "housing", "women", "services", "distribution"]
    # where field officers stand: around provincial centres (a point outside Iran is refused with 400)
    centres = [(51.39, 35.69), (59.60, 36.30), (51.67, 32.65), (46.29, 38.08), (52.53, 29.59), (48.68, 31.32),
               (50.88, 34.64), (57.08, 30.28), (47.07, 34.31), (54.43, 36.84), (45.07, 37.55), (60.86, 29.49)]
    words = ["تهران", "کشاورزی", "زنان", "مسکن", "روستای", "اصفهان", "فرش", "دام", "مشهد", "شیراز"]

    def tile(z: int) -> tuple[int, int]:
        lon, lat = rng.uniform(45.0, 61.0), rng.uniform(26.0, 39.0)
        x = int((lon + 180) / 360 * 2 ** z)
        y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2 ** z)
        return x, y

    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.45:
            z = rng.randint(4, 14)
            x, y = tile(z)
            fmt = rng.choice(["mvt", "mvt", "geojson"])
            q = f"?kind={rng.choice(kinds)}" if rng.random() < 0.25 else ""
            out.append(f"/tiles/cooperatives/{z}/{x}/{y}.{fmt}{q}")
        elif r < 0.55:
            z = rng.randint(4, 12)
            x, y = tile(z)
            out.append(f"/tiles/{rng.choice(['provinces', 'counties', 'places'])}/{z}/{x}/{y}.mvt")
        elif r < 0.70:
            lon, lat = rng.uniform(45.0, 60.0), rng.uniform(26.0, 38.0)
            d = rng.choice([0.1, 0.5, 1.0])
            out.append(rng.choice([f"/collections/cooperatives/items?limit=100&offset={rng.randint(0, 90000)}",
                                   f"/collections/cooperatives/items?bbox={lon:.3f},{lat:.3f},{lon + d:.3f},"
                                   f"{lat + d:.3f}&limit=1000",
                                   f"/collections/cooperatives/items?kind={rng.choice(kinds)}&limit=100"]))
        elif r < 0.82:
            cx, cy = rng.choice(centres)   # within 0.2 degrees: Urmia and Zahedan are ~0.4 from the border
            lon, lat = cx + rng.uniform(-0.2, 0.2), cy + rng.uniform(-0.2, 0.2)
            out.append(rng.choice([f"/search?q={rng.choice(words)}",
                                   f"/nearest?lon={lon:.4f}&lat={lat:.4f}&limit=10",
                                   f"/geocode?q={rng.choice(words)}"]))
        elif r < 0.92:
            out.append(rng.choice(["/stats?by=province", "/stats?by=kind", "/conformance", "/collections",
                                   "/dashboard", "/maps/national", "/maps/field"]))
        else:
            out.append(rng.choice(["/collections/provinces/items", "/collections/counties/items?limit=50",
                                   "/collections/cooperatives/queryables"]))
    return out


def served_rss(store, workers: int, minutes: float = 0.0) -> int:
    """Memory of every worker of ``coopgis serve --workers N``: after the warm-up, and after a mixed load
    (2,000 requests; or ``minutes`` of it, sampled every 30 s: the memory curve)."""
    from benchmarks.common import NO_RATE_LIMITS, Server, cmdline, coopgis_serve_argv, free_port
    from benchmarks.loadgen import httpx_load

    port = free_port()
    paths = mixed_paths()
    srv = Server(f"coopgis-w{workers}", coopgis_serve_argv(store, port, workers), port, "/ready", env=NO_RATE_LIMITS)
    try:
        srv.start()
        time.sleep(10)   # the other workers' warm-up
        ws = [p for p in srv.pids()[1:] if "resource_tracker" not in cmdline(p)] if workers > 1 else srv.pids()[:1]

        def row(label: str, extra: str = "") -> list[str]:
            m = {p: proc_memory(p) for p in ws}
            cells = [label]
            for p in ws:
                cells.append(f"{m[p].get('VmRSS', 0):,.0f} / {m[p].get('RssAnon', 0):,.0f} / "
                             f"{m[p].get('RssFile', 0):,.0f} / {m[p].get('Pss', 0):,.0f}")
            cells.append(f"{sum(x.get('Pss', 0) for x in m.values()):,.0f}")
            cells.append(extra)
            return cells

        rows = [row("after warm-up")]
        started, done, errors = time.perf_counter(), 0, 0
        if minutes:
            k = 0
            while time.perf_counter() - started < minutes * 60:
                ordered = paths[k % len(paths):] + paths[:k % len(paths)]
                load = httpx_load(srv.base, ordered, 4, 10 ** 9, 30.0)
                done += load.requests
                errors += load.errors
                k += load.requests
                rows.append(row(f"{(time.perf_counter() - started) / 60:4.1f} min", f"{done:,}"))
        else:
            for _ in range(5):
                load = httpx_load(srv.base, paths, 4, 400, 30.0)
                done += load.requests
                errors += load.errors
            rows.append(row("after the mixed requests", f"{done:,}"))
        say(f"\n### coopgis serve --workers {workers}: memory per worker (MB: VmRSS / RssAnon / RssFile / Pss)\n")
        say(md_table(["when", *[f"worker {p}" for p in ws], "sum of Pss", "requests"], rows))
        sup = proc_memory(srv.pids()[0]) if workers > 1 else {}
        say(f"errors (status >= 400 or failed): {errors}; supervisor: {sup.get('VmRSS', 0):,.0f} MB RSS, "
            f"{sup.get('Pss', 0):,.0f} MB Pss" if workers > 1 else f"errors (status >= 400 or failed): {errors}")
    finally:
        srv.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=0, help="instead: memory of each worker of `coopgis serve "
                                                           "--workers N` after warm-up and a mixed load")
    ap.add_argument("--minutes", type=float, default=0.0, help="with --workers: a mixed load this long, memory "
                                                               "sampled every 30 s (the curve)")
    args = ap.parse_args(argv)
    store, _ = ensure_dataset(args.size)   # before the first figure: building it is not serving it
    if args.workers:
        return served_rss(store, args.workers, args.minutes)
    say(f"# memory of one serving process, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"{args.size:,} cooperatives")
    say("machine: " + "; ".join(f"{k} {v}" for k, v in machine().items()))
    steps: list[tuple[str, float, float]] = [("python + benchmarks.common", rss(), time.perf_counter())]

    def step(name: str) -> None:
        steps.append((name, rss(), time.perf_counter()))

    import os

    os.environ["COOPGIS_DATA"] = str(store)
    from coopgis.app import create_app
    from coopgis.boundaries import load_boundaries
    from coopgis.corrections import villages_to_learn
    from coopgis.dataset import Dataset
    from coopgis.loading import feature_folder, malloc_loading, release_memory, tune_malloc
    from coopgis.settings import ServiceSettings
    from coopgis.store import FileStore
    tune_malloc()   # as `coopgis serve` does first
    step("imports (coopgis.app: FastAPI, pandas, geopandas, shapely, pyarrow, numpy)")
    settings = ServiceSettings()
    b = load_boundaries(settings.boundaries, deprivation=settings.deprivation, cache_dir=settings.cache_dir)
    step("boundaries (provinces, counties, deprivation, places)")
    fs = FileStore(store)
    frame, report = fs.read_with_ingest_report()
    step("the store read (GeoDataFrame of the cooperatives)")
    accepted, _ = fs.report_log().accepted()
    ds = Dataset(frame, b, report, verified=accepted, villages=villages_to_learn(frame, accepted),
                 feature_files=feature_folder(settings))   # as the server: features mapped from their files
    del frame
    gc.collect()
    step("Dataset() (the served frame: masked text, Persian labels; the read frame dropped)")
    app = create_app(settings, ds)
    step("create_app (routers, templates, metrics, tile engine object)")
    app.state.tile_engine.warm()
    step("tile index (PointIndex) and polygon layers")
    ds.warm()
    step("public features (Packed: mapped from their files, or serialised and written the first time)")
    ds.geocoder  # noqa: B018
    step("geocoder")
    ds.collections["cooperatives"].nearest_index()
    step("nearest index")
    ds.search_index()
    step("search index")
    ds.field_guide()
    step("field guide (stand-ins, the places to go to)")
    release_memory()
    gc.freeze()
    malloc_loading(False)
    step("end of warm-up (garbage collected, Arrow pool and free heap released, gc.freeze): /ready")
    ds.names  # noqa: B018
    step("name index (first province/county filter)")
    ds.figures  # noqa: B018
    ds.stats_index  # noqa: B018
    step("area figures and stats index (first filtered choropleth tile, dashboard)")
    rows = []
    prev = None
    for name, value, at in steps:
        rows.append([name, f"{value:,.0f}", "" if prev is None else f"{value - prev[0]:+,.0f}",
                     "" if prev is None else f"{at - prev[1]:.2f}"])
        prev = (value, at)
    say("\n### Resident memory (VmRSS, MB) after each step, and the step's wall time\n")
    say(md_table(["step", "RSS MB", "growth MB", "seconds"], rows))

    coll = ds.collections["cooperatives"]
    seen: set = set()
    parts = [("the served cooperatives frame (all columns)", ds.cooperatives)]
    sizes = []
    for label, obj in parts:
        sizes.append((label, deep_size(obj, seen)))
    usage = ds.cooperatives.memory_usage(deep=True).sort_values(ascending=False)
    top = ", ".join(f"{k} {v / 2**20:,.0f}" for k, v in usage.head(8).items())
    for label, obj in [
        ("serialised features (ids, geometries, properties: Packed; memory-mapped files: only their offsets "
         "here, the pages are the page cache's, shared)", coll._parts),
        ("point arrays lon/lat of the collection", (coll.lon, coll.lat)),
        ("typed column arrays for filters (made on use)", coll._cached),
        ("tile engine: point index", app.state.tile_engine._points),
        ("tile engine: polygon layers and simplified geometry", (app.state.tile_engine._polygons,
                                                                  app.state.tile_engine._geometry_sets)),
        ("nearest index", coll._nearest),
        ("search index", ds._search),
        ("geocoder", ds._geocoder),
        ("name index", ds._names),
        ("area figures + stats index", (ds._figures, ds._stats)),
        ("boundaries", ds.boundaries),
        ("boundary collections (provinces, counties, deprivation frames)",
         [ds.collections[n].frame for n in ("provinces", "counties", "deprivation")]),
    ]:
        sizes.append((label, deep_size(obj, seen)))
    say("\n### Size of each structure (walked; MB)\n")
    say(md_table(["structure", "MB"], [[k, f"{v / 2**20:,.1f}"] for k, v in sizes]))
    say(f"\nlargest columns of the served frame (MB): {top}")
    say(f"\nsum of the structures: {sum(v for _, v in sizes) / 2**20:,.0f} MB (walking them materialises "
        "Python objects: RSS after the walk is not a figure of the server)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
