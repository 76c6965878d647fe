"""Section 1: the service as production runs it (``coopgis serve``), under bounded loopback load.

For 1 and 2 workers: requests/s, p50/p99 latency, concurrency and duration of a
near-no-op endpoint (``GET /conformance``, a small static JSON: the ceiling of this
app on this machine), warm tiles (cached) at z 5, 6, 8, 10, 12 in MVT and GeoJSON,
items (limit=100; Tehran bbox limit=1000; all of Iran limit=10000), one item and
one geocode. Cold tiles: in a fresh 1-worker server, every distinct tile address is
requested once (one connection, one at a time), and the same tiles are timed
in-process on a fresh :class:`coopgis.tiles.TileEngine` with ``time.perf_counter``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import quote

from benchmarks.common import (
    NO_RATE_LIMITS,
    READY,
    Config,
    Results,
    Server,
    cmdline,
    coopgis_serve_argv,
    free_port,
    load_dataset,
    md_table,
    med,
    mm,
    occupied_tiles,
    percentile,
    rss_mb,
    say,
)
from benchmarks.loadgen import Load, have_wrk, httpx_load, walk, wrk_load

ZOOMS = (5, 6, 8, 10, 12)
COLD_ZOOMS = (5, 6, 7, 8, 10, 12)
FORMATS = ("mvt", "geojson")
TEHRAN_BBOX = "51,35,52,36"
IRAN_BBOX = "44,25,63.5,40"


@dataclass
class Endpoint:
    key: str
    label: str
    paths: list[str]
    heavy: bool = False


def tile_path(z: int, x: int, y: int, fmt: str) -> str:
    return f"/tiles/cooperatives/{z}/{x}/{y}.{fmt}"


def sample_address(csv) -> str:
    import pandas as pd

    df = pd.read_csv(csv, usecols=["address"], dtype=str, nrows=2000).dropna()
    persian = df[df["address"].str.contains("شهرستان")]
    return (persian if len(persian) else df)["address"].iloc[0]


def sample_id(dataset) -> str:
    frame = dataset.collections["cooperatives"].frame
    return str(frame["registration_no"].iloc[len(frame) // 2])


def items_endpoints(dataset) -> list[Endpoint]:
    base = "/collections/cooperatives/items"
    return [
        Endpoint("items100", "items limit=100", [f"{base}?limit=100"]),
        Endpoint("items_tehran", f"items bbox={TEHRAN_BBOX} limit=1000", [f"{base}?bbox={TEHRAN_BBOX}&limit=1000"]),
        Endpoint("items_iran", f"items bbox={IRAN_BBOX} (all Iran) limit=10000",
                 [f"{base}?bbox={IRAN_BBOX}&limit=10000"], heavy=True),
        Endpoint("item", "one item by id", [f"{base}/{quote(sample_id(dataset))}"]),
    ]


def endpoints(dataset, csv, warm_tiles: dict) -> list[Endpoint]:
    eps = [Endpoint("ceiling", "GET /conformance (ceiling: tiny static JSON)", ["/conformance"])]
    for z in ZOOMS:
        for fmt in FORMATS:
            eps.append(Endpoint(f"tile{z}{fmt}", f"warm tile z{z} .{fmt} ({len(warm_tiles[z])} cached tiles)",
                                [tile_path(*t, fmt) for t in warm_tiles[z]]))
    eps += items_endpoints(dataset)
    eps.append(Endpoint("geocode", "geocode one address", ["/geocode?q=" + quote(sample_address(csv))]))
    return eps


def tools(cfg: Config) -> list[str]:
    return ["wrk", "httpx"] if cfg.use_wrk and have_wrk() else ["httpx"]


def measure(cfg: Config, base: str, eps: list[Endpoint], runs: dict | None = None, rss_after=None) -> dict:
    """Every endpoint with every tool, ``cfg.reps`` times, interleaved so that noise spreads evenly.

    ``rss_after(key)`` is called after each endpoint's runs of the first repetition.
    """
    runs = runs if runs is not None else {}
    for rep in range(cfg.reps):
        for ep in eps:
            conns = cfg.heavy_connections if ep.heavy else cfg.connections
            for tool in tools(cfg):
                fn = wrk_load if tool == "wrk" else httpx_load
                try:
                    r = fn(base, ep.paths, conns, cfg.max_requests, cfg.seconds)
                except Exception as exc:  # a failed run is reported, not fatal
                    say(f"  {ep.key} {tool}: failed: {exc}")
                    continue
                runs.setdefault((ep.key, tool), []).append(r)
            if rep == 0 and rss_after is not None:
                rss_after(ep.key)
        say(f"  repetition {rep + 1}/{cfg.reps} done")
    return runs


def load_rows(eps: list[Endpoint], runs: dict, first_ms: dict | None = None) -> list[list]:
    rows = []
    for ep in eps:
        for tool in ("wrk", "httpx"):
            rs: list[Load] = runs.get((ep.key, tool), [])
            if not rs:
                continue
            per = [r.bytes / r.requests for r in rs if r.requests]
            row = [ep.label, tool, rs[0].connections, mm([r.seconds for r in rs], 2),
                   mm([r.requests for r in rs], 0), mm([r.rps for r in rs], 0), mm([r.p50_ms for r in rs], 1),
                   mm([r.p99_ms for r in rs], 1), sum(r.errors for r in rs), f"{med(per) / 1024:,.1f}"]
            if first_ms is not None:
                row.append(f"{first_ms[ep.key]:,.1f}" if ep.key in first_ms else "")
            rows.append(row)
    return rows


LOAD_HEADER = ["endpoint", "tool", "conc.", "duration s", "requests", "req/s", "p50 ms", "p99 ms", "errors",
               "KiB/resp"]


def rps(runs: dict, key: str, tool: str) -> list[float]:
    return [r.rps for r in runs.get((key, tool), [])]


def run(cfg: Config, res: Results, store, csv) -> None:
    ds = load_dataset(store)
    walk_tiles = {z: occupied_tiles(ds, z, cfg.tiles_per_zoom, cfg.seed) for z in COLD_ZOOMS}
    warm_tiles = {z: walk_tiles[z][:cfg.warm_tiles] for z in ZOOMS}
    eps = endpoints(ds, csv, warm_tiles)
    say(f"tools: {', '.join(tools(cfg))}; {cfg.reps} repetitions of {cfg.seconds:g} s (at most "
        f"{cfg.max_requests:,} requests) per endpoint and tool; {cfg.connections} connections "
        f"({cfg.heavy_connections} for the 10,000-item page); the per-client rate limits are raised (all load "
        "comes from one loopback client); req/s count 2xx/3xx responses only")
    res.figures["service"] = {}
    for workers in cfg.workers:
        port = free_port()
        srv = Server(f"coopgis-w{workers}", coopgis_serve_argv(store, port, workers if workers > 1 else None),
                     port, READY, env=NO_RATE_LIMITS)
        say(f"## coopgis serve --data {store} --port {port}" + (f" --workers {workers}" if workers > 1 else ""))
        try:
            srv.start()
            say(f"started in {srv.startup_s:.1f} s")
            first_ms: dict[str, float] = {}
            growth: list[tuple[str, float]] = []

            def rss_now(label: str) -> None:
                ws = [p for p in srv.pids()[1:] if "resource_tracker" not in cmdline(p)] if workers > 1 \
                    else srv.pids()[:1]
                growth.append((label, max((rss_mb(p) or 0) for p in ws) if ws else float("nan")))

            rss_now("ready")
            if workers == 1:
                _cold_http(cfg, res, srv, walk_tiles)
                rss_now("cold tile walk")
                # first request of every endpoint in this fresh server (items serialise all features once)
                for ep in eps:
                    lat, _, _ = walk(srv.base, ep.paths[:1])
                    first_ms[ep.key] = lat[0]
                    if ep.key.startswith("item"):
                        rss_now(f"first {ep.key}")
            # warm-up: every path a few times (2 workers: both caches, very likely)
            for _ in range(1 if workers == 1 else 6):
                for ep in eps:
                    httpx_load(srv.base, ep.paths, min(4, len(ep.paths)), len(ep.paths), 120.0)
            rss_now("warm-up")
            runs = measure(cfg, srv.base, eps, rss_after=rss_now)
            pids = srv.pids()
            rss = {pid: rss_mb(pid) for pid in pids}
            cmdline_of = {pid: cmdline(pid) for pid in pids}
        finally:
            srv.stop()
        header = LOAD_HEADER + (["first request ms"] if workers == 1 else [])
        res.table("service", f"\n### coopgis serve, {workers} worker{'s' if workers > 1 else ''}: medians "
                             f"(min-max) of {cfg.reps} runs\n")
        res.table("service", md_table(header, load_rows(eps, runs, first_ms if workers == 1 else None)))
        # the workers, not the supervisor nor multiprocessing's resource tracker
        serving = [p for p in pids[1:] if "resource_tracker" not in cmdline_of.get(p, "")] if workers > 1 else pids[:1]
        rss_line = ", ".join(f"{rss[p]:.0f} MB" for p in serving if rss.get(p) is not None)
        res.table("service", f"\nRSS after the load runs (VmRSS of the serving process{'es' if workers > 1 else ''}): "
                             f"{rss_line}" + (f"; supervisor {rss[pids[0]]:.0f} MB" if workers > 1 else ""))
        res.table("service", f"RSS (MB, {'largest worker' if workers > 1 else 'serving process'}) along the run: "
                             + ", ".join(f"{k} {v:,.0f}" for k, v in growth))
        res.figures["service"][workers] = {"runs": runs, "rss": [rss[p] for p in serving if rss.get(p)]}
        _warm_ratios(cfg, res, runs, workers)
    _cold_inprocess(cfg, res, ds, walk_tiles)


def _warm_ratios(cfg: Config, res: Results, runs: dict, workers: int) -> None:
    lines = []
    worst = {}
    for tool in tools(cfg):
        ceiling = med(rps(runs, "ceiling", tool))
        for z in ZOOMS:
            for fmt in FORMATS:
                r = med(rps(runs, f"tile{z}{fmt}", tool)) / ceiling if ceiling else float("nan")
                lines.append(f"z{z}.{fmt} {r:.0%}")
                if tool not in worst or r < worst[tool][0]:
                    worst[tool] = (r, f"z{z}.{fmt}")
        res.table("service", f"\nwarm tile req/s as a share of the ceiling ({tool}, {workers} worker"
                             f"{'s' if workers > 1 else ''}): " + ", ".join(lines))
        lines = []
    res.figures["service"][workers]["worst_tile_ratio"] = worst


def _cold_http(cfg: Config, res: Results, srv: Server, walk_tiles: dict) -> None:
    lat, st, _ = walk(srv.base, ["/tiles/cooperatives/0/0/0.mvt"])
    rows = [["first tile of a fresh server (z0, builds the point index)", 1, f"{lat[0]:,.1f}", "", "", "",
             "", st[0]]]
    for z in ZOOMS:
        for fmt in FORMATS:
            paths = [tile_path(*t, fmt) for t in walk_tiles[z]]
            lat, st, secs = walk(srv.base, paths)
            bad = sum(1 for s in st if s != 200)
            rows.append([f"cold z{z} .{fmt}", len(paths), f"{percentile(lat, 50):,.1f}", f"{percentile(lat, 99):,.1f}",
                         f"{max(lat):,.1f}", f"{len(paths) / secs:,.0f}", f"{secs:.2f}", f"{bad} not 200"])
    res.table("service", "\n### cold tiles over HTTP (fresh 1-worker server; each distinct address once, "
                         "1 connection, sequential; tiles holding cooperatives, seeded sample)\n")
    res.table("service", md_table(["tiles", "count", "p50 ms", "p99 ms", "max ms", "req/s", "duration s",
                                   "status"], rows))


def _cold_inprocess(cfg: Config, res: Results, ds, walk_tiles: dict) -> None:
    from coopgis.settings import ServiceSettings
    from coopgis.tiles import POINT_LAYER, TileEngine

    settings = ServiceSettings()
    build: list[float] = []
    times: dict[tuple, list[list[float]]] = {}
    feats: dict[tuple, list[int]] = {}
    for _ in range(cfg.reps):
        eng = TileEngine(ds, settings.cluster_max_zoom, settings.tile_cache_size)
        t = time.perf_counter()
        eng.points()
        build.append((time.perf_counter() - t) * 1000)
        for z in COLD_ZOOMS:
            for fmt in FORMATS:
                per = []
                for (_, x, y) in walk_tiles[z]:
                    t = time.perf_counter()
                    tile = eng.tile(POINT_LAYER, z, x, y, fmt)
                    per.append((time.perf_counter() - t) * 1000)
                    feats.setdefault((z, fmt), []).append(tile.features)
                times.setdefault((z, fmt), []).append(per)
    rows = [["point index build (fresh engine)", "", mm(build, 1), "", "", ""]]
    summary = {}
    for z in COLD_ZOOMS:
        for fmt in FORMATS:
            reps = times[(z, fmt)]
            p50s = [percentile(r, 50) for r in reps]
            p99s = [percentile(r, 99) for r in reps]
            maxs = [max(r) for r in reps]
            summary[(z, fmt)] = (med(p50s), med(p99s), med(maxs))
            rows.append([f"z{z} .{fmt}{' (clustered)' if z <= settings.cluster_max_zoom else ' (single points)'}",
                         len(reps[0]), mm(p50s, 2), mm(p99s, 2), mm(maxs, 2), f"{med(feats[(z, fmt)]):,.0f}"])
    res.table("service", f"\n### cold tiles, server time in-process (fresh TileEngine each of {cfg.reps} runs, "
                         "index built first; time.perf_counter around TileEngine.tile)\n")
    res.table("service", md_table(["tiles", "count", "p50 ms", "p99 ms", "max ms", "features/tile (median)"], rows))
    res.figures["cold"] = {"build_ms": build, "summary": summary}
