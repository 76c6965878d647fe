"""A flood of the most expensive requests, and what it does to a cheap one.

Run: ``python -m benchmarks.flood [--size 100000] [--seconds 20] [--connections 64] [--code DIR]``.

Starts ``coopgis serve`` (one worker) on the benchmark dataset, then:

1. times each candidate "worst request" alone (median of 3) and picks the slowest one that is answered
   200 as the flood request (the tester's ``/stats?county=<60 names>`` is always among them);
2. measures the probe, ``GET /collections/cooperatives/items?limit=10`` every 20 ms on its own
   connection, with no flood (the baseline of this run);
3. floods with ``--connections`` keep-alive connections sending the flood request for ``--seconds``
   while the probe runs, twice: from one client, and as that many clients (each connection its own
   ``X-Forwarded-For``, the server trusting 127.0.0.1 as a proxy so that the rate limits per client do
   not help and only the heavy gate does).

It prints the probe's p50/p99 and their ratio to the baseline, and the flood's answers by status.
The flood runs in a process of its own (raw sockets, no HTTP library) so that the probe's figures are
not its client's. Only 127.0.0.1 is ever contacted; every server is ended by its process-group id.

``--code DIR`` serves the coopgis package found in DIR instead (e.g. an export of an older commit:
``git archive <commit> | tar -x -C /tmp/old``), to measure before and after on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from urllib.parse import quote

from benchmarks.common import LOOPBACK, READY, Server, ensure_dataset, free_port, md_table, percentile, say

PROBE = "/collections/cooperatives/items?limit=10"
COUNTIES = ["Kerman", "Shiraz", "Tabriz", "Mashhad", "Isfahan", "Yazd", "Zanjan", "Qazvin", "Arak", "Semnan"]


def candidates() -> list[str]:
    """Expensive requests an unauthenticated client can send."""
    sixty = ",".join(COUNTIES * 6)
    return [
        f"/stats?county={sixty}",                                      # the tester's: 60 names, 430 bytes
        f"/stats?by=county&county={','.join(COUNTIES * 10)}",          # 100 names: at the new cap
        f"/tiles/cooperatives/5/21/12.mvt?county={sixty}",
        "/collections/cooperatives/items?f=html&limit=10000",
        "/collections/cooperatives/items?f=csv&limit=20000",
        "/collections/cooperatives/items?f=gpkg&limit=20000",
        "/collections/cooperatives/items?limit=10000",
        "/stats?by=county",
        "/search?q=" + "تعاونی تولیدی کشاورزی روستای " * 3,
    ]


# ---- a small HTTP/1.1 client on raw sockets (for the flood process) ---------------------------------

async def _request(reader, writer, path: str, headers: dict) -> int:
    target = quote(path, safe="/?=&,.:;%+-_")
    head = f"GET {target} HTTP/1.1\r\nHost: {LOOPBACK}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(head.encode() + b"\r\n")
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    length, chunked, close = None, False, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            close = True
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    if close:
        raise ConnectionError("closed")
    return status


async def _flood(port: int, paths: list[str], connections: int, seconds: float, spoof: bool, out) -> None:
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds

    async def worker(n: int):
        headers = {"X-Forwarded-For": f"198.18.{n // 250}.{n % 250 + 1}"} if spoof else {}
        reader = writer = None
        sent = n
        while time.monotonic() < deadline:
            path = paths[sent % len(paths)]
            sent += 1
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(LOOPBACK, port)
                status = await asyncio.wait_for(_request(reader, writer, path, headers),
                                                max(0.1, deadline - time.monotonic() + 30))
                statuses[status] = statuses.get(status, 0) + 1
                if status in (429, 503):
                    await asyncio.sleep(0.01)  # a polite client would wait Retry-After; a flood does not
            except (TimeoutError, OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
                statuses[-1] = statuses.get(-1, 0) + 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.05)
        if writer is not None:
            writer.close()

    await asyncio.gather(*(worker(n) for n in range(connections)))
    out.put(statuses)


def _flood_process(port, paths, connections, seconds, spoof, out) -> None:
    asyncio.run(_flood(port, paths, connections, seconds, spoof, out))


def probe(base: str, seconds: float, every: float = 0.02, path: str = PROBE) -> list[float]:
    """Latencies (ms) of ``path`` sent every ``every`` seconds for ``seconds`` on one keep-alive connection."""
    import httpx

    out = []
    with httpx.Client(base_url=base, timeout=120, trust_env=False) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:   # the first request too: it may wait longest
            t = time.perf_counter()
            r = client.get(path)
            out.append((time.perf_counter() - t) * 1000)
            if r.status_code != 200:
                out[-1] = float("inf")   # a failed probe counts as infinitely slow
            time.sleep(max(0.0, every - (time.perf_counter() - t)))
    return out


def flood_run(base: str, paths: str | list[str], connections: int, seconds: float,
              spoof: bool) -> tuple[list[float], dict]:
    """The probe's latencies (ms) during a flood of ``paths`` (cycled), and the flood's answers by status
    (-1: the connection failed)."""
    port = int(base.rsplit(":", 1)[1])
    paths = [paths] if isinstance(paths, str) else list(paths)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_flood_process, args=(port, paths, connections, seconds, spoof, out), daemon=True)
    proc.start()
    try:
        time.sleep(min(1.0, seconds / 4))          # let the flood build up
        lat = probe(base, seconds - min(1.0, seconds / 4) - 0.5)
        statuses = out.get(timeout=seconds + 120)
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    return lat, statuses


def summary(lat: list[float]) -> tuple[float, float]:
    return percentile(lat, 50), percentile(lat, 99)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--code", help="serve the coopgis package in this folder (default: this checkout)")
    ap.add_argument("--path", help="flood with this path instead of the slowest candidate")
    args = ap.parse_args(argv)

    store, _ = ensure_dataset(args.size)
    port = free_port()
    env = {"COOPGIS_TRUSTED_PROXIES": '["127.0.0.1"]', "FORWARDED_ALLOW_IPS": "127.0.0.1"}
    if args.code:
        env["PYTHONPATH"] = os.path.abspath(args.code)
    argv_ = [sys.executable, "-m", "coopgis.cli", "serve", "--data", str(store), "--port", str(port)]
    with Server("coopgis-flood", argv_, port, READY, env=env, cwd=args.code or None) as server:
        base = server.base
        probe(base, 3)                              # warm: indexes, caches
        times = []
        for n, path in enumerate(candidates()):
            import httpx

            ms, code = [], None
            for k in range(3):  # each as a client of its own (the server trusts 127.0.0.1 as a proxy)
                t = time.perf_counter()
                code = httpx.get(base + path, timeout=300,
                                 headers={"X-Forwarded-For": f"198.19.{n}.{k + 1}"}).status_code
                ms.append((time.perf_counter() - t) * 1000)
            times.append((statistics.median(ms), code, path))
        say(md_table(["request", "status", "median ms (alone)"],
                     [[p[:90], c, f"{m:,.1f}"] for m, c, p in times]))
        worst = args.path or max((t for t in times if t[1] == 200), default=times[0])[2]
        say(f"flood request: {worst[:120]}")
        base_lat = probe(base, min(10.0, args.seconds))
        rows = [["none (baseline)", "-", *(f"{v:,.1f}" for v in summary(base_lat)), "1.0x", len(base_lat)]]
        b50, b99 = summary(base_lat)
        for label, spoof in (("one client", False), (f"{args.connections} clients (X-Forwarded-For)", True)):
            lat, statuses = flood_run(base, worst, args.connections, args.seconds, spoof)
            p50, p99 = summary(lat)
            rows.append([label, " ".join(f"{k}:{v}" for k, v in sorted(statuses.items())),
                         f"{p50:,.1f}", f"{p99:,.1f}", f"{p99 / b99:,.1f}x", len(lat)])
        say(md_table(["flood", "flood answers", "probe p50 ms", "probe p99 ms", "p99 / baseline", "probes"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
