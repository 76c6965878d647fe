"""The benchmark suite: ``python -m benchmarks [--size 100000] [--quick] [--only SECTION[,SECTION]]``.

Sections (in this order): service (our server under load, cold/warm tiles, items,
geocode), pygeoapi (the same items requests against pygeoapi), clustering (our
cluster index and tile query beside supercluster), page (time to first clusters in
headless Chromium beside folium pages), ingest (ingest + geocode + join, and the
serving process's RSS). Prints a markdown table per section and one summary table
with the targets, each met or missed. Not part of the test run. Load goes to
127.0.0.1 only and is bounded by count and time; every process started is ended.
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import CACHE, Config, Results, ensure_dataset, machine, md_table, med, say, stop_all

SECTIONS = ("service", "pygeoapi", "clustering", "page", "ingest")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, help="cooperatives in the synthetic registry (default 100000; quick: 3000)")
    ap.add_argument("--quick", action="store_true", help="a small smoke run of every section (< 2 minutes once "
                                                         "the one-time installs are cached)")
    ap.add_argument("--only", help="comma-separated sections: " + ", ".join(SECTIONS))
    ap.add_argument("--reps", type=int, help="repetitions of every load run (default 3)")
    ap.add_argument("--seconds", type=float, help="time bound of one load run (default 2)")
    ap.add_argument("--max-requests", type=int, help="count bound of one load run (default 30000)")
    ap.add_argument("--connections", type=int, help="concurrent connections (default 16)")
    ap.add_argument("--no-wrk", action="store_true", help="httpx load generator only")
    ap.add_argument("--no-install", action="store_true", help="never apt-get/pip/npm install anything")
    ap.add_argument("--before", help="page: also measure the national page of this checkout (e.g. an older "
                                     "commit exported there, with its coopgis/web/node_modules)")
    args = ap.parse_args(argv)
    only = [s.strip() for s in args.only.split(",")] if args.only else list(SECTIONS)
    unknown = [s for s in only if s not in SECTIONS]
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; sections are: {', '.join(SECTIONS)}")
    cfg = Config.make(args.size, args.quick, reps=args.reps, seconds=args.seconds, max_requests=args.max_requests,
                      connections=args.connections)
    cfg.use_wrk = not args.no_wrk
    cfg.install = not args.no_install
    cfg.before = Path(args.before).resolve() if args.before else None
    res = Results(cfg)
    started = time.perf_counter()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    info = machine()
    say(f"# coopgis benchmarks, {stamp}: {cfg.size:,} synthetic cooperatives"
        f"{' (quick smoke run)' if cfg.quick else ''}; sections: {', '.join(only)}")
    say("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()))
    if cfg.use_wrk:
        _ensure_wrk(cfg, res)
    try:
        store, csv = ensure_dataset(cfg.size, cfg.seed)
        for name in only:
            t = time.perf_counter()
            say(f"\n## section {name}")
            try:
                _run(name, cfg, res, store, csv)
            except Exception as exc:  # one failed section is reported; the others still run
                res.table(name, f"section {name} FAILED: {type(exc).__name__}: {exc}")
                traceback.print_exc()
            finally:
                stop_all()
            res.figures.setdefault("section_s", {})[name] = time.perf_counter() - t
            say(f"(section {name}: {time.perf_counter() - t:.0f} s)")
    finally:
        stop_all()
    info.update(_versions(res))
    summary = summarise(res, only)
    say("\n## summary\n")
    say(summary)
    took = time.perf_counter() - started
    say(f"\nwhole run: {took / 60:.1f} min")
    _save(res, info, summary, stamp, took, only)
    return 0


def _run(name: str, cfg: Config, res: Results, store, csv) -> None:
    if name == "service":
        from benchmarks import service

        service.run(cfg, res, store, csv)
    elif name == "pygeoapi":
        from benchmarks import pygeoapi_bench

        pygeoapi_bench.run_section(cfg, res, store)
    elif name == "clustering":
        from benchmarks import clustering

        clustering.run_section(cfg, res, store)
    elif name == "page":
        from benchmarks import page

        page.run_section(cfg, res, store)
    elif name == "ingest":
        from benchmarks import ingest_rss

        ingest_rss.run_section(cfg, res, store, csv)


def _ensure_wrk(cfg: Config, res: Results) -> None:
    from benchmarks.common import apt_install
    from benchmarks.loadgen import have_wrk

    if have_wrk():
        return
    why = apt_install(["wrk"], cfg.install)
    if why or not have_wrk():
        res.note(f"wrk is not available ({why}); the httpx load generator alone is used")


def _versions(res: Results) -> dict:
    out = {}
    pg = res.figures.get("pygeoapi", {})
    if pg.get("version"):
        out["pygeoapi"] = pg["version"]
    cl = res.figures.get("clustering", {})
    if cl.get("sc"):
        out["supercluster"] = cl["sc"]["version"]
    return out


# ---- the summary --------------------------------------------------------------------------------

def _fmt(x: float, unit: str = "", digits: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}{unit}"


def summarise(res: Results, only: list[str]) -> str:
    f = res.figures
    rows: list[list[str]] = []

    def add(name, measured, goal="", met=None, note=""):
        status = "" if goal == "" else ("not measured" if met is None else ("met" if met else "MISSED"))
        rows.append([name, measured, goal, status + (f" ({note})" if note else "")])

    svc = f.get("service", {})
    for workers in (1, 2):
        w = svc.get(workers)
        if not w or "runs" not in w:
            continue
        runs = w["runs"]
        tool = "wrk" if any(k[1] == "wrk" for k in runs) else "httpx"
        for key, label in (("ceiling", "GET /conformance (ceiling)"), ("tile5mvt", "warm tile z5 .mvt"),
                           ("tile12mvt", "warm tile z12 .mvt"), ("tile8geojson", "warm tile z8 .geojson"),
                           ("items100", "items limit=100"), ("items_tehran", "items Tehran bbox limit=1000"),
                           ("items_iran", "items all Iran limit=10000"), ("item", "one item"),
                           ("geocode", "geocode one address")):
            rs = runs.get((key, tool), [])
            if rs:
                add(f"{label}, {workers}w ({tool})", f"{_mm([r.rps for r in rs], 0)} req/s, p50 "
                    f"{_fmt(med([r.p50_ms for r in rs]))} ms, p99 {_fmt(med([r.p99_ms for r in rs]))} ms")
        worst = w.get("worst_tile_ratio", {}).get(tool)
        if worst:
            add(f"warm tile req/s / ceiling, {workers} worker{'s' if workers > 1 else ''} ({tool}; worst tile)",
                f"{worst[0]:.0%} ({worst[1]})", ">= 50%", worst[0] >= 0.5)
    if "service" in only and not any("runs" in (svc.get(w) or {}) for w in (1, 2)):
        add("warm tile throughput / ceiling", "n/a", ">= 50%", None)

    cold = f.get("cold")
    if cold:
        s = cold["summary"]
        worst = max(((s[(z, fmt)][0], z, fmt) for z in (5, 6, 7) for fmt in ("mvt", "geojson")), default=None)
        p99 = max(s[(z, fmt)][1] for z in (5, 6, 7) for fmt in ("mvt", "geojson"))
        add("cold clustered tile z5-7, server time in-process (p50 of the worst zoom/format)",
            f"{worst[0]:.2f} ms (z{worst[1]} .{worst[2]}); p99 {p99:.2f} ms", "< 10 ms", worst[0] < 10)
        w12 = max((s[(12, fmt)][0], fmt) for fmt in ("mvt", "geojson"))
        p99 = max(s[(12, fmt)][1] for fmt in ("mvt", "geojson"))
        add("cold z12 tile, server time in-process (p50, worst format)", f"{w12[0]:.2f} ms (.{w12[1]}); "
            f"p99 {p99:.2f} ms", "< 2 ms", w12[0] < 2)
        add("point index build in a fresh engine", f"{_mm(cold['build_ms'], 0)} ms")
    elif "service" in only:
        add("cold tiles", "n/a", "< 10 ms / < 2 ms", None)

    pg = f.get("pygeoapi", {})
    goals = (("items100", "items limit=100", 10), ("items_tehran", "items Tehran bbox limit=1000", 10),
             ("items_iran", "items all Iran limit=10000", 5))
    if pg.get("unavailable"):
        for _, label, x in goals:
            add(f"{label}: ours/pygeoapi req/s", "pygeoapi not measured", f">= {x}x", None, pg["unavailable"][:80])
    for workers in (1, 2):
        p = pg.get(workers)
        if not p:
            continue
        tool = "wrk" if any(k[1] == "wrk" for k in p["ratios"]) else "httpx"
        for key, label, x in goals:
            r = p["ratios"].get((key, tool))
            other = p["ratios"].get((key, "httpx")) if tool == "wrk" else None
            add(f"{label}: ours/pygeoapi req/s, {workers}w each ({tool})",
                f"{_fmt(r, 'x')}" + (f" (httpx: {_fmt(other, 'x')})" if other else ""), f">= {x}x",
                None if r is None else r >= x)
        r = p["ratios"].get(("item", tool))
        add(f"one item: ours/pygeoapi req/s, {workers}w each ({tool})", _fmt(r, "x"))

    cl = f.get("clustering")
    if cl:
        if cl.get("sc"):
            sc = cl["sc"]
            ratio = med(cl["build_ms"]) / sc["load_ms"]["sums"]
            add("cluster index build: ours / supercluster (map/reduce sums)",
                f"{ratio:.1f}x ({_fmt(med(cl['build_ms']), ' ms')} vs {_fmt(sc['load_ms']['sums'], ' ms')}; "
                f"plain {med(cl['build_ms']) / sc['load_ms']['plain']:.1f}x)", "<= 5x", ratio <= 5)
            worst = max((cl["tile_ms"][z]["ours"] / cl["tile_ms"][z]["sums"], z) for z in (5, 8))
            add("per-tile cluster query: ours / supercluster getTile (worst of z5, z8; p50)",
                f"{worst[0]:.1f}x (z{worst[1]}: {cl['tile_ms'][worst[1]]['ours']:.3f} vs "
                f"{cl['tile_ms'][worst[1]]['sums']:.3f} ms); " + ", ".join(
                    f"z{z} {cl['tile_ms'][z]['ours'] / cl['tile_ms'][z]['sums']:.1f}x" for z in (5, 8)),
                "<= 10x", worst[0] <= 10)
        else:
            add("cluster index build / per-tile query vs supercluster", "supercluster not measured", "<= 5x / <= 10x",
                None)

    pgf = f.get("page")
    if pgf:
        nat = pgf.get("national")
        if not pgf.get("national_available"):
            for goal in (">= 5x sooner than FastMarkerCluster", ">= 10x sooner than MarkerCluster", "< 300 KB",
                         "< 500 KB"):
                add("national page", "not available yet", goal, None)
        else:
            n = nat["first_ms"]
            add("national page: first clusters", _fmt(n / 1000 if n else None, " s", 2))
            for key, label, x in (("fastmarkercluster", "FastMarkerCluster", 5),
                                  ("markercluster", "MarkerCluster", 10)):
                o = pgf.get(key, {})
                if not n:
                    add(f"national page vs folium {label}", "national page showed no cluster", f">= {x}x sooner", False)
                elif o.get("first_ms"):
                    r = o["first_ms"] / n
                    add(f"national page vs folium {label}: time to first clusters",
                        f"{r:.1f}x sooner ({o['first_ms'] / 1000:.2f} s vs {n / 1000:.2f} s)", f">= {x}x sooner",
                        r >= x)
                else:
                    r = pgf["limit_s"] * 1000 / n
                    add(f"national page vs folium {label}: time to first clusters",
                        f"> {r:.0f}x sooner (theirs > {pgf['limit_s']:.0f} s limit, HTML "
                        f"{o.get('html', 0) / 1e6:.1f} MB)", f">= {x}x sooner", r >= x)
            add("national page HTML", f"{nat['html'] / 1000:,.1f} KB", "< 300 KB", nat["html"] < 300_000)
            if nat.get("bytes") is not None:
                add("bytes transferred before the first clusters", f"{nat['bytes'] / 1000:,.0f} KB", "< 500 KB",
                    nat["bytes"] < 500_000)

    ing = f.get("ingest")
    if ing:
        add(f"ingest + geocode + join of {res.config.size:,} rows", f"{_mm(ing['total_s'], 1)} s", "< 60 s",
            med(ing["total_s"]) < 60)
    if svc:
        for workers in (1, 2):
            w = svc.get(workers)
            if w and w.get("rss"):
                add(f"RSS of the serving process after the load runs, {workers} worker{'s' if workers > 1 else ''}",
                    ", ".join(f"{x:.0f} MB" for x in w["rss"]), "< 500 MB", max(w["rss"]) < 500)
    text = md_table(["figure", "measured: median (min-max)", "target", "status"], rows)
    missed = [r for r in rows if r[3].startswith("MISSED")]
    if missed:
        text += "\n\nmissed: " + "; ".join(f"{r[0]} ({r[1]}; target {r[2]})" for r in missed)
    for n in res.notes:
        text += f"\n\nnote: {n}"
    return text


def _mm(values, digits):
    from benchmarks.common import mm

    return mm(values, digits)


def _save(res: Results, info: dict, summary: str, stamp: str, took: float, only: list[str]) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    kind = "quick" if res.config.quick else f"size{res.config.size}"
    md = [f"# coopgis benchmarks, {stamp} ({kind}; sections {', '.join(only)}; {took / 60:.1f} min)", "",
          "machine: " + "; ".join(f"{k} {v}" for k, v in info.items()), ""]
    for name in SECTIONS:
        if name in res.tables:
            md += [f"## {name}", "", *res.tables[name], ""]
    md += ["## summary", "", summary, ""]
    path = CACHE / f"last-run-{kind}.md"
    path.write_text("\n".join(md), encoding="utf-8")
    say(f"(written to {path})")
    with contextlib.suppress(OSError):
        (CACHE / f"last-run-{kind}.json").write_text(json.dumps({"machine": info, "stamp": stamp}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
