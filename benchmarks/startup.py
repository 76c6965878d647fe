"""Start-up of ``coopgis serve`` on an existing store (issue 16, item 6).

``python -m benchmarks.startup [--size 100000] [--reps 5]``

The store is built once (``benchmarks/.cache/data-N-1404``, like the suite's). Each repetition starts
``python -m coopgis.cli serve --data STORE --port P`` (one worker, its own session) and times, from the
moment the process is started:

- ``/health`` answering 200 (the process serves: from here on requests are answered),
- then at once, one after the other, a z5 tile, a z8 tile and ``items?limit=100`` (each request's own
  latency: what a request costs while the read model still warms in the background),
- ``/ready`` answering 200 (the read model is warmed: features serialised, tile, nearest and search
  indexes built; a load balancer sends traffic from here on),
- and, after ready, the same three requests on tiles not asked for yet (their cost once warm).

Also the serving process's RSS at ready. Medians (min-max) over the repetitions. Target (issue 16): ready
to serve within 5 s of ``coopgis serve``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.common import (
    CACHE,
    LOOPBACK,
    ROOT,
    ensure_dataset,
    free_port,
    load_dataset,
    machine,
    md_table,
    mm,
    occupied_tiles,
    rss_mb,
    say,
    stop_session,
)


def one_start(store, tiles: list[str], after: list[str], poll: float = 0.02, code=ROOT) -> dict:
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    log = CACHE / "logs" / "startup.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "coopgis.cli", "serve", "--data", str(store), "--port", str(port)]
    out: dict = {}
    with log.open("wb") as logf:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, cwd=code, start_new_session=True)
    try:
        with httpx.Client(base_url=base, timeout=60) as c:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"coopgis serve exited with {proc.returncode}; see {log}")
                try:
                    if c.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(poll)
            out["health_s"] = time.perf_counter() - t0
            ready_at_health = c.get("/ready").status_code
            out["ready_status_at_health"] = ready_at_health
            for name, path in zip(("tile z5", "tile z8", "items limit=100"), [*tiles[:2], "/collections/"
                                  "cooperatives/items?limit=100"], strict=True):
                t = time.perf_counter()
                r = c.get(path)
                out[f"{name} during warm-up ms"] = (time.perf_counter() - t) * 1000
                out[f"{name} status"] = r.status_code
            out["first tile and items answered_s"] = time.perf_counter() - t0
            while time.monotonic() < deadline:
                if c.get("/ready").status_code == 200:
                    break
                time.sleep(poll)
            out["ready_s"] = time.perf_counter() - t0
            out["rss_mb"] = rss_mb(proc.pid)
            for name, path in zip(("tile z5", "tile z8", "items limit=100"), [*after[:2], "/collections/"
                                  "cooperatives/items?limit=100&offset=5000"], strict=True):
                t = time.perf_counter()
                c.get(path)
                out[f"{name} once warm ms"] = (time.perf_counter() - t) * 1000
    finally:
        stop_session(proc)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--before", type=Path, help="also start this checkout (an export of an older commit), in turn")
    args = ap.parse_args(argv)
    say(f"# start-up of coopgis serve, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {args.size:,} "
        f"cooperatives, {args.reps} starts")
    say("machine: " + "; ".join(f"{k} {v}" for k, v in machine().items()))
    store, _ = ensure_dataset(args.size)
    ds = load_dataset(store)
    z5, z8 = occupied_tiles(ds, 5, 4), occupied_tiles(ds, 8, 4)
    del ds
    path = "/tiles/cooperatives/{}/{}/{}.mvt"
    tiles = [path.format(*z5[0]), path.format(*z8[0])]
    after = [path.format(*z5[1]), path.format(*z8[1])]
    runs, before = [], []
    for i in range(args.reps):
        runs.append(one_start(store, tiles, after))
        say(f"start {i + 1}/{args.reps}: /health {runs[-1]['health_s']:.2f} s, /ready {runs[-1]['ready_s']:.2f} s")
        if args.before is not None:
            before.append(one_start(store, tiles, after, code=args.before))
            say(f"  before: /health {before[-1]['health_s']:.2f} s, /ready {before[-1]['ready_s']:.2f} s")
    keys = [k for k in runs[0] if not k.endswith("status")]
    rows = [[k, mm([r[k] for r in runs], 2)] + ([mm([r[k] for r in before], 2)] if before else []) for k in keys]
    say(f"\n### coopgis serve on an existing store of {args.size:,}: medians (min-max) of {args.reps} starts\n")
    say(md_table(["figure", "value"] + ([f"before ({args.before})"] if before else []), rows))
    statuses = {k: sorted({r[k] for r in runs}) for k in runs[0] if k.endswith("status")}
    say("\nstatuses: " + "; ".join(f"{k} {v}" for k, v in statuses.items()))
    health = statistics.median(r["first tile and items answered_s"] for r in runs)
    say(f"- serving (/health 200 and the first tiles and items answered) {health:.2f} s after start "
        f"(target < 5 s: {'met' if health < 5 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
