"""The framework tax (issue 16, item 2): coopgis beside a bare FastAPI no-op on the same server stack.

``python -m benchmarks.tax [--size 100000] [--reps 5] [--seconds 2] [--connections 16] [--pieces/--no-pieces]``

Servers, all uvicorn + uvloop + httptools with one worker, started side by side and loaded in turn,
endpoint after endpoint, repetition after repetition (so every ratio is from the same minutes):

- the baseline: ``@app.get("/noop") async def noop(): return {}`` on a bare ``FastAPI()`` with uvicorn's
  defaults (its access log on), and the same without the access log, for reference;
- ``coopgis serve`` as production runs it: ``GET /conformance`` and warm tiles (cached z8 ``.mvt`` tiles
  holding cooperatives, cycled over);
- with ``--pieces`` (default): ``create_app()`` served like ``coopgis serve`` with one more route behind the
  whole stack (``GET /__noop``, answering ``{}``), and again with one middleware class left out at a time,
  and all of them left out (``AccessLog`` is the app's access log, uvicorn's own is off as in ``coopgis serve``):
  each piece's cost per request is the difference
  (see ``benchmarks/tax_app.py``).

wrk (Debian's) with the suite's Lua script, keep-alive, bounded by seconds and a request count; medians
(min-max) of the repetitions. The ratios are the medians of each endpoint's req/s over the no-op's.
Targets (issue 16): ``/conformance`` >= 0.85x of the no-op, warm tiles >= 0.5x.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.common import (
    NO_RATE_LIMITS,
    ROOT,
    Server,
    ensure_dataset,
    load_dataset,
    machine,
    md_table,
    med,
    mm,
    occupied_tiles,
    say,
    stop_all,
)
from benchmarks.loadgen import have_wrk, wrk_load

PIECES = ("AccessLog", "SecurityMiddleware", "MetricsMiddleware", "ItemSuffixes", "HeadAsGet", "WarmTiles")
TARGETS = {"conformance": 0.85, "tile": 0.5}
ORIGIN = {"Origin": "http://example.org"}


def servers(store, pieces: bool, before: Path | None = None) -> dict[str, Server]:
    from benchmarks.common import free_port

    env = {**NO_RATE_LIMITS, "COOPGIS_DATA": str(store)}
    py = [sys.executable, "-m"]
    out: dict[str, Server] = {}

    def add(name: str, argv: list[str], ready: str) -> None:
        port = free_port()
        out[name] = Server(name, argv + ["--port", str(port)], port, ready, env=env, cwd=ROOT)

    add("noop", py + ["benchmarks.tax_app", "noop"], "/noop")
    add("noop, no access log", py + ["benchmarks.tax_app", "noop", "--no-access-log"], "/noop")
    add("coopgis serve", py + ["coopgis.cli", "serve", "--data", str(store)], "/ready")
    if before is not None:   # another checkout's code (an export of an older commit), served the same way
        port = free_port()
        out["coopgis serve, before"] = Server("coopgis serve, before", py + ["coopgis.cli", "serve", "--data",
                                              str(store), "--port", str(port)], port, "/ready", env=env, cwd=before)
    if pieces:
        add("stack", py + ["benchmarks.tax_app", "coopgis"], "/ready")
        for p in PIECES:
            add(f"stack - {p}", py + ["benchmarks.tax_app", "coopgis", "--drop", p], "/ready")
        add("stack, public CORS", py + ["benchmarks.tax_app", "coopgis", "--env", "COOPGIS_CORS_PUBLIC=true"],
            "/ready")
        add("stack, CORS origins", py + ["benchmarks.tax_app", "coopgis", "--env",
                                         'COOPGIS_CORS_ORIGINS=["http://example.org"]'], "/ready")
        add("stack, uvicorn's access log", py + ["benchmarks.tax_app", "coopgis", "--uvicorn-access-log"], "/ready")
        add("stack - all middleware", py + ["benchmarks.tax_app", "coopgis", "--drop", ",".join(PIECES)], "/ready")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.tax", description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--max-requests", type=int, default=60_000)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--before", type=Path, help="also serve this checkout (e.g. `git archive <commit>` extracted "
                                                "there) with `coopgis serve`: /conformance and tiles before/after")
    ap.add_argument("--pieces", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure the stack with each middleware piece left out")
    args = ap.parse_args(argv)
    if not have_wrk():
        print("wrk is needed (apt-get install wrk)", file=sys.stderr)
        return 2
    info = machine()
    say(f"# framework tax, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {args.size:,} cooperatives, "
        f"{args.reps} x {args.seconds:g} s per endpoint, wrk, {args.connections} connections")
    say("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()))
    store, _ = ensure_dataset(args.size)
    ds = load_dataset(store)
    tiles = [f"/tiles/cooperatives/{z}/{x}/{y}.mvt" for z, x, y in occupied_tiles(ds, 8, 5)]
    del ds
    srv = servers(store, args.pieces, args.before)
    # (row label, server, paths[, request headers])
    runs: list[tuple] = [
        ("bare FastAPI no-op (baseline)", "noop", ["/noop"]),
        ("bare FastAPI no-op, no access log", "noop, no access log", ["/noop"]),
        ("coopgis serve: /conformance", "coopgis serve", ["/conformance"]),
        ("coopgis serve: warm tile z8 .mvt", "coopgis serve", tiles),
    ]
    if args.before is not None:
        runs += [("before: coopgis serve: /conformance", "coopgis serve, before", ["/conformance"]),
                 ("before: coopgis serve: warm tile z8 .mvt", "coopgis serve, before", tiles),
                 ("before: coopgis serve: items limit=100", "coopgis serve, before",
                  ["/collections/cooperatives/items?limit=100"])]
    runs += [("coopgis serve: items limit=100", "coopgis serve", ["/collections/cooperatives/items?limit=100"])]
    if args.pieces:
        runs += [("stack: /__noop", "stack", ["/__noop"]), ("stack: /conformance", "stack", ["/conformance"])]
        runs += [(f"stack without {p}: /__noop", f"stack - {p}", ["/__noop"]) for p in PIECES if p != "WarmTiles"]
        runs += [("stack: warm tile", "stack", tiles),
                 ("stack without WarmTiles: warm tile", "stack - WarmTiles", tiles),
                 ("stack with uvicorn's access log instead: /__noop", "stack, uvicorn's access log", ["/__noop"]),
                 ("stack: /conformance, Origin header", "stack", ["/conformance"], ORIGIN),
                 ("stack with COOPGIS_CORS_PUBLIC: /conformance, Origin header", "stack, public CORS",
                  ["/conformance"], ORIGIN),
                 ("stack with COOPGIS_CORS_ORIGINS: /conformance, Origin header", "stack, CORS origins",
                  ["/conformance"], ORIGIN)]
        runs += [("stack without any middleware: /__noop", "stack - all middleware", ["/__noop"]),
                 ("stack without any middleware: /conformance", "stack - all middleware", ["/conformance"]),
                 ("stack without any middleware: warm tile", "stack - all middleware", tiles)]
    rps: dict[str, list[float]] = {r[0]: [] for r in runs}
    p50: dict[str, list[float]] = {r[0]: [] for r in runs}
    errors: dict[str, int] = dict.fromkeys(rps, 0)
    try:
        for s in srv.values():
            s.start()
            say(f"{s.name}: ready in {s.startup_s:.1f} s")
        for _, name, paths, *_ in runs:   # warm every tile and path once
            for p in paths:
                wrk_load(srv[name].base, [p], 1, 20, 1)
        for rep in range(args.reps):
            for label, name, paths, *headers in runs:
                load = wrk_load(srv[name].base, paths, args.connections, args.max_requests, args.seconds,
                                headers=headers[0] if headers else None)
                rps[label].append(load.rps)
                p50[label].append(load.p50_ms)
                errors[label] += load.errors + load.failed
            say(f"repetition {rep + 1}/{args.reps} done")
    finally:
        stop_all()
    base = med(rps["bare FastAPI no-op (baseline)"])
    rows = []
    for label, *_ in runs:
        rows.append([label, mm(rps[label], 0), mm(p50[label], 2), errors[label], f"{med(rps[label]) / base:.2f}x",
                     f"{1e6 / med(rps[label]) - 1e6 / base:+,.0f}"])
    say(f"\n### Framework tax: req/s, wrk, {args.connections} connections, medians (min-max) of {args.reps} runs\n")
    say(md_table(["what", "req/s", "p50 ms", "errors", "ratio to the no-op", "µs per request over the no-op"],
                 rows))
    say("\nµs per request = 1e6 / req/s: wall time of the one server core per request (wrk holds the other).")
    conf = med(rps["coopgis serve: /conformance"]) / base
    tile = med(rps["coopgis serve: warm tile z8 .mvt"]) / base
    for what, ratio in (("conformance", conf), ("tile", tile)):
        target = TARGETS[what]
        say(f"- {what}: {ratio:.2f}x of the no-op (target >= {target}x: "
            f"{'met' if ratio >= target else f'MISSED by {target - ratio:.2f}'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
