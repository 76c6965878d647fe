"""Mixed loopback load: tiles, items and geocoding at 64 connections, bounded in time and count.

Run: ``python -m benchmarks.load [--seconds 60] [--connections 64] [--size 100000] [--workers 1]``.
Starts ``coopgis serve`` on the benchmark dataset (built once), sends a mix of cooperative and
county tiles at zooms 5-12, items pages, bbox queries and geocoding requests to 127.0.0.1 only,
and prints requests, errors, throughput and p50/p99 latency. The rate limits are raised for
the run (they would otherwise answer this single client with 429s, by design).
"""

from __future__ import annotations

import argparse
import random

from benchmarks.common import (
    NO_RATE_LIMITS,
    READY,
    Server,
    coopgis_serve_argv,
    ensure_dataset,
    free_port,
    load_dataset,
    occupied_tiles,
    rss_mb,
)
from benchmarks.loadgen import httpx_load

ADDRESSES = ["فارس، شیراز", "استان مرکزی، شهرستان آشتیان", "Zahedan", "همدان، اسدآباد، روستای بادخوره",
             "خراسان رضوی-نیشابور", "كرمانشاه، روستاي فلان"]


def mixed_paths(dataset, seed: int = 1404, n: int = 4000) -> list[str]:
    """A shuffled mix: 60% tiles, 25% items, 15% geocoding."""
    rng = random.Random(seed)
    tiles = [(z, x, y) for z in (5, 6, 8, 10, 12) for (z, x, y) in occupied_tiles(dataset, z, 200, seed)]
    ids = dataset.cooperatives["registration_no"].sample(200, random_state=seed).tolist()
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            z, x, y = rng.choice(tiles)
            out.append(f"/tiles/cooperatives/{z}/{x}/{y}.{rng.choice(['mvt', 'geojson'])}")
        elif r < 0.6:
            z, x, y = rng.choice(tiles)
            out.append(f"/tiles/counties/{z}/{x}/{y}.mvt")
        elif r < 0.7:
            out.append(f"/collections/cooperatives/items?limit=100&offset={rng.randrange(0, 5000)}")
        elif r < 0.8:
            out.append("/collections/cooperatives/items?bbox=51,35,52,36&limit=500")
        elif r < 0.85:
            out.append(f"/collections/cooperatives/items/{rng.choice(ids)}")
        else:
            out.append(f"/geocode?q={rng.choice(ADDRESSES)}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--max-requests", type=int, default=2_000_000)
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)

    store, _ = ensure_dataset(args.size)
    paths = mixed_paths(load_dataset(store))
    port = free_port()
    server = Server("coopgis-load", coopgis_serve_argv(store, port, args.workers), port, READY,
                    env=NO_RATE_LIMITS)
    try:
        server.start()
        warm = httpx_load(server.base, paths, args.connections, len(paths), 30)  # every tile once: warm caches
        load = httpx_load(server.base, paths, args.connections, args.max_requests, args.seconds)
        rss = sum(filter(None, (rss_mb(p) for p in server.pids())))
    finally:
        server.stop()
    print(f"# mixed load on 127.0.0.1: {args.connections} connections, {load.seconds:.1f} s, "
          f"{args.workers} worker(s), {args.size:,} cooperatives")
    print(f"warm-up: {warm.requests:,} requests, {warm.errors} errors")
    print(f"requests {load.requests:,}  errors {load.errors}  throughput {load.rps:,.0f}/s  "
          f"p50 {load.p50_ms:.1f} ms  p99 {load.p99_ms:.1f} ms  statuses {load.statuses}")
    print(f"server RSS after the run: {rss:.0f} MB")
    return 0 if load.errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
