"""Section 5: ingest + geocode + join of the synthetic registry, and the serving process's memory.

The ingest is timed the way ``benchmarks/ingest.py`` times it (same functions: the
sample CSV -> :func:`coopgis.ingest.ingest` into a fresh FileStore, per-phase timings
from its report), and its geocoder accuracy check is reused. The resident memory
(VmRSS from /proc/PID/status) of the serving process is read by section 1 after its
load runs; when section 1 did not run, a server is started here and given a short
load first.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    NO_RATE_LIMITS,
    READY,
    Config,
    Results,
    Server,
    coopgis_serve_argv,
    free_port,
    md_table,
    mm,
    rss_mb,
    say,
)


def run_section(cfg: Config, res: Results, store, csv) -> None:
    from benchmarks.ingest import _accuracy, location_layer
    from coopgis.ingest import ingest
    from coopgis.sample import generate_sample
    from coopgis.store import FileStore

    b, g, t_load, t_index = location_layer()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(cfg.ingest_runs):
            t = time.perf_counter()
            result = ingest(csv, FileStore(Path(tmp) / f"data{i}"), b, g)
            runs.append((time.perf_counter() - t, result.report["timing_s"]))
            say(f"  ingest run {i + 1}/{cfg.ingest_runs}: {runs[-1][0]:.1f} s")
    total = [r[0] for r in runs]
    rows = [[phase, mm([r[1][phase] for r in runs], 2, " s")] for phase in ("read", "geocode_join", "write")]
    rows.append(["total ingest (read + geocode + join + write)", mm(total, 2, " s")])
    rows.append(["rows per second", f"{cfg.size / (sorted(total)[len(total) // 2]):,.0f}"])
    rows.append(["boundaries load (cached) / geocoder index (not in the total)", f"{t_load:.2f} s / {t_index:.2f} s"])
    res.table("ingest", f"\n### ingest of {cfg.size:,} synthetic rows ({cfg.ingest_runs} run(s)): medians (min-max)\n")
    res.table("ingest", md_table(["phase", "time"], rows))
    res.table("ingest", f"accepted {result.report['accepted']:,} of {result.report['rows']:,} rows")
    res.figures["ingest"] = {"total_s": total}
    try:   # the geocoder against the sample's hidden truth, as benchmarks/ingest.py prints it
        sample = generate_sample(cfg.size, seed=cfg.seed, boundaries=b)
        _accuracy(sample, result.dataset)
    except Exception as exc:  # accuracy is extra information, never fatal here
        say(f"(accuracy check skipped: {type(exc).__name__}: {exc})")

    if "service" not in res.figures:
        _rss_alone(cfg, res, store)


def _rss_alone(cfg: Config, res: Results, store) -> None:
    from benchmarks.loadgen import httpx_load

    port = free_port()
    with Server("coopgis-rss", coopgis_serve_argv(store, port), port, READY, env=NO_RATE_LIMITS) as srv:
        for path in ("/collections/cooperatives/items?limit=10000&bbox=44,25,63.5,40",
                     "/tiles/cooperatives/5/20/12.mvt", "/geocode?q=%D8%AA%D9%87%D8%B1%D8%A7%D9%86"):
            httpx_load(srv.base, [path], 4, 50 if not cfg.quick else 5, 5.0)
        rss = rss_mb(srv.proc.pid)
    res.table("ingest", f"RSS of `coopgis serve` (1 worker) after a short load: {rss:.0f} MB")
    res.figures["service"] = {1: {"rss": [rss]}}
